"""Decoding files: ``s2s run --input FILE --output FILE`` and, in Python, ``decode_file`` and ``iter_decode_file``.

One input line gives exactly one output line, in order, so the output's line count is the number of inputs done:

- **Formats** by file extension. Input: ``.jsonl`` (each line an object; its ``"input"`` is decoded, so a
  ``.jsonl`` output can be fed back), ``.tsv`` (the first column) and anything else (``.txt``, ``-`` for
  standard input: the whole line). Output: ``.txt`` (the output, or the n best TAB-separated), ``.tsv`` (the input,
  a TAB, then the output(s); TABs, newlines and backslashes of the input escaped as ``\\t``, ``\\n``, ``\\\\``) and
  ``.jsonl`` (the ``s2s run --json`` objects).
- **Workers**: ``workers`` processes each load the bundle once (their own interpreters) and take batches from a
  bounded queue; at most ``2 x workers`` batches are in flight and results are written in input order, so memory
  stays bounded (a batch's lines, times the batches in flight) however large the file. ``workers=1`` decodes in
  this process.
- **Resume**: output is written with ``os.write`` a batch of whole lines at a time (nothing is held in a Python
  buffer), fsync'd every ``FSYNC_SECONDS`` and at the end. A process killed mid-write (SIGKILL, a crash) can leave
  a partial last line: ``resume`` truncates it, counts the complete lines N and skips the first N inputs, so no
  line is lost or doubled. For ``.tsv`` and ``.jsonl`` it also checks that line N's input is input N's.
- **Bad lines** (symbols the model never saw, too long, not UTF-8): without ``keep_going`` the run stops naming
  ``FILE:LINE`` once every line before it is written; with it, the line gets an empty output (``.jsonl``: an
  ``{"input", "error"}`` object) and its error is reported, and the run goes on.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .. import lines
from . import workers as workers_mod
from ..answer import RunOptions, answer, record
from ..options import DecodeOptions
from ..errors import InputTextError, Seq2SeqEdgeError

log = logging.getLogger(__name__)

#: Output formats by extension; every other --output extension is refused (an input may have any name: its
#: lines are decoded whole unless it ends in .tsv or .jsonl).
OUTPUT_FORMATS = {".txt": "txt", ".tsv": "tsv", ".jsonl": "jsonl"}
#: The output is fsync'd this often (and at the end): a power cut loses at most this much work, which --resume
#: redoes. A killed process loses nothing that was written: the lines are in the kernel already.
FSYNC_SECONDS = 10.0
_COUNT_CHUNK = 1 << 20
#: --resume reads the output's last line back to check it; a line longer than this is not one s2s run wrote.
MAX_RESUMED_LINE_BYTES = 64 << 20
#: Lines per task handed to a worker (decoded --batch-size at a time): a task costs two queue passes and two
#: pickles, about as much as decoding a few dozen short inputs, so tasks are larger than model batches. A task
#: also ends at TASK_CHARS characters, which bounds memory: (tasks in flight) x TASK_CHARS.
TASK_LINES = 1024
TASK_CHARS = 1 << 20


__all__ = ["RunOptions", "FileSummary", "decode_file", "iter_decode_file", "resume_point"]


@dataclass
class FileSummary:
    """What ``decode_file`` did: inputs ``done`` in this call, of which ``failed`` (``keep_going``), and the
    inputs ``skipped`` because the output already held them (``resume``)."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)  # the first few failures' messages


@dataclass
class _Chunk:
    """A decoded batch: ``data`` the UTF-8 output lines (file mode) or ``results`` (iterator mode), ``count``
    inputs answered, ``errors`` their (index in batch, message), ``stop`` the error that ends the run (without
    keep_going: the inputs before it are in ``data``)."""

    count: int
    data: bytes = b""
    results: list | None = None
    errors: list[str] = field(default_factory=list)
    stop: str | None = None


# -- reading -------------------------------------------------------------------------------------------------
def input_kind(path: str) -> str:
    """How the lines of ``path`` are read: "jsonl", "tsv" or "txt" (the whole line)."""
    suffix = Path(path).suffix.lower() if path != "-" else ""
    return {".jsonl": "jsonl", ".tsv": "tsv"}.get(suffix, "txt")


def output_format(path: str, json_flag: bool) -> str:
    """The output format of ``path`` ("-": standard output, .txt or with ``json_flag`` .jsonl)."""
    if path == "-":
        return "jsonl" if json_flag else "txt"
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise Seq2SeqEdgeError(f"--output {path}: the name must end in .txt, .tsv or .jsonl (the format)")
    if json_flag and fmt != "jsonl":
        raise Seq2SeqEdgeError(f"--json writes .jsonl; --output {path} is {fmt} (name it .jsonl, or drop --json)")
    return fmt


