"""Beam search over a bundle's decoder step: the n best outputs instead of the greedy one.

``Seq2SeqDecoder`` calls ``search`` when ``beam_size`` > 1 (``beam_size=1`` is the greedy loop itself). Written
against the bundle contract's names only, so it works for any step model: the first step's inputs come from
``DecoderInternals.first_feeds`` (the encoder's outputs the step takes, and ``prev_token``); after each step only
the inputs named by ``manifest.RECURRENT`` and ``prev_token`` change, and every other input (constant per input
text, such as an attention decoder's encoder outputs and mask) is carried along, row by row, with its beam.

The rules (the parity gate's Keras reference, ``train/reference.py``, implements them separately and must give
the same lists):

* A hypothesis's **score** is the sum, in order, of ``log(max(p, 1e-45))`` over its token probabilities: the
  emitted tokens' and, when it is finished, the end marker's (``DecodeResult.score``).
* Its **length** is its number of emitted tokens plus one for the end marker when it is finished. With a
  ``length_penalty`` alpha > 0 hypotheses are ranked by ``score / ((5 + length) / 6) ** alpha`` (GNMT); with
  alpha = 0 (the default) by ``score``.
* Ties are broken by the token ids, compared as sequences (the end id included): the smaller sequence first.
  Live hypotheses all have the same length, so among them this is ``(parent's rank in that order, token id)``.
* Step t (t tokens emitted so far) runs the step model on every live hypothesis of every unfinished input at
  once (inputs x beams rows). Each live hypothesis ending with the end marker becomes a finished hypothesis;
  an input keeps its ``beam_size`` best finished ones. The ``beam_size`` best continuations by a token of the
  text (not the end marker, nor pad or start, which no output holds) become the live hypotheses (candidates are
  scored in float64 with numpy's ``log``).
* An input is done once it holds ``beam_size`` finished hypotheses and no live one can beat the worst of them
  (with alpha = 0: the best live score is below the worst finished score; a live hypothesis only loses score).
* At the length limit (``max_output_len`` tokens emitted, one more step run) a live hypothesis ends as greedy
  decoding would end it: finished if the end marker is its most probable next token, else unfinished
  (``finished=False``, no end-marker term in its score, length = its tokens).
* The result of an input: its finished (and, at the limit, unfinished) hypotheses, best first, at most
  ``n_best`` of them.

Everything is bounded: ``beam_size`` at most ``options.MAX_BEAM_SIZE``, at most MAX_BEAM_ROWS rows per step-model call
(``Seq2SeqDecoder`` puts fewer inputs in a batch when ``batch_size * beam_size`` would exceed it), at most
``beam_size`` live and ``beam_size`` finished hypotheses per input, and ``max_output_len + 1`` steps.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import manifest as mf
from . import text
from . import options

#: The bounds of the beam options: their home is ``options`` (these names are 0.4's).
MAX_BEAM_SIZE, MAX_LENGTH_PENALTY = options.MAX_BEAM_SIZE, options.MAX_LENGTH_PENALTY
#: At most this many rows (inputs x beams) go through the step model together.
MAX_BEAM_ROWS = 4096
#: Probabilities below this count as this (log 1e-45 = -103.6): scores stay finite.
TINY = 1e-45
LOG_TINY = math.log(TINY)


def log_prob(p: float) -> float:
    """``log(max(p, 1e-45))``: a token's contribution to a score (NaN, from a broken model, counts as 1e-45)."""
    return math.log(p) if p > TINY else LOG_TINY


def length_normalizer(length: int, alpha: float) -> float:
    """GNMT's length penalty ``((5 + length) / 6) ** alpha``; ``length`` = tokens emitted + 1 when finished."""
    return ((5.0 + length) / 6.0) ** alpha if alpha else 1.0


@dataclass(frozen=True)
class Hypothesis:
    """One output of the search: token ids (the end id excluded), each token's probability (the end marker's
    last when finished), whether it was finished, and its score (the sum of ``log_prob`` of ``probs``)."""

    ids: tuple[int, ...]
    probs: tuple[float, ...]
    finished: bool
    score: float


# A hypothesis while searching is a chain of nodes (parent, token id, probability); the root is None. Prefixes
# are shared, so a step costs O(beam) whatever the length.
def _chain(node) -> tuple[list[int], list[float]]:
    ids, probs = [], []
    while node is not None:
        node, token, p = node
        ids.append(token)
        probs.append(p)
    return ids[::-1], probs[::-1]


class _Ended:
    """A finished hypothesis (its last node is the end id), or an unfinished one at the length limit."""

    __slots__ = ("node", "score", "rank_score", "finished", "_ids")

    def __init__(self, node, score: float, length: int, finished: bool, alpha: float):
        self.node, self.score, self.finished = node, score, finished
        self.rank_score = score / length_normalizer(length, alpha)
        self._ids = None

    def ids(self) -> list[int]:
        if self._ids is None:
            self._ids = _chain(self.node)[0]
        return self._ids


def _better_first(a: _Ended, b: _Ended) -> int:
    if a.rank_score != b.rank_score:
        return -1 if a.rank_score > b.rank_score else 1
    ia, ib = a.ids(), b.ids()  # only on an exact tie
    return -1 if ia < ib else (1 if ia > ib else 0)


_RANK = functools.cmp_to_key(_better_first)


class _Input:
    """The search state of one input: live hypotheses in token-sequence order, and the best ended ones."""

    __slots__ = ("nodes", "scores", "ended", "done")

    def __init__(self):
        self.nodes: list = [None]
        self.scores: list[float] = [0.0]
        self.ended: list[_Ended] = []
        self.done = False


