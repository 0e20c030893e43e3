"""``s2s train``: fit the seed's encoder-decoder and write a self-contained run folder (see ``run_folder``)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from seq2seq_edge import manifest as mf
from seq2seq_edge import preprocessing as pp
from seq2seq_edge import text
from seq2seq_edge.evaluation import metrics
from seq2seq_edge.errors import DataFileError, InputTextError, RunFolderError, TrainOptionError
from seq2seq_edge.evaluation.pairs import read_tsv
from seq2seq_edge.quiet import native_logs_caught

from . import batches, distill
from . import data as data_mod
from . import model as model_mod
from .model import build_training_model
from .reference import KerasDecoder, decode_texts
from .run_folder import RunConfig, RunFolder
from .staging import staged_folder
from .distribute import Distribution

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
    decoder: str = "seed"             # seed | attention
    bidirectional: bool = False       # attention only: a bidirectional encoder
    attend_embeddings: bool = False   # attention only: the attention reads the input embeddings too (model.py)
    dropout: float = 0.0              # on the LSTMs' inputs, during training only
    recurrent_dropout: float = 0.0    # on the LSTMs' recurrent state, during training only
    attention_dropout: float = 0.0    # attention only: on the attended embeddings and the attention's output
    encoder_layers: int = 1           # stacked LSTM layers in the encoder (model.py)
    decoder_layers: int = 1           # stacked LSTM layers in the decoder; their states are packed in one state
    input_feeding: bool = False       # attention only: the attention's output is fed to the next step (input_feeding.py)
    min_symbol_count: int = 1         # input symbols seen fewer times in training become text.UNKNOWN_TOKEN
    symbol_dropout: float = 0.0       # alpha of frequency-aware symbol dropout (batches.SymbolDropout); 0: off
    label_smoothing: float = 0.0      # share of each target's probability spread over the target vocabulary
    r_drop: float = 0.0               # R-Drop's weight ALPHA: each pair passes twice, with other dropout masks, and
                                      # each token's loss adds ALPHA / 2 times KL(its pass || the other); 0: off
    weight_decay: float = 0.0         # decoupled weight decay (AdamW); 0: Adam
    length_buckets: bool = False      # batches of similar lengths, padded per batch (train/batches.py)
    balance_lengths: bool = False     # repeat training pairs of rare input lengths (data.balance_input_lengths)
    epochs: int = 100
    batch_size: int = 3
    learning_rate: float = 1e-2
    clipnorm: float | None = None
    patience: int = 0                 # early stopping on validation loss; 0 disables it
    min_improvement: float = 0.001    # early stopping: an epoch must lower the best val loss by this share of it
    time_budget_s: float | None = None  # stop before an epoch that would end past this much training time
    lr_schedule: str = "constant"     # constant | plateau (halve the learning rate after 2 epochs without progress)
    monitor: str = "loss"             # what early stopping, the plateau schedule and the kept weights follow: the
                                      # validation loss, or the validation token accuracy (MONITORS)
    average_checkpoints: int = 0      # average the weights of this many best epochs (checkpoints.py); 0: off
    distill_from: tuple[str, ...] = ()  # teacher runs whose distributions the targets mix in (distill.py)
    distill_weight: float = 0.5       # the teachers' share of each training target (distill.py)
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    split_seed: int | None = None     # the held-out split's shuffle; None: seed (so one seed sets everything)


#: Per-task defaults, chosen by measurement (docs/cli.md, "s2s train", gives the figures).
TASK_DEFAULTS = {
    # The seed's latent 32; Adam 1e-2 with batches of 3 for 100 epochs decodes all nine pairs for every seed
    # tried, and sooner than the seed's own 1e-3 / batch 2 / 300 epochs.
    "digits": dict(input_tokenization="char", target_tokenization="char", latent_dim=32, epochs=100,
                   batch_size=3, learning_rate=1e-2, clipnorm=None, patience=0),
    # 0-99 are 1% of 0-9999: they all go to training and weigh more (balance_lengths), so "7" is "seven".
    "numbers": dict(input_tokenization="char", target_tokenization="space", latent_dim=256, epochs=40,
                    batch_size=64, learning_rate=1e-3, clipnorm=1.0, patience=5, balance_lengths=True),
    # Real data: the recipe that measured best on CMUdict and the pinyin set (docs/quality.md, benchmarks/results/hygiene.md):
    # attention over a bidirectional encoder that also reads the input embeddings, dropout and label smoothing
    # against overfitting, the learning rate halved on plateaus, the best epochs averaged when that decodes the
    # validation split better. Latent 128 per direction keeps a CMUdict word under a millisecond on LiteRT.
    "data": dict(input_tokenization="char", target_tokenization="char", latent_dim=128, epochs=100,
                 batch_size=64, learning_rate=1e-3, clipnorm=1.0, patience=5, length_buckets=True,
                 decoder="attention", bidirectional=True, attend_embeddings=True, dropout=0.2, label_smoothing=0.1,
                 lr_schedule="plateau", average_checkpoints=5),
}


#: --data's latent when its encoder reads one direction only (--decoder seed, --no-bidirectional): the decoder's
#: 256 units of the bidirectional default (two directions of 128).
DATA_UNIDIRECTIONAL_LATENT = 256

DECODERS = ("seed", "attention")
#: Options that only the attention decoder has, and their values without it (``--decoder seed`` resets them).
ATTENTION_ONLY = {"bidirectional": False, "attend_embeddings": False, "attention_dropout": 0.0,
                  "input_feeding": False}
LR_SCHEDULES = ("constant", "plateau")
#: --monitor: the validation figure that decides the best epoch (Keras' log key, and whether larger is better).
#: "accuracy" is the validation split's token accuracy under teacher forcing, padding excluded: unlike the loss, it
#: is not moved by label smoothing or by growing confidence on the tokens a model already gets right.
MONITORS = {"loss": ("val_loss", "min"), "accuracy": ("val_accuracy", "max")}
#: --lr-schedule plateau: halve the learning rate after this many epochs without a better validation loss.
PLATEAU_PATIENCE = 2
#: --symbol-dropout's largest alpha: a symbol seen once is then replaced 99% of the time.
MAX_SYMBOL_DROPOUT = 100.0
#: --r-drop's largest weight (Liang et al. 2021 use 0.1 to 5; past this the divergence drowns the targets).
MAX_R_DROP = 100.0


def task_defaults(task: str, **overrides) -> TrainConfig:
    """A TrainConfig for ``task`` with its measured defaults, then ``overrides`` (None values are ignored)."""
    if task not in TASK_DEFAULTS:
        raise ValueError(f"unknown task {task!r}")
    given = {k: v for k, v in overrides.items() if v is not None}
    values = {**TASK_DEFAULTS[task], **given}
    if given.get("decoder") == "seed":  # a task's attention-only defaults belong to its attention decoder
        values.update({name: off for name, off in ATTENTION_ONLY.items() if name not in given})
    if task == "data" and not values["bidirectional"] and "latent_dim" not in given:
        values["latent_dim"] = DATA_UNIDIRECTIONAL_LATENT  # the decoder keeps the 256 units it has with both directions
    cfg = TrainConfig(task=task, **values)
    if "distill_weight" in given and not cfg.distill_from:
        raise TrainOptionError("--distill-weight needs --distill-from")
    check_config(cfg)
    return cfg


def check_config(cfg: TrainConfig) -> None:
    """Refuse settings that cannot train together (TrainOptionError naming the options): ``task_defaults`` checks
    what it builds, and ``train`` checks again what it is given, which the Python API may have changed."""
    if cfg.decoder not in DECODERS:
        raise TrainOptionError(f"unknown decoder {cfg.decoder!r}; choose one of {', '.join(DECODERS)}")
    if cfg.bidirectional and cfg.decoder != "attention":
        raise TrainOptionError("--bidirectional needs --decoder attention (the seed decoder sees only the final state)")
    if cfg.attend_embeddings and cfg.decoder != "attention":
        raise TrainOptionError("--attend-embeddings needs --decoder attention")
    if cfg.input_feeding and cfg.decoder != "attention":
        raise TrainOptionError("--input-feeding needs --decoder attention")
    if cfg.input_feeding and cfg.recurrent_dropout:
        raise TrainOptionError("--input-feeding has no --recurrent-dropout (the decoder's steps run in one layer "
                               "of ours, not Keras' LSTM)")
    if cfg.attention_dropout and cfg.decoder != "attention":
        raise TrainOptionError("--attention-dropout needs --decoder attention")
    for name in ("dropout", "recurrent_dropout", "attention_dropout", "label_smoothing", "min_improvement"):
        value = getattr(cfg, name)
        if not 0.0 <= value < 1.0:
            raise TrainOptionError(f"--{name.replace('_', '-')} must be from 0 to below 1, got {value}")
    if not 0.0 <= cfg.weight_decay < 1.0:
        raise TrainOptionError(f"--weight-decay must be from 0 to below 1, got {cfg.weight_decay}")
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise TrainOptionError(f"unknown --lr-schedule {cfg.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if cfg.monitor not in MONITORS:
        raise TrainOptionError(f"unknown --monitor {cfg.monitor!r}; choose one of {', '.join(MONITORS)}")
    if cfg.time_budget_s is not None and not cfg.time_budget_s > 0:
        raise TrainOptionError(f"--time-budget must be positive, got {cfg.time_budget_s} s")
    if type(cfg.average_checkpoints) is not int or cfg.average_checkpoints < 0 or cfg.average_checkpoints == 1:
        raise TrainOptionError(f"--average-checkpoints must be 0 (off) or an integer of at least 2, got "
                               f"{cfg.average_checkpoints}")
    for name in ("encoder_layers", "decoder_layers"):
        value = getattr(cfg, name)
        if type(value) is not int or not 1 <= value <= model_mod.MAX_LAYERS:
            raise TrainOptionError(f"--{name.replace('_', '-')} must be an integer from 1 to {model_mod.MAX_LAYERS}, "
                                   f"got {value}")
    units = cfg.latent_dim * (2 if cfg.bidirectional else 1)
    slots = cfg.decoder_layers + bool(cfg.input_feeding)
    if units * slots > mf.MAX_LATENT_DIM:
        layers = f" x {cfg.decoder_layers} layers" if cfg.decoder_layers > 1 else ""
        fed = f", and {units} for input feeding" if cfg.input_feeding else ""
        raise TrainOptionError(f"the decoder's state would be {units * slots} wide ({units} units{layers}{fed}), "
                               f"more than a bundle's {mf.MAX_LATENT_DIM}; use a smaller --latent"
                               + (" or fewer --decoder-layers" if layers else "")
                               + (" or --no-input-feeding" if fed else ""))
    if type(cfg.min_symbol_count) is not int or cfg.min_symbol_count < 1:
        raise TrainOptionError(f"--min-symbol-count must be an integer of at least 1, got {cfg.min_symbol_count}")
    if not 0.0 <= cfg.symbol_dropout <= MAX_SYMBOL_DROPOUT:
        raise TrainOptionError(f"--symbol-dropout must be from 0 to {MAX_SYMBOL_DROPOUT:g}, got {cfg.symbol_dropout}")
    if cfg.symbol_dropout and not cfg.length_buckets:
        raise TrainOptionError("--symbol-dropout replaces symbols in length-bucketed batches: add --length-buckets")
    if not 0.0 < cfg.distill_weight <= 1.0:
        raise TrainOptionError(f"--distill-weight must be above 0 and at most 1, got {cfg.distill_weight}")
    if not 0.0 <= cfg.r_drop <= MAX_R_DROP:
        raise TrainOptionError(f"--r-drop must be from 0 to {MAX_R_DROP:g}, got {cfg.r_drop}")
    if cfg.r_drop and not (cfg.dropout or cfg.recurrent_dropout or cfg.attention_dropout):
        raise TrainOptionError("--r-drop compares two dropout passes of each pair: it needs --dropout, "
                               "--recurrent-dropout or --attention-dropout above 0")
    if cfg.r_drop and not cfg.length_buckets:
        raise TrainOptionError("--r-drop doubles each length-bucketed batch: add --length-buckets (it is not "
                               "available with --distribute)")
    if cfg.distill_from and not cfg.length_buckets:
        raise TrainOptionError("--distill-from builds its targets in length-bucketed batches: add --length-buckets")
    if len(cfg.distill_from) > distill.MAX_TEACHERS:
        raise TrainOptionError(f"--distill-from takes at most {distill.MAX_TEACHERS} runs, got {len(cfg.distill_from)}")


def load_pairs(cfg: TrainConfig) -> list[data_mod.Pair]:
    if cfg.task == "digits":
        return data_mod.digits_pairs()
    if cfg.task == "numbers":
        return data_mod.numbers_pairs(cfg.lang, cfg.max_number)
    if not cfg.data_file:
        raise TrainOptionError("--data FILE.tsv is required for training on your own pairs")
    return read_tsv(cfg.data_file, skip_header=cfg.skip_header)


def build_preprocessing(pairs: list[data_mod.Pair], cfg: TrainConfig,
                        vocabulary_from: list[data_mod.Pair] | None = None) -> pp.Preprocessing:
    """Tokenization, vocabularies and length limits. The vocabularies come from ``vocabulary_from`` (the training
    split: a symbol seen only in held-out pairs would get an embedding nobody trained, so it stays unknown);
    the length limits from all ``pairs``. With ``cfg.min_symbol_count`` N > 1, input symbols seen fewer than N
    times there are left out of the input vocabulary and the unknown token stands for them (in training too, so
    it is trained); with ``cfg.symbol_dropout`` the unknown token is there even when no symbol is that rare (the
    batches put it in place of rare symbols: batches.SymbolDropout). Target symbols are never replaced."""
    for tok in (cfg.input_tokenization, cfg.target_tokenization):
        if tok not in text.TOKENIZATIONS:
            raise TrainOptionError(f"unknown tokenization {tok!r}; choose one of {', '.join(text.TOKENIZATIONS)}")
    for p in pairs:
        for side, s, tok in (("input", p.source, cfg.input_tokenization), ("target", p.target, cfg.target_tokenization)):
            if not text.tokenize(s, tok):
                where = f"{p.origin}: " if p.origin else ""
                raise DataFileError(f"{where}{side} {s!r} has no tokens under {tok!r} tokenization")
    known = pairs if vocabulary_from is None else vocabulary_from
    in_vocab = text.Vocabulary.build((p.source for p in known), cfg.input_tokenization,
                                     min_count=cfg.min_symbol_count, with_unknown=cfg.symbol_dropout > 0)
    if cfg.min_symbol_count > 1 and in_vocab.unknown is None:
        log.warning("no input symbol is seen fewer than %d times in the training split: no unknown token",
                    cfg.min_symbol_count)
    out_vocab = text.Vocabulary.build((p.target for p in known), cfg.target_tokenization)
    return pp.Preprocessing(
        normalization=text.NORMALIZATION,
        input_tokenization=cfg.input_tokenization,
        target_tokenization=cfg.target_tokenization,
        input_vocabulary=in_vocab.tokens,
        target_vocabulary=out_vocab.tokens,
        max_input_tokens=max(len(text.tokenize(p.source, cfg.input_tokenization)) for p in pairs),
        max_output_tokens=max(len(text.tokenize(p.target, cfg.target_tokenization)) for p in pairs),
        unknown_token=in_vocab.unknown,
    )


def without_unseen_symbols(pairs: list[data_mod.Pair], prep: pp.Preprocessing) -> list[data_mod.Pair]:
    """The pairs the model can be scored on with teacher forcing: every target symbol is in the target vocabulary,
    and every input symbol is in the input vocabulary or maps to the unknown token."""
    sides = [(set(prep.target_vocabulary[len(text.SPECIAL_TOKENS):]), prep.target_tokenization, "target")]
    if prep.unknown_token is None:
        sides.append((set(prep.input_vocabulary[len(text.SPECIAL_TOKENS):]), prep.input_tokenization, "source"))
    return [p for p in pairs
            if all(known.issuperset(text.tokenize(getattr(p, attr), tok)) for known, tok, attr in sides)]


def count_unseen(held_out: list[data_mod.Pair], train: list[data_mod.Pair], cfg: TrainConfig) -> int:
    """Held-out pairs with an input or target symbol that the training split never shows (with an unknown token
    such inputs are decodable, but the model knows nothing of that symbol)."""
    seen_in = {t for p in train for t in text.tokenize(p.source, cfg.input_tokenization)}
    seen_out = {t for p in train for t in text.tokenize(p.target, cfg.target_tokenization)}
    return sum(1 for p in held_out if not (seen_in.issuperset(text.tokenize(p.source, cfg.input_tokenization))
                                           and seen_out.issuperset(text.tokenize(p.target, cfg.target_tokenization))))


def unknown_token_summary(train: list[data_mod.Pair], prep: pp.Preprocessing) -> dict:
    """For ``metrics.json`` when the input vocabulary has an unknown token: the token, how many distinct training
    symbols it replaced and how many of the training split's input tokens it stands for."""
    known = set(prep.input_vocabulary)
    tokens = [t for p in train for t in text.tokenize(p.source, prep.input_tokenization)]
    replaced = [t for t in tokens if t not in known]
    return {"token": prep.unknown_token, "rare_symbols": len(set(replaced)), "replaced_tokens": len(replaced),
            "training_tokens": len(tokens)}


