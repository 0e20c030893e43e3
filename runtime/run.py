"""``s2s run``: decode arguments or standard input, one output line per input line, answering as it goes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time

from .loader import load
from .errors import InputTextError, Seq2SeqEdgeError


def _stdin_lines():
    """(line number, text) of standard input, decoded as UTF-8 line by line."""
    for lineno, raw in enumerate(sys.stdin.buffer, start=1):
        raw = raw.rstrip(b"\n")
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            yield lineno, raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputTextError(f"stdin:{lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                                 f"{e.start + 1})") from None


def run_command(args) -> int:
    if args.batch_size < 1:
        raise Seq2SeqEdgeError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threads < 1:
        raise Seq2SeqEdgeError(f"--threads must be at least 1, got {args.threads}")
    decoder = load(args.bundle, backend=args.backend, variant=args.variant, threads=args.threads)
    if args.max_output_len is not None and not 1 <= args.max_output_len <= decoder.max_output_len:
        raise Seq2SeqEdgeError(f"--max-output-len must be between 1 and the trained maximum "
                               f"{decoder.max_output_len}, got {args.max_output_len}")
    if args.texts:
        source = ((f"argument {i}", t) for i, t in enumerate(args.texts, start=1))
        batch_size = args.batch_size
    else:
        source = ((f"stdin:{n}", t) for n, t in _stdin_lines())
        # On a terminal answer each line at once; in a pipe, fill batches for throughput.
        batch_size = 1 if sys.stdin.isatty() else args.batch_size
    pending: list[tuple[str, str]] = []
    items = iter(source)
    ctrl_c = _CtrlC()
    try:
        while True:
            try:
                with ctrl_c.interruptible():
                    item = next(items)
            except StopIteration:
                break
            except (InputTextError, KeyboardInterrupt):
                _answer(decoder, pending, args)  # every line read so far is answered
                raise
            pending.append(item)
            if len(pending) >= batch_size:
                _answer(decoder, pending, args)
                pending = []
        _answer(decoder, pending, args)
        ctrl_c.raise_if_pressed()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        ctrl_c.restore()
    return 0


class _CtrlC:
    """Ctrl-C interrupts only the wait for input; pressed while lines are decoded, it takes effect once they are
    answered. Either way every line read is answered, and KeyboardInterrupt is raised once (CPython may run the
    handler a second time for the same signal when an interrupted read returns)."""

    def __init__(self):
        self.hit = self.pressed = False
        self.waiting = False
        try:
            self.previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: keep Python's default
            self.previous = None

    def _handler(self, signum, frame):
        if self.hit:
            return
        self.pressed = True
        if self.waiting:
            self.hit = True
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def interruptible(self):
        self.raise_if_pressed()
        self.waiting = True
        try:
            yield
        finally:
            self.waiting = False

    def raise_if_pressed(self):
        if self.pressed and not self.hit:
            self.hit = True
            raise KeyboardInterrupt

    def restore(self):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _answer(decoder, items: list[tuple[str, str]], args) -> None:
    """Decode and print ``items``; on a bad item, print the good ones before it and raise naming its place."""
    if not items:
        return
    texts = [t for _, t in items]
    kwargs = {"max_output_len": args.max_output_len, "skip_unknown": args.skip_unknown}
    started = time.perf_counter()
    try:
        results = decoder.decode_batch_results(texts, args.batch_size, **kwargs)
    except InputTextError:
        # Find the first bad item, answer those before it, and name it.
        for i, (where, t) in enumerate(items):
            try:
                decoder.preprocessing.encode_input(t, skip_unknown=args.skip_unknown)
            except InputTextError as e:
                _answer(decoder, items[:i], args)
                raise InputTextError(f"{where}: {e}") from None
        raise
    ms = (time.perf_counter() - started) * 1000 / len(items)
    out = sys.stdout
    for (_, t), r in zip(items, results):
        if args.json:
            out.write(json.dumps({"input": t, "output": r.text, "score": round(r.score, 6),
                                  "finished": r.finished, "backend": decoder.backend, "variant": decoder.variant,
                                  "ms": round(ms, 4)}, ensure_ascii=False) + "\n")
        else:
            out.write(r.text + "\n")
    out.flush()
