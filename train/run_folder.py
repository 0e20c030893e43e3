"""The run folder: what ``s2s train`` writes and ``s2s export`` reads. Only this module knows its layout.

    model.keras      the trained teacher-forcing model (Keras 3 format)
    config.json      RunConfig: preprocessing (vocabularies, special tokens, tokenization, limits, padding),
                     the training settings, the split sizes and the versions that trained the model
    history.csv      loss and accuracy per epoch (Keras' CSVLogger writes it while the model fits)
    curves.png       loss (log scale, best epoch marked), accuracy and the validation sample's exact match
    metrics.json     exact match, CER (and WER for space targets) on the test split (batched Keras greedy decoder),
                     overall and by input and output length, with the worst buckets (``seq2seq_edge.evaluation.metrics``)
    report.md        the same as a short report: tables by input and output length, worst buckets and errors
    train.tsv, validation.tsv, test.tsv   the split, so export can run the parity gate on the same inputs

A bundle has the same kind of home in ``seq2seq_edge.manifest.BundleManifest``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seq2seq_edge import files
from seq2seq_edge import manifest as mf
from seq2seq_edge import preprocessing as pp
from seq2seq_edge.errors import BundleError, RunFolderError
from seq2seq_edge.evaluation.pairs import Pair

from .data import Splits

RUN_CONFIG_FILE = "config.json"
RUN_MODEL_FILE = "model.keras"
RUN_FORMAT = "seq2seq-edge-run"
RUN_VERSION = 1
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
SPLIT_FILES = {"train": "train.tsv", "validation": "validation.tsv", "test": "test.tsv"}
#: config.json is small; a larger file is not one s2s train wrote.
CONFIG_MAX_BYTES = 16 * 2**20
#: Model files of older Keras and TensorFlow versions: refused, with the way out.
LEGACY_SUFFIXES = (".h5", ".hdf5", ".pb", ".tf", ".keras2")


@dataclass(frozen=True)
class RunConfig:
    """``config.json``: all that export needs to know about a run besides its weights."""

    #: How text becomes ids and back; the bundle's manifest carries the same.
    preprocessing: pp.Preprocessing
    #: The settings the model was trained with (``trainer.TrainConfig`` as a dict).
    training: dict[str, Any] = field(default_factory=dict)
    #: Pairs in each part of the split: {"train": n, "validation": n, "test": n}.
    splits: dict[str, int] = field(default_factory=dict)
    #: Versions of the tools that trained the model.
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": RUN_FORMAT, "version": RUN_VERSION, "preprocessing": self.preprocessing.to_dict(),
                "training": dict(self.training), "splits": dict(self.splits), "versions": dict(self.versions)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: Path) -> "RunConfig":
        if d.get("format") != RUN_FORMAT:
            raise RunFolderError(f"{where}: not a seq2seq-edge run config")
        if not isinstance(d.get("preprocessing"), dict):
            raise RunFolderError(f"{where}: no preprocessing object (re-run s2s train)")
        try:
            prep = pp.Preprocessing.from_dict(d["preprocessing"])
        except BundleError as e:
            raise RunFolderError(f"{where}: its preprocessing is not valid: {e}") from None
        sections = {name: d.get(name, {}) for name in ("training", "splits", "versions")}
        wrong = [name for name, value in sections.items() if not isinstance(value, dict)]
        if wrong:
            raise RunFolderError(f"{where}: {wrong[0]} is not an object (re-run s2s train)")
        return cls(prep, dict(sections["training"]), dict(sections["splits"]), dict(sections["versions"]))


def _in_folder(name: str) -> property:
    return property(lambda self: self.path / name, doc=f"The path of ``{name}`` in this run folder.")


class RunFolder:
    """One run folder on disk: where each of its files lives, and reading and writing them.

    ``RunFolder.open(path)`` checks an existing folder before it is read; ``RunFolder(path)`` names a folder
    to write (training writes into a staging folder, then swaps it in).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def open(cls, path: str | Path) -> "RunFolder":
        """An existing run folder that holds a model; legacy Keras formats are refused with the way out."""
        path = Path(path)
        if path.suffix.lower() in LEGACY_SUFFIXES:
            raise RunFolderError(f"{path}: legacy Keras format ({path.suffix}) is not supported; "
                                 "re-save the model as .keras with Keras 3, or retrain with s2s train")
        if path.is_file():
            raise RunFolderError(f"{path}: expected a run folder written by s2s train")
        if not path.is_dir():
            raise RunFolderError(f"{path}: no such run folder")
        run = cls(path)
        if (path / mf.MANIFEST_FILE).is_file() and not run.model_file.is_file():
            raise RunFolderError(f"{path}: this is a bundle written by s2s export, not a run folder; s2s export "
                                 "reads the run folder s2s train wrote (s2s info BUNDLE names it)")
        if not run.model_file.is_file():
            legacy = [p.name for p in path.glob("*") if p.suffix.lower() in LEGACY_SUFFIXES]
            if legacy:
                raise RunFolderError(f"{path}: holds {legacy[0]}, a legacy Keras format that is not supported; "
                                     f"re-save it as {RUN_MODEL_FILE} with Keras 3, or retrain with s2s train")
            raise RunFolderError(f"{path}: no {RUN_MODEL_FILE} (is this a run folder written by s2s train?)")
        return run

    # -- the layout -------------------------------------------------------------------------------------------
    model_file = _in_folder(RUN_MODEL_FILE)
    config_file = _in_folder(RUN_CONFIG_FILE)
    history_file = _in_folder(HISTORY_FILE)
    curves_file = _in_folder(CURVES_FILE)
    metrics_file = _in_folder(METRICS_FILE)
    report_file = _in_folder(REPORT_FILE)

    def split_file(self, part: str) -> Path:
        return self.path / SPLIT_FILES[part]

    # -- reading ----------------------------------------------------------------------------------------------
    def read_config(self) -> RunConfig:
        try:
            data = files.read_json_object(self.config_file, "run config", max_bytes=CONFIG_MAX_BYTES)
        except BundleError as e:
            raise RunFolderError(str(e)) from None
        return RunConfig.from_dict(data, self.config_file)

    def read_split(self, part: str) -> list[Pair]:
        """The pairs of one part of the split ("train", "validation" or "test"), in the order training wrote."""
        path = self.split_file(part)
        if not path.is_file():
            raise RunFolderError(f"{path}: missing (re-run s2s train)")
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError:
            raise RunFolderError(f"{path}: not UTF-8 text (re-run s2s train)") from None
        pairs = []
        for number, line in enumerate(lines[:-1] if lines[-1] == "" else lines, 1):
            source, tab, target = line.partition("\t")
            if not tab:
                raise RunFolderError(f"{path}, line {number}: no tab between input and target (re-run s2s train)")
            pairs.append(Pair(source, target))
        return pairs

    def load_keras_model(self):
        """The trained model, loaded with Keras' safe mode (no arbitrary code from the file; the only class of ours
        a model may name is the input-feeding decoder, registered by importing its module)."""
        import keras

        from . import input_feeding  # noqa: F401  (registers InputFeedingDecoder with Keras)

        try:
            return keras.saving.load_model(self.model_file, safe_mode=True, compile=False)
        except Exception as e:
            raise RunFolderError(f"{self.model_file}: Keras could not load it in safe mode: {e}") from None

    # -- writing ----------------------------------------------------------------------------------------------
    def save(self, model, config: RunConfig, metrics: dict, splits: Splits, history: dict) -> None:
        """Write every file of the run but ``history.csv``, which Keras writes at ``history_file`` while it fits."""
        model.save(self.model_file)
        files.write_json(self.config_file, config.to_dict())
        files.write_json(self.metrics_file, metrics)
        for part in SPLIT_FILES:
            with open(self.split_file(part), "w", encoding="utf-8", newline="\n") as f:
                f.writelines(f"{p.source}\t{p.target}\n" for p in getattr(splits, part))
        _plot_curves(history, self.curves_file, validation_is_train=splits.validation == splits.train)