def vectorize(pairs: list[data_mod.Pair], prep: pp.Preprocessing):
    """Teacher-forcing (inputs, targets, sample weights) of ``pairs``, padded to the data set's longest."""
    return batches.teacher_forcing([prep.encode_input(p.source) for p in pairs],
                                   [prep.target_codec.encode(p.target) for p in pairs],
                                   prep.max_input_tokens, prep.max_output_tokens + 1)


def check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not force:
        raise RunFolderError(f"{out_dir} already exists; pass --force to overwrite it")


def train(cfg: TrainConfig, out_dir: str | Path, *, force: bool = False, quiet: bool = False,
          distribute: str | None = None) -> dict:
    """Train, evaluate and write the run folder atomically. Returns the metrics (``metrics.json``).
    ``quiet``: no progress bar or lines (``train.progress``)."""
    out_dir = Path(out_dir)
    check_config(cfg)
    if distribute and cfg.symbol_dropout:
        raise TrainOptionError("--symbol-dropout is not available with --distribute (it replaces symbols in "
                               "length-bucketed batches; --distribute trains on padded arrays)")
    if distribute and cfg.r_drop:
        raise TrainOptionError("--r-drop is not available with --distribute (it doubles length-bucketed batches; "
                               "--distribute trains on padded arrays)")
    if distribute and cfg.distill_from:
        raise TrainOptionError("--distill-from is not available with --distribute (its targets are built in "
                               "length-bucketed batches; --distribute trains on padded arrays)")
    check_out_dir(out_dir, force)
    pairs = load_pairs(cfg)
    split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
    splits = data_mod.split_pairs(pairs, seed=split_seed, validation_fraction=cfg.validation_fraction,
                                  test_fraction=cfg.test_fraction)
    if cfg.task == "numbers":  # the task's input policy: 0-99 are too few and too basic to hold out
        splits = data_mod.move_short_inputs_to_train(splits, max_chars=2)
    prep = build_preprocessing(pairs, cfg, vocabulary_from=splits.train)
    teachers = distill.open_teachers(list(cfg.distill_from), prep, splits, out_dir) if cfg.distill_from else []
    unseen = {part: count_unseen(getattr(splits, part), splits.train, cfg) for part in ("validation", "test")}
    if any(unseen.values()):
        if prep.unknown_token is None:
            log.warning("held-out pairs with symbols that are not in the training split (unknown to the model): "
                        "%d validation, %d test; validation leaves them out, the test scores them as errors",
                        unseen["validation"], unseen["test"])
        else:
            log.warning("held-out pairs with symbols that are not in the training split: %d validation, %d test; "
                        "their inputs' new symbols map to the unknown token (new target symbols cannot be "
                        "produced)", unseen["validation"], unseen["test"])
    unknown = {} if prep.unknown_token is None else {"unknown_token": unknown_token_summary(splits.train, prep)}
    if unknown and unknown["unknown_token"]["rare_symbols"]:
        log.info("unknown token %r stands for %d rare input symbols (%d of %d training input tokens)",
                 prep.unknown_token, unknown["unknown_token"]["rare_symbols"],
                 unknown["unknown_token"]["replaced_tokens"], unknown["unknown_token"]["training_tokens"])
    log.info("%d pairs (train %d, validation %d, test %d); vocabularies: input %d, target %d tokens",
             len(pairs), len(splits.train), len(splits.validation), len(splits.test),
             len(prep.input_vocabulary), len(prep.target_vocabulary))
    # TensorFlow logs from C++ while it loads and builds graphs, with no switch (see seq2seq_edge.quiet).
    with native_logs_caught():
        versions = seed_everything(cfg.seed)
        dist = Distribution.create(distribute)  # train/distribute.py; None: Model.fit in this process
        cfg = dist.config(choose_embedding(cfg, prep))
        with dist.scope():
            model = compile_model(cfg, prep)
        with dist.run_folder(out_dir) as folder, staged_folder(folder) as staging:  # only the chief's is kept
            run = RunFolder(staging)
            history, fit_summary = fit(model, cfg, prep, splits, run.history_file, quiet or not dist.is_chief, dist,
                                       teachers)
            result = {**evaluate(model, prep, splits.test), **fit_summary, "held_out_with_unseen_symbols": unseen,
                      **unknown}
            run.save(model, RunConfig(prep, asdict(cfg), splits.sizes(), versions), result, splits, history)
            run.report_file.write_text(metrics.format_report(result, markdown=True, max_errors=5,
                                                             title=f"{out_dir.name}: test split"), encoding="utf-8")
    for line in metrics.worst_lines(result):
        log.info("worst: %s", line)
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


