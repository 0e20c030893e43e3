"""Loading untrusted model files in a child process first, for interpreters that do not verify them.

tflite-runtime 2.14 (the Raspberry Pi OS Bookworm interpreter) parses a .tflite flatbuffer without verifying it:
a malformed file whose sha256 matches a (tampered) manifest makes it read out of bounds and kill the process
(SIGSEGV in the loader fuzz test). LiteRT verifies flatbuffers, and ONNX Runtime's protobuf parser fails cleanly,
so only tflite-runtime is probed. The child loads each model and runs it once; if it dies, the parent refuses the
file with a clear error instead of crashing. A model that passed is remembered by sha256 and interpreter version
(in ``$XDG_CACHE_HOME/seq2seq-edge/verified.json``), so the probe costs one child process per file, once.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from .errors import BundleError

log = logging.getLogger(__name__)

#: Backends whose interpreter may crash on a malformed file, so files are loaded in a child first.
PROBED_BACKENDS = ("tflite",)
PROBE_TIMEOUT_S = 60


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "seq2seq-edge" / "verified.json"


def _interpreter_version(backend: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version({"tflite": "tflite-runtime", "litert": "ai-edge-litert", "onnx": "onnxruntime"}[backend])
    except PackageNotFoundError:
        return "unknown"


def _load_cache() -> set[str]:
    try:
        return set(json.loads(_cache_file().read_text()))
    except (OSError, ValueError, TypeError):
        return set()


def _save_cache(keys: set[str]) -> None:
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(sorted(keys)))
        os.replace(tmp, path)
    except OSError as e:  # a read-only home only costs the probe again next time
        log.debug("cannot write %s: %s", path, e)


def _probe_env() -> dict:
    """The child's environment: glibc fills fresh and freed heap memory with a byte pattern, so an out-of-bounds
    read of a malformed file crashes the child every time instead of now and then (measured on one fuzz case:
    the child survived 33 of 40 runs without it, 0 of 60 with it, and the parent later crashed)."""
    return {**os.environ, "MALLOC_PERTURB_": "165"}


def probe(backend: str, files: list[tuple[str, str, bool]]) -> None:
    """Load each (path, sha256, xnnpack) in a child process; raise BundleError naming a file that crashes it."""
    if backend not in PROBED_BACKENDS or os.environ.get("S2S_NO_PROBE") == "1":
        return
    version = _interpreter_version(backend)
    cache = _load_cache()
    todo = [f for f in files if f"{backend}:{version}:{f[1]}" not in cache]
    if not todo:
        return
    for path, sha, xnnpack in todo:
        mode = xnnpack if isinstance(xnnpack, str) else ("1" if xnnpack else "0")
        cmd = [sys.executable, "-m", "seq2seq_edge.probe", backend, path, mode]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=_probe_env())
        except subprocess.TimeoutExpired:
            raise BundleError(f"the {backend} interpreter did not finish loading it within {PROBE_TIMEOUT_S} s "
                              "(malformed file?)", where=path) from None
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            raise BundleError(f"the {backend} interpreter crashed ({name}) reading it in a test process: "
                              "the file is malformed; it was not loaded here", where=path)
        if proc.returncode != 0:
            lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
            raise BundleError(lines[-1] if lines else f"probe failed with status {proc.returncode}", where=path)
        cache.add(f"{backend}:{version}:{sha}")
    _save_cache(cache)


def _main(argv: list[str]) -> int:
    """Child side: load one model, allocate, run it once on zeros; exit 0, or 2 with the error on stderr."""
    from . import backends

    backend, path, xnnpack = argv[0], argv[1], {"1": True, "0": False}.get(argv[2], argv[2])
    try:
        model = backends.open_model(backend, Path(path).read_bytes(), 1, xnnpack=xnnpack)
        for batch in (1, 2):  # batch 2 also builds the batched interpreter of a "batched" model
            model.run(backends.zero_feeds(model, batch))
    except Exception as e:  # reported to the parent as a clean error
        print(" ".join(str(e).split()), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
