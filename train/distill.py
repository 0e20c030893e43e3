"""Token-level knowledge distillation (``s2s train --distill-from RUN``): one model learns from an ensemble.

Each training target token is learnt from a mix of the reference token and the teachers' distribution for it:
``(1 - weight) * one_hot(reference) + weight * teachers``, where ``teachers`` is the distribution the teacher runs
give that token under teacher forcing, together as an ensemble decodes (the normalized geometric mean of theirs,
``seq2seq_edge.load_ensemble``). That is word-level knowledge distillation (Hinton et al. 2015; Kim and Rush 2016),
which Sun et al. (2019) found better than the sequence-level kind for grapheme-to-phoneme conversion. The student
is one model, so it decodes at one model's cost; the teachers shape only its training. The validation split is
scored against its references alone, as without distillation, so validation losses stay comparable.

The teachers' distributions are computed once, before training, and each token keeps its ``TOP_K`` most likely
tokens (renormalized): the rest of the mass of a trained model is noise spread over the vocabulary.

A teacher must have held out exactly the student's validation and test pairs (same data, same ``--split-seed``):
one that trained on them would teach the student the answers it is scored on.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seq2seq_edge import manifest as mf
from seq2seq_edge import preprocessing as pp
from seq2seq_edge.ensemble import first_difference, mean_log_probs
from seq2seq_edge.errors import RunFolderError, Seq2SeqEdgeError

from . import data as data_mod
from .batches import round_up, teacher_forcing
from .run_folder import RunFolder

log = logging.getLogger(__name__)

#: The most teacher runs (as many as an ensemble may hold).
MAX_TEACHERS = mf.MAX_ENSEMBLE_MODELS
#: The teachers' most likely tokens kept for each target token.
TOP_K = 8
#: Pairs per teacher batch (inference only).
TEACHER_BATCH = 256


@dataclass(frozen=True)
class SoftTargets:
    """The teachers' distributions over the training split, pair by pair: for each pair, one row per target token
    and one for the end token, holding the ``TOP_K`` most likely token ids and their probabilities (summing to 1)."""

    ids: list[np.ndarray]    # (len(target) + 1, TOP_K) int32
    probs: list[np.ndarray]  # (len(target) + 1, TOP_K) float32
    weight: float
    vocabulary_size: int     # the target vocabulary's

    def dense(self, index: list[int], gold: np.ndarray) -> np.ndarray:
        """The training targets of the pairs ``index`` for a batch whose references (end token included, padded)
        are ``gold`` (batch, steps): (batch, steps, vocabulary_size), zero on padding."""
        out = np.zeros((*gold.shape, self.vocabulary_size), dtype=np.float32)
        for row, i in enumerate(index):
            n = len(self.ids[i])
            steps = np.arange(n)[:, None]
            np.add.at(out[row], (steps, self.ids[i]), self.weight * self.probs[i])
            out[row, np.arange(n), gold[row, :n]] += 1.0 - self.weight
        return out


def open_teachers(run_dirs: list[str], prep: pp.Preprocessing, splits: data_mod.Splits,
                  out_dir: Path) -> list[RunFolder]:
    """The teacher runs, each checked against the student before any model is loaded: not the folder the student
    is written to, the same tokens (identical preprocessing) and the same held-out pairs. Raises RunFolderError
    naming the run and what is wrong (how many runs: ``trainer.task_defaults``)."""
    student = {part: _as_set(getattr(splits, part)) for part in ("validation", "test")}
    runs = []
    for run_dir in map(Path, run_dirs):
        if run_dir.resolve() == out_dir.resolve():
            raise RunFolderError(f"--distill-from {run_dir}: it is the folder --out writes; a run cannot teach "
                                 "the run that replaces it")
        with _about(run_dir):
            run = RunFolder.open(run_dir)
            config = run.read_config()
            held_out = {part: _as_set(run.read_split(part)) for part in student}
        if config.preprocessing != prep:
            where = first_difference(config.preprocessing.to_dict(), prep.to_dict())
            raise RunFolderError(f"--distill-from {run_dir}: its tokens differ from this training's ({where}); a "
                                 "teacher must read and write the same tokens (train it on the same data with the "
                                 "same tokenization, --min-symbol-count and --symbol-dropout on or off)")
        for part, pairs in held_out.items():
            if pairs != student[part]:
                raise RunFolderError(f"--distill-from {run_dir}: it held out other {part} pairs than this training "
                                     "(a teacher that learnt the held-out pairs would pass them on); train it on "
                                     "the same data with the same --split-seed")
        runs.append(run)
    return runs


def soft_targets(runs: list[RunFolder], enc_ids: list[list[int]], tgt_ids: list[list[int]], weight: float,
                 prep: pp.Preprocessing) -> tuple[SoftTargets, dict]:
    """The teachers' distributions for every target token of the encoded training pairs (see the module's
    docstring), and a summary for ``metrics.json`` (the teachers, the weight, how often the teachers' most likely
    token is the reference). Each teacher's model must have the vocabularies of ``prep`` (its config's)."""
    models = []
    for run in runs:
        with _about(run.path):
            models.append(run.load_keras_model())
        _check_fit(run, models[-1], len(prep.input_vocabulary), len(prep.target_vocabulary))
    ids: list[np.ndarray | None] = [None] * len(enc_ids)
    probs: list[np.ndarray | None] = [None] * len(enc_ids)
    agree = total = 0
    order = sorted(range(len(enc_ids)), key=lambda i: (len(enc_ids[i]), len(tgt_ids[i])))
    for start in range(0, len(order), TEACHER_BATCH):
        index = order[start:start + TEACHER_BATCH]
        enc = [enc_ids[i] for i in index]
        tgt = [tgt_ids[i] for i in index]
        inputs, gold, _ = teacher_forcing(enc, tgt, round_up(max(map(len, enc))), round_up(max(map(len, tgt)) + 1))
        log_mean = mean_log_probs([_predict(run, m, inputs) for run, m in zip(runs, models)])
        top = np.argsort(-log_mean, axis=-1)[..., :TOP_K]
        top_log = np.take_along_axis(log_mean, top, axis=-1)
        top_probs = np.exp(top_log - top_log.max(axis=-1, keepdims=True))
        top_probs /= top_probs.sum(axis=-1, keepdims=True)
        for row, i in enumerate(index):
            n = len(tgt_ids[i]) + 1
            ids[i] = top[row, :n].astype(np.int32)
            probs[i] = top_probs[row, :n].astype(np.float32)
            agree += int((top[row, :n, 0] == gold[row, :n]).sum())
            total += n
    log.info("distillation: %d teacher(s); their most likely token is the reference for %.2f%% of the training "
             "split's %d target tokens", len(runs), 100 * agree / max(total, 1), total)
    summary = {"teachers": [str(Path(r.path)) for r in runs], "weight": weight, "top_k": TOP_K,
               "teacher_agreement": round(agree / max(total, 1), 6)}
    return SoftTargets(ids, probs, weight, len(prep.target_vocabulary)), summary


@contextmanager
def _about(run_dir: Path):
    """Errors of a teacher's run folder, said as errors of the --distill-from option that named it."""
    try:
        yield
    except Seq2SeqEdgeError as e:
        message = str(e)
        raise RunFolderError(f"--distill-from {message}" if message.startswith(str(run_dir)) else
                             f"--distill-from {run_dir}: {message}") from None


def _check_fit(run: RunFolder, model, input_size: int, target_size: int) -> None:
    """The model reads and writes vocabularies of its config's sizes (its embeddings' rows, its output's width)."""
    from .model import DECODER_EMBEDDING, ENCODER_EMBEDDING

    try:
        sizes = (model.get_layer(ENCODER_EMBEDDING).input_dim, model.get_layer(DECODER_EMBEDDING).input_dim,
                 model.output_shape[-1] if len(model.outputs) == 1 else None)
    except ValueError:  # no such layer: not a model s2s train built
        sizes = None
    if sizes != (input_size, target_size, target_size):
        raise _misfit(run)


def _predict(run: RunFolder, model, inputs: dict) -> np.ndarray:
    try:
        return model.predict_on_batch(inputs)
    except Exception:  # e.g. an embedding with fewer rows than the input vocabulary of its config.json
        raise _misfit(run) from None


def _misfit(run: RunFolder) -> RunFolderError:
    return RunFolderError(f"--distill-from {run.path}: its {run.model_file.name} does not fit the vocabularies of its "
                          f"{run.config_file.name} (re-run s2s train for it)")


def _as_set(pairs) -> set[tuple[str, str]]:
    return {(p.source, p.target) for p in pairs}
