"""``s2s train``: fit the seed's encoder-decoder and write a self-contained run folder (see ``run_folder``)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from seq2seq_edge import manifest as mf
from seq2seq_edge import text
from seq2seq_edge.errors import DataFileError, RunFolderError

from . import data as data_mod
from . import metrics
from .model import DECODER_INPUT_IDS, build_training_model
from .reference import KerasDecoder, decode_texts
from .run_folder import RunConfig, RunFolder
from .staging import staged_folder

log = logging.getLogger(__name__)

#: With embedding_dim=None, vocabularies up to this size use the seed's one-hot inputs; larger ones (word
#: targets of a big TSV) a learned embedding of AUTO_EMBEDDING_DIM, since a one-hot table grows as V^2.
ONE_HOT_MAX_VOCAB = 512
AUTO_EMBEDDING_DIM = 256


@dataclass
class TrainConfig:
    """Everything that decides a training run. ``task_defaults`` fills in per-task values."""

    task: str = "digits"              # digits | numbers | data
    data_file: str | None = None
    skip_header: bool = False
    lang: str = "en"
    max_number: int = 9999
    input_tokenization: str = "char"
    target_tokenization: str = "char"
    latent_dim: int = 32
    embedding_dim: int | None = None  # 0: one-hot inputs, as in the seed; None: one-hot up to ONE_HOT_MAX_VOCAB
    epochs: int = 100
    batch_size: int = 3
    learning_rate: float = 1e-2
    clipnorm: float | None = None
    patience: int = 0                 # early stopping on validation loss; 0 disables it
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0


#: Per-task defaults, chosen by measurement (the README's training section gives the figures).
TASK_DEFAULTS = {
    # The seed's latent 32; Adam 1e-2 with batches of 3 for 100 epochs decodes all nine pairs for every seed
    # tried, and sooner than the seed's own 1e-3 / batch 2 / 300 epochs.
    "digits": dict(input_tokenization="char", target_tokenization="char", latent_dim=32, epochs=100,
                   batch_size=3, learning_rate=1e-2, clipnorm=None, patience=0),
    "numbers": dict(input_tokenization="char", target_tokenization="space", latent_dim=256, epochs=40,
                    batch_size=64, learning_rate=1e-3, clipnorm=1.0, patience=5),
    "data": dict(input_tokenization="char", target_tokenization="char", latent_dim=256, epochs=100,
                 batch_size=64, learning_rate=1e-3, clipnorm=1.0, patience=5),
}


def task_defaults(task: str, **overrides) -> TrainConfig:
    """A TrainConfig for ``task`` with its measured defaults, then ``overrides`` (None values are ignored)."""
    if task not in TASK_DEFAULTS:
        raise ValueError(f"unknown task {task!r}")
    values = {**TASK_DEFAULTS[task], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(task=task, **values)


def load_pairs(cfg: TrainConfig) -> list[data_mod.Pair]:
    if cfg.task == "digits":
        return data_mod.digits_pairs()
    if cfg.task == "numbers":
        return data_mod.numbers_pairs(cfg.lang, cfg.max_number)
    if not cfg.data_file:
        raise DataFileError("--data FILE.tsv is required for training on your own pairs")
    return data_mod.read_tsv(cfg.data_file, skip_header=cfg.skip_header)


def build_preprocessing(pairs: list[data_mod.Pair], cfg: TrainConfig) -> mf.Preprocessing:
    for tok in (cfg.input_tokenization, cfg.target_tokenization):
        if tok not in text.TOKENIZATIONS:
            raise DataFileError(f"unknown tokenization {tok!r}; choose one of {', '.join(text.TOKENIZATIONS)}")
    for p in pairs:
        for side, s, tok in (("input", p.source, cfg.input_tokenization), ("target", p.target, cfg.target_tokenization)):
            if not text.tokenize(s, tok):
                where = f"{p.origin}: " if p.origin else ""
                raise DataFileError(f"{where}{side} {s!r} has no tokens under {tok!r} tokenization")
    in_vocab = text.Vocabulary.build((p.source for p in pairs), cfg.input_tokenization)
    out_vocab = text.Vocabulary.build((p.target for p in pairs), cfg.target_tokenization)
    return mf.Preprocessing(
        normalization=text.NORMALIZATION,
        input_tokenization=cfg.input_tokenization,
        target_tokenization=cfg.target_tokenization,
        input_vocabulary=in_vocab.tokens,
        target_vocabulary=out_vocab.tokens,
        max_input_tokens=max(len(text.tokenize(p.source, cfg.input_tokenization)) for p in pairs),
        max_output_tokens=max(len(text.tokenize(p.target, cfg.target_tokenization)) for p in pairs),
    )


def vectorize(pairs: list[data_mod.Pair], prep: mf.Preprocessing):
    """Teacher-forcing arrays: encoder ids, decoder inputs (start + target) and targets (target + end)."""
    enc = mf.pad_batch([prep.encode_input(p.source) for p in pairs], prep.max_input_tokens)
    tgt = [prep.target_vocab.encode(p.target) for p in pairs]
    dec_in = mf.pad_batch([[text.START_ID] + t for t in tgt], prep.max_output_tokens + 1)
    dec_out = mf.pad_batch([t + [text.END_ID] for t in tgt], prep.max_output_tokens + 1)
    return enc, dec_in, dec_out


def check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not force:
        raise RunFolderError(f"{out_dir} already exists; pass --force to overwrite it")


def train(cfg: TrainConfig, out_dir: str | Path, *, force: bool = False, quiet: bool = False) -> dict:
    """Train, evaluate and write the run folder atomically. Returns the metrics (``metrics.json``)."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force)
    pairs = load_pairs(cfg)
    splits = data_mod.split_pairs(pairs, seed=cfg.seed, validation_fraction=cfg.validation_fraction,
                                  test_fraction=cfg.test_fraction)
    prep = build_preprocessing(pairs, cfg)
    log.info("%d pairs (train %d, validation %d, test %d); vocabularies: input %d, target %d tokens",
             len(pairs), len(splits.train), len(splits.validation), len(splits.test),
             len(prep.input_vocabulary), len(prep.target_vocabulary))
    versions = seed_everything(cfg.seed)
    cfg = choose_embedding(cfg, prep)
    model = compile_model(cfg, prep)
    with staged_folder(out_dir) as staging:
        run = RunFolder(staging)
        history, fit_summary = fit(model, cfg, prep, splits, run.history_file, quiet)
        result = {**evaluate(model, prep, splits.test), **fit_summary}
        run.save(model, RunConfig(prep, asdict(cfg), splits.sizes(), versions), result, splits, history)
    return result


