"""``s2s run``: decode arguments or standard input, one output line per input line, answering as it goes.

Nothing the user passes is trusted: the flags are checked against their bounds and this machine before the
bundle is loaded, standard input is read in chunks with the model's line limit applied before a line is
buffered, and pending lines are answered whenever a batch is full or the input pauses, so memory stays bounded
whatever arrives. Bad input is an error naming its place, after every input before it has been answered; with
``--keep-going`` each bad input gets its error and the others their outputs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys

from .. import lines
from ..answer import MAX_BATCH_SIZE, RunOptions, answer, record
from ..errors import InputTextError, Seq2SeqEdgeError
from ..options import OptionError
from ..scale.batch_files import check_paths, decode_file, output_format

log = logging.getLogger(__name__)

#: Pending inputs are answered once they hold this many characters, whatever --batch-size says.
MAX_PENDING_CHARS = 16 * 2**20
#: Exit status of ``s2s run --keep-going`` when some inputs could not be decoded (user errors stop with 2).
EXIT_SOME_FAILED = 1

__all__ = ["run_command", "MAX_BATCH_SIZE", "EXIT_SOME_FAILED"]


def run_command(args) -> int:
    """Run ``s2s run``: decode the TEXT arguments, or else the lines of standard input, one output per line."""
    if check_file_options(args):  # --input FILE: workers, --output, --resume (batch_files)
        if args.ensemble and args.workers != 1:
            raise OptionError("--ensemble with --input decodes in this process: add --workers 1 (worker processes "
                              "load one bundle each)")
        return run_files(args)
    opts, decoder = _options_and_decoder(args)
    if args.texts:
        source = lines.arguments(args.texts)
        batch_size = opts.decode.batch_size
    elif sys.stdin is None:  # standard input is closed: nothing to decode
        source, batch_size = iter(()), 1
    else:
        source = lines.fd_lines(sys.stdin.fileno(), lines.max_line_bytes(decoder.preprocessing))
        # On a terminal answer each line at once; in a pipe, fill batches (answered early when input pauses).
        batch_size = 1 if sys.stdin.isatty() else opts.decode.batch_size
        if sys.stdin.isatty():
            log.info("s2s run: type one input per line, answered when you press Enter; end with Ctrl-D "
                     "(Ctrl-Z, Enter on Windows)")
    printer = _Printer(decoder, opts, json_lines=args.json)
    pending: list[tuple[str, str | InputTextError]] = []
    pending_chars = 0
    ctrl_c = _CtrlC()
    try:
        while True:
            try:
                item = next(source, None)  # Ctrl-C here waits for the next marker: no line read is lost
            except Seq2SeqEdgeError:
                printer.answer(pending)  # every line read so far is answered
                raise
            if item is None:
                break
            if item is lines.READ or item is lines.PAUSE:  # every line read has been yielded
                if item is lines.PAUSE or ctrl_c.pressed:
                    printer.answer(pending)
                    pending, pending_chars = [], 0
                ctrl_c.raise_if_pressed()
                if item is lines.PAUSE:
                    with ctrl_c.interruptible():
                        lines.wait_for_input(sys.stdin.fileno())
                continue
            pending.append(item)
            pending_chars += len(item[1]) if isinstance(item[1], str) else 0
            if (len(pending) >= batch_size or pending_chars >= MAX_PENDING_CHARS
                    or (isinstance(item[1], InputTextError) and not opts.keep_going)):
                printer.answer(pending)
                pending, pending_chars = [], 0
        printer.answer(pending)
        ctrl_c.raise_if_pressed()
    except BrokenPipeError:
        _stdout_to_devnull()
    finally:
        ctrl_c.restore()
    if printer.failed:
        print(f"s2s run: {printer.failed} of {printer.answered} inputs failed", file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0


def _options_and_decoder(args):
    """The command line's RunOptions, checked before anything is loaded, and the bundle loaded with them."""
    opts = RunOptions.from_args(args)
    decoder = opts.load(args.bundle, args.ensemble)
    opts.check_for(decoder)
    return opts, decoder


