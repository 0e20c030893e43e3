"""The greedy decode loop, written once for every backend, and the entry to beam search (``beam``); ``load`` (in
``loader``) builds it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import beam
from . import manifest as mf
from . import preprocessing as pp
from . import text
from .errors import BundleError, InputTextError
from .options import DecodeOptions, resolve

#: How far a one-call greedy model's probabilities may be from its own variant's step loop's, for the same inputs
#: (the ids must be equal): the export's parity gate holds every greedy model to it. The loop inside the model
#: may run other kernels than the step model (XNNPACK or not, another GEMM for another batch size), so sums are
#: taken in another order; the same holds between batches of different sizes on either path. int8: tflite-runtime
#: 2.14's hybrid kernels (the Raspberry Pi's wheel) put the greedy and step models of the attention test fixture
#: (2 + 2 layers, input feeding) 1.9e-3 apart at batch 1, where LiteRT's stay under 1e-3; the ids agree.
ONE_CALL_ATOL = {"fp32": 1e-5, "fp16": 1e-4, "int8": 4e-3}


@dataclass(frozen=True)
class DecodeResult:
    """One decoded output with its per-token probabilities.

    ``token_probs`` has one entry per token and, when the output is ``finished``, one more at the end: the
    probability of the end marker, which is not a token of the text. So ``len(token_probs) == len(tokens) + 1``
    for a finished output and ``len(tokens)`` for one cut at the length limit; ``score`` sums their logs.
    """

    text: str
    #: Output token strings, in order (the end marker excluded).
    tokens: tuple[str, ...]
    #: Probability the model gave each emitted token, then the end marker's when it was reached (``finished``):
    #: one entry more than ``tokens`` for a finished output.
    token_probs: tuple[float, ...]
    #: Whether the decoder emitted the end marker (False: it stopped at the output length limit).
    finished: bool
    #: With beam search and ``n_best`` > 1: the next best hypotheses, best first (each without alternatives).
    alternatives: tuple["DecodeResult", ...] = ()

    @property
    def score(self) -> float:
        """Sequence log-probability: the sum of the log of ``token_probs`` (each at least 1e-45), in order."""
        total = 0.0
        for p in self.token_probs:
            total += beam.log_prob(p)
        return total

    def to_dict(self) -> dict:
        """The result as JSON-ready data: text, tokens, token_probs, finished and (when any) alternatives."""
        d = {"text": self.text, "tokens": list(self.tokens), "token_probs": [float(p) for p in self.token_probs],
             "finished": self.finished}
        if self.alternatives:
            d["alternatives"] = [a.to_dict() for a in self.alternatives]
        return d

    def __repr__(self) -> str:
        probs = ", ".join(f"{p:.4g}" for p in self.token_probs) + ("," if len(self.token_probs) == 1 else "")
        more = f", alternatives={len(self.alternatives)}" if self.alternatives else ""
        return (f"DecodeResult(text={self.text!r}, score={self.score:.4f}, finished={self.finished}, "
                f"tokens={self.tokens!r}, token_probs=({probs}){more})")


#: A probability may exceed 1 by float32 rounding of a softmax, never by more.
PROB_SLACK = 1e-5


def check_outputs(ids: np.ndarray, probs: np.ndarray, where: str) -> None:
    """Refuse what no honest model emits: a reserved id other than the end marker (pad, start) among a row's
    tokens, or a chosen token's probability that is not finite or outside [0, 1]. ``ids`` and ``probs``:
    [batch, steps]; a row's outputs after its end id are not looked at."""
    if not ids.size:
        return
    steps = np.arange(ids.shape[1])
    is_end = ids == text.END_ID
    end = np.where(is_end.any(axis=1), is_end.argmax(axis=1), ids.shape[1])[:, None]
    reserved = np.isin(ids, text.NEVER_CHOSEN_IDS) & (steps < end)
    if reserved.any():
        row, step = (int(x) for x in np.argwhere(reserved)[0])
        raise BundleError(f"the model chose the reserved id {int(ids[row, step])} at step {step + 1} of item "
                          f"{row + 1} (only the end id {text.END_ID} may end an output)", where=where)
    check_probabilities(probs[steps <= end], where)


def check_probabilities(probs: np.ndarray, where: str) -> None:
    """Refuse a value that is not finite or outside [0, 1] (by more than float32 rounding) among ``probs``."""
    bad = ~np.isfinite(probs) | (probs < 0) | (probs > 1 + PROB_SLACK)
    if bad.any():
        raise BundleError(f"the model gave a probability of {float(probs[bad][0])!r} (not a probability in "
                          "[0, 1])", where=where)


