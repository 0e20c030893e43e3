"""Decode a Ray Data dataset with a bundle: ``BundlePredictor``, a callable class for ``Dataset.map_batches``.

    import ray
    from seq2seq_edge.scale.ray_predictor import decode_dataset

    ds = ray.data.read_text("s3://bucket/words/")            # a column "text"
    out = decode_dataset(ds, "bundles/g2p", column="text", actors=8, threads_per_actor=1)
    out.write_json("s3://bucket/pronunciations/")            # text, output, score, finished, error

Each actor loads the bundle once (its own interpreters) and decodes the batches it is given, ``batch_size`` rows
per model call. The bundle is a folder every node can read (shared storage), or with ``ship=True`` its files are
put in Ray's object store once and each actor writes them to a private temporary folder before loading them, so
the nodes need nothing but the package. Every check ``load`` makes (checksums, operators, the probe) is made on
each actor. ``ray`` is imported only here and only when needed: ``pip install '.[ray]'``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .. import files as files_mod
from .. import manifest as mf
from ..answer import RunOptions, answer
from ..errors import BundleError, InputTextError
from ..loader import load

log = logging.getLogger(__name__)

#: What ``pack_bundle`` ships: the manifest and every model file it names, at most this many bytes in all.
MAX_SHIPPED_BYTES = 2 * 2**30
#: The columns ``BundlePredictor`` adds to each batch.
OUTPUT_COLUMNS = ("output", "score", "finished", "error")


def _ray():
    try:
        import ray
    except ImportError:
        raise BundleError("the Ray predictor needs ray, which is not installed: in a clone of seq2seq-edge, "
                          "pip install '.[ray]'") from None
    return ray


def _is_object_ref(value) -> bool:
    """Whether ``value`` is a Ray object reference (without starting Ray, or needing it installed)."""
    try:
        import ray
    except ImportError:
        return False
    return isinstance(value, ray.ObjectRef)


def pack_bundle(bundle_dir: str | Path) -> dict[str, bytes]:
    """The files of a bundle as {name: bytes}: the manifest and the model files it names (checked when loaded)."""
    bundle_dir = Path(bundle_dir)
    manifest = mf.BundleManifest.load(bundle_dir)
    names = [mf.MANIFEST_FILE]
    names += sorted({m.path for m in manifest.models})
    sizes = {m.path: m.size_bytes for m in manifest.models}
    files, total = {}, 0
    for name in names:  # the bundle's own bounded, no-follow reader: no link out, no FIFO, no /dev/zero
        if name == mf.MANIFEST_FILE:
            data = files_mod.read_regular_file(bundle_dir / name, "manifest", max_bytes=mf.MAX_MANIFEST_BYTES)
        else:
            data = files_mod.read_regular_file(bundle_dir / name, "model file", max_bytes=mf.MAX_MODEL_BYTES,
                                               size=sizes[name])
        total += len(data)
        if total > MAX_SHIPPED_BYTES:
            raise BundleError(f"more than {MAX_SHIPPED_BYTES} bytes to ship: give a path on shared storage",
                              where=str(bundle_dir))
        files[name] = data
    return files


#: A shipped bundle holds the manifest and at most this many model files (the manifest's own cap).
MAX_SHIPPED_FILES = mf.MAX_MODELS + 1


def _unpack(files: dict[str, bytes]) -> Path:
    """Write ``pack_bundle``'s dict into a new private folder, after checking its names, count and size; nothing
    is left behind when a check fails."""
    if not isinstance(files, dict) or not 0 < len(files) <= MAX_SHIPPED_FILES:
        raise BundleError(f"a shipped bundle is a dict of 1 to {MAX_SHIPPED_FILES} files, got "
                          f"{type(files).__name__} of {len(files) if isinstance(files, dict) else '?'}")
    total = 0
    for name, data in files.items():
        # only plain file names, nothing outside the folder, nothing hidden
        if not mf.is_file_name(name):
            raise BundleError(f"shipped bundle file name {name!r:.80} is not a plain file name")
        if not isinstance(data, (bytes, bytearray)):
            raise BundleError(f"shipped bundle file {name!r} is {type(data).__name__}, not bytes")
        total += len(data)
    if total > MAX_SHIPPED_BYTES:
        raise BundleError(f"a shipped bundle of {total} bytes, more than the {MAX_SHIPPED_BYTES} allowed")
    folder = Path(tempfile.mkdtemp(prefix="s2s-bundle-"))  # 0700: this user's only
    try:
        for name, data in files.items():
            (folder / name).write_bytes(data)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


class BundlePredictor:
    """Decodes the ``column`` of each batch it is called with; for ``Dataset.map_batches`` (an actor per instance).

    ``bundle``: a bundle folder every node can read; or ``bundle_files``: ``pack_bundle``'s dict (or a Ray object
    reference to it). ``threads``: interpreter threads (give the actor as many CPUs). The other arguments are
    the fields of ``DecodeOptions``. An input that cannot be decoded gets an empty output and its error in
    the ``error`` column (``keep_going``, the default), or fails the batch."""

    def __init__(self, bundle: str | None = None, *, bundle_files=None, column: str = "input",
                 backend: str = "auto", variant: str = "fp32", threads: int = 1, batch_size: int = 32,
                 max_output_len: int | None = None, skip_unknown: bool = False, beam_size: int | None = None,
                 n_best: int = 1, length_penalty: float = 0.0, keep_going: bool = True):
        if (bundle is None) == (bundle_files is None):
            raise ValueError("give bundle (a path every node can read) or bundle_files (pack_bundle's), not both")
        self.column = column
        self.options = RunOptions.of(backend=backend, variant=variant, threads=threads, batch_size=batch_size,
                                     max_output_len=max_output_len, skip_unknown=skip_unknown, beam_size=beam_size,
                                     n_best=n_best, length_penalty=length_penalty, keep_going=keep_going).check()
        self._tmp = None
        if bundle_files is not None:
            if _is_object_ref(bundle_files):  # pack_bundle's dict put in Ray's object store
                bundle_files = _ray().get(bundle_files)
            self._tmp = bundle = _unpack(bundle_files)
        try:
            self.decoder = load(bundle, **self.options.load_kwargs())
        except BaseException:
            if self._tmp is not None:  # a bundle that does not load leaves no folder behind
                shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        log.debug("BundlePredictor in process %d: %r", os.getpid(), self.decoder)

    def __call__(self, batch: dict) -> dict:
        texts = batch[self.column]
        n = len(texts)
        outputs = np.full(n, "", dtype=object)
        errors = np.full(n, None, dtype=object)
        scores = np.full(n, np.nan, dtype=np.float64)
        finished = np.zeros(n, dtype=bool)
        done = answer(self.decoder, [(f"{self.column} {t!r}", t) for t in texts], self.options)
        if done.stop is not None:
            raise InputTextError(done.stop)
        for i, a in enumerate(done.answers):
            if a.error is not None:
                errors[i] = a.reason
            else:
                outputs[i], scores[i], finished[i] = a.result.text, a.result.score, a.result.finished
        return {**batch, "output": outputs, "score": scores, "finished": finished, "error": errors}

    def __del__(self):
        if getattr(self, "_tmp", None) is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def decode_dataset(ds, bundle: str | Path, *, ship: bool = False, column: str = "input", actors: int = 2,
                   threads_per_actor: int = 1, rows_per_batch: int = 1024, **options):
    """``ds.map_batches`` with ``actors`` BundlePredictor actors of ``threads_per_actor`` CPUs (and interpreter
    threads) each, ``rows_per_batch`` rows per call. ``ship``: put the bundle's files in the object store (once)
    instead of reading ``bundle`` on every node. ``options``: BundlePredictor's (backend, variant, batch_size,
    beam_size, ...). Returns the lazy dataset, with the columns of ``ds`` and OUTPUT_COLUMNS."""
    ray = _ray()
    kwargs = {"column": column, "threads": threads_per_actor, **options}
    if ship:
        kwargs["bundle_files"] = ray.put(pack_bundle(bundle))
    else:
        kwargs["bundle"] = str(Path(bundle).resolve())
    return ds.map_batches(BundlePredictor, fn_constructor_kwargs=kwargs, compute=ray.data.ActorPoolStrategy(size=actors),
                          num_cpus=threads_per_actor, batch_size=rows_per_batch, batch_format="numpy")
