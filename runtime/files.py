"""Reading a bundle's files as untrusted data: regular files inside the bundle folder only, with bounded reads.

A bundle comes from somewhere else, so none of its files is opened blindly: a symbolic link (to ``/dev/zero``, to a
model outside the bundle), a FIFO (which would block the load forever), a device or a folder is refused before a
byte is read, and a file is read only when ``fstat`` gives the size it must have (model files: the manifest's
size) or at most a cap (the manifest itself). The read stops at that size, so a file that grows while it is read
cannot make the process hold more.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from .errors import BundleError

_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_regular_file(path: Path, what: str, *, max_bytes: int, size: int | None = None) -> bytes:
    """The bytes of ``path``, which must be a regular file (not a symlink) of ``size`` bytes, or at most
    ``max_bytes`` when ``size`` is None. Every refusal is a BundleError naming the file."""
    where = str(path)
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):  # O_NOFOLLOW refuses it too, where the OS has it
            raise BundleError(f"{what} is a symbolic link; bundle files must be regular files inside the bundle "
                              "folder", where=where)
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise BundleError(f"{what} is missing", where=where) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise BundleError(f"{what} is a symbolic link; bundle files must be regular files inside the bundle "
                              "folder", where=where) from None
        raise BundleError(f"cannot read {what} ({e.strerror})", where=where) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{what} is {_kind(st.st_mode)}, not a regular file", where=where)
        if size is not None and st.st_size != size:
            raise BundleError(f"{what} is {st.st_size} bytes, the manifest says {size} (truncated or replaced)",
                              where=where)
        if st.st_size > max_bytes:
            raise BundleError(f"{what} is {st.st_size} bytes, more than the {max_bytes} bytes allowed",
                              where=where)
        data = _read_up_to(fd, st.st_size)
        if len(data) != st.st_size or os.read(fd, 1):
            raise BundleError(f"{what} changed size while it was read", where=where)
        return data
    except OSError as e:
        raise BundleError(f"cannot read {what} ({e.strerror})", where=where) from None
    finally:
        os.close(fd)


def _read_up_to(fd: int, size: int) -> bytes:
    """At most ``size`` bytes from ``fd``, fewer if the file ends first; read in bounded chunks."""
    chunks, got = [], 0
    while got < size:
        chunk = os.read(fd, min(size - got, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_data_file(path: str | Path, what: str, *, max_bytes: int) -> bytes:
    """The bytes of a file the user named (a TSV of pairs, a results.json): links are followed, as a user expects,
    but it must be a regular file (a FIFO, a device such as /dev/zero, a folder are refused before a byte is read)
    of at most ``max_bytes``, and the read stops at the size it had when opened. DataFileError names the file."""
    from .errors import DataFileError

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except OSError as e:
        raise DataFileError(f"{path}: cannot read {what} ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DataFileError(f"{path}: {what} is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > max_bytes:
            raise DataFileError(f"{path}: {what} is {st.st_size} bytes, more than the {max_bytes} allowed")
        return _read_up_to(fd, st.st_size)
    except OSError as e:
        raise DataFileError(f"{path}: cannot read {what} ({e.strerror})") from None
    finally:
        os.close(fd)


def read_json_object(path: Path, what: str, *, max_bytes: int) -> dict[str, Any]:
    """A JSON object read with :func:`read_regular_file`; every failure is a BundleError naming the file."""
    raw = read_regular_file(path, what, max_bytes=max_bytes)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"{what} is not valid JSON ({e})", where=str(path)) from None
    except RecursionError:
        raise BundleError(f"{what} is nested too deeply", where=str(path)) from None
    if not isinstance(data, dict):
        raise BundleError(f"{what} must hold a JSON object", where=str(path))
    return data


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as sorted, indented UTF-8 JSON (the form every file of a bundle and a run uses)."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
