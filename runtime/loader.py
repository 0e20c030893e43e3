"""Loading a bundle: every check a bundle from a stranger must pass before and after an interpreter sees it."""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from pathlib import Path

from . import backends, files, probe, quiet
from . import manifest as mf
from .decoder import Seq2SeqDecoder
from .errors import BackendUnavailableError, BundleError

log = logging.getLogger(__name__)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_model_file(bundle_dir: Path, entry: mf.ModelFile) -> bytes:
    """The file's bytes: a regular file of the manifest's size (checked before reading), with its sha256."""
    path = Path(bundle_dir) / entry.path
    content = files.read_regular_file(path, "model file", max_bytes=mf.MAX_MODEL_BYTES, size=entry.size_bytes)
    if _sha256(content) != entry.sha256:
        raise BundleError("model file's sha256 does not match the manifest (modified or corrupted)",
                          where=str(path))
    return content


def check_model_ops(content: bytes, entry: mf.ModelFile, path: str, loop_limit: int = 0,
                    row_limit: int | None = None) -> None:
    """The model's real operators, read from its bytes, must be ones its role allows and the manifest's list, and
    each of its loops (proven bounded from the bytes) may run at most ``loop_limit`` times
    (``BundleManifest.loop_limit``). With ``row_limit`` (``BundleManifest.row_limit``), every tensor's shape is
    also proved from the entry's input shapes, within that many elements per batch row (``backends.prove_shapes``)."""
    try:
        real, bounds = backends.inspect_model(entry.format, content)
    except BundleError as e:
        raise BundleError(e.problems, where=path) from None
    problems = []
    if bounds and max(bounds) > loop_limit:
        problems.append(f"has a loop of up to {max(bounds)} steps; a {entry.role} of this bundle may loop at most "
                        f"{loop_limit} times")
    allowed = mf.ALLOWED_OPS[entry.format][entry.role]
    outside = sorted(real - allowed)
    if outside:
        problems.append(f"uses operators a {entry.role} may not have: {outside[:8]} (allowed: {sorted(allowed)})")
    if real != set(entry.ops):
        problems.append(f"its operators {sorted(real)[:20]} differ from the manifest's list {sorted(entry.ops)[:20]}")
    if problems:
        raise BundleError(problems, where=path)
    if row_limit is not None:  # only operators the role allows: each has a shape rule
        try:
            backends.prove_shapes(entry.format, content, {t.name: tuple(t.shape) for t in entry.inputs}, row_limit)
        except BundleError as e:
            raise BundleError(e.problems, where=path) from None


def check_model_io(model, entry: mf.ModelFile, path: str) -> None:
    """Compare a loaded model's real inputs and outputs with the manifest; raise one error listing every mismatch.
    Shapes must match exactly: -1 (sized at run time) only where the manifest has it, on the batch axis."""
    problems = []
    for kind, real, declared in (("input", model.inputs, entry.inputs), ("output", model.outputs, entry.outputs)):
        real_by_name = {t.name: t for t in real}
        declared_names = {t.name for t in declared}
        for want in declared:
            got = real_by_name.get(want.name)
            if got is None:
                problems.append(f"{kind} {want.name!r} is declared in the manifest but the model has none "
                                f"(it has {sorted(real_by_name)[:8]})")
                continue
            if got.dtype != want.dtype:
                problems.append(f"{kind} {want.name!r} is {got.dtype} in the model, {want.dtype} in the manifest")
            if tuple(got.shape) != tuple(want.shape):
                problems.append(f"{kind} {want.name!r} has shape {list(got.shape)} in the model, "
                                f"{list(want.shape)} in the manifest")
        extra = sorted(set(real_by_name) - declared_names)
        if extra:
            problems.append(f"the model has {kind}s {extra[:8]} that the manifest does not declare")
    if problems:
        raise BundleError(problems, where=path)


