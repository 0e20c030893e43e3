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
import math
import os
import select
import signal
import sys
import time

from .beam import MAX_BEAM_SIZE, MAX_LENGTH_PENALTY
from .loader import load
from .errors import InputTextError, Seq2SeqEdgeError

log = logging.getLogger(__name__)

#: The largest --batch-size: throughput stops growing long before it (see the benchmarks' batch 64 and 256),
#: while every input of a batch, and its decoder state at each step, is held in memory at once.
MAX_BATCH_SIZE = 4096
#: Pending inputs are answered once they hold this many characters, whatever --batch-size says.
MAX_PENDING_CHARS = 16 * 2**20
#: Standard input is read with os.read in chunks of this many bytes.
READ_CHUNK = 64 * 1024
UTF8_BOM = b"\xef\xbb\xbf"
#: Returned by the stdin reader when its next read would block: answer what is pending first.
_PAUSE = object()
#: Exit status of ``s2s run --keep-going`` when some inputs could not be decoded (user errors stop with 2).
EXIT_SOME_FAILED = 1


def check_options(args) -> None:
    """Check the ``s2s run`` flags against their bounds and this machine, before anything is loaded."""
    cpus = os.cpu_count() or 1
    if not 1 <= args.threads <= cpus:
        raise Seq2SeqEdgeError(f"--threads must be between 1 and this machine's CPU count {cpus}, got {args.threads}")
    if not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        raise Seq2SeqEdgeError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}, got {args.batch_size}")
    if args.max_output_len is not None and args.max_output_len < 1:
        raise Seq2SeqEdgeError(f"--max-output-len must be at least 1, got {args.max_output_len}")
    if not 1 <= args.n_best <= MAX_BEAM_SIZE:
        raise Seq2SeqEdgeError(f"--n-best must be between 1 and {MAX_BEAM_SIZE}, got {args.n_best}")
    if args.beam is not None and not 1 <= args.beam <= MAX_BEAM_SIZE:
        raise Seq2SeqEdgeError(f"--beam must be between 1 and {MAX_BEAM_SIZE}, got {args.beam}")
    if args.beam is not None and args.n_best > args.beam:
        raise Seq2SeqEdgeError(f"--n-best ({args.n_best}) cannot exceed --beam ({args.beam})")
    if not (math.isfinite(args.length_penalty) and 0 <= args.length_penalty <= MAX_LENGTH_PENALTY):
        raise Seq2SeqEdgeError(f"--length-penalty must be between 0 and {MAX_LENGTH_PENALTY:g}, "
                               f"got {args.length_penalty}")


def max_line_bytes(preprocessing) -> int:
    """The longest standard-input line that can hold an acceptable input: the characters
    ``Preprocessing.encode_input`` accepts, at 4 UTF-8 bytes each, plus a byte-order mark and a CR."""
    return preprocessing.max_input_chars * 4 + len(UTF8_BOM) + 1


