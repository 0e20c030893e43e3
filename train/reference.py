"""The reference decoder: batched greedy decoding with the Keras encoder and step models.

Every exported model is compared with this, so it is an oracle of its own: its loop is written here, with Keras
models and nothing of the runtime's loop (the parity gate would prove little if Keras were driven through the
code it checks). It shares only the plumbing: tokenization (``Preprocessing``), batching and padding
(``padded_batches``) and the special ids (``text``). The greedy rule is the bundle contract's (README): the
encoder once on the whole batch, then the step model once per output position on the whole batch, with a
finished mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from seq2seq_edge import manifest as mf
from seq2seq_edge import preprocessing as pp
from seq2seq_edge import text
from seq2seq_edge.decoder import padded_batches

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

    def decode_ids(self, input_ids: np.ndarray) -> list[list[int]]:
        """Greedy token ids (end token excluded) for a padded int32 [batch, time] array."""
        return self._greedy(input_ids, None)[0]

    def trace(self, input_ids: np.ndarray) -> KerasTrace:
        """``decode_ids`` with the encoder's outputs and every step's input token and outputs."""
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


def decode_texts(decoder: KerasDecoder, prep: pp.Preprocessing, sources: list[str], batch_size: int = 512) -> list[str]:
    """Decode ``sources`` to strings, ``batch_size`` at a time."""
    encoded = [prep.encode_input(s) for s in sources]
    return [prep.decode_output(ids) for input_ids in padded_batches(encoded, batch_size, prep.max_input_tokens)
            for ids in decoder.decode_ids(input_ids)]


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
    limit, alpha, end = keras.max_output_tokens, length_penalty, text.END_ID
    encoded = keras.encode(input_ids)
    # Every step input the encoder provides (initial states; an attention decoder's outputs and mask), one row per
    # live hypothesis; after a step the recurrent ones are replaced and the others follow their hypothesis' row.
    rows = {t.name: encoded[t.name] for t in keras.step.inputs if t.name in encoded}
    fed_back = {input_name: output_name for output_name, input_name in mf.RECURRENT}
    batch = len(input_ids)
    # live[i]: (ids, probs, score, row) of input i's live hypotheses; ended[i]: (rank score, ids with the end id
    # when finished, hypothesis) of its finished ones (and, at the limit, the unfinished ones).
    live = [[((), (), 0.0, i)] for i in range(batch)]
    ended: list[list] = [[] for _ in range(batch)]
    close_calls: list[list[tuple[float, float]]] = [[] for _ in range(batch)]  # (gap, best rank score at stake)

    def close_call(i, better, worse, at_stake=math.inf):
        close_calls[i].append((better - worse, at_stake))

    def bound(score, t):  # the best rank score a live hypothesis of t tokens and this score can end with
        return max(_penalized(score, t, alpha), _penalized(score, limit + 1, alpha))

    def best_first(entry):
        return (-entry[0], entry[1])

    def end_here(i, h, pe, t):
        hyp = KerasBeamHypothesis(h[0], h[1] + (pe,), True, h[2] + _log(pe))
        ended[i].append((_penalized(hyp.score, t + 1, alpha), h[0] + (end,), hyp))

    prev = np.full(batch, text.START_ID, np.int32)
    for t in range(limit + 1):
        out = keras._call(keras.step, {**rows, mf.PREV_TOKEN: prev})
        probs = out[mf.PROBS]
        parents, tokens = [], []  # of the next live hypotheses, in the order they are made
        for i in range(batch):
            hyps = sorted(live[i], key=lambda h: h[0])  # token-sequence order
            live[i] = []
            if not hyps:
                continue
            p = probs[[h[3] for h in hyps]]
            if t == limit:  # each ends as greedy decoding would end it
                for h, q in zip(hyps, p):
                    others = np.delete(q, end)
                    close_call(i, abs(_log(float(q[end])) - _log(float(others.max()))), 0.0,
                               max(_penalized(h[2], t, alpha), _penalized(h[2] + _log(float(q[end])), t + 1, alpha)))
                    if int(np.argmax(q)) == end:
                        end_here(i, h, float(q[end]), t)
                    else:
                        ended[i].append((_penalized(h[2], t, alpha), h[0], KerasBeamHypothesis(h[0], h[1], False,
                                                                                                h[2])))
                continue
            for h, q in zip(hyps, p):
                end_here(i, h, float(q[end]), t)
            ranked = sorted(ended[i], key=best_first)
            if len(ranked) > beam_size and n_best == beam_size:
                close_call(i, ranked[beam_size - 1][0], ranked[beam_size][0], ranked[beam_size - 1][0])
            ended[i] = ranked[:beam_size]
            values = np.array([h[2] for h in hyps])[:, None] + np.log(np.fmax(p.astype(np.float64), 1e-45))
            parent, token = np.indices(values.shape)
            keep = token.ravel() != end
            values, parent, token = values.ravel()[keep], parent.ravel()[keep], token.ravel()[keep]
            order = np.lexsort((token, parent, -values))  # by score, then token sequence
            if len(order) > beam_size:
                kept = values[order[beam_size - 1]]
                close_call(i, kept, values[order[beam_size]], bound(kept, t + 1))
            order = order[:beam_size]
            grown = []
            for j, tok in zip(parent[order].tolist(), token[order].tolist()):
                h, pt = hyps[j], float(p[j, tok])
                grown.append((h[0] + (tok,), h[1] + (pt,), h[2] + _log(pt), h[3], tok))
            # Done when it holds beam_size ended hypotheses and no live one (which can only lose score) could
            # end above the worst of them, at any length it may still reach.
            if len(ended[i]) >= beam_size and max(bound(g[2], t + 1) for g in grown) < ended[i][-1][0]:
                continue
            for g in grown:
                live[i].append((g[0], g[1], g[2], len(parents)))
                parents.append(g[3])
                tokens.append(g[4])
        if not parents:
            break
        take = np.asarray(parents, np.intp)
        rows = {name: (out[fed_back[name]] if name in fed_back else value)[take] for name, value in rows.items()}
        prev = np.asarray(tokens, np.int32)
    results = []
    for i, e in enumerate(ended):
        ranked = sorted(e, key=best_first)[:n_best + 1]
        for a, b in zip(ranked, ranked[1:]):
            close_call(i, a[0], b[0])
        results.append([entry[2] for entry in ranked[:n_best]])
        if margins is not None:
            last = ranked[n_best - 1][0] if len(ranked) >= n_best else -math.inf
            margins.append(min((gap for gap, at_stake in close_calls[i] if at_stake >= last), default=math.inf))
    return results
