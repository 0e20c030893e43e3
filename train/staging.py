"""Write a folder next to its destination, then swap it in: a run or a bundle appears whole or not at all.

The staging folder is ``.<name>.<random>`` beside the destination and holds a marker with the writing process's
id. Ctrl-C and SIGTERM remove it on the way out; a process killed outright (SIGKILL, a power cut) cannot, so the
next staging beside the same destination removes folders whose marker names a process that is gone, and says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

#: The file inside a staging folder that marks it as this tool's, with the writer's process id.
MARKER = ".s2s-staging"


@contextmanager
def staged_folder(out_dir: str | Path) -> Iterator[Path]:
    """Yield a new empty folder beside ``out_dir``; when the block ends without an exception, replace ``out_dir``
    (and whatever it held) with it. On an exception, Ctrl-C or SIGTERM ``out_dir`` is left as it was and the new
    folder is removed.

    Callers check ``--force`` before: this overwrites.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    staging.chmod(0o755)
    (staging / MARKER).write_text(str(os.getpid()))
    try:
        with _sigterm_raises():
            yield staging
            (staging / MARKER).unlink()
            if out_dir.exists():
                shutil.rmtree(out_dir)
            os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def sweep_stale(out_dir: Path) -> list[Path]:
    """Remove the staging folders of ``out_dir`` left by processes that no longer run; return them."""
    removed = []
    for candidate in out_dir.parent.glob(f".{out_dir.name}.*"):
        marker = candidate / MARKER
        try:
            pid = int(marker.read_text().strip())
        except (OSError, ValueError):
            continue  # not ours, or not readable: leave it
        if _alive(pid):
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        log.warning("removed %s, a temporary folder left by an interrupted run (process %d)", candidate, pid)
        removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


@contextlib.contextmanager
def _sigterm_raises():
    """Inside the block, SIGTERM raises SystemExit(143), so ``finally`` clauses run (main thread only).

    A signal's exception raised while a library runs Python code of ours or its own (TensorFlow tracing a Keras
    layer) may come out of that library as another exception, wrapped: whatever leaves the block after SIGTERM is
    SystemExit(143), and after Ctrl-C (SIGINT) KeyboardInterrupt, so the process ends as a signal ends it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []

    def on_sigterm(signum, frame):
        received.append(signum)
        raise SystemExit(128 + signum)

    def on_sigint(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, on_sigterm)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where Ctrl-C is ignored or handled
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except BaseException:
        if not received:
            raise
        if received[0] == signal.SIGTERM:
            raise SystemExit(128 + signal.SIGTERM) from None
        raise KeyboardInterrupt from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
