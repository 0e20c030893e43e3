"""Helpers the test files share: running the ``s2s`` command, reading its one error line, and editing bundles.

``s2s`` runs the command as a test wants it (TensorFlow's C++ log lines off, or ``as_user=True``: the environment
a user has); ``s2s_limited`` runs it the way the trust tests do (the installed script, a memory limit, a timeout,
no S2S_ variables, optionally its own cache). ``resign`` writes a changed model file and makes the manifest's
size, sha256 (and operator list) match it, so only the checks past the checksum can notice the change.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from seq2seq_edge import backends
from seq2seq_edge import manifest as mf

#: Modules a runtime-only process must never import.
HEAVY = ("tensorflow", "keras", "tf_keras", "tf2onnx", "onnx", "jax", "torch")
S2S = Path(sys.executable).with_name("s2s")
#: Address space of a limited run: the CLI process (numpy + one interpreter) and its probe child.
MEMORY_LIMIT = 2 * 2**30 + 512 * 2**20
TFLITE_BACKEND = next((b for b in ("litert", "tflite") if backends.is_installed(b)), None)


def s2s(*args, stdin: bytes | None = None, cwd=None, env: dict | None = None, as_user: bool = False):
    """Run ``python -m seq2seq_edge.cli ARGS``; returns (exit status, stdout, stderr) as text. ``as_user``: without
    the test session's TF_CPP_MIN_LOG_LEVEL, as a user runs it (the CLI must keep the libraries' lines off)."""
    env = {**os.environ, **(env or {})}
    if as_user:
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    else:
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run([sys.executable, "-m", "seq2seq_edge.cli", *map(str, args)], input=stdin,
                          capture_output=True, cwd=cwd, env=env)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def s2s_as_user(*args, **kwargs):
    """``s2s`` as a user runs it: without the test session's TF_CPP_MIN_LOG_LEVEL."""
    return s2s(*args, as_user=True, **kwargs)


def one_error_line(err: str) -> str:
    """The only line of ``err`` that s2s wrote (starting "s2s "); no traceback."""
    lines = [line for line in err.splitlines() if line.startswith("s2s ")]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


def s2s_limited(*args, cwd=None, cache=None, timeout=60, stdin=None) -> subprocess.CompletedProcess:
    """Run the installed ``s2s`` command in a child limited to MEMORY_LIMIT of address space and ``timeout``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("S2S_")}
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    return subprocess.run([str(S2S), *map(str, args)], capture_output=True, timeout=timeout, cwd=cwd, env=env,
                          preexec_fn=limit, stdin=stdin if stdin is not None else subprocess.DEVNULL)


def stderr_lines(proc) -> list[str]:
    # LiteRT prints one INFO line from C++ whenever it creates an XNNPACK delegate (the newcomer issue's noise).
    return [line for line in proc.stderr.decode("utf-8", "replace").splitlines()
            if line.strip() and not line.startswith("INFO: Created TensorFlow Lite")]


def assert_refused(proc, pattern: str) -> None:
    """Exit status 2 and exactly one stderr line, ``s2s run: error: `` + ``pattern`` (a regex searched in it)."""
    lines = stderr_lines(proc)
    assert proc.returncode == 2, (proc.returncode, lines)
    assert len(lines) == 1 and lines[0].startswith("s2s run: error: "), lines
    assert re.search(pattern, lines[0]), lines[0]
    assert proc.stdout == b""


def copy_bundle(src: Path, tmp_path: Path, name: str = "bundle") -> Path:
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def edit_manifest(bundle: Path, change) -> None:
    """Apply ``change`` to the bundle's manifest dict and write it back."""
    path = bundle / mf.MANIFEST_FILE
    d = json.loads(path.read_text())
    change(d)
    path.write_text(json.dumps(d))


def resign(bundle: Path, name: str, content: bytes, ops: list[str] | None = None) -> None:
    """Write ``content`` as the bundle's file ``name``; make the manifest's size, sha256 (and ops) match it."""
    (bundle / name).write_bytes(content)

    def change(d):
        for m in d["models"]:
            if m["path"] == name:
                m["sha256"], m["size_bytes"] = hashlib.sha256(content).hexdigest(), len(content)
                if ops is not None:
                    m["ops"] = ops
    edit_manifest(bundle, change)