def _field(where: str, text: str | InputTextError, kind: str):
    """The input of one line: the line (txt), its first column (tsv) or its object's "input" (jsonl)."""
    if isinstance(text, InputTextError) or kind == "txt":
        return text
    if kind == "tsv":
        return text.split("\t", 1)[0]
    try:
        obj = json.loads(text)
    except ValueError as e:
        return InputTextError(f"{where}: not a JSON object ({e})")
    if not isinstance(obj, dict) or not isinstance(obj.get("input"), str):
        return InputTextError(f'{where}: not a JSON object with a string "input"')
    return obj["input"]


def read_inputs(path: str, limit: int, *, skip: int = 0, pauses: bool = False):
    """(where, text | InputTextError) of each input of ``path``, after the first ``skip``; with ``pauses``, also
    the pause marker where a pipe would block."""
    kind = input_kind(path)
    n = 0
    for item in lines.file_lines(path, limit):
        if not isinstance(item, tuple):
            if pauses and item is lines.PAUSE:
                yield item
            continue
        n += 1
        if n > skip:
            yield item[0], _field(item[0], item[1], kind)


def count_lines(path: str) -> int:
    """Lines in a file (a last line without a newline counts), read in chunks."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(_COUNT_CHUNK):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def _batches(items, size: int) -> Iterator[list]:
    """Lists of at most ``size`` items and about TASK_CHARS characters; a pause marker ends one early (a slow
    producer gets its answers)."""
    batch: list = []
    chars = 0
    for item in items:
        if isinstance(item, tuple):
            batch.append(item)
            chars += len(item[1]) if isinstance(item[1], str) else 0
            if len(batch) < size and chars < TASK_CHARS:
                continue
        if batch:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


# -- decoding and formatting ---------------------------------------------------------------------------------
def _escape_tsv(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def decode_chunk(decoder, items: list, *, opts: RunOptions, fmt: str | None) -> _Chunk:
    """Answer one batch of (where, text | InputTextError) and format it as ``fmt`` lines (None: keep the
    DecodeResults, or InputTextErrors, for the iterator). A worker's task (``workers.in_order``)."""
    done = answer(decoder, items, opts)
    chunk = _Chunk(count=len(done.answers), errors=[a.error for a in done.answers if a.error],
                   stop=done.stop)
    if fmt is None:
        chunk.results = [(a.text, a.result if a.error is None else InputTextError(a.error)) for a in done.answers]
        return chunk
    out = []
    for a in done.answers:
        if fmt == "jsonl":
            out.append(json.dumps(record(a, decoder, opts), ensure_ascii=False))
        elif a.error is not None:
            out.append(_escape_tsv(a.text or "") + "\t" if fmt == "tsv" else "")
        else:
            outputs = "\t".join(h.text.replace("\n", " ").replace("\t", " ") for h in (a.result, *a.result.alternatives))
            out.append(_escape_tsv(a.text) + "\t" + outputs if fmt == "tsv" else outputs)
    chunk.data = "".join(line + "\n" for line in out).encode("utf-8", "backslashreplace")
    return chunk


def _decoder_and_bundle(source, workers: int):
    """(the decoder or None, the bundle folder workers load); an error, before anything is read or written, when
    worker processes cannot load what ``source`` is."""
    decoder = None if isinstance(source, (str, os.PathLike)) else source
    bundle = source if decoder is None else decoder.bundle_dir
    if bundle is None and workers > 1:
        raise Seq2SeqEdgeError("worker processes load the bundle from its folder: give a decoder made by load(), or "
                               "decode with one worker (an ensemble decodes in this process)")
    return decoder, bundle


def _chunks(source, opts: RunOptions, fmt: str | None, batches, workers: int) -> Iterator[_Chunk]:
    """Decoded chunks of ``batches`` in order; ``source`` a bundle path or a loaded decoder (used as it is when
    ``workers`` is 1; worker processes load its bundle)."""
    decoder, bundle = _decoder_and_bundle(source, workers)
    handle = functools.partial(decode_chunk, opts=opts, fmt=fmt)
    load_kwargs = (opts if decoder is None else opts.like(decoder)).load_kwargs()  # workers decode as it does
    return workers_mod.in_order(bundle, load_kwargs, handle, batches, workers, decoder=decoder)


