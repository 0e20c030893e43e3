"""Pairs of input and target text, and the TSV files users keep them in: what ``s2s train --data`` trains on and
``s2s eval`` scores with. Light (no numpy, no TensorFlow): the runtime-only install reads them too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import files
from .. import text
from ..errors import DataFileError


@dataclass(frozen=True)
class Pair:
    source: str
    target: str
    origin: str = ""  # "file:line" for pairs read from a file, for error messages


#: A TSV of pairs is read whole; past this size it is refused (CMUdict's 125k pairs are 3.5 MB).
MAX_TSV_BYTES = 2**31


def read_tsv(path: str | Path, *, skip_header: bool = False) -> list[Pair]:
    """Read ``input<TAB>target[<TAB>ignored...]`` lines (UTF-8).

    Documented behaviour: a UTF-8 byte-order mark is ignored; Windows line endings are accepted; blank lines are
    skipped; ``skip_header`` drops the first non-blank line; text is NFC-normalized; exact duplicate pairs are kept
    once. A line without a TAB, an empty input or target, or invalid UTF-8 raises DataFileError naming the line.
    """
    path = Path(path)
    if path.is_dir():
        raise DataFileError(f"{path}: is a directory, expected a TSV file")
    raw = files.read_data_file(path, "the TSV file", max_bytes=MAX_TSV_BYTES)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    pairs: list[Pair] = []
    seen: set[tuple[str, str]] = set()
    header_pending = skip_header
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataFileError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{line[e.start]:02x} at column {e.start + 1})") from None
        if not decoded.strip():
            continue
        if header_pending:
            header_pending = False
            continue
        if "\t" not in decoded:
            raise DataFileError(f"{path}:{lineno}: no TAB between input and target")
        source, target = decoded.split("\t")[:2]
        source, target = text.normalize(source), text.normalize(target)
        if not source.strip():
            raise DataFileError(f"{path}:{lineno}: empty input")
        if not target.strip():
            raise DataFileError(f"{path}:{lineno}: empty target")
        if (source, target) in seen:
            continue
        seen.add((source, target))
        pairs.append(Pair(source, target, f"{path}:{lineno}"))
    if not pairs:
        why = " (the file is empty)" if not raw else " (only blank lines)" if not raw.strip() else ""
        raise DataFileError(f"{path}: no pairs found{why}")
    return pairs
