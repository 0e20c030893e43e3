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
