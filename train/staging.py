"""Write a folder next to its destination, then swap it in: a run or a bundle appears whole or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def staged_folder(out_dir: str | Path) -> Iterator[Path]:
    """Yield a new empty folder beside ``out_dir``; when the block ends without an exception, replace ``out_dir``
    (and whatever it held) with it. On an exception ``out_dir`` is left as it was and the new folder is removed.

    Callers check ``--force`` before: this overwrites.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    staging.chmod(0o755)
    try:
        yield staging
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
