"""The reference decoder: batched greedy decoding with the Keras encoder and step models.

Every exported model is compared with this, so it is an oracle of its own: its loop is written here, with Keras
models and nothing of the runtime's loop (the parity gate would prove little if Keras were driven through the
code it checks). It shares only the plumbing: tokenization (``Preprocessing``), batching and padding
(``padded_batches``) and the special ids (``text``). The greedy rule is the bundle contract's (docs/bundle.md): the
encoder once on the whole batch, then the step model once per output position on the whole batch, with a
finished mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from seq2seq_edge import manifest as mf
from seq2seq_edge import preprocessing as pp
from seq2seq_edge import text
from seq2seq_edge.decoder import padded_batches
from seq2seq_edge.ensemble import mean_log_probs

from .run_folder import RunFolder


@dataclass(frozen=True)
class KerasTrace:
    """One batch decoded by Keras, with everything it computed on the way (the parity gate's reference)."""

    #: Greedy token ids per row, the end token excluded.
    outputs: list[list[int]]
    #: The encoder's outputs: {state_h, state_c}.
    encoded: dict[str, np.ndarray]
    #: Each step's input token and outputs: {prev_token, probs, next_state_h, next_state_c}; the step's input
    #: states are the encoder's (first step) or the previous step's next states.
    steps: list[dict[str, np.ndarray]]


@dataclass(frozen=True)
class KerasDecoder:
    """Greedy decoding with Keras models derived from a trained training model."""

    encoder: object
    step: object
    max_output_tokens: int
    #: Call the models with ``predict``, once per step, as the seed tutorial does (the benchmark's baseline),
    #: instead of calling them directly.
    use_predict: bool = False

    @classmethod
    def from_training_model(cls, model, max_output_tokens: int) -> "KerasDecoder":
        from .model import decoder_step_model, encoder_model

        return cls(encoder_model(model), decoder_step_model(model), max_output_tokens)

    @classmethod
    def ensemble(cls, models, max_output_tokens: int) -> "KerasDecoder":
        """The reference of an ensemble bundle (``s2s export --ensemble``): the training ``models``' encoders and
        steps on their shares of the state and memory, side by side in order, and at each step the normalized
        geometric mean of their distributions."""
        members = [cls.from_training_model(m, max_output_tokens) for m in models]
        return cls(_EnsembleEncoder(tuple(m.encoder for m in members)), _EnsembleStep(tuple(m.step for m in members)),
                   max_output_tokens)

    def _call(self, model, inputs) -> dict[str, np.ndarray]:
        out = model.predict(inputs, verbose=0) if self.use_predict else model(inputs, training=False)
        return {k: np.asarray(v) for k, v in out.items()}

    def encode(self, input_ids: np.ndarray) -> dict[str, np.ndarray]:
        return self._call(self.encoder, np.asarray(input_ids, np.int32))

    def step_once(self, prev_token: np.ndarray, h: np.ndarray, c: np.ndarray,
                  attended: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """One decoder step; ``attended``: the encoder's outputs and mask, for attention models."""
        return self._call(self.step, {mf.PREV_TOKEN: np.asarray(prev_token, np.int32), mf.STATE_H: h,
                                      mf.STATE_C: c, **(attended or {})})

    def greedy_token_ids(self, input_ids: np.ndarray) -> list[list[int]]:
        """Greedy token ids (end token excluded) for a padded int32 [batch, time] array."""
        return self._greedy(input_ids, None)[0]

    def trace(self, input_ids: np.ndarray) -> KerasTrace:
        """``greedy_token_ids`` with the encoder's outputs and every step's input token and outputs."""
        steps: list[dict[str, np.ndarray]] = []
        outputs, encoded = self._greedy(input_ids, steps)
        return KerasTrace(outputs, encoded, steps)

    def _greedy(self, input_ids: np.ndarray, record: list | None) -> tuple[list[list[int]], dict[str, np.ndarray]]:
        batch = len(input_ids)
        encoded = self.encode(input_ids)
        h, c = encoded[mf.STATE_H], encoded[mf.STATE_C]
        attended = {k: v for k, v in encoded.items() if k in (mf.ENCODER_OUTPUTS, mf.ENCODER_MASK)}
        prev = np.full(batch, text.START_ID, np.int32)
        done = np.zeros(batch, bool)
        outputs: list[list[int]] = [[] for _ in range(batch)]
        # max_output_tokens tokens, then one step that can only end the output.
        for step in range(self.max_output_tokens + 1):
            out = self.step_once(prev, h, c, attended)
            if record is not None:
                record.append({mf.PREV_TOKEN: prev.copy(), **out})
            nxt = out[mf.PROBS].argmax(axis=1).astype(np.int32)
            done |= nxt == text.END_ID
            if done.all():
                break
            if step < self.max_output_tokens:
                for i in np.flatnonzero(~done):
                    outputs[i].append(int(nxt[i]))
            prev, h, c = nxt, out[mf.NEXT_STATE_H], out[mf.NEXT_STATE_C]
        return outputs, encoded


@dataclass(frozen=True)
class _EnsembleEncoder:
    """Called as a Keras encoder model is: each member's outputs, joined along the last axis (one mask)."""

    members: tuple

    def __call__(self, input_ids, training=False) -> dict[str, np.ndarray]:
        outs = [{k: np.asarray(v) for k, v in m(input_ids, training=training).items()} for m in self.members]
        joined = {k: np.concatenate([o[k] for o in outs], -1) for k in outs[0] if k != mf.ENCODER_MASK}
        if mf.ENCODER_MASK in outs[0]:
            joined[mf.ENCODER_MASK] = outs[0][mf.ENCODER_MASK]
        return joined


@dataclass(frozen=True)
class _EnsembleStep:
    """Called as a Keras step model is: each member's step on its share of the state and memory (its widths read
    from its inputs), and the normalized geometric mean of their probabilities, computed in float64."""

    members: tuple

    @property
    def inputs(self) -> list:
        """The step's inputs (their names are what callers read): the first member's."""
        return self.members[0].inputs

    def _widths(self, name: str) -> list[int]:
        return [next(int(t.shape[-1]) for t in m.inputs if t.name == name) for m in self.members]

    def __call__(self, inputs: dict, training=False) -> dict[str, np.ndarray]:
        def shares(name):
            return np.split(np.asarray(inputs[name]), np.cumsum(self._widths(name))[:-1], axis=-1)

        split = {k: shares(k) for k in (mf.STATE_H, mf.STATE_C, mf.ENCODER_OUTPUTS) if k in inputs}
        outs = []
        for i, m in enumerate(self.members):
            member_inputs = {**inputs, **{k: v[i] for k, v in split.items()}}
            outs.append({k: np.asarray(v) for k, v in m(member_inputs, training=training).items()})
        log_probs = mean_log_probs([o[mf.PROBS].astype(np.float64) for o in outs])
        probs = np.exp(log_probs - log_probs.max(axis=-1, keepdims=True))
        return {mf.PROBS: (probs / probs.sum(axis=-1, keepdims=True)).astype(np.float32),
                **{k: np.concatenate([o[k] for o in outs], -1) for k in (mf.NEXT_STATE_H, mf.NEXT_STATE_C)}}


def decode_texts(decoder: KerasDecoder, prep: pp.Preprocessing, sources: list[str], batch_size: int = 512) -> list[str]:
    """Decode ``sources`` to strings, ``batch_size`` at a time."""
    encoded = [prep.encode_input(s) for s in sources]
    return [prep.decode_output(ids) for input_ids in padded_batches(encoded, batch_size, prep.max_input_tokens)
            for ids in decoder.greedy_token_ids(input_ids)]


def normalized_targets(prep: pp.Preprocessing, pairs) -> list[str]:
    """The pairs' targets as a decode that gets them right prints them (normalized, tokenized, joined again)."""
    tok = prep.target_tokenization
    return [text.detokenize(text.tokenize(text.normalize(p.target), tok), tok) for p in pairs]


def exact_match(decoder: KerasDecoder, prep: pp.Preprocessing, sources: list[str], references: list[str]) -> float:
    """The share of ``sources`` whose greedy decode is their reference (``normalized_targets``) exactly."""
    outputs = decode_texts(decoder, prep, sources)
    return sum(o == r for o, r in zip(outputs, references)) / len(sources)


def load_reference(run_dir) -> tuple[KerasDecoder, pp.Preprocessing]:
    """The Keras reference decoder of a run folder, with the run's preprocessing."""
    run = RunFolder.open(run_dir)
    prep = run.read_config().preprocessing
    return KerasDecoder.from_training_model(run.load_keras_model(), prep.max_output_tokens), prep


# ---- beam search, the reference ---------------------------------------------------------------------------------
# The same rules as the runtime's beam search (runtime/beam.py's docstring), written again here without any of its
# code, so that the parity gate compares two implementations: hypotheses are kept as plain (ids, probs, score)
# records, candidates are ordered with one full sort, and the rules are applied in their plainest form.


@dataclass(frozen=True)
class KerasBeamHypothesis:
    """One beam-search output: token ids (end id excluded), their probabilities (the end marker's last when
    finished), whether the end marker was reached, and the score (sum of log(max(p, 1e-45)), in order)."""

    ids: tuple[int, ...]
    probs: tuple[float, ...]
    finished: bool
    score: float


def _log(p: float) -> float:
    return math.log(max(p, 1e-45))


def _penalized(score: float, length: int, alpha: float) -> float:
    return score / (((5.0 + length) / 6.0) ** alpha) if alpha else score


class _Live(NamedTuple):
    """A live hypothesis of the reference beam search: its tokens, their probabilities, its log-probability score,
    and the row of the step models' batch that holds its states."""
    ids: tuple
    probs: tuple
    score: float
    row: int


class _Grown(NamedTuple):
    """A live hypothesis grown by one token: its tokens, probabilities and score, its parent's row, the token."""
    ids: tuple
    probs: tuple
    score: float
    parent_row: int
    token: int


class _Ended(NamedTuple):
    """A finished hypothesis (or, at the length limit, an unfinished one): its rank score (length-penalized), its
    ids with the end id when finished (ties broken by them), and the hypothesis."""
    rank: float
    ids: tuple
    hypothesis: "KerasBeamHypothesis"


def _best_first(entry: _Ended):
    return (-entry.rank, entry.ids)


class _BeamRows:
    """The reference search's book-keeping for one input: its live and ended hypotheses, and its close calls
    (decision margins, each with the best rank score that hung on it)."""

    def __init__(self, row: int, limit: int, alpha: float):
        self.live = [_Live((), (), 0.0, row)]
        self.ended: list[_Ended] = []
        self.close_calls: list[tuple[float, float]] = []
        self.limit, self.alpha = limit, alpha

    def close_call(self, better: float, worse: float, at_stake: float = math.inf) -> None:
        self.close_calls.append((better - worse, at_stake))

    def bound(self, score: float, t: int) -> float:
        """The best rank score a live hypothesis of t tokens and this score can end with."""
        return max(_penalized(score, t, self.alpha), _penalized(score, self.limit + 1, self.alpha))

    def end_here(self, h: _Live, pe: float, t: int) -> None:
        hyp = KerasBeamHypothesis(h.ids, h.probs + (pe,), True, h.score + _log(pe))
        self.ended.append(_Ended(_penalized(hyp.score, t + 1, self.alpha), h.ids + (text.END_ID,), hyp))

    def last_step(self, hyps: list[_Live], p: np.ndarray, t: int) -> None:
        """At the length limit each hypothesis ends as greedy decoding would end it."""
        end = text.END_ID
        for h, q in zip(hyps, p):
            others = np.delete(q, end)
            self.close_call(abs(_log(float(q[end])) - _log(float(others.max()))), 0.0,
                            max(_penalized(h.score, t, self.alpha),
                                _penalized(h.score + _log(float(q[end])), t + 1, self.alpha)))
            if int(np.argmax(q)) == end:
                self.end_here(h, float(q[end]), t)
            else:
                self.ended.append(_Ended(_penalized(h.score, t, self.alpha), h.ids,
                                         KerasBeamHypothesis(h.ids, h.probs, False, h.score)))

    def step(self, hyps: list[_Live], p: np.ndarray, t: int, beam_size: int, n_best: int) -> list[_Grown]:
        """End every hypothesis here as one candidate, keep the beam's best ended ones, and return the beam's best
        continuations, or none when no live hypothesis can still reach the ended ones."""
        end = text.END_ID
        for h, q in zip(hyps, p):
            self.end_here(h, float(q[end]), t)
        ranked = sorted(self.ended, key=_best_first)
        if len(ranked) > beam_size and n_best == beam_size:
            self.close_call(ranked[beam_size - 1].rank, ranked[beam_size].rank, ranked[beam_size - 1].rank)
        self.ended = ranked[:beam_size]
        values = np.array([h.score for h in hyps])[:, None] + np.log(np.fmax(p.astype(np.float64), 1e-45))
        parent, token = np.indices(values.shape)
        keep = ~np.isin(token.ravel(), text.RESERVED_IDS)  # no output holds pad, start or end
        values, parent, token = values.ravel()[keep], parent.ravel()[keep], token.ravel()[keep]
        order = np.lexsort((token, parent, -values))  # by score, then token sequence
        if len(order) > beam_size:
            kept = values[order[beam_size - 1]]
            self.close_call(kept, values[order[beam_size]], self.bound(kept, t + 1))
        grown = []
        for j, tok in zip(parent[order[:beam_size]].tolist(), token[order[:beam_size]].tolist()):
            h, pt = hyps[j], float(p[j, tok])
            grown.append(_Grown(h.ids + (tok,), h.probs + (pt,), h.score + _log(pt), h.row, tok))
        # Done when it holds beam_size ended hypotheses and no live one (which can only lose score) could end
        # above the worst of them, at any length it may still reach.
        if len(self.ended) >= beam_size and max(self.bound(g.score, t + 1) for g in grown) < self.ended[-1].rank:
            return []
        return grown

    def best(self, n_best: int, margins: list[float] | None) -> list["KerasBeamHypothesis"]:
        """The n best ended hypotheses; with ``margins``, this input's smallest margin that could change them."""
        ranked = sorted(self.ended, key=_best_first)[:n_best + 1]
        for a, b in zip(ranked, ranked[1:]):
            self.close_call(a.rank, b.rank)
        if margins is not None:
            last = ranked[n_best - 1].rank if len(ranked) >= n_best else -math.inf
            margins.append(min((gap for gap, at_stake in self.close_calls if at_stake >= last), default=math.inf))
        return [entry.hypothesis for entry in ranked[:n_best]]


def beam_search(keras: KerasDecoder, input_ids: np.ndarray, beam_size: int, n_best: int,
                length_penalty: float = 0.0, margins: list[float] | None = None) -> list[list[KerasBeamHypothesis]]:
    """The n best outputs of each row of a padded int32 [batch, time] array, best first: beam search with the
    Keras encoder and step models (the step model on every live hypothesis of the batch at once).

    ``margins``: if given, extended with each row's smallest decision margin, in (rank) score: how close the
    search came to deciding otherwise where that could change the result: the last kept live candidate against
    the first dropped one, the last kept ended hypothesis against the first dropped one (when n_best is the
    beam), the end marker against the most probable other token at the length limit, each only where what
    hangs on it could still reach the n best (an upper bound of its rank score at least the n-th best's), and
    neighbours in the final list up to n_best + 1. Exported models differ from Keras by about 1e-6 in score;
    a smaller margin than that is a numerical tie."""
    limit = keras.max_output_tokens
    encoded = keras.encode(input_ids)
    # Every step input the encoder provides (initial states; an attention decoder's outputs and mask), one row per
    # live hypothesis; after a step the recurrent ones are replaced and the others follow their hypothesis' row.
    rows = {t.name: encoded[t.name] for t in keras.step.inputs if t.name in encoded}
    fed_back = {input_name: output_name for output_name, input_name in mf.RECURRENT}
    searches = [_BeamRows(i, limit, length_penalty) for i in range(len(input_ids))]
    prev = np.full(len(input_ids), text.START_ID, np.int32)
    for t in range(limit + 1):
        out = keras._call(keras.step, {**rows, mf.PREV_TOKEN: prev})
        parents, tokens = [], []  # of the next live hypotheses, in the order they are made
        for search in searches:
            hyps = sorted(search.live, key=lambda h: h.ids)  # token-sequence order
            search.live = []
            if not hyps:
                continue
            p = out[mf.PROBS][[h.row for h in hyps]]
            if t == limit:
                search.last_step(hyps, p, t)
                continue
            for g in search.step(hyps, p, t, beam_size, n_best):
                search.live.append(_Live(g.ids, g.probs, g.score, len(parents)))
                parents.append(g.parent_row)
                tokens.append(g.token)
        if not parents:
            break
        take = np.asarray(parents, np.intp)
        rows = {name: (out[fed_back[name]] if name in fed_back else value)[take] for name, value in rows.items()}
        prev = np.asarray(tokens, np.int32)
    return [search.best(n_best, margins) for search in searches]