def _stdout_to_devnull() -> None:
    """The reader went away (e.g. `| head`): stop quietly, as Unix tools do, with nothing more written."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class _CtrlC:
    """Ctrl-C interrupts only the wait for input; pressed while lines are read or decoded, it takes effect at the
    source's next marker, once every line read is answered. Either way every line read is answered, and
    KeyboardInterrupt is raised once (CPython may run the handler a second time for the same signal when an
    interrupted read returns). A process started with SIGINT ignored keeps ignoring it."""

    def __init__(self):
        self.hit = self.pressed = False
        self.waiting = False
        self.previous = None
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            return  # started with SIGINT ignored (a job a script starts with &): it stays ignored, as Python keeps it
        try:
            self.previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: keep Python's default
            pass

    def _handler(self, signum, frame):
        if self.hit:
            return
        self.pressed = True
        if self.waiting:
            self.hit = True
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def interruptible(self):
        self.waiting = True
        try:
            self.raise_if_pressed()  # after waiting is set: a press just before it is not missed
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


class _Printer:
    """Prints the answers of ``s2s run``, in order: each output on its input's line (the n best TAB-separated, or
    a ``--json`` object); a failed input's error on standard error and, with --keep-going, an empty line (or its
    ``{"input", "error"}`` object) on standard output. Without --keep-going the first error is raised once the
    inputs before it are printed."""

    def __init__(self, decoder, opts: RunOptions, *, json_lines: bool):
        self.decoder, self.opts, self.json_lines = decoder, opts, json_lines
        self.answered = self.failed = 0

    def answer(self, items: list[tuple[str, str | InputTextError]]) -> None:
        if not items:
            return
        done = answer(self.decoder, items, self.opts)
        self.answered += len(done.answers)
        out: list[str] = []
        for a in done.answers:
            if a.error is not None:
                self.failed += 1
                _write(out)
                out = []
                print(f"s2s run: error: {a.error}", file=sys.stderr, flush=True)
            if self.json_lines:
                out.append(json.dumps(record(a, self.decoder, self.opts), ensure_ascii=False))
            elif a.error is not None:
                out.append("")  # outputs stay on the line of their input
            else:  # one line per input: the n best separated by TABs
                out.append("\t".join(h.text for h in (a.result, *a.result.alternatives)))
        _write(out)
        if done.stop is not None:
            raise InputTextError(done.stop)


def _write(lines: list[str]) -> None:
    """Print output lines. UTF-8 whatever the locale; inputs were checked, and an output a malformed vocabulary
    could make that is not Unicode (a lone surrogate) is escaped rather than written as invalid bytes."""
    if not lines:
        return
    out = sys.stdout.buffer
    out.write(("\n".join(lines) + "\n").encode("utf-8", "backslashreplace"))
    out.flush()


# -- s2s run --input FILE: decode_file on worker processes ---------------------------------------------------
def check_file_options(args) -> bool:
    """Check ``s2s run``'s file flags (one-line errors, before anything is loaded); True if this is a file run
    (``--input`` given)."""
    given = [f"--{name}" for name in ("output", "workers", "resume", "force")
             if getattr(args, name, None) not in (None, False)]
    if getattr(args, "input", None) is None:
        if given:
            raise Seq2SeqEdgeError(f"{given[0]} needs --input FILE (or --input - for standard input)")
        return False
    if args.texts:
        raise Seq2SeqEdgeError("give TEXT arguments or --input FILE, not both")
    cpus = os.cpu_count() or 1
    if args.workers is not None and not 1 <= args.workers <= cpus:
        raise Seq2SeqEdgeError(f"--workers must be between 1 and this machine's CPU count {cpus}, got {args.workers}")
    output_format(args.output or "-", args.json)
    check_paths(args.input, args.output or "-", resume=args.resume, force=args.force)
    return True


def run_files(args) -> int:
    """``s2s run BUNDLE --input FILE [--output FILE] [--workers N] [--resume]``."""
    opts, decoder = _options_and_decoder(args)  # a bad bundle is an error now; one worker decodes with it
    workers = args.workers or os.cpu_count() or 1
    source = decoder
    if workers > 1:  # worker processes load what this decoder is; this process keeps no model while they run
        opts, source = opts.like(decoder), args.bundle
        del decoder
    output = args.output or "-"

    def report(message: str) -> None:
        print(f"s2s run: error: {message}", file=sys.stderr, flush=True)

    try:
        summary = decode_file(source, args.input, output, workers=workers,
                              resume=args.resume, force=args.force, json=args.json,
                              progress=None if not args.quiet else False, options=opts, on_error=report)
    except BrokenPipeError:
        _stdout_to_devnull()
        return 0
    if summary.skipped:
        log.info("s2s run: resumed after %d lines already in %s", summary.skipped, output)
    if summary.failed:
        print(f"s2s run: {summary.failed} of {summary.done} inputs failed", file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0