class CheckedModel:
    """A loaded model whose every run is checked: each output must have the shape the contract gives it for the
    batch that was fed (a crafted model could return probabilities wider than the vocabulary, or states of
    another size, at run time)."""

    def __init__(self, model, entry: mf.ModelFile):
        self._model = model
        self.inputs, self.outputs, self.label = model.inputs, model.outputs, model.label
        self._declared = tuple((t.name, tuple(t.shape)) for t in entry.outputs)
        self._by_batch: dict[int, tuple] = {}

    def run(self, feeds: dict) -> dict:
        out = self._model.run(feeds)
        batch = len(next(iter(feeds.values())))
        want = self._by_batch.get(batch)
        if want is None:
            want = self._by_batch[batch] = tuple(
                (name, tuple(batch if d == -1 else d for d in shape)) for name, shape in self._declared)
        for name, shape in want:
            if out[name].shape != shape:
                raise BundleError(f"output {name!r} came back with shape {list(out[name].shape)} at batch "
                                  f"{batch}; the manifest gives {list(shape)}", where=self.label)
        return out


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


#: Formats whose greedy model decodes by default (``load(one_call=None)``). Measured (docs/benchmarks.md): TFLite's
#: WHILE runs a decode faster than the Python loop around the step model; ONNX Runtime's Loop, on the CMUdict
#: model, slower (its per-iteration cost is above the Python loop's per-step cost), so ONNX asks for one_call=True.
ONE_CALL_BY_DEFAULT = ("tflite",)

#: Files of a training run folder (``seq2seq_edge.train.run_folder``), to tell one apart from a bundle.
RUN_FOLDER_FILES = ("model.keras", "config.json")


def check_bundle_folder(bundle_dir: Path) -> None:
    """Raise BundleError unless ``bundle_dir`` is a folder with a manifest, saying what it is instead: missing, a
    file (the manifest itself: give its folder), or a training run folder (export it first)."""
    where = str(bundle_dir)
    if bundle_dir.is_file():
        if bundle_dir.name == mf.MANIFEST_FILE:
            raise BundleError(f"this is the bundle's manifest; give the folder that holds it: {bundle_dir.parent}",
                              where=where)
        raise BundleError("this is a file; a bundle is the folder s2s export wrote", where=where)
    if not bundle_dir.is_dir():
        raise BundleError("no such bundle folder", where=where)
    if (bundle_dir / mf.MANIFEST_FILE).exists():
        return
    if all((bundle_dir / f).is_file() for f in RUN_FOLDER_FILES):
        raise BundleError(f"this is a training run folder, not a bundle: export it first, e.g. "
                          f"s2s export {bundle_dir} --out bundles/{bundle_dir.resolve().name}", where=where)
    if any(p.suffix in (".tflite", ".onnx") for p in itertools.islice(bundle_dir.iterdir(), 1000)):
        return  # model files without their manifest: the manifest's own error says so
    raise BundleError(f"not a bundle folder (no {mf.MANIFEST_FILE})", where=where)


def _quiet_interpreter(module) -> None:
    """In the s2s command without -v, ONNX Runtime's process-wide logger (coloured warnings and errors) is set to
    fatal only with the library's own call; our errors say what went wrong. A program's own use is left alone."""
    if getattr(module, "__name__", "") == "onnxruntime" and quiet.active():
        try:
            module.set_default_logger_severity(4)
        except Exception:  # noqa: BLE001 - an onnxruntime without the call: keep its logging as it is
            pass


def _greedy_entry(manifest, fmt: str, variant: str, one_call: bool | None, bundle_dir: Path):
    """The one-call greedy model's manifest entry that ``load(one_call=...)`` decodes with, or None."""
    if one_call is not None and not isinstance(one_call, bool):
        raise ValueError(f"one_call must be None, True or False, got {one_call!r}")
    required = one_call is True
    if one_call is None:  # measured: ONNX Runtime's Loop costs more per iteration than the Python loop's call
        one_call = fmt in ONE_CALL_BY_DEFAULT
    greedy = manifest.find(mf.GREEDY, fmt, variant) if one_call else None
    if required and greedy is None:
        raise BundleError(f"the bundle has no one-call greedy {fmt} {variant} model (bundles hold one for "
                          f"{[m.variant for m in manifest.models if m.role == mf.GREEDY and m.format == fmt]}); "
                          "decode with the step loop (one_call=False, s2s run --step-loop) or re-export the bundle",
                          where=str(bundle_dir))
    return greedy


