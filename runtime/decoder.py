"""The greedy decode loop, written once for every backend; ``load`` (in ``loader``) builds it."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import manifest as mf
from . import text

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


class Seq2SeqDecoder:
    """Greedy decoding of a bundle's encoder and decoder-step models on one backend.

    ``encoder`` and ``decoder_step`` are the loaded models: any objects with ``run(feeds) -> outputs``, both
    dicts keyed by the manifest's input and output names (the backend adapters). ``load`` builds this class;
    a caller may also build one around wrapped models (the benchmark times each ``run``).

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
    def encoder(self):
        """The encoder model: ``run({input_ids})`` -> {state_h, state_c}."""
        return self._encoder

    @property
    def decoder_step(self):
        """The decoder-step model: ``run({prev_token, state_h, state_c})`` -> {probs, next_state_h, next_state_c}."""
        return self._step

    @property
    def max_output_len(self) -> int:
        """The longest output (in tokens) the model was trained to produce; decodes stop there."""
        return self.preprocessing.max_output_tokens

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
        limit = self._batch_limit(batch_size, max_output_len)
        encoded = [self.preprocessing.encode_input(s, skip_unknown=skip_unknown) for s in sources]
        return self._decode(encoded, batch_size, limit)

    def decode_ids(self, id_lists: Sequence[Sequence[int]], batch_size: int = 32, *,
                   max_output_len: int | None = None) -> list[DecodeResult]:
        """Decode inputs that are already token ids (``preprocessing.encode_input``): ``decode_batch_results``
        without the text. An empty id list decodes to an empty result without running the models."""
        return self._decode(list(id_lists), batch_size, self._batch_limit(batch_size, max_output_len))

    def stream(self, source: str, *, max_output_len: int | None = None, skip_unknown: bool = False) -> Iterator[str]:
        """Yield output tokens one by one as they are decoded (characters, or words for ``space`` targets)."""
        limit = self._limit(max_output_len)
        ids = self.preprocessing.encode_input(source, skip_unknown=skip_unknown)
        if not ids:
            return
        vocab = self.preprocessing.target_vocabulary
        steps = self._steps(mf.pad_batch([ids], self.manifest.encoder_time_steps), limit)
        for emitted, (tokens, _probs, _h, _c) in enumerate(steps):
            if tokens[0] == text.END_ID or emitted == limit:
                return
            yield vocab[tokens[0]]

    def steps(self, input_ids: np.ndarray, *, max_output_len: int | None = None
              ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """The greedy loop itself, one step at a time, for callers that observe a decode (traces, timing).

        ``input_ids``: an int32 [batch, encoder_time_steps] array, right-padded with the pad id (see
        ``padded_batches``). Yields, for each step, (the chosen ids [batch], the step's probabilities
        [batch, vocab], the next state_h and state_c [batch, latent]). Runs at most ``max_output_len + 1`` steps
        and stops once every row has chosen the end id; rows that ended keep being computed, so the batch shape
        never changes (``decode_ids`` applies the finished mask).
        """
        return self._steps(input_ids, self._limit(max_output_len))

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

    def _batch_limit(self, batch_size: int, max_output_len: int | None) -> int:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        return self._limit(max_output_len)

    def _steps(self, input_ids: np.ndarray, limit: int) -> Iterator[tuple[np.ndarray, ...]]:
        # The hot loop (see ``steps``): nothing here that a decode without an observer does not need.
        states = self._encoder.run({mf.INPUT_IDS: input_ids})
        batch = input_ids.shape[0]
        feeds = {mf.PREV_TOKEN: np.full(batch, text.START_ID, np.int32),
                 mf.STATE_H: states[mf.STATE_H], mf.STATE_C: states[mf.STATE_C]}
        ended = np.zeros(batch, bool)
        run_step = self._step.run
        for _ in range(limit + 1):
            out = run_step(feeds)
            probs, state_h, state_c = out[mf.PROBS], out[mf.NEXT_STATE_H], out[mf.NEXT_STATE_C]
            chosen = probs.argmax(axis=1).astype(np.int32)
            yield chosen, probs, state_h, state_c
            if batch == 1:
                if chosen[0] == text.END_ID:
                    return
            else:
                ended |= chosen == text.END_ID
                if ended.all():
                    return
            feeds[mf.PREV_TOKEN] = chosen
            feeds[mf.STATE_H] = state_h
            feeds[mf.STATE_C] = state_c

    def _decode(self, encoded: list[list[int]], batch_size: int, limit: int) -> list[DecodeResult]:
        """Results in input order; empty inputs are answered without the models, the others ``batch_size`` at
        a time."""
        results = [_EMPTY] * len(encoded)
        pending = [i for i, ids in enumerate(encoded) if ids]
        decoded: list[DecodeResult] = []
        time_steps = self.manifest.encoder_time_steps
        for input_ids in padded_batches([encoded[i] for i in pending], batch_size, time_steps):
            decoded += self._results(input_ids, limit)
        for i, result in zip(pending, decoded):
            results[i] = result
        return results

    def _results(self, input_ids: np.ndarray, limit: int) -> list[DecodeResult]:
        chosen_steps, prob_steps = [], []
        rows = np.arange(input_ids.shape[0])
        for chosen, probs, _h, _c in self._steps(input_ids, limit):
            chosen_steps.append(chosen)
            prob_steps.append(probs[rows, chosen])  # keep [batch], not [batch, vocab], per step: memory stays small
        chosen_arr, probs_arr = np.array(chosen_steps), np.array(prob_steps)  # [steps, batch]
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


#: An input without tokens decodes to this, without running the models.
_EMPTY = DecodeResult("", (), (), True)


def padded_batches(id_lists: Sequence[Sequence[int]], batch_size: int, time_steps: int) -> Iterator[np.ndarray]:
    """``id_lists`` in order, ``batch_size`` at a time, each batch right-padded with the pad id into an int32
    [batch, time_steps] array: the batching of the runtime, of the Keras reference and of the parity gate."""
    for start in range(0, len(id_lists), batch_size):
        yield mf.pad_batch(id_lists[start:start + batch_size], time_steps)