def choose_embedding(cfg: TrainConfig, prep: pp.Preprocessing) -> TrainConfig:
    """With ``embedding_dim=None``: one-hot inputs up to ONE_HOT_MAX_VOCAB tokens, else a learned embedding.
    Refuses an ``attend_embeddings`` model whose encoder outputs would be wider than a bundle may declare."""
    if cfg.embedding_dim is None:
        largest = max(len(prep.input_vocabulary), len(prep.target_vocabulary))
        cfg = replace(cfg, embedding_dim=0 if largest <= ONE_HOT_MAX_VOCAB else AUTO_EMBEDDING_DIM)
        log.info("embedding: %s", "one-hot" if not cfg.embedding_dim else f"learned, {cfg.embedding_dim} dims "
                 f"({largest} tokens is more than {ONE_HOT_MAX_VOCAB} for one-hot inputs)")
    if cfg.attend_embeddings:
        width = cfg.latent_dim * (2 if cfg.bidirectional else 1) + (cfg.embedding_dim or len(prep.input_vocabulary))
        if width > mf.MAX_LATENT_DIM:
            raise TrainOptionError(f"--attend-embeddings: the encoder's outputs would be {width} wide (LSTM outputs "
                                   f"and the input embedding), more than a bundle's {mf.MAX_LATENT_DIM}; use a "
                                   f"smaller --latent or --embedding-dim")
    return cfg


