"""Training batches of similar lengths, padded per batch: a CPU does not pay for padding to the longest example.

With ``length_buckets`` on, training pairs are sorted by (input length, target length) with a seeded random
tie-break, cut into batches of ``batch_size`` neighbours, and each batch is padded only to its own longest
input and target (rounded up to a multiple of ``PAD_MULTIPLE``, so Keras compiles its step for a handful of
shapes rather than one per length). The order of the batches is shuffled every epoch, from the seed.
``SymbolDropout`` (``s2s train --symbol-dropout``) replaces rare input symbols of the training batches by the
unknown token, drawn anew each epoch. With ``twice`` (``s2s train --r-drop``) each batch holds its pairs two
times, one copy after the other, so that the loss can compare two dropout passes of each pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seq2seq_edge import manifest as mf
from seq2seq_edge import preprocessing as pp
from seq2seq_edge import text

from .model import DECODER_INPUT_IDS

#: Batch widths are rounded up to a multiple of this.
PAD_MULTIPLE = 4


def teacher_forcing(enc_ids: list[list[int]], tgt_ids: list[list[int]], enc_width: int, dec_width: int):
    """(inputs, targets, sample weights) of a batch: encoder ids, start + target as the decoder's input, target +
    end as what it must predict, and weight 0 on padding."""
    enc = pp.pad_batch(enc_ids, enc_width)
    dec_in = pp.pad_batch([[text.START_ID] + t for t in tgt_ids], dec_width)
    dec_out = pp.pad_batch([t + [text.END_ID] for t in tgt_ids], dec_width)
    return {mf.INPUT_IDS: enc, DECODER_INPUT_IDS: dec_in}, dec_out, (dec_out != text.PAD_ID).astype("float32")


@dataclass(frozen=True)
class SymbolDropout:
    """Frequency-aware symbol dropout (the word dropout of Kiperwasser and Goldberg 2016, section 6): each input
    symbol of a training batch becomes the unknown token with probability alpha / (alpha + its count in the
    training split). A symbol seen once is replaced alpha / (alpha + 1) of the time, a frequent one almost never,
    so the model learns to read a position whose symbol tells it little from what the other positions and the
    training split's usual outputs say, and the unknown token's embedding is trained for symbols it never saw."""

    probabilities: np.ndarray  # by input id: 0 for the reserved ids and the unknown token
    unknown_id: int

    @classmethod
    def from_training_ids(cls, enc_ids: list[list[int]], vocabulary_size: int, unknown_id: int,
                          alpha: float) -> "SymbolDropout":
        """The probabilities from the symbol counts of ``enc_ids`` (the training split, encoded)."""
        counts = np.bincount(_flat(enc_ids), minlength=vocabulary_size).astype(np.float64)
        probabilities = np.where(counts > 0, alpha / (alpha + counts), 0.0)
        probabilities[:len(text.SPECIAL_TOKENS)] = 0.0
        probabilities[unknown_id] = 0.0
        return cls(probabilities, unknown_id)

    def expected_share(self, enc_ids: list[list[int]]) -> float:
        """The share of the tokens of ``enc_ids`` replaced in an epoch, on average."""
        ids = _flat(enc_ids)
        return float(self.probabilities[ids].mean()) if ids.size else 0.0

    def apply(self, ids: list[int], rng: np.random.Generator) -> list[int]:
        """``ids`` with each symbol replaced by the unknown token's id with its probability."""
        out = np.asarray(ids, dtype=np.int64)
        out[rng.random(out.size) < self.probabilities[out]] = self.unknown_id
        return out.tolist()


def _flat(enc_ids: list[list[int]]) -> np.ndarray:
    return np.fromiter((i for ids in enc_ids for i in ids), dtype=np.int64)


def _twice(arrays):
    """Each array (or dict of arrays) of a batch stacked on itself along the batch axis."""
    if isinstance(arrays, dict):
        return {k: _twice(v) for k, v in arrays.items()}
    if isinstance(arrays, tuple):
        return tuple(_twice(a) for a in arrays)
    return np.concatenate([arrays, arrays])


def round_up(n: int) -> int:
    return -(-n // PAD_MULTIPLE) * PAD_MULTIPLE


def length_bucketed(enc_ids: list[list[int]], tgt_ids: list[list[int]], batch_size: int, seed: int,
                    shuffle: bool = True, symbol_dropout: SymbolDropout | None = None, soft_targets=None,
                    twice: bool = False):
    """A ``tf.data.Dataset`` of per-batch padded teacher-forcing batches (see the module docstring); each pass
    over it (each epoch) visits the batches in a new seeded order, with ``symbol_dropout``'s replacements drawn
    anew from the seed and the epoch. With ``soft_targets`` (``distill.SoftTargets`` of these pairs, in this
    order), the targets are distributions over the target vocabulary instead of ids. With ``twice``, each batch's
    rows are followed by a copy of themselves (the same symbol replacements and targets): row i and row i + n of a
    batch of 2n rows are one pair (R-Drop's two passes, ``trainer.smoothed_sparse_crossentropy``)."""
    import tensorflow as tf

    tie = np.random.default_rng(seed).random(len(enc_ids))
    order = sorted(range(len(enc_ids)), key=lambda i: (len(enc_ids[i]), len(tgt_ids[i]), tie[i]))
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    epochs = [0]

    def generate():
        visit = (np.random.default_rng([seed, epochs[0]]).permutation(len(groups)) if shuffle
                 else range(len(groups)))
        replace = np.random.default_rng([seed, epochs[0], 1])
        epochs[0] += 1
        for g in visit:
            enc = [enc_ids[i] for i in groups[g]]
            if symbol_dropout is not None:
                enc = [symbol_dropout.apply(ids, replace) for ids in enc]
            tgt = [tgt_ids[i] for i in groups[g]]
            inputs, targets, weights = teacher_forcing(enc, tgt, round_up(max(map(len, enc))),
                                                       round_up(max(map(len, tgt)) + 1))
            if soft_targets is not None:
                targets = soft_targets.dense(groups[g], targets)
            if twice:
                inputs, targets, weights = _twice((inputs, targets, weights))
            yield inputs, targets, weights

    ids = tf.TensorSpec((None, None), tf.int32)
    targets = tf.TensorSpec((None, None, None), tf.float32) if soft_targets is not None else ids
    signature = ({mf.INPUT_IDS: ids, DECODER_INPUT_IDS: ids}, targets, tf.TensorSpec((None, None), tf.float32))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    # Keras then knows an epoch's length (progress, and no "ran out of data" at each epoch's end).
    return dataset.apply(tf.data.experimental.assert_cardinality(len(groups))).prefetch(2)
