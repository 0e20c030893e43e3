"""Loading a bundle: every check a bundle from a stranger must pass before and after an interpreter sees it."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from . import backends
from . import manifest as mf
from . import probe
from .decoder import Seq2SeqDecoder
from .errors import BackendUnavailableError, BundleError

log = logging.getLogger(__name__)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_model_file(bundle_dir: Path, entry: mf.ModelFile) -> bytes:
    """The file's bytes, after checking them against the manifest's size and sha256."""
    path = Path(bundle_dir) / entry.path
    content = mf.read_bytes(path, "model file")
    if len(content) != entry.size_bytes:
        raise BundleError(f"model file is {len(content)} bytes, the manifest says {entry.size_bytes} "
                          "(truncated or replaced)", where=str(path))
    if _sha256(content) != entry.sha256:
        raise BundleError("model file's sha256 does not match the manifest (modified or corrupted)",
                          where=str(path))
    return content


def check_model_io(model, entry: mf.ModelFile, path: str) -> None:
    """Compare a loaded model's real inputs and outputs with the manifest; raise one error listing every mismatch."""
    problems = []
    for kind, real, declared in (("input", model.inputs, entry.inputs), ("output", model.outputs, entry.outputs)):
        real_by_name = {t.name: t for t in real}
        declared_names = {t.name for t in declared}
        for want in declared:
            got = real_by_name.get(want.name)
            if got is None:
                problems.append(f"{kind} {want.name!r} is declared in the manifest but the model has none "
                                f"(it has {sorted(real_by_name)})")
                continue
            if got.dtype != want.dtype:
                problems.append(f"{kind} {want.name!r} is {got.dtype} in the model, {want.dtype} in the manifest")
            if len(got.shape) != len(want.shape) or any(
                    w != -1 and g != -1 and g != w for g, w in zip(got.shape, want.shape)):
                problems.append(f"{kind} {want.name!r} has shape {list(got.shape)} in the model, "
                                f"{list(want.shape)} in the manifest")
        extra = sorted(set(real_by_name) - declared_names)
        if extra:
            problems.append(f"the model has {kind}s {extra} that the manifest does not declare")
    if problems:
        raise BundleError(problems, where=path)


def _smoke_test(model, path: str) -> None:
    """Run the model once on a batch of one (ids 0, states 0): a file that loads but cannot run fails here, at
    load time, rather than in the middle of a decode."""
    try:
        model.run(backends.zero_feeds(model))
    except BundleError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the interpreter raises, name the file
        raise BundleError(f"the model failed a test run: {type(e).__name__}: {e}", where=path) from None


def _choose_backend(manifest: mf.BundleManifest, backend: str, variant: str) -> str:
    if backend != "auto":
        if backend not in backends.BACKENDS:
            raise BackendUnavailableError(f"unknown backend {backend!r}; choose one of auto, "
                                          f"{', '.join(backends.BACKENDS)}")
        return backend
    tried = []
    for name in backends.AUTO_ORDER:
        fmt = backends.BACKENDS[name].format
        if variant not in manifest.variants(fmt):
            continue
        if backends.is_installed(name):
            try:
                backends.import_interpreter_module(name)
                return name
            except BackendUnavailableError as e:
                tried.append(str(e))
                continue
        tried.append(f"{name}: {backends.BACKENDS[name].install}")
    held = {fmt: manifest.variants(fmt) for fmt in mf.FORMATS}
    if not any(variant in v for v in held.values()):
        raise BundleError(f"the bundle has no {variant!r} variant (it holds {held})")
    raise BackendUnavailableError(f"no installed backend can run the {variant!r} models of this bundle; "
                                  + "; ".join(tried))


def load(bundle_dir: str | Path, backend: str = "auto", variant: str = "fp32", threads: int = 1) -> Seq2SeqDecoder:
    """Load a bundle written by ``s2s export`` and return a decoder.

    ``backend``: "tflite" (tflite-runtime), "litert" (ai-edge-litert), "onnx" (onnxruntime) or "auto" (the first
    of those that is installed and whose format the bundle holds). ``variant``: "fp32", "fp16" or "int8".
    Everything is checked before any model reaches an interpreter: the manifest's schema, each file's size and
    sha256; then each model's real inputs and outputs against the manifest.
    """
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise BundleError("no such bundle folder", where=str(bundle_dir))
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    manifest = mf.BundleManifest.load(bundle_dir)
    backend = _choose_backend(manifest, backend, variant)
    backends.import_interpreter_module(backend)  # a missing backend says what to install, before anything else
    fmt = backends.BACKENDS[backend].format
    entries = [manifest.find(role, fmt, variant) for role in mf.ROLES]
    if not all(entries):
        raise BundleError(f"the bundle has no {fmt} {variant} models (it holds {fmt} variants "
                          f"{manifest.variants(fmt)})", where=str(bundle_dir))
    contents = [read_model_file(bundle_dir, e) for e in entries]  # all checksums before any interpreter
    # Float encoders share one recurrent weight across unrolled steps: at batch 1 faster without XNNPACK, at
    # larger batches with it (see backends/tflite.py); int8 encoders and every decoder step are faster with it.
    xnnpack = ["batched" if e.role == mf.ENCODER and e.variant in ("fp32", "fp16") else True for e in entries]
    probe.probe(backend, [(str(bundle_dir / e.path), e.sha256, x) for e, x in zip(entries, xnnpack)])
    models = []
    for entry, content, xnnpack in zip(entries, contents, xnnpack):
        path = str(bundle_dir / entry.path)
        try:
            model = backends.open_model(backend, content, threads, xnnpack=xnnpack)
        except BundleError as e:
            tested = ", ".join(f"{k} {v}" for k, v in manifest.runtimes_tested.items())
            problems = [p + (f"; the bundle was tested with {tested}" if "version" in p and tested else "")
                        for p in e.problems]
            raise BundleError(problems, where=path) from None
        model.label = path
        check_model_io(model, entry, path)
        _smoke_test(model, path)
        models.append(model)
    log.debug("loaded %s (%s %s on %s)", bundle_dir, fmt, variant, backend)
    return Seq2SeqDecoder(manifest, models[0], models[1], backend=backend, variant=variant, bundle_dir=bundle_dir)