def compile_model(cfg: TrainConfig, prep: pp.Preprocessing):
    import keras

    model = build_training_model(len(prep.input_vocabulary), len(prep.target_vocabulary), cfg.latent_dim,
                                 cfg.embedding_dim, attention=cfg.decoder == "attention",
                                 bidirectional=cfg.bidirectional, dropout=cfg.dropout,
                                 recurrent_dropout=cfg.recurrent_dropout, attend_embeddings=cfg.attend_embeddings,
                                 attention_dropout=cfg.attention_dropout, encoder_layers=cfg.encoder_layers,
                                 decoder_layers=cfg.decoder_layers, input_feeding=cfg.input_feeding)
    opt_kwargs = {"learning_rate": cfg.learning_rate}
    if cfg.clipnorm:
        opt_kwargs["clipnorm"] = cfg.clipnorm
    optimizer = (keras.optimizers.AdamW(weight_decay=cfg.weight_decay, **opt_kwargs) if cfg.weight_decay
                 else keras.optimizers.Adam(**opt_kwargs))
    loss = (smoothed_sparse_crossentropy(cfg.label_smoothing, cfg.r_drop)
            if cfg.label_smoothing or cfg.distill_from or cfg.r_drop else "sparse_categorical_crossentropy")
    # Keras' "accuracy" takes the targets' form from the first batch; distillation's differ between training and
    # validation.
    metric = keras.metrics.MeanMetricWrapper(token_accuracy, name="accuracy") if cfg.distill_from else "accuracy"
    model.compile(optimizer=optimizer, loss=loss, weighted_metrics=[metric])
    return model