class Seq2SeqDecoder:
    """Greedy decoding, or beam search, with a bundle's encoder and decoder-step models on one backend.

    ``encoder`` and ``decoder_step`` are the loaded models: any objects with ``run(feeds) -> outputs``, both
    dicts keyed by the manifest's input and output names (the backend adapters). ``load`` builds this class;
    a caller may also build one around wrapped models (the benchmark times each ``run``). ``greedy``: the bundle's
    one-call greedy model (``run({input_ids})`` -> {output_ids, output_probs}), which then decodes every greedy
    call but ``stream`` and ``internals.steps``; its results are those of the step loop (the export's parity gate checks it).

    Thread-safe: ``decode`` and friends may be called from many threads at once.

    Every decode method takes one ``DecodeOptions`` (``seq2seq_edge.DecodeOptions``: batch size, output length
    limit, unknown symbols, beam search), or keyword arguments with its field names. With ``beam_size`` > 1 (or
    ``n_best`` > 1) they run beam search (see ``beam`` for the rules); the beams of every input of a batch go
    through the step model together, at most ``beam.MAX_BEAM_ROWS`` rows at a time.
    """

    def __init__(self, manifest: mf.BundleManifest, encoder, decoder_step, *, backend: str, variant: str,
                 bundle_dir: Path | None = None, greedy=None):
        self.manifest = manifest
        self.preprocessing = manifest.preprocessing
        self.backend = backend
        self.variant = variant
        self.bundle_dir = bundle_dir
        self._encoder = encoder
        self._step = decoder_step
        self._greedy = greedy
        self._step_inputs = tuple(t.name for m in manifest.models if m.role == mf.DECODER_STEP for t in m.inputs)

    def __repr__(self) -> str:
        prep = self.preprocessing
        return (f"Seq2SeqDecoder(bundle={str(self.bundle_dir) if self.bundle_dir else None!r}, "
                f"backend={self.backend!r}, variant={self.variant!r}, path={self.decode_path!r}, "
                f"input={prep.input_tokenization} up to {prep.max_input_tokens} tokens, "
                f"output={prep.target_tokenization} up to {prep.max_output_tokens} tokens)")

    @property
    def internals(self) -> "DecoderInternals":
        """The loaded models and the bare step loop, for the export's parity gate, the benchmarks and traces;
        not needed to decode (see ``DecoderInternals``)."""
        return DecoderInternals(self)

    @property
    def decode_path(self) -> str:
        """How a greedy decode runs: "one-call" (the greedy model) or "step-loop" (encoder, then a step per token)."""
        return "one-call" if self._greedy is not None else "step-loop"

    @property
    def max_output_len(self) -> int:
        """The longest output (in tokens) the model was trained to produce; decodes stop there."""
        return self.preprocessing.max_output_tokens

    # -- public API -----------------------------------------------------------------------------------------
    # Every method takes one ``DecodeOptions`` (default: the defaults), and keyword arguments that replace its
    # fields: ``decode(x, beam_size=4)`` is ``decode(x, DecodeOptions(beam_size=4))``.
    def decode(self, source: str, options: DecodeOptions | None = None, /, **overrides) -> str:
        """Decode one text (the best hypothesis). An empty input (no tokens) decodes to an empty string."""
        return self.decode_result(source, resolve(options, overrides)).text

    def decode_result(self, source: str, options: DecodeOptions | None = None, /, **overrides) -> DecodeResult:
        """Decode one text, with per-token probabilities and the sequence score (and, with ``n_best`` > 1, the
        runners-up in ``alternatives``). ``token_probs`` ends with the end marker's probability when the output is
        finished: one entry more than ``tokens``."""
        opts = resolve(options, overrides)
        return self._decode_ids([self.preprocessing.encode_input(source, skip_unknown=opts.skip_unknown)], opts)[0]

    def decode_batch(self, sources: Sequence[str], options: DecodeOptions | None = None, /,
                     **overrides) -> list[str]:
        """``decode_batch_results``, the texts only."""
        return [r.text for r in self.decode_batch_results(sources, resolve(options, overrides))]

    def decode_batch_results(self, sources: Sequence[str], options: DecodeOptions | None = None, /,
                             **overrides) -> list[DecodeResult]:
        """Decode many texts, ``options.batch_size`` at a time through the models: a ``DecodeResult`` per input, in
        input order. An input that cannot be encoded (symbols the model never saw, too long, not a string) raises
        before anything is decoded, naming its position (from 1) and text."""
        if isinstance(sources, str):
            raise TypeError("decode_batch takes a sequence of strings, not one string; use decode()")
        opts = resolve(options, overrides)
        encoded = []
        for i, s in enumerate(sources):
            try:
                encoded.append(self.preprocessing.encode_input(s, skip_unknown=opts.skip_unknown))
            except (InputTextError, TypeError) as e:  # counted from 1, as the CLI counts lines
                raise type(e)(f"item {i + 1} of {len(sources)} ({_preview(s)}): {e}") from None
        return self._decode_ids(encoded, opts)

    def decode_ids(self, id_lists: Sequence[Sequence[int]], options: DecodeOptions | None = None, /,
                   **overrides) -> list[DecodeResult]:
        """Decode inputs that are already token ids (``preprocessing.encode_input``): ``decode_batch_results``
        without the text (``skip_unknown`` plays no part). An empty id list decodes to an empty result without
        running the models."""
        return self._decode_ids([list(ids) for ids in id_lists], resolve(options, overrides))

    def stream(self, source: str, options: DecodeOptions | None = None, /, **overrides) -> Iterator[str]:
        """Yield the output text piece by piece: ``"".join(stream(x, o)) == decode(x, o)`` for any options ``o``.

        Each piece is one token with the separator that goes before it: characters for ``char`` targets; for
        ``space`` targets (words) the first word, then " " + each next word. So ``print(piece, end="")`` prints
        the text as ``decode`` returns it. The bare tokens are in ``decode_result(x).tokens``. A greedy decode
        yields each token as soon as its step has run (by the step loop, also when the bundle has a one-call
        model, whose outputs the export's parity gate holds to the step loop's); with beam search the best
        hypothesis is known only at the end, so its pieces come once the search is done."""
        opts = resolve(options, overrides)
        if opts.beam > 1:
            yield from self._pieces(self.decode_result(source, opts).tokens)
            return
        limit = opts.limit(self.max_output_len)
        ids = self.preprocessing.encode_input(source, skip_unknown=opts.skip_unknown)
        if not ids:
            return
        vocab = self.preprocessing.target_vocabulary
        steps = self._steps(pp.pad_batch([ids], self.manifest.encoder_time_steps), limit)
        yield from self._pieces(vocab[chosen[0]] for emitted, (chosen, _p, _h, _c) in enumerate(steps)
                                if chosen[0] != text.END_ID and emitted < limit)

    # -- the loop ---------------------------------------------------------------------------------------------
    def _pieces(self, tokens) -> Iterator[str]:
        separator = text.detokenize(("", ""), self.preprocessing.target_tokenization)
        for i, token in enumerate(tokens):
            yield (separator if i else "") + token

    def _first_feeds(self, input_ids: np.ndarray) -> dict[str, np.ndarray]:
        encoded = self._encoder.run({mf.INPUT_IDS: input_ids})
        feeds = {name: encoded[name] for name in self._step_inputs if name in encoded}
        feeds[mf.PREV_TOKEN] = np.full(input_ids.shape[0], text.START_ID, np.int32)
        return feeds

    def _steps(self, input_ids: np.ndarray, limit: int) -> Iterator[tuple[np.ndarray, ...]]:
        # The hot loop (see ``DecoderInternals.steps``): nothing here that a decode without an observer does not need.
        feeds = self._first_feeds(input_ids)
        batch = input_ids.shape[0]
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
            feeds[mf.STATE_H] = state_h  # manifest.RECURRENT, written out: this loop is hot
            feeds[mf.STATE_C] = state_c

    def _decode_ids(self, encoded: list[list[int]], opts: DecodeOptions) -> list[DecodeResult]:
        """Results in input order; empty inputs are answered without the models, the others ``opts.batch_size`` at
        a time (with beam search, at most ``beam.MAX_BEAM_ROWS // beam`` at a time); a beam of 1 is the greedy
        loop."""
        limit = opts.limit(self.max_output_len)
        results = [_EMPTY] * len(encoded)
        pending = [i for i, ids in enumerate(encoded) if ids]
        decoded: list[DecodeResult] = []
        batch_size, beam_size = opts.batch_size, opts.beam
        if beam_size > 1:
            batch_size = min(batch_size, max(1, beam.MAX_BEAM_ROWS // beam_size))
        for input_ids in padded_batches([encoded[i] for i in pending], batch_size, self.manifest.encoder_time_steps):
            if beam_size > 1:
                decoded += self._beam_results(input_ids, limit, beam_size, opts.n_best, float(opts.length_penalty))
            elif self._greedy is not None:
                decoded += self._one_call_results(input_ids, limit)
            else:
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
        chosen_arr, probs_arr = np.array(chosen_steps).T, np.array(prob_steps).T  # [batch, steps]
        check_outputs(chosen_arr, probs_arr, getattr(self._step, "label", "decoder step"))
        return self._rows(chosen_arr.tolist(), probs_arr.tolist(), limit)

    def _one_call_results(self, input_ids: np.ndarray, limit: int) -> list[DecodeResult]:
        out = self._greedy.run({mf.INPUT_IDS: input_ids})
        ids, probs = out[mf.OUTPUT_IDS][:, :limit + 1], out[mf.OUTPUT_PROBS][:, :limit + 1]
        where = getattr(self._greedy, "label", "greedy model")
        if ids.size and not (0 <= int(ids.min()) and int(ids.max()) < len(self.preprocessing.target_vocabulary)):
            raise BundleError("the greedy model returned ids outside the target vocabulary", where=where)
        check_outputs(ids, probs, where)
        return self._rows(ids.tolist(), probs.tolist(), limit)

    def _rows(self, chosen_all: list[list[int]], probs_all: list[list[float]], limit: int) -> list[DecodeResult]:
        """Results from the ids chosen at each step, and their probabilities, per row [batch][steps]: a row ends at
        its first end id; without one it was cut at ``limit`` tokens."""
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

    def _beam_results(self, input_ids: np.ndarray, limit: int, beam_size: int, n_best: int,
                      length_penalty: float) -> list[DecodeResult]:
        found = beam.search(self._first_feeds(input_ids), self._step.run, limit, beam_size, n_best, length_penalty)
        results = []
        for hypotheses in found:
            best, *others = [self._result(h) for h in hypotheses]
            results.append(DecodeResult(best.text, best.tokens, best.token_probs, best.finished, tuple(others)))
        return results

    def _result(self, h: beam.Hypothesis) -> DecodeResult:
        vocab = self.preprocessing.target_vocabulary
        tokens = tuple(vocab[t] for t in h.ids)
        return DecodeResult(text.detokenize(tokens, self.preprocessing.target_tokenization), tokens, h.probs,
                            h.finished)


#: An input without tokens decodes to this, without running the models.
_EMPTY = DecodeResult("", (), (), True)


class DecoderInternals:
    """What a ``Seq2SeqDecoder`` is made of, for code that checks or times it rather than decodes with it (the
    export's parity gate, ``s2s bench``, traces). ``decoder.internals`` gives it."""

    def __init__(self, decoder: Seq2SeqDecoder):
        self._d = decoder

    @property
    def encoder(self):
        """The encoder model: ``run({input_ids})`` -> {state_h, state_c} (and, with attention, its outputs and mask)."""
        return self._d._encoder

    @property
    def decoder_step(self):
        """The decoder-step model: ``run({prev_token, state_h, state_c, ...})`` -> {probs, next_state_h,
        next_state_c}."""
        return self._d._step

    @property
    def greedy_model(self):
        """The one-call greedy model, or None when greedy decodes run the step loop."""
        return self._d._greedy

    def with_step_loop(self) -> Seq2SeqDecoder:
        """The decoder without its one-call greedy model: the same loaded models, greedy decodes by the step loop."""
        d = self._d
        return Seq2SeqDecoder(d.manifest, d._encoder, d._step, backend=d.backend, variant=d.variant,
                              bundle_dir=d.bundle_dir)

    def first_feeds(self, input_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Run the encoder on ``input_ids`` (int32 [batch, encoder_time_steps]) and return the first decoder
        step's inputs: ``prev_token`` = the start id, and every encoder output that the step takes by the same name
        (its initial ``state_h`` and ``state_c``). After each step, ``manifest.RECURRENT`` says which outputs
        become the next step's inputs; the others stay as they are."""
        return self._d._first_feeds(input_ids)

    def steps(self, input_ids: np.ndarray, *, max_output_len: int | None = None
              ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """The greedy loop itself, one step at a time; it runs the step model even when the bundle has a one-call
        greedy model.

        ``input_ids``: an int32 [batch, encoder_time_steps] array, right-padded with the pad id (see
        ``padded_batches``). Yields, for each step, (the chosen ids [batch], the step's probabilities
        [batch, vocab], the next state_h and state_c [batch, latent]). Runs at most ``max_output_len + 1`` steps
        and stops once every row has chosen the end id; rows that ended keep being computed, so the batch shape
        never changes (``decode_ids`` applies the finished mask).
        """
        return self._d._steps(input_ids, DecodeOptions(max_output_len=max_output_len).limit(self._d.max_output_len))


def _preview(source, limit: int = 40) -> str:
    """An input for an error message: its repr, cut to ``limit`` characters."""
    if not isinstance(source, str):
        return type(source).__name__
    return repr(source) if len(source) <= limit else repr(source[:limit]) + f"... ({len(source)} characters)"


def padded_batches(id_lists: Sequence[Sequence[int]], batch_size: int, time_steps: int) -> Iterator[np.ndarray]:
    """``id_lists`` in order, ``batch_size`` at a time, each batch right-padded with the pad id into an int32
    [batch, time_steps] array: the batching of the runtime, of the Keras reference and of the parity gate."""
    for start in range(0, len(id_lists), batch_size):
        yield pp.pad_batch(id_lists[start:start + batch_size], time_steps)
