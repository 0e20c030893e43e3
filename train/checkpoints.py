"""Checkpoint averaging (``s2s train --average-checkpoints K``): the mean of the K best epochs' weights.

While the model fits, ``BestEpochs`` keeps a copy of the trainable weights of the K best epochs by the monitored
validation figure (the one early stopping follows). When fitting ends, ``keep_better`` decodes the validation
split greedily with the weights fitting ended with (early stopping's best epoch) and with the average, and keeps
the average only if it decodes more validation pairs exactly: the choice is made on what a user scores, not on a
loss that label smoothing moves. Averaging the weights of nearby epochs of one run is the checkpoint averaging
of the neural machine translation and G2P literature; it costs K copies of the weights while training and two
decodes of the validation split at the end, nothing at run time (the exported model is the same size).
"""

from __future__ import annotations

import logging
import math
import time

import keras
import numpy as np

log = logging.getLogger(__name__)

#: The validation pairs ``keep_better`` decodes at most (every n-th, in order), to bound its cost on large sets.
MAX_SCORED_PAIRS = 20_000


class BestEpochs(keras.callbacks.Callback):
    """Copies of the trainable weights of the ``count`` best epochs by ``monitor`` (``mode`` "min" or "max")."""

    def __init__(self, count: int, monitor: str = "val_loss", mode: str = "min"):
        super().__init__()
        if count < 2:
            raise ValueError("averaging needs at least 2 epochs")
        self.count, self.monitor, self.sign = count, monitor, (1.0 if mode == "min" else -1.0)
        self.kept: list[tuple[float, int, list[np.ndarray]]] = []  # (signed figure, epoch from 1, weights)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        score = self.sign * float(value)
        if len(self.kept) == self.count and score >= self.kept[-1][0]:
            return
        weights = _snapshot(self.model.trainable_variables)
        self.kept = sorted(self.kept + [(score, epoch + 1, weights)], key=lambda k: (k[0], k[1]))[:self.count]

    @property
    def epochs(self) -> list[int]:
        """The kept epochs (counted from 1), in order."""
        return sorted(e for _, e, _ in self.kept)

    def average(self) -> list[np.ndarray]:
        """The element-wise mean of the kept weights, in ``model.trainable_variables`` order."""
        return [np.mean(np.stack(ws), axis=0).astype(ws[0].dtype) for ws in zip(*(w for _, _, w in self.kept))]


def _snapshot(variables) -> list[np.ndarray]:
    return [np.array(v.numpy(), copy=True) for v in variables]


def _assign(variables, weights) -> None:
    for v, w in zip(variables, weights):
        v.assign(w)


def keep_better(model, best: BestEpochs, prep, validation) -> dict:
    """Set ``model``'s weights to the average of ``best``'s epochs if it decodes more of the ``validation`` pairs
    exactly than the weights it has (ties keep them): early stopping's best epoch, or the last epoch without early
    stopping. Returns what was compared and how long it took, for ``metrics.json``; nothing happens with fewer
    than 2 kept epochs. The two decodes come after training, outside ``--time-budget``."""
    if len(best.kept) < 2 or not validation:
        return {}
    started = time.perf_counter()
    from .reference import KerasDecoder, exact_match, normalized_targets

    step = max(1, math.ceil(len(validation) / MAX_SCORED_PAIRS))
    pairs = list(validation)[::step]
    sources, references = [p.source for p in pairs], normalized_targets(prep, pairs)
    decoder = KerasDecoder.from_training_model(model, prep.max_output_tokens)  # shares the model's variables
    variables = model.trainable_variables
    fitted = _snapshot(variables)
    fitted_score = exact_match(decoder, prep, sources, references)
    _assign(variables, best.average())
    average_score = exact_match(decoder, prep, sources, references)
    kept = "average" if average_score > fitted_score else "fitted"
    if kept == "fitted":
        _assign(variables, fitted)
    log.info("checkpoint average of epochs %s: validation exact match %.2f%% (fitted weights: %.2f%%), keeping the "
             "%s weights", ", ".join(map(str, best.epochs)), 100 * average_score, 100 * fitted_score,
             "averaged" if kept == "average" else "fitted")
    return {"checkpoint_average": {"epochs": best.epochs, "scored_pairs": len(pairs),
                                   "val_exact_match_fitted": round(fitted_score, 6),
                                   "val_exact_match_average": round(average_score, 6), "kept": kept,
                                   "seconds": round(time.perf_counter() - started, 1)}}