# -- writing and resuming ------------------------------------------------------------------------------------
class _Output:
    """Whole lines appended with ``os.write`` (a file) or to standard output; fsync'd now and then and at close."""

    def __init__(self, path: str, *, append: bool):
        self.path = path
        self.last_sync = time.monotonic()
        if path == "-":
            self.fd = sys.stdout.fileno()
            sys.stdout.flush()
        else:
            # No link is followed and nothing but a regular file is written: O_NONBLOCK makes a FIFO without a
            # reader fail at once instead of blocking, and fstat refuses whatever else the path turned out to be.
            flags = (os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC) | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
            try:
                self.fd = os.open(path, flags, 0o644)
            except OSError as e:
                raise Seq2SeqEdgeError(f"--output {path}: cannot write it ({e.strerror})") from None
            mode = os.fstat(self.fd).st_mode
            if not stat.S_ISREG(mode):
                os.close(self.fd)
                raise Seq2SeqEdgeError(f"--output {path}: not a regular file")

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as e:  # a full disk, a quota, an I/O error: every line before this chunk is whole
            raise Seq2SeqEdgeError(f"--output {self.path}: cannot write ({e.strerror}); the lines already written "
                                   "are complete, and --resume continues from them once there is room") from None
        if self.path != "-" and time.monotonic() - self.last_sync > FSYNC_SECONDS:
            os.fsync(self.fd)
            self.last_sync = time.monotonic()

    def close(self) -> None:
        if self.path != "-":
            os.fsync(self.fd)
            os.close(self.fd)


def _rfind_newline(f, end: int, floor: int = 0) -> int:
    """The offset of the last newline before ``end`` (and at or after ``floor``) in the open file ``f``, or -1;
    read backwards in blocks."""
    while end > floor:
        start = max(floor, end - 65536)
        f.seek(start)
        i = f.read(end - start).rfind(b"\n")
        if i >= 0:
            return start + i
        end = start
    return -1


def resume_point(path: str) -> tuple[int, bytes | None]:
    """The complete lines of an output file and its last complete line (None if there is none). A partial last
    line (a process killed mid-write) is truncated away first."""
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        keep = _rfind_newline(f, size) + 1
        if keep < size:
            log.warning("%s: dropped a partial last line (%d bytes) of a run that was stopped mid-write",
                        path, size - keep)
            f.truncate(keep)
            os.fsync(f.fileno())
        lines, remaining = 0, keep
        f.seek(0)
        while remaining:
            chunk = f.read(min(_COUNT_CHUNK, remaining))
            lines += chunk.count(b"\n")
            remaining -= len(chunk)
        last = None
        if keep:
            floor = max(0, keep - 1 - MAX_RESUMED_LINE_BYTES - 1)
            start = _rfind_newline(f, keep - 1, floor) + 1
            if keep - 1 - start > MAX_RESUMED_LINE_BYTES or (start == 0 and floor > 0):
                raise Seq2SeqEdgeError(f"--resume: the last line of {path} is longer than {MAX_RESUMED_LINE_BYTES} "
                                       "bytes: not a line s2s run wrote (--force starts over)")
            f.seek(start)
            last = f.read(keep - 1 - start)
    return lines, last


def _input_of(line: bytes, fmt: str) -> str | None:
    """The input an output line was for (tsv, jsonl), or None where the line does not say (txt, an error)."""
    text = line.decode("utf-8", "replace")
    if fmt == "tsv":
        raw = text.split("\t", 1)[0]
        return raw.replace("\\t", "\t").replace("\\n", "\n").replace("\\r", "\r").replace("\\\\", "\\")
    if fmt == "jsonl":
        try:
            value = json.loads(text).get("input")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None
    return None


# -- the API --------------------------------------------------------------------------------------------------
def iter_decode_file(source, input: str, *, workers: int = 1, skip: int = 0, max_line_bytes: int | None = None,
                     options: "RunOptions | DecodeOptions | None" = None, **kwargs) -> Iterator[tuple[str, object]]:
    """(input text, DecodeResult) of each input of the file ``input`` ("-": standard input), in order, decoded by
    ``workers`` processes, after the first ``skip`` inputs. ``source``: a bundle folder or a decoder from
    ``load``. An input that cannot be decoded raises InputTextError naming FILE:LINE, or with ``keep_going=True``
    comes as (text, InputTextError). ``kwargs``: the fields of RunOptions and DecodeOptions (backend, variant, batch_size, ...), or ``options`` (a
    RunOptions or a DecodeOptions), not both."""
    opts = RunOptions.of(options, **kwargs).check()
    limit = max_line_bytes or _line_limit(source)
    batches = _batches(read_inputs(input, limit, skip=skip), max(TASK_LINES, opts.decode.batch_size))
    chunks = _chunks(source, opts, None, batches, workers)
    try:
        for chunk in chunks:
            yield from chunk.results
            if chunk.stop:
                raise InputTextError(chunk.stop)
    finally:
        chunks.close()


