"""An opt-in sandboxed decoder, for servers that decode bundles their users upload.

The loader proves what it can from the bytes (operators, loop bounds, sizes read from values) and runs each new
model file once in a limited test process (``probe.py``). What no proof reaches (an interpreter bug that a
well-formed file triggers at a batch size the probe did not run, an allowed operator fed absurd constant shapes)
is bounded here instead: the bundle is loaded and decoded in a child process that limits its own address space,
CPU seconds and file writes, with no working directory, user site or inherited environment, and every call has a
wall-clock timeout. A crash, a memory bomb or a runaway call ends that child with a one-line BundleError; the next
call starts a fresh one. Replies are read bounded (their size follows from the inputs and the manifest).

    with seq2seq_edge.sandbox.SandboxedDecoder("uploads/bundle", memory_mib=1024, timeout_s=10) as decoder:
        decoder.decode_batch(["7", "42"])

Its cost is one process and one JSON round trip per call (benchmarks/sandbox.py measures it per word). Linux and
macOS (``resource`` limits); the parent never unpickles or evaluates anything the child sends.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from dataclasses import asdict

from .decoder import DecodeResult
from .options import DecodeOptions, OptionError, resolve
from .errors import BundleError, InputTextError, Seq2SeqEdgeError

log = logging.getLogger(__name__)

#: Defaults: address space of the child (Python, numpy and an interpreter need about 0.5-1 GiB of it), CPU
#: seconds over its life, wall-clock seconds per call (and for the start, which loads and checks the bundle).
DEFAULT_MEMORY_MIB = 2048
DEFAULT_CPU_SECONDS = 3600
DEFAULT_TIMEOUT_S = 30.0
#: Bytes of one reply's JSON beyond its token strings: brackets, keys and a probability per token.
_REPLY_OVERHEAD_PER_TOKEN = 64
_STDERR_TAIL = 4096
_KEPT_ENVIRONMENT = ("PATH", "LD_LIBRARY_PATH", "SYSTEMROOT", "XDG_CACHE_HOME", "HOME")
_ERRORS = {"InputTextError": InputTextError, "BundleError": BundleError, "OptionError": OptionError}


class SandboxedDecoder:
    """``seq2seq_edge.load``'s decoder, run in a limited child process; the same decode methods and results.

    ``memory_mib``: the child's address space; ``cpu_seconds``: its CPU time over its life; ``timeout_s``: the
    wall-clock limit of the start and of each call. Other keywords go to ``seq2seq_edge.load`` in the child.
    """

    def __init__(self, bundle_dir: str | Path, backend: str = "auto", variant: str = "fp32", threads: int = 1,
                 one_call: bool | None = None, *, memory_mib: int = DEFAULT_MEMORY_MIB,
                 cpu_seconds: int = DEFAULT_CPU_SECONDS, timeout_s: float = DEFAULT_TIMEOUT_S):
        for name, value in (("memory_mib", memory_mib), ("cpu_seconds", cpu_seconds)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or not 0 < timeout_s < 86400:
            raise ValueError(f"timeout_s must be a number of seconds between 0 and 86400, got {timeout_s!r}")
        self.bundle_dir = str(Path(bundle_dir).resolve())
        self._load_args = {"bundle_dir": self.bundle_dir, "backend": backend, "variant": variant,
                           "threads": threads, "one_call": one_call}
        self.memory_mib, self.cpu_seconds, self.timeout_s = memory_mib, cpu_seconds, float(timeout_s)
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._info: dict[str, Any] = {}
        self._lock = threading.Lock()  # one request at a time on the child's pipes
        with self._lock:
            self._start()

    # -- the decoder's API ---------------------------------------------------------------------------------------
    @property
    def decode_path(self) -> str:
        return self._info["decode_path"]

    @property
    def max_output_len(self) -> int:
        return self._info["max_output_len"]

    @property
    def backend(self) -> str:
        return self._info["backend"]

    def decode(self, source: str, options: DecodeOptions | None = None, /, **overrides) -> str:
        return self.decode_result(source, resolve(options, overrides)).text

    def decode_result(self, source: str, options: DecodeOptions | None = None, /, **overrides) -> DecodeResult:
        if not isinstance(source, str):
            raise TypeError(f"input must be str, not {type(source).__name__}")
        return self._call([source], resolve(options, overrides), single=True)[0]

    def decode_batch(self, sources: Sequence[str], options: DecodeOptions | None = None, /, **overrides) -> list[str]:
        return [r.text for r in self.decode_batch_results(sources, resolve(options, overrides))]

    def decode_batch_results(self, sources: Sequence[str], options: DecodeOptions | None = None, /,
                             **overrides) -> list[DecodeResult]:
        if isinstance(sources, str):
            raise TypeError("decode_batch takes a list of strings, not one string; use decode()")
        opts = resolve(options, overrides)
        sources = list(sources)
        for i, s in enumerate(sources):
            if not isinstance(s, str):
                raise TypeError(f"item {i + 1} of {len(sources)}: input must be str, not {type(s).__name__}")
        return self._call(sources, opts)

    def close(self) -> None:
        """Stop the child process."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop(proc)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> "SandboxedDecoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return (f"SandboxedDecoder({self.bundle_dir!r}, memory_mib={self.memory_mib}, timeout_s={self.timeout_s}, "
                f"path={self._info.get('decode_path')!r})")

    # -- the child -----------------------------------------------------------------------------------------------
    def _start(self) -> None:
        env = {k: os.environ[k] for k in _KEPT_ENVIRONMENT if k in os.environ}
        env.update(LC_ALL="C.UTF-8", PYTHONIOENCODING="utf-8")
        limits = json.dumps({"memory": self.memory_mib * 2**20, "cpu": self.cpu_seconds})
        # stderr to an unnamed file (a pipe nobody reads would fill and block the child); its tail says why it died
        self._stderr = tempfile.TemporaryFile(prefix="s2s-sandbox-stderr-")
        with tempfile.TemporaryDirectory(prefix="s2s-sandbox-") as empty:  # its cwd: removed once it started
            self._proc = subprocess.Popen([sys.executable, "-I", "-m", "seq2seq_edge.sandbox", limits],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                          cwd=empty, env=env)
        self._info = self._request({"op": "load", **self._load_args}, 64 * 1024)

    def _call(self, sources: list[str], opts: DecodeOptions, single: bool = False) -> list[DecodeResult]:
        with self._lock:
            if self._proc is None:
                self._start()
            hypotheses = opts.n_best  # checked: 1 to 64
            # each token's string appears twice (tokens and text), at most as long as the longest in JSON
            per_token = 2 * self._info["longest_token_json"] + _REPLY_OVERHEAD_PER_TOKEN
            budget = 4096 + len(sources) * hypotheses * (self._info["max_output_len"] + 2) * per_token
            reply = self._request({"op": "decode", "inputs": sources, "options": asdict(opts),
                                   "single": single}, budget)
        if not isinstance(reply, list) or len(reply) != len(sources):
            self.close()
            raise BundleError("the sandboxed decoder replied with something else than one result per input",
                              where=self.bundle_dir)
        return [_result(r, self.bundle_dir) for r in reply]

    def _request(self, message: dict, max_reply: int) -> Any:
        proc = self._proc
        try:
            proc.stdin.write(json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died: its status says why, below
        line, why = _read_line(proc, max_reply, self.timeout_s)
        if line is None:
            self._proc = None
            message = _death(proc, why, self)
            self.close()
            raise BundleError(message, where=self.bundle_dir)
        try:
            reply = json.loads(line)
        except (ValueError, RecursionError):
            self.close()
            raise BundleError("the sandboxed decoder replied with something that is not JSON",
                              where=self.bundle_dir) from None
        if isinstance(reply, dict) and "error" in reply:
            err = reply["error"] if isinstance(reply["error"], dict) else {}
            cls = {"TypeError": TypeError, "ValueError": ValueError, **_ERRORS}.get(err.get("type"), Seq2SeqEdgeError)
            text = str(err.get("message", "the sandboxed decoder failed"))[:2000]
            if message["op"] == "load":
                self.close()
            raise cls(text)
        if not isinstance(reply, dict) or "ok" not in reply:
            self.close()
            raise BundleError("the sandboxed decoder replied with an unknown message", where=self.bundle_dir)
        return reply["ok"]


def _result(r: Any, where: str) -> DecodeResult:
    try:
        alternatives = tuple(_result(a, where) for a in r.get("alternatives", ())[:64])
        result = DecodeResult(text=str(r["text"]), tokens=tuple(str(t) for t in r["tokens"]),
                              token_probs=tuple(float(p) for p in r["token_probs"]), finished=bool(r["finished"]),
                              alternatives=alternatives)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BundleError("the sandboxed decoder replied with a malformed result", where=where) from None
    return result


def _read_line(proc: subprocess.Popen, max_bytes: int, timeout_s: float) -> tuple[bytes | None, str]:
    """One reply line, read at most max_bytes and timeout_s; (None, why) when the child gave none."""
    fd, chunks, got = proc.stdout.fileno(), [], 0
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, "timeout"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return None, "exited"
        newline = chunk.find(b"\n")
        if newline >= 0:
            chunks.append(chunk[:newline])
            return b"".join(chunks), ""
        chunks.append(chunk)
        got += len(chunk)
        if got > max_bytes:
            return None, "too long"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass


def _death(proc: subprocess.Popen, why: str, d: SandboxedDecoder) -> str:
    """Stop the child and say, in one line, why it gave no reply."""
    _stop(proc)
    status = proc.returncode
    if why == "timeout":
        return f"the sandboxed decoder took longer than {d.timeout_s:g} s on one call and was stopped"
    if why == "too long":
        return "the sandboxed decoder's reply was longer than its inputs allow and it was stopped"
    if status is not None and status < 0:
        sig = -status
        if sig == getattr(signal, "SIGXCPU", None):
            return f"the sandboxed decoder ran out of its {d.cpu_seconds} CPU seconds"
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        return f"the sandboxed decoder crashed ({name}): the bundle is malformed or hostile"
    err = b""
    if d._stderr is not None:  # the tail of what it wrote on stderr
        size = d._stderr.seek(0, os.SEEK_END)
        d._stderr.seek(max(0, size - _STDERR_TAIL))
        err = d._stderr.read(_STDERR_TAIL)
    last = [line for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
    if last and "MemoryError" in last[-1] or status == 3:
        return f"the sandboxed decoder ran out of its {d.memory_mib} MiB of memory"
    return f"the sandboxed decoder exited with status {status}" + (f": {last[-1][:300]}" if last else "")


# ---- the child's side ------------------------------------------------------------------------------------------
def _serve(limits: dict) -> int:
    """Limit this process, then answer one JSON line per request on stdin, one per reply on stdout."""
    from . import probe

    probe.limit_self(int(limits["memory"]), int(limits["cpu"]))
    probe.CACHE_WRITES = False  # no file writes here: the probe's cache is only read
    out = sys.stdout.buffer
    decoder = None
    for raw in sys.stdin.buffer:
        reply = None
        try:
            request = json.loads(raw)
            if request["op"] == "load":
                from .loader import load

                args = {k: request[k] for k in ("backend", "variant", "threads", "one_call")}
                decoder = load(request["bundle_dir"], **args)
                longest = max(len(json.dumps(t, ensure_ascii=False).encode("utf-8"))
                              for t in decoder.preprocessing.target_vocabulary)
                reply = {"ok": {"decode_path": decoder.decode_path, "max_output_len": decoder.max_output_len,
                                "backend": decoder.backend, "longest_token_json": longest}}
            else:
                opts = DecodeOptions(**request["options"])
                results = ([decoder.decode_result(request["inputs"][0], opts)] if request["single"]
                           else decoder.decode_batch_results(request["inputs"], opts))
                reply = {"ok": [r.to_dict() for r in results]}
        except MemoryError:
            return 3
        except (Seq2SeqEdgeError, TypeError, ValueError) as e:
            kind = type(e).__name__ if type(e).__name__ in (*_ERRORS, "TypeError", "ValueError") else "BundleError"
            reply = {"error": {"type": kind, "message": str(e)}}
        out.write(json.dumps(reply, ensure_ascii=False).encode("utf-8") + b"\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve(json.loads(sys.argv[1])))
