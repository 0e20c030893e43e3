"""Loading a bundle and the greedy decode loop, written once for every backend."""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import backends
from . import manifest as mf
from . import probe
from . import text
from .errors import BackendUnavailableError, BundleError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeResult:
    """One decoded output with its per-token probabilities."""

    text: str
    #: Output token strings, in order (the end marker excluded).
    tokens: tuple[str, ...]
    #: Probability the model gave each emitted token; the last entry is the end marker's when it was reached.
    token_probs: tuple[float, ...]
    #: Whether the decoder emitted the end marker (False: it stopped at the output length limit).
    finished: bool

    @property
    def score(self) -> float:
        """Sequence log-probability: the sum of the log of ``token_probs``."""
        return float(sum(math.log(max(p, 1e-45)) for p in self.token_probs))


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


class Seq2SeqDecoder:
    """Greedy decoding of a bundle's encoder and decoder-step models on one backend.

    Thread-safe: ``decode`` and friends may be called from many threads at once.
    """

    def __init__(self, manifest: mf.BundleManifest, encoder, decoder_step, *, backend: str, variant: str,
                 bundle_dir: Path | None = None):
        self.manifest = manifest
        self.preprocessing = manifest.preprocessing
        self.backend = backend
        self.variant = variant
        self.bundle_dir = bundle_dir
        self._encoder = encoder
        self._step = decoder_step

    @property
    def max_output_len(self) -> int:
        """The longest output (in tokens) the model was trained to produce; decodes stop there."""
        return self.preprocessing.max_output_tokens

    @property
    def max_input_len(self) -> int:
        return self.preprocessing.max_input_tokens

    # -- public API -----------------------------------------------------------------------------------------
    def decode(self, source: str, *, max_output_len: int | None = None, skip_unknown: bool = False) -> str:
        """Decode one text. An empty input (no tokens) decodes to an empty string."""
        return self.decode_result(source, max_output_len=max_output_len, skip_unknown=skip_unknown).text

    def decode_result(self, source: str, *, max_output_len: int | None = None,
                      skip_unknown: bool = False) -> DecodeResult:
        """Decode one text, with per-token probabilities and the sequence score."""
        return self.decode_batch_results([source], max_output_len=max_output_len, skip_unknown=skip_unknown)[0]

    def decode_batch(self, sources: Sequence[str], batch_size: int = 32, *, max_output_len: int | None = None,
                     skip_unknown: bool = False) -> list[str]:
        """Decode many texts, ``batch_size`` at a time through the models; results are in input order."""
        return [r.text for r in self.decode_batch_results(sources, batch_size, max_output_len=max_output_len,
                                                          skip_unknown=skip_unknown)]

    def decode_batch_results(self, sources: Sequence[str], batch_size: int = 32, *,
                             max_output_len: int | None = None, skip_unknown: bool = False) -> list[DecodeResult]:
        if isinstance(sources, str):
            raise TypeError("decode_batch takes a sequence of strings, not one string; use decode()")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        limit = self._limit(max_output_len)
        encoded = [self.preprocessing.encode_input(s, skip_unknown=skip_unknown) for s in sources]
        results: list[DecodeResult | None] = [None] * len(encoded)
        pending = [i for i, ids in enumerate(encoded) if ids]
        for i, ids in enumerate(encoded):
            if not ids:
                results[i] = DecodeResult("", (), (), True)
        for start in range(0, len(pending), batch_size):
            chunk = pending[start:start + batch_size]
            for i, r in zip(chunk, self._decode_ids([encoded[i] for i in chunk], limit)):
                results[i] = r
        return results  # type: ignore[return-value]

    def stream(self, source: str, *, max_output_len: int | None = None, skip_unknown: bool = False) -> Iterator[str]:
        """Yield output tokens one by one as they are decoded (characters, or words for ``space`` targets)."""
        limit = self._limit(max_output_len)
        ids = self.preprocessing.encode_input(source, skip_unknown=skip_unknown)
        if not ids:
            return
        vocab = self.preprocessing.target_vocabulary
        steps = self._steps(mf.pad_batch([ids], self.manifest.encoder_time_steps), limit)
        for emitted, (tokens, _probs) in enumerate(steps):
            if tokens[0] == text.END_ID or emitted == limit:
                return
            yield vocab[tokens[0]]

    # -- the loop ---------------------------------------------------------------------------------------------
    def _limit(self, max_output_len: int | None) -> int:
        if max_output_len is None:
            return self.max_output_len
        if isinstance(max_output_len, bool) or not isinstance(max_output_len, int):
            raise TypeError(f"max_output_len must be an int, not {type(max_output_len).__name__}")
        if not 1 <= max_output_len <= self.max_output_len:
            raise ValueError(f"max_output_len must be between 1 and the trained maximum {self.max_output_len}, "
                             f"got {max_output_len}")
        return max_output_len

    def _steps(self, input_ids: np.ndarray, limit: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (chosen token ids [batch], the step's probabilities [batch, vocab]) for each greedy step.

        Runs at most ``limit + 1`` steps: ``limit`` output tokens and then a step that can only end the output.
        Stops early once every row has chosen the end token; rows that ended keep being computed (a finished
        mask is applied by the consumer), so the batch shape never changes.
        """
        states = self._encoder.run({mf.INPUT_IDS: input_ids})
        batch = input_ids.shape[0]
        feeds = {mf.PREV_TOKEN: np.full(batch, text.START_ID, np.int32),
                 mf.STATE_H: states[mf.STATE_H], mf.STATE_C: states[mf.STATE_C]}
        ended = np.zeros(batch, bool)
        run = self._step.run
        for _ in range(limit + 1):
            out = run(feeds)
            probs = out[mf.PROBS]
            chosen = probs.argmax(axis=1).astype(np.int32)
            yield chosen, probs
            if batch == 1:
                if chosen[0] == text.END_ID:
                    return
            else:
                ended |= chosen == text.END_ID
                if ended.all():
                    return
            feeds[mf.PREV_TOKEN] = chosen
            feeds[mf.STATE_H] = out[mf.NEXT_STATE_H]
            feeds[mf.STATE_C] = out[mf.NEXT_STATE_C]

    def _decode_ids(self, id_lists: list[list[int]], limit: int) -> list[DecodeResult]:
        chosen_steps, prob_steps = [], []
        for chosen, probs in self._steps(mf.pad_batch(id_lists, self.manifest.encoder_time_steps), limit):
            chosen_steps.append(chosen)
            prob_steps.append(probs)
        chosen_arr = np.array(chosen_steps)                                   # [steps, batch]
        probs_arr = np.take_along_axis(np.array(prob_steps), chosen_arr[:, :, None], axis=2)[:, :, 0]
        chosen_all, probs_all = chosen_arr.T.tolist(), probs_arr.T.tolist()   # [batch, steps]
        vocab = self.preprocessing.target_vocabulary
        tokenization = self.preprocessing.target_tokenization
        results = []
        for ids, probs in zip(chosen_all, probs_all):
            try:
                n = ids.index(text.END_ID)
                finished, keep = True, n + 1
            except ValueError:
                n, finished = limit, False
                keep = n
            tokens = tuple(vocab[t] for t in ids[:n])
            results.append(DecodeResult(text.detokenize(tokens, tokenization), tokens, tuple(probs[:keep]),
                                        finished))
        return results


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