def smoothed_sparse_crossentropy(epsilon: float, r_drop: float = 0.0):
    """Cross-entropy against the target id's one-hot vector mixed with a uniform one: (1 - epsilon) of the weight on
    the target, epsilon spread evenly over the target vocabulary (Keras' sparse loss has no label smoothing). The
    loss of a perfect prediction is then above 0; the validation loss keeps the same smoothing. Targets that are
    distributions (one more axis than ids: ``distill.SoftTargets``) take the one-hot vector's place.

    With ``r_drop`` (R-Drop, Liang et al. 2021), the batch's second half repeats its first (``batches.length_bucketed``
    with ``twice``), and each token adds ``r_drop / 2`` times KL(its distribution || the other pass's): a pair then
    costs both passes' cross-entropies plus ``r_drop`` times their symmetric divergence halved, as in the paper.
    Without dropout (validation) the two passes agree and the divergence is 0, so validation losses compare with
    runs trained without it."""
    import keras
    from keras import ops

    def loss(y_true, y_pred):
        log_probs = ops.log(ops.clip(y_pred, keras.config.epsilon(), 1.0))
        if len(y_true.shape) == len(y_pred.shape):  # distributions (distillation's training batches)
            picked = ops.sum(y_true * log_probs, axis=-1)
        else:
            picked = ops.take_along_axis(log_probs, ops.expand_dims(ops.cast(y_true, "int32"), -1), axis=-1)[..., 0]
        token_loss = -(1.0 - epsilon) * picked - epsilon * ops.mean(log_probs, axis=-1)
        if r_drop:
            first, second = ops.split(log_probs, 2, axis=0)
            other_pass = ops.concatenate([second, first], axis=0)
            token_loss += r_drop / 2 * ops.sum(y_pred * (log_probs - other_pass), axis=-1)
        return token_loss

    loss.__name__ = "smoothed_sparse_crossentropy"
    return loss