def decode_file(source, input: str, output: str, *, workers: int = 1, resume: bool = False, force: bool = False,
                json: bool = False, progress: bool | None = None, options: "RunOptions | DecodeOptions | None" = None,
                on_error=None, **kwargs) -> FileSummary:
    """Decode every input of ``input`` into ``output`` (format by extension; "-" for standard input / output),
    with ``workers`` processes, in order; see the module's docstring. ``source``: a bundle folder or a decoder
    from ``load`` (used as it is with one worker). ``resume`` continues an output a stopped run left; ``force``
    overwrites an existing one. ``progress``: a bar on standard error (None: if it is a terminal).
    ``on_error(message)`` is called for each input that failed (``keep_going``).
    Raises InputTextError at the first bad input unless ``keep_going``: every line before it is written."""
    opts = RunOptions.of(options, **kwargs).check()
    fmt = output_format(output, json)
    check_paths(input, output, resume=resume, force=force)
    _decoder_and_bundle(source, workers)
    limit = _line_limit(source)
    skip, last = 0, None
    if resume and os.path.exists(output):
        skip, last = resume_point(output)
    summary = FileSummary(skipped=skip)
    items = read_inputs(input, limit, skip=max(0, skip - 1), pauses=input == "-")
    if skip:
        _check_resumed(items, skip, last, fmt, input, output)
    out = _Output(output, append=resume)
    bar = _progress_bar(input, skip, progress)
    chunks = _chunks(source, opts, fmt, _batches(items, max(TASK_LINES, opts.decode.batch_size)), workers)
    try:
        for chunk in chunks:
            out.write(chunk.data)
            summary.done += chunk.count
            for message in chunk.errors:
                summary.failed += 1
                if len(summary.errors) < 20:
                    summary.errors.append(message)
                if on_error:
                    on_error(message)
            if bar is not None:
                bar.update(chunk.count)
            if chunk.stop:
                raise InputTextError(chunk.stop)
    finally:
        chunks.close()  # stops the workers now, not when the traceback is freed
        if bar is not None:
            bar.close()
        out.close()
    return summary


def _line_limit(source) -> int:
    """The longest input line of a bundle folder or a loaded decoder (``lines.max_line_bytes``)."""
    if isinstance(source, (str, os.PathLike)):
        from .. import manifest as mf

        return lines.max_line_bytes(mf.BundleManifest.load(Path(source)).preprocessing)
    return lines.max_line_bytes(source.preprocessing)


def check_paths(input: str, output: str, *, resume: bool, force: bool) -> None:
    if input != "-" and not os.path.isfile(input):
        raise Seq2SeqEdgeError(f"--input {input}: no such file" if not os.path.exists(input)
                               else f"--input {input}: not a file")
    if output == "-":
        if resume:
            raise Seq2SeqEdgeError("--resume needs --output FILE (standard output cannot be resumed)")
        return
    if input != "-" and os.path.exists(output) and os.path.samefile(input, output):
        raise Seq2SeqEdgeError(f"--output {output} is the input file")
    if resume and force:
        raise Seq2SeqEdgeError("--resume continues the output and --force overwrites it: give one")
    if os.path.islink(output):
        raise Seq2SeqEdgeError(f"--output {output} is a symbolic link: give the path of the file itself")
    if os.path.isdir(output):
        raise Seq2SeqEdgeError(f"--output {output} is a folder")
    if os.path.exists(output) and not os.path.isfile(output):
        raise Seq2SeqEdgeError(f"--output {output} is not a regular file")
    if os.path.exists(output) and not (resume or force):
        raise Seq2SeqEdgeError(f"--output {output} exists: --resume continues it, --force overwrites it")


def _check_resumed(items, skip: int, last: bytes | None, fmt: str, input: str, output: str) -> None:
    """Consume input ``skip`` (the reader starts one before) and check the output's last line was for it."""
    item = next(items, None)
    while item is not None and not isinstance(item, tuple):
        item = next(items, None)
    if item is None:
        raise Seq2SeqEdgeError(f"--resume: {output} has {skip} lines but {input} has fewer inputs: "
                               "not this input's output (--force starts over)")
    expected = _input_of(last, fmt) if last is not None else None
    if expected is not None and isinstance(item[1], str) and expected != item[1]:
        raise Seq2SeqEdgeError(f"--resume: line {skip} of {output} is for input {expected!r} but {item[0]} is "
                               f"{item[1]!r}: not this input's output (--force starts over)")


def _progress_bar(input: str, skip: int, progress: bool | None):
    """A tqdm bar on standard error (lines, lines/s, time left), or None when it is not a terminal."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety: decode without it
        return None
    total = count_lines(input) if input != "-" else None
    return tqdm(total=total, initial=skip, unit=" lines", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