def _open_checked(backend: str, content: bytes, threads: int, entry, path: str, manifest) -> CheckedModel:
    """Open one checked model file in its interpreter, check its real inputs and outputs, and run it once."""
    try:
        # TFLite says "Created TensorFlow Lite XNNPACK delegate for CPU." with no switch to turn it off.
        with quiet.native_logs_caught():
            model = backends.open_model(backend, content, threads)
    except BundleError as e:
        tested = ", ".join(f"{k} {v}"[:60] for k, v in list(manifest.runtimes_tested.items())[:4])
        problems = [p + (f"; the bundle was tested with {tested}" if "version" in p and tested else "")
                    for p in e.problems]
        raise BundleError(problems, where=path) from None
    model.label = path
    check_model_io(model, entry, path)
    model = CheckedModel(model, entry)
    _smoke_test(model, path)
    return model


def load(bundle_dir: str | Path, backend: str = "auto", variant: str = "fp32", threads: int = 1,
         one_call: bool | None = None) -> Seq2SeqDecoder:
    """Load a bundle written by ``s2s export`` and return a decoder.

    ``backend``: "litert" (ai-edge-litert), "tflite" (tflite-runtime), "onnx" (onnxruntime) or "auto" (the first
    of those, in that order, that is installed and whose format the bundle holds). ``threads``: interpreter
    threads, at most the machine's cores. ``variant``: "fp32", "fp16" or "int8".
    ``one_call``: greedy decodes use the bundle's one-call greedy model always (True: an error if the bundle has
    none for this format and variant), never (False: the step loop, in Python), or by default (None) on TFLite
    backends when the bundle has one (``ONE_CALL_BY_DEFAULT``); beam search and streaming use the step loop. ``decoder.decode_path`` says which one decodes.
    A bundle is untrusted data: the manifest, each file's kind, size and sha256, and each model's operators are
    checked before any interpreter sees it; a model file new to this machine is first loaded in a limited child
    process (``probe``); then each model's real inputs and outputs are checked, and its output shapes at every
    run. See docs/trust.md.
    """
    bundle_dir = Path(bundle_dir)
    check_bundle_folder(bundle_dir)
    cores = os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= cores:
        raise ValueError(f"threads must be an int from 1 to this machine's {cores} cores, got {threads!r}")
    manifest = mf.BundleManifest.load(bundle_dir)
    backend = _choose_backend(manifest, backend, variant)
    _quiet_interpreter(backends.import_interpreter_module(backend))  # a missing backend says what to install first
    fmt = backends.BACKENDS[backend].format
    entries = [manifest.find(role, fmt, variant) for role in mf.ROLES]
    if not all(entries):
        raise BundleError(f"the bundle has no {fmt} {variant} models (it holds {fmt} variants "
                          f"{manifest.variants(fmt)})", where=str(bundle_dir))
    greedy = _greedy_entry(manifest, fmt, variant, one_call, bundle_dir)
    if greedy is not None:
        entries.append(greedy)
    contents = [read_model_file(bundle_dir, e) for e in entries]  # all checksums before any interpreter
    labels = [str(bundle_dir / e.path) for e in entries]
    for content, entry, label in zip(contents, entries, labels):
        check_model_ops(content, entry, label, manifest.loop_limit(entry.role), manifest.row_limit())
    # XNNPACK for every model, loops included: measured faster at every length and batch (docs/benchmarks.md).
    probe.probe(backend, [(label, content, e.sha256, True) for label, content, e in zip(labels, contents, entries)],
                threads)
    models = [_open_checked(backend, content, threads, entry, path, manifest)
              for entry, content, path in zip(entries, contents, labels)]
    log.debug("loaded %s (%s %s on %s)", bundle_dir, fmt, variant, backend)
    return Seq2SeqDecoder(manifest, models[0], models[1], backend=backend, variant=variant, bundle_dir=bundle_dir,
                          greedy=models[2] if greedy is not None else None)