def token_accuracy(y_true, y_pred):
    """1 where the most likely token is the target's (ids, or distributions whose most likely token is taken: the
    reference's, with --distill-weight up to 0.5), else 0."""
    from keras import ops

    truth = ops.argmax(y_true, axis=-1) if len(y_true.shape) == len(y_pred.shape) else y_true
    return ops.cast(ops.equal(ops.cast(truth, "int32"), ops.cast(ops.argmax(y_pred, axis=-1), "int32")), "float32")


def fit(model, cfg: TrainConfig, prep: pp.Preprocessing, splits: data_mod.Splits, history_file: Path,
        quiet: bool, dist=None, teachers=()) -> tuple[dict, dict]:
    """Fit with teacher forcing (padding weighs nothing), logging each epoch to ``history_file`` with the exact
    match of a validation sample (``progress.ValidationSample``), with a progress bar or lines unless ``quiet``.

    ``teachers``: the runs of ``--distill-from`` (``distill.open_teachers``), whose distributions the training
    targets mix in. Returns Keras' history (lists per metric) and its summary for ``metrics.json``."""
    import keras

    from . import checkpoints, progress

    train_pairs = data_mod.balance_input_lengths(splits.train) if cfg.balance_lengths else splits.train
    validation = without_unseen_symbols(splits.validation, prep)
    if not validation:  # e.g. word targets where every held-out number has a word of its own
        log.warning("no validation pair uses only symbols of the training split: validating on the training split")
        validation = splits.train
    # The sample's score goes into the epoch's logs before CSVLogger writes them.
    callbacks = [progress.ValidationSample(model, prep, validation), progress.CSVLogger(str(history_file))]
    monitor, mode = MONITORS[cfg.monitor]
    if cfg.patience:
        callbacks.append(progress.EarlyStopping(cfg.patience, cfg.min_improvement, monitor=monitor, mode=mode))
    if cfg.lr_schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=0.5,
                                                           patience=PLATEAU_PATIENCE, min_lr=cfg.learning_rate / 64))
    best_epochs = (checkpoints.BestEpochs(cfg.average_checkpoints, monitor, mode) if cfg.average_checkpoints
                   else None)
    if best_epochs:
        callbacks.append(best_epochs)
    budget = progress.TimeBudget(cfg.time_budget_s) if cfg.time_budget_s else None
    if budget:
        callbacks.append(budget)
    if not quiet:
        callbacks.append(progress.TrainingProgress(cfg.epochs))
    started = time.perf_counter()
    dropped = {}
    if cfg.length_buckets:
        def encode(pairs):
            return [prep.encode_input(p.source) for p in pairs], [prep.target_codec.encode(p.target) for p in pairs]
        train_enc, train_tgt = encode(train_pairs)
        replacer = None
        if cfg.symbol_dropout:  # counts from the training split, not its balanced repeats
            split_enc = train_enc if train_pairs is splits.train else encode(splits.train)[0]
            replacer = batches.SymbolDropout.from_training_ids(split_enc, len(prep.input_vocabulary),
                                                               prep.input_vocabulary.index(prep.unknown_token),
                                                               cfg.symbol_dropout)
            dropped = {"symbol_dropout": {"alpha": cfg.symbol_dropout,
                                          "expected_share": round(replacer.expected_share(split_enc), 6)}}
            log.info("symbol dropout: about %.2f%% of the training split's input symbols become %r each epoch",
                     100 * dropped["symbol_dropout"]["expected_share"], prep.unknown_token)
        soft = None
        if teachers:
            soft, dropped["distillation"] = distill.soft_targets(teachers, train_enc, train_tgt, cfg.distill_weight,
                                                                 prep)
        train_data = batches.length_bucketed(train_enc, train_tgt, cfg.batch_size, cfg.seed,
                                             symbol_dropout=replacer, soft_targets=soft, twice=bool(cfg.r_drop))
        val_data = batches.length_bucketed(*encode(validation), cfg.batch_size, cfg.seed, shuffle=False,
                                           twice=bool(cfg.r_drop))
        history = model.fit(train_data, validation_data=val_data, epochs=cfg.epochs, callbacks=callbacks,
                            shuffle=False, verbose=0).history  # the dataset shuffles itself
    else:
        x, y, w = vectorize(train_pairs, prep)
        if dist is not None and dist.strategy is not None:  # tf.distribute: distribute.Distribution.fit
            history = dist.fit(model, x, y, w, vectorize(validation, prep), batch_size=cfg.batch_size,
                               epochs=cfg.epochs, seed=cfg.seed, callbacks=callbacks,
                               label_smoothing=cfg.label_smoothing)
        else:
            history = model.fit(x, y, sample_weight=w, validation_data=vectorize(validation, prep),
                                batch_size=cfg.batch_size, epochs=cfg.epochs, shuffle=True, callbacks=callbacks,
                                verbose=0).history
    train_seconds = round(time.perf_counter() - started, 2)
    averaged = {}
    if best_epochs and validation is splits.train:
        log.warning("checkpoint averaging skipped: with no validation split, the choice would favour the weights "
                    "that memorise the training split")
    elif best_epochs:
        averaged = checkpoints.keep_better(model, best_epochs, prep, validation)
    return history, {"epochs_run": len(history["loss"]), "train_seconds": train_seconds,
                     "stopped_by_time_budget": bool(budget and budget.stopped),
                     **generalisation(history, cfg.monitor), **dropped, **averaged}