def _top(flat: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of the ``k`` largest values (ties: smaller index first), in increasing index order."""
    n = flat.size
    if k >= n:
        return np.arange(n)
    threshold = np.partition(flat, n - k)[n - k]
    above = np.flatnonzero(flat > threshold)
    tied = np.flatnonzero(flat == threshold)[: k - above.size]
    return np.sort(np.concatenate([above, tied]))


def search(feeds: dict[str, np.ndarray], step: Callable[[dict], dict], limit: int, beam_size: int, n_best: int,
           length_penalty: float = 0.0) -> list[list[Hypothesis]]:
    """Beam search from the first step's ``feeds`` (one row per input, ``DecoderInternals.first_feeds``) with
    ``step`` (the step model's ``run``). Returns, per input, up to ``n_best`` hypotheses, best first."""
    batch = len(feeds[mf.PREV_TOKEN])
    if batch * beam_size > max(MAX_BEAM_ROWS, beam_size):
        raise ValueError(f"{batch} inputs x beam {beam_size} is more than {MAX_BEAM_ROWS} rows per step")
    recurrent_inputs = {i for _, i in mf.RECURRENT}
    inputs = [_Input() for _ in range(batch)]
    active = list(range(batch))  # inputs with live rows, in row order
    for t in range(limit + 1):
        out = step(feeds)
        probs = out[mf.PROBS]
        rows: list[int] = []
        tokens: list[int] = []
        still = []
        first = 0
        for i in active:
            state = inputs[i]
            n = len(state.nodes)
            p = probs[first:first + n]
            if t == limit:
                _end_at_limit(state, p, t, length_penalty)
            else:
                picked = _extend(state, p, t, limit, beam_size, length_penalty)
                if not state.done:
                    still.append(i)
                    rows += [first + j for j in picked[0]]
                    tokens += picked[1]
            first += n
        if not still:
            break
        active = still
        index = np.asarray(rows, np.intp)
        feeds = {name: value[index] for name, value in feeds.items()
                 if name != mf.PREV_TOKEN and name not in recurrent_inputs}
        for out_name, in_name in mf.RECURRENT:
            feeds[in_name] = out[out_name][index]
        feeds[mf.PREV_TOKEN] = np.asarray(tokens, np.int32)
    return [[_hypothesis(e) for e in state.ended[:n_best]] for state in inputs]


def _keep(state: _Input, new: list[_Ended], beam_size: int) -> None:
    state.ended = sorted(state.ended + new, key=_RANK)[:beam_size]


def _extend(state: _Input, p: np.ndarray, t: int, limit: int, beam_size: int,
            alpha: float) -> tuple[list[int], list[int]]:
    """One step of one input below the length limit: end-marker extensions join the ended hypotheses, the best
    other continuations become the live ones. Returns (parent row within the input, token) of each live one."""
    parents, scores, vocab = state.nodes, state.scores, p.shape[1]
    ended = []
    for j, node in enumerate(parents):
        pe = float(p[j, text.END_ID])
        ended.append(_Ended((node, text.END_ID, pe), scores[j] + log_prob(pe), t + 1, True, alpha))
    _keep(state, ended, beam_size)
    candidates = p.astype(np.float64)  # one [beams, vocabulary] array, updated in place
    np.fmax(candidates, TINY, out=candidates)
    np.log(candidates, out=candidates)
    candidates += np.asarray(scores)[:, None]
    candidates[:, text.RESERVED_IDS] = -np.inf
    flat = candidates.ravel()
    # Fewer than all of the candidates: the reserved ids' columns (-inf) are never among the chosen.
    chosen = _top(flat, min(beam_size, len(parents) * (vocab - len(text.RESERVED_IDS))))
    rows, tokens = (chosen // vocab).tolist(), (chosen % vocab).tolist()
    nodes, new_scores = [], []
    for j, token in zip(rows, tokens):
        pt = float(p[j, token])
        nodes.append((parents[j], token, pt))
        new_scores.append(scores[j] + log_prob(pt))
    state.nodes, state.scores = nodes, new_scores
    if len(state.ended) >= beam_size:
        worst = state.ended[-1].rank_score
        # A live hypothesis ends with at most its present score (each token adds log p <= 0), at a length between
        # t + 1 (unfinished at the limit, if t + 1 is the limit) and limit + 1.
        bound = max(max(s / length_normalizer(t + 1, alpha), s / length_normalizer(limit + 1, alpha))
                    for s in new_scores)
        if bound < worst:
            state.done = True
    return rows, tokens


def _end_at_limit(state: _Input, p: np.ndarray, t: int, alpha: float) -> None:
    """The step after ``limit`` tokens: each live hypothesis ends, finished if the end marker is its most
    probable next token (as greedy decoding decides), unfinished otherwise."""
    greedy = p.argmax(axis=1)
    ended = []
    for j, node in enumerate(state.nodes):
        if greedy[j] == text.END_ID:
            pe = float(p[j, text.END_ID])
            ended.append(_Ended((node, text.END_ID, pe), state.scores[j] + log_prob(pe), t + 1, True, alpha))
        else:
            ended.append(_Ended(node, state.scores[j], t, False, alpha))
    _keep(state, ended, len(state.ended) + len(ended))
    state.done = True


def _hypothesis(e: _Ended) -> Hypothesis:
    ids, probs = _chain(e.node)
    if e.finished:
        ids = ids[:-1]
    return Hypothesis(tuple(ids), tuple(probs), e.finished, e.score)