def _utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputTextError(f"{where}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None


def _arguments(texts):
    """("argument N", text) of each TEXT argument. Python hands arguments over as str, with bytes that are not
    valid UTF-8 smuggled in as lone surrogates: recover the bytes and refuse them as stdin lines are refused
    (("argument N", InputTextError) in place of the text)."""
    for i, t in enumerate(texts, start=1):
        where = f"argument {i}"
        if not t.isascii():
            try:
                t = _utf8(os.fsencode(t), where)
            except UnicodeEncodeError:  # a surrogate no bytes produce: normalize() names it
                pass
            except InputTextError as e:
                t = e
        yield where, t


def _would_block(fd: int) -> bool:
    try:
        return not select.select([fd], [], [], 0)[0]
    except (OSError, ValueError):  # an fd select cannot watch: answer as we go
        return True


def _stdin_lines(fd: int, limit: int):
    """("stdin:N", text) of each line of ``fd``, read in chunks, and _PAUSE before a read that would block. A line
    that is not valid UTF-8 or too long comes as ("stdin:N", InputTextError), and reading goes on.

    A line longer than ``limit`` bytes is refused as soon as that many bytes of it have arrived, and the rest of
    it is skipped unread, so at most ``limit`` plus one chunk is held. A UTF-8 byte-order mark at the very start
    is dropped; CRLF ends a line too.
    """
    held = bytearray()  # the start of a line whose end has not arrived yet
    lineno = 0
    skipping = False  # the rest of a line that was refused as too long

    def line(raw: bytes) -> tuple[str, str | InputTextError]:
        where = f"stdin:{lineno}"
        if lineno == 1 and raw.startswith(UTF8_BOM):
            raw = raw[len(UTF8_BOM):]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            return where, _utf8(raw, where)
        except InputTextError as e:
            return where, e

    def too_long(n: int) -> tuple[str, InputTextError]:
        return f"stdin:{n}", InputTextError(f"stdin:{n}: line is longer than the model's limit of {limit} bytes")

    while True:
        if _would_block(fd):
            yield _PAUSE
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:  # a non-blocking descriptor: wait for it
            select.select([fd], [], [])
            continue
        except OSError as e:
            raise Seq2SeqEdgeError(f"stdin:{lineno + 1}: cannot read standard input: {e.strerror}") from None
        if not chunk:
            break
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if skipping:  # the end of a line already refused (and numbered)
                skipping = False
            else:
                lineno += 1
                if len(held) + end - start > limit:
                    yield too_long(lineno)
                else:
                    yield line(bytes(held) + chunk[start:end] if held else chunk[start:end])
            held.clear()
            start = end + 1
        if not skipping and len(held) + len(chunk) - start > limit:
            lineno += 1
            yield too_long(lineno)
            held.clear()
            skipping = True
        if not skipping:
            held += chunk[start:]
    if held:
        lineno += 1
        yield line(bytes(held))


def run_command(args) -> int:
    """Run ``s2s run``: decode the TEXT arguments, or else the lines of standard input, one output per line."""
    from .batch_files import check_file_options, run_files

    if check_file_options(args):  # --input FILE: workers, --output, --resume (batch_files)
        return run_files(args)
    check_options(args)
    decoder = load(args.bundle, backend=args.backend, variant=args.variant, threads=args.threads,
                   one_call=getattr(args, "one_call", None))
    if args.max_output_len is not None and not 1 <= args.max_output_len <= decoder.max_output_len:
        raise Seq2SeqEdgeError(f"--max-output-len must be between 1 and the trained maximum "
                               f"{decoder.max_output_len}, got {args.max_output_len}")
    if args.texts:
        source = _arguments(args.texts)
        batch_size = args.batch_size
    elif sys.stdin is None:  # standard input is closed: nothing to decode
        source, batch_size = iter(()), 1
    else:
        source = _stdin_lines(sys.stdin.fileno(), max_line_bytes(decoder.preprocessing))
        # On a terminal answer each line at once; in a pipe, fill batches (answered early when input pauses).
        batch_size = 1 if sys.stdin.isatty() else args.batch_size
        if sys.stdin.isatty():
            log.info("s2s run: type one input per line, answered when you press Enter; end with Ctrl-D "
                     "(Ctrl-Z, Enter on Windows)")
    keep_going = getattr(args, "keep_going", False)
    pending: list[tuple[str, str | InputTextError]] = []
    pending_chars = 0
    counts = [0, 0]  # inputs answered, inputs that failed (--keep-going)
    ctrl_c = _CtrlC()
    try:
        while True:
            try:
                with ctrl_c.interruptible():
                    item = next(source, None)
            except (Seq2SeqEdgeError, KeyboardInterrupt):
                _answer(decoder, pending, args, counts)  # every line read so far is answered
                raise
            if item is None:
                break
            if item is not _PAUSE:
                if isinstance(item[1], InputTextError) and not keep_going:
                    _answer(decoder, pending, args, counts)
                    raise item[1]
                pending.append(item)
                pending_chars += len(item[1]) if isinstance(item[1], str) else 0
            if pending and (item is _PAUSE or len(pending) >= batch_size or pending_chars >= MAX_PENDING_CHARS):
                _answer(decoder, pending, args, counts)
                pending, pending_chars = [], 0
        _answer(decoder, pending, args, counts)
        ctrl_c.raise_if_pressed()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        ctrl_c.restore()
    if counts[1]:
        print(f"s2s run: {counts[1]} of {counts[0]} inputs failed", file=sys.stderr)
        return EXIT_SOME_FAILED
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


def _answer(decoder, items: list[tuple[str, str | InputTextError]], args, counts: list[int]) -> None:
    """Decode and print ``items``, in order. On a bad item: without --keep-going, print the good ones before it
    and raise naming its place; with it, print its error (stderr, and stdout's line) and go on. ``counts``: the
    inputs answered and the inputs that failed, added to."""
    if not items:
        return
    keep_going = getattr(args, "keep_going", False)
    errors: dict[int, str] = {}
    encoded: list[tuple[int, list[int]]] = []
    for i, (where, t) in enumerate(items):
        if isinstance(t, InputTextError):  # refused while reading (only with --keep-going): names its place
            errors[i] = str(t)
            continue
        try:
            encoded.append((i, decoder.preprocessing.encode_input(t, skip_unknown=args.skip_unknown)))
        except InputTextError as e:
            if not keep_going:
                _answer(decoder, items[:i], args, counts)  # those before it are answered, then it is named
                raise InputTextError(f"{where}: {e}") from None
            errors[i] = f"{where}: {e}"
    kwargs = {"max_output_len": args.max_output_len, "beam_size": args.beam, "n_best": args.n_best,
              "length_penalty": args.length_penalty}  # skip_unknown: the inputs are encoded above
    started = time.perf_counter()
    decoded = decoder.decode_ids([ids for _, ids in encoded], args.batch_size, **kwargs) if encoded else []
    # The inputs of a batch are decoded together: this is the batch's time shared out, not one input's own.
    ms = (time.perf_counter() - started) * 1000 / max(1, len(encoded))
    log.debug("answered %d input(s), %.3f ms each", len(encoded), ms)
    results = dict(zip((i for i, _ in encoded), decoded))
    counts[0] += len(items)
    counts[1] += len(errors)
    lines: list[str] = []
    for i, (_, t) in enumerate(items):
        if i in errors:
            _write(lines)
            lines = []
            print(f"s2s run: error: {errors[i]}", file=sys.stderr, flush=True)
            if args.json:
                lines.append(json.dumps({"input": t if isinstance(t, str) else None, "error": errors[i]},
                                        ensure_ascii=False))
            else:
                lines.append("")  # outputs stay on the line of their input
            continue
        r = results[i]
        if args.json:
            record = result_record(t, r, decoder, beam_size=args.beam, n_best=args.n_best, batch_items=len(encoded),
                                   ms=ms)
            lines.append(json.dumps(record, ensure_ascii=False))
        else:  # one line per input: the n best separated by TABs
            lines.append("\t".join(h.text for h in (r, *r.alternatives)))
    _write(lines)


def result_record(text: str, r, decoder, *, beam_size: int | None, n_best: int, batch_items: int,
                  ms: float) -> dict:
    """The ``s2s run --json`` object of one answered input (also each line of a .jsonl ``--output``): input,
    output, score, finished, backend, variant, path, batch_items, batch_ms_per_item, and with ``n_best`` > 1
    the n best (best first; fewer when the search found fewer)."""
    record = {"input": text, "output": r.text, "score": round(r.score, 6), "finished": r.finished,
              "backend": decoder.backend, "variant": decoder.variant,
              "path": "beam-search" if (beam_size or n_best) > 1 else decoder.decode_path,
              "batch_items": batch_items, "batch_ms_per_item": round(ms, 4)}
    if n_best > 1:
        record["n_best"] = [{"output": h.text, "score": round(h.score, 6), "finished": h.finished}
                            for h in (r, *r.alternatives)]
    return record


def _write(lines: list[str]) -> None:
    """Print output lines. UTF-8 whatever the locale; inputs were checked, and an output a malformed vocabulary
    could make that is not Unicode (a lone surrogate) is escaped rather than written as invalid bytes."""
    if not lines:
        return
    out = sys.stdout.buffer
    out.write(("\n".join(lines) + "\n").encode("utf-8", "backslashreplace"))
    out.flush()