def generalisation(history: dict, monitor: str = "loss") -> dict:
    """The best epoch by the monitored validation figure (``MONITORS``) and, at that epoch, the validation loss
    and token accuracy on training and validation batches and their gap (a large gap: the model memorises rather
    than generalises)."""
    key, mode = MONITORS[monitor]
    curve = history[key]
    best = (min if mode == "min" else max)(range(len(curve)), key=curve.__getitem__)
    out = {"best_val_loss": float(history["val_loss"][best]), "best_epoch": best + 1}
    if "accuracy" in history and "val_accuracy" in history:
        train_acc, val_acc = float(history["accuracy"][best]), float(history["val_accuracy"][best])
        out.update(train_accuracy=train_acc, val_accuracy=val_acc, accuracy_gap=round(train_acc - val_acc, 6))
    return out


def evaluate(model, prep: pp.Preprocessing, test: list[data_mod.Pair]) -> dict:
    """Keras' greedy decodes of the test split scored as ``s2s eval`` scores a bundle (``metrics.score``): exact
    match, CER (and WER for space targets) overall and by input and output length, the worst buckets, the first
    20 errors."""
    decoder = KerasDecoder.from_training_model(model, prep.max_output_tokens)
    reasons = {}
    for p in test:
        try:
            prep.encode_input(p.source)
        except InputTextError as e:  # symbols seen only outside the training split
            reasons[p.source] = str(e)
    decodable = [p.source for p in test if p.source not in reasons]
    outputs = dict(zip(decodable, decode_texts(decoder, prep, decodable))) if decodable else {}
    return {"test_pairs": len(test),
            **metrics.score(((p.source, p.target, outputs.get(p.source)) for p in test),
                            prep.target_tokenization, input_tokenization=prep.input_tokenization, max_errors=20,
                            reasons=reasons)}
