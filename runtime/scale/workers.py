"""The worker pool of ``s2s run --input``: processes that each load the bundle once and handle batches in order.

``in_order(bundle, load_kwargs, handle, batches, workers)`` yields ``handle(decoder, batch)`` for each batch, in
the batches' order: in this process when ``workers`` is 1 (with a decoder already loaded, if given), else in
``workers`` spawned processes fed through a bounded queue, with at most ``IN_FLIGHT_PER_WORKER * workers``
batches given out and not yet yielded, so memory stays a few batches' worth however long the input. ``handle``
must be a module-level function (it is pickled by name for the workers).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
from typing import Callable, Iterable, Iterator

from ..errors import Seq2SeqEdgeError

#: Batches given to the workers and not yet yielded, per worker: enough to keep each busy while the parent
#: writes, few enough that memory stays a few batches' worth.
IN_FLIGHT_PER_WORKER = 2
#: How long the parent waits on the workers before checking that they are alive.
POLL_SECONDS = 0.5


def _worker(bundle: str, load_kwargs: dict, handle: Callable, tasks, results, parent: int,
            quiet_native: bool) -> None:
    """A worker process: load the bundle once, then handle batches until told to stop or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    _die_with_parent()
    from .. import quiet
    from ..loader import load

    if quiet_native:  # as the s2s command that started us: the interpreters' C++ lines off stderr
        quiet.configure(False)

    try:
        decoder = load(bundle, **load_kwargs)
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line
        results.put(("failed", f"{type(e).__name__}: {e}"))
        return
    results.put(("ready", os.getpid()))
    while True:
        try:
            task = tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:  # the parent was killed: nobody will read our results, and a normal
                os._exit(0)  # exit would wait for the result queue's feeder to write into a pipe nobody drains
            continue
        if task is None:
            return
        index, batch = task
        results.put((index, handle(decoder, batch)))


def _die_with_parent() -> None:
    """On Linux, ask the kernel to kill this process when its parent dies (a SIGKILLed parent runs no cleanup).
    Elsewhere the worker's poll of its parent id does it within a second, except when the parent died in the middle
    of writing a task: the worker then waits for the rest of it, since it holds the pipe's write end too."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class WorkerPool:
    """``n`` worker processes that each load ``bundle`` with ``load_kwargs``; ``map`` yields ``handle``'s result
    for each batch in input order."""

    def __init__(self, bundle: str, load_kwargs: dict, handle: Callable, n: int):
        ctx = multiprocessing.get_context("spawn")  # no interpreter or thread state copied from this process
        self.limit = IN_FLIGHT_PER_WORKER * n
        self.tasks = ctx.Queue(maxsize=self.limit)
        self.results = ctx.Queue()
        from .. import quiet

        self.procs = [ctx.Process(target=_worker, args=(str(bundle), load_kwargs, handle, self.tasks, self.results,
                                                         os.getpid(), quiet.active()),
                                  daemon=True, name=f"s2s-worker-{i + 1}")
                      for i in range(n)]
        for p in self.procs:
            p.start()
        for _ in self.procs:
            message = self._get()
            if message[0] == "failed":
                raise Seq2SeqEdgeError(f"a worker could not load the bundle: {message[1]}")

    def _get(self):
        while True:
            try:
                return self.results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                dead = [p for p in self.procs if p.exitcode is not None]
                if dead:
                    raise Seq2SeqEdgeError(f"worker {dead[0].name} died (exit code {dead[0].exitcode}); the lines "
                                           "written so far are complete: --resume continues") from None

    def map(self, batches: Iterable[list]) -> Iterator:
        sent = written = 0
        done: dict[int, object] = {}
        source = iter(batches)
        exhausted = False
        while True:
            while not exhausted and sent - written < self.limit:
                batch = next(source, None)
                if batch is None:
                    exhausted = True
                else:
                    self.tasks.put((sent, batch))
                    sent += 1
            if written == sent:
                return
            index, result = self._get()
            done[index] = result
            while written in done:
                yield done.pop(written)
                written += 1

    def close(self, *, wait: bool) -> None:
        if wait:
            for _ in self.procs:
                self.tasks.put(None)
            for p in self.procs:
                p.join(timeout=10)
        for p in self.procs:
            if p.is_alive():
                p.kill()
                p.join()
        self.tasks.cancel_join_thread()
        self.results.cancel_join_thread()


def in_order(bundle, load_kwargs: dict, handle: Callable, batches: Iterable[list], workers: int,
             decoder=None) -> Iterator:
    """``handle(decoder, batch)`` of each batch, in order: in this process (``workers`` 1; ``decoder`` if given,
    else the bundle loaded now) or in ``workers`` processes."""
    if workers == 1:
        if decoder is None:
            from ..loader import load

            decoder = load(bundle, **load_kwargs)
        for batch in batches:
            yield handle(decoder, batch)
        return
    pool = WorkerPool(bundle, load_kwargs, handle, workers)
    finished = False
    try:
        yield from pool.map(batches)
        finished = True
    finally:
        pool.close(wait=finished)
