"""Other libraries' log lines: off the ``s2s`` command's output by default, shown with ``s2s -v``.

At the source first: the environment before TensorFlow is imported (``TF_CPP_MIN_LOG_LEVEL``) and the libraries'
Python loggers (onnxruntime's quantizer warns on the root logger). Some C++ code logs with no switch at all:
TensorFlow's oneDNN notices (written by absl before its logging is initialised, whatever the log level), its
"oneDNN supports DT_BOOL only on platforms with AVX-512" line, and TFLite's "Created TensorFlow Lite XNNPACK
delegate for CPU.". Around the calls that make those, ``native_logs_caught()`` points file descriptor 2 at a
temporary file; Python's own ``sys.stderr`` (our messages, the progress bar, tracebacks) was moved to a copy of
the terminal's descriptor by ``configure``, so only the C++ libraries' lines are caught. If the block fails with
an unexpected error, the last of what was caught is shown with it.

Only the ``s2s`` command calls ``configure``. In a program that imports ``seq2seq_edge`` the same blocks hold back
only the lines known to be noise (``KNOWN_NOISE``): the rest of what was written to descriptor 2 during the block
is written back when it ends. Setting the ``seq2seq_edge`` logger to DEBUG shows everything.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import threading

#: Python loggers of the libraries the toolkit drives; the root logger stands for those that log on it.
LIBRARY_LOGGERS = ("", "tensorflow", "absl", "keras", "tf2onnx", "onnxruntime", "matplotlib", "PIL", "h5py")
#: What is shown of the caught native lines when a block fails unexpectedly.
REPLAY_BYTES = 8192
#: Lines a library writes with no switch to turn them off and that say nothing a caller can act on; outside the
#: CLI, ``native_logs_caught`` drops these and writes back everything else.
KNOWN_NOISE = (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)
#: A caller's descriptor 2 is held back at most this much while the block runs; past it, the rest is written back
#: as it is.
MAX_FILTERED_BYTES = 2**20

_lock = threading.Lock()
_state = {"configured": False, "verbose": False, "depth": 0}


def configure(verbose: bool = False) -> None:
    """Called by the CLI before anything heavy is imported. ``verbose``: leave every library's logging as it is."""
    _state["configured"], _state["verbose"] = True, verbose
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO and WARNING lines
    _move_python_stderr()


def verbose() -> bool:
    """Whether the user asked for the libraries' logs (``s2s -v``)."""
    return _state["verbose"]


def active() -> bool:
    """Whether the CLI asked for the libraries to be kept quiet (``configure`` without ``-v``)."""
    return _state["configured"] and not _state["verbose"]


def quiet_library_loggers() -> None:
    """The libraries' Python loggers at ERROR (the root logger included); ours keep their own level."""
    if not _state["verbose"]:
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)


def _move_python_stderr() -> None:
    """Python's sys.stderr writes to a duplicate of descriptor 2 from now on, so that descriptor 2 itself can be
    pointed elsewhere while a C++ library talks, without hiding our own lines."""
    if not _can_redirect():
        return
    try:
        sys.stderr.flush()
        fd = os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # no real stderr (a test harness, a closed descriptor)
        return
    old = sys.stderr
    sys.stderr = io.TextIOWrapper(io.FileIO(fd, "w", closefd=True), encoding=old.encoding or "utf-8",
                                  errors=old.errors or "backslashreplace", line_buffering=True, write_through=True)
    _state["moved"] = True


def _can_redirect() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def native_logs_caught():
    """While the block runs, what C++ libraries write to descriptor 2 goes to a temporary file (only after the
    CLI's ``configure``, without ``-v``). On an unexpected exception the end of it is shown before the exception
    goes on; a user error (``Seq2SeqEdgeError``) or Ctrl-C shows nothing more. Nested blocks share the outer one."""
    with _lock:
        first = _state["depth"] == 0
        outer = _state.get("moved") and first
        filtering = first and not _state["configured"] and _can_redirect() and not logging.getLogger(
            "seq2seq_edge").isEnabledFor(logging.DEBUG)
        _state["depth"] += 1
    try:
        if filtering:
            with _known_noise_dropped():
                yield
        elif outer:
            with _caught_for_replay():
                yield
        else:
            yield
    finally:
        with _lock:
            _state["depth"] -= 1


@contextlib.contextmanager
def _caught_for_replay():
    """Descriptor 2 to a temporary file during the block; on an unexpected exception, its end is shown."""
    caught = tempfile.TemporaryFile()
    saved = os.dup(2)
    os.dup2(caught.fileno(), 2)
    try:
        yield
    except Exception as e:
        from .errors import Seq2SeqEdgeError

        if not isinstance(e, Seq2SeqEdgeError):
            _restore(saved)
            saved = None
            _replay(caught)
        raise
    finally:
        if saved is not None:
            _restore(saved)
        caught.close()


@contextlib.contextmanager
def _known_noise_dropped():
    """Descriptor 2 to a temporary file during the block; then everything but the KNOWN_NOISE lines written back."""
    try:
        sys.stderr.flush()
        caught = tempfile.TemporaryFile()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):
        yield
        return
    os.dup2(caught.fileno(), 2)
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        _restore(saved)
        caught.seek(0)
        kept = [line for line in caught.read(MAX_FILTERED_BYTES).splitlines(keepends=True)
                if line.rstrip(b"\r\n") not in KNOWN_NOISE] + [caught.read()]
        caught.close()
        data = memoryview(b"".join(kept))
        while data:
            data = data[os.write(2, data):]


def _restore(saved: int) -> None:
    os.dup2(saved, 2)
    os.close(saved)


def _replay(caught) -> None:
    size = caught.seek(0, os.SEEK_END)
    if not size:
        return
    caught.seek(max(0, size - REPLAY_BYTES))
    text = caught.read().decode("utf-8", "replace")
    print(f"(the libraries' last log lines before the error; s2s -v shows them all)\n{text.rstrip()}",
          file=sys.stderr)
