"""The bounded line reader behind ``s2s run``: TEXT arguments, standard input and ``--input`` files.

Each source yields ``(where, text)`` pairs, where names the place ("argument 2", "stdin:3", "words.txt:3") and
text is the line, or an ``InputTextError`` naming that place when the line is not valid UTF-8 or is too long;
reading goes on after it. A line longer than the limit is refused as soon as that many bytes of it have arrived
and the rest of it is skipped unread, so at most the limit plus one chunk is held whatever arrives. Before each
read a source yields a marker, ``READ``, or ``PAUSE`` when the read would block: every line read so far has been
yielded, so its caller can answer what it holds, stop there (Ctrl-C) or wait for input (``wait_for_input``) with
nothing lost.
"""

from __future__ import annotations

import os
import select
import sys
from typing import Iterator

from .errors import InputTextError, Seq2SeqEdgeError

#: Lines are read with os.read in chunks of this many bytes.
READ_CHUNK = 64 * 1024
UTF8_BOM = b"\xef\xbb\xbf"


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Yielded by a source before a read: every line read so far has been yielded.
READ = _Marker("READ")
#: Yielded instead of READ when the read would block: answer what is pending first.
PAUSE = _Marker("PAUSE")

Item = tuple[str, "str | InputTextError"]


def max_line_bytes(preprocessing) -> int:
    """The longest line that can hold an acceptable input: the characters ``Preprocessing.encode_input``
    accepts, at 4 UTF-8 bytes each, plus a byte-order mark and a CR."""
    return preprocessing.max_input_chars * 4 + len(UTF8_BOM) + 1


def utf8(raw: bytes, where: str) -> str:
    """``raw`` as text, or InputTextError naming ``where`` and the first bad byte's column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputTextError(f"{where}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None


def arguments(texts) -> Iterator[Item]:
    """("argument N", text) of each TEXT argument. Python hands arguments over as str, with bytes that are not
    valid UTF-8 smuggled in as lone surrogates: recover the bytes and refuse them as lines are refused."""
    for i, t in enumerate(texts, start=1):
        yield READ
        where = f"argument {i}"
        if not t.isascii():
            try:
                t = utf8(os.fsencode(t), where)
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


def wait_for_input(fd: int) -> None:
    """Wait until ``fd`` has input or is at its end: the wait a caller may interrupt after ``PAUSE``, as nothing
    is being read. An fd select cannot watch returns at once (the read then waits)."""
    try:
        select.select([fd], [], [])
    except (OSError, ValueError):
        pass


def fd_lines(fd: int, limit: int, name: str = "stdin") -> Iterator[Item | _Marker]:
    """(f"{name}:N", text) of each line of ``fd``, read in chunks, and READ (PAUSE if it would block) before each read.
    A UTF-8 byte-order mark at the very start is dropped; CRLF ends a line too."""
    held = bytearray()  # the start of a line whose end has not arrived yet
    lineno = 0
    skipping = False  # the rest of a line that was refused as too long

    def line(raw: bytes) -> Item:
        where = f"{name}:{lineno}"
        if lineno == 1 and raw.startswith(UTF8_BOM):
            raw = raw[len(UTF8_BOM):]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            return where, utf8(raw, where)
        except InputTextError as e:
            return where, e

    def too_long(n: int) -> Item:
        return f"{name}:{n}", InputTextError(f"{name}:{n}: line is longer than the model's limit of {limit} bytes")

    while True:
        yield PAUSE if _would_block(fd) else READ
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:  # a non-blocking descriptor that had nothing after all: wait for it
            yield PAUSE
            wait_for_input(fd)
            continue
        except OSError as e:
            what = "standard input" if name == "stdin" else "it"
            raise Seq2SeqEdgeError(f"{name}:{lineno + 1}: cannot read {what}: {e.strerror}") from None
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


def file_lines(path: str, limit: int) -> Iterator[Item | _Marker]:
    """The lines of ``path`` ("-": standard input, named "stdin"), named FILE:N, as ``fd_lines`` reads them."""
    if path == "-":
        yield from fd_lines(sys.stdin.fileno(), limit)
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise Seq2SeqEdgeError(f"--input {path}: cannot read it ({e.strerror})") from None
    try:
        yield from fd_lines(fd, limit, path)
    finally:
        os.close(fd)