def seed_everything(seed: int) -> dict[str, str]:
    """Seed Python, numpy and TensorFlow and make TensorFlow's ops deterministic: the same seed gives the same
    weights. Returns the versions of TensorFlow and Keras, for the run config."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return {"tensorflow": tf.__version__, "keras": keras.__version__}


def choose_embedding(cfg: TrainConfig, prep: mf.Preprocessing) -> TrainConfig:
    """With ``embedding_dim=None``: one-hot inputs up to ONE_HOT_MAX_VOCAB tokens, else a learned embedding."""
    if cfg.embedding_dim is not None:
        return cfg
    largest = max(len(prep.input_vocabulary), len(prep.target_vocabulary))
    cfg = replace(cfg, embedding_dim=0 if largest <= ONE_HOT_MAX_VOCAB else AUTO_EMBEDDING_DIM)
    log.info("embedding: %s", "one-hot" if not cfg.embedding_dim else f"learned, {cfg.embedding_dim} dims "
             f"({largest} tokens is more than {ONE_HOT_MAX_VOCAB} for one-hot inputs)")
    return cfg


def compile_model(cfg: TrainConfig, prep: mf.Preprocessing):
    import keras

    model = build_training_model(len(prep.input_vocabulary), len(prep.target_vocabulary), cfg.latent_dim,
                                 cfg.embedding_dim)
    opt_kwargs = {"learning_rate": cfg.learning_rate}
    if cfg.clipnorm:
        opt_kwargs["clipnorm"] = cfg.clipnorm
    model.compile(optimizer=keras.optimizers.Adam(**opt_kwargs), loss="sparse_categorical_crossentropy",
                  weighted_metrics=["accuracy"])
    return model


def fit(model, cfg: TrainConfig, prep: mf.Preprocessing, splits: data_mod.Splits, history_file: Path,
        quiet: bool) -> tuple[dict, dict]:
    """Fit with teacher forcing (padding weighs nothing), logging each epoch to ``history_file``.

    Returns Keras' history (lists per metric) and its summary for ``metrics.json``."""
    import keras

    callbacks = [keras.callbacks.CSVLogger(str(history_file))]
    if cfg.patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                                       restore_best_weights=True))
    enc, dec_in, dec_out = vectorize(splits.train, prep)
    v_enc, v_dec_in, v_dec_out = vectorize(splits.validation, prep)
    started = time.perf_counter()
    history = model.fit(
        {mf.INPUT_IDS: enc, DECODER_INPUT_IDS: dec_in}, dec_out, sample_weight=_not_padding(dec_out),
        validation_data=({mf.INPUT_IDS: v_enc, DECODER_INPUT_IDS: v_dec_in}, v_dec_out, _not_padding(v_dec_out)),
        batch_size=cfg.batch_size, epochs=cfg.epochs, shuffle=True, callbacks=callbacks,
        verbose=0 if quiet else 2).history
    return history, {"epochs_run": len(history["loss"]), "train_seconds": round(time.perf_counter() - started, 2),
                     "best_val_loss": float(min(history["val_loss"]))}


def _not_padding(ids):
    return (ids != text.PAD_ID).astype("float32")


def evaluate(model, prep: mf.Preprocessing, test: list[data_mod.Pair]) -> dict:
    """Exact match and character error rate of Keras' greedy decodes on the test split, with the first errors."""
    decoder = KerasDecoder.from_training_model(model, prep.max_output_tokens)
    sources = [p.source for p in test]
    references = [p.target for p in test]
    predictions = decode_texts(decoder, prep, sources)
    return {
        "test_pairs": len(test),
        "exact_match": metrics.exact_match(predictions, references),
        "character_error_rate": metrics.character_error_rate(predictions, references),
        "errors": [{"input": s, "expected": r, "got": p}
                   for s, r, p in zip(sources, references, predictions) if p != r][:20],
    }