#: The history key of the validation sample's exact match (``train.progress.SAMPLE_KEY``).
SAMPLE_KEY = "val_sample_exact_match"


def _plot_curves(history: dict, path: Path, validation_is_train: bool = False) -> None:
    """Loss per epoch on a log scale with the best validation epoch marked, token accuracy, and the exact match
    of the validation sample (the epochs where it was measured). ``validation_is_train``: nothing was held out
    (the digits task), which the titles say."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sample = [(i + 1, v) for i, v in enumerate(history.get(SAMPLE_KEY, [])) if not math.isnan(v)]
    fig, axes = plt.subplots(1, 3 if sample else 2, figsize=(15 if sample else 10, 4))
    epochs = range(1, len(history["loss"]) + 1)
    validation = "validation (= the training data)" if validation_is_train else "validation"
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label=validation)
        ax.set_xlabel("epoch")
        ax.set_title("token accuracy" if key == "accuracy" else "loss (log scale)")
    loss_ax = axes[0]
    loss_ax.set_yscale("log")
    if history.get("val_loss"):
        best = min(range(len(history["val_loss"])), key=history["val_loss"].__getitem__)
        loss_ax.axvline(best + 1, color="grey", linestyle=":", linewidth=1)
        loss_ax.plot([best + 1], [history["val_loss"][best]], "o", color="C1",
                     label=f"best validation loss: epoch {best + 1}")
    if sample:
        ax = axes[2]
        ax.plot([e for e, _ in sample], [v for _, v in sample], "o-", markersize=3, color="C2")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("epoch")
        ax.set_title("exact match, validation sample" + (" (= training data)" if validation_is_train else ""))
    for ax in axes[:2]:
        ax.legend()
    if validation_is_train:
        fig.suptitle("Nothing is held out for this task: validation is the training data", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
