"""Training: the seed task decodes exactly, runs are deterministic, and user TSVs with accents train."""

import csv
import json

import numpy as np
import pytest

from conftest import requires_train

pytestmark = requires_train


def test_digits_run_folder_and_exact_decoding(fixture_dir):
    run = fixture_dir / "runs" / "digits"
    for name in ("model.keras", "config.json", "history.csv", "curves.png", "metrics.json",
                 "train.tsv", "validation.tsv", "test.tsv"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["exact_match"] == 1.0 and metrics["test_pairs"] == 9 and metrics["errors"] == []
    config = json.loads((run / "config.json").read_text())
    assert config["training"]["latent_dim"] == 32
    assert config["preprocessing"]["input"]["vocabulary"] == ["<s2s pad>", "<s2s start>", "<s2s end>"] + list("123456789")
    with open(run / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == config["training"]["epochs"]
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"


def _weights(run):
    import keras

    return keras.saving.load_model(run / "model.keras").get_weights()


def test_same_seed_same_weights(tmp_path):
    from seq2seq_edge.train import trainer

    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        cfg = trainer.task_defaults("numbers", max_number=60, latent_dim=8, epochs=2, batch_size=16, seed=seed)
        trainer.train(cfg, tmp_path / name, quiet=True)
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert (tmp_path / "a" / "test.tsv").read_text() == (tmp_path / "b" / "test.tsv").read_text()


def test_tsv_with_accents_and_space_tokens(tmp_path):
    from seq2seq_edge.train import trainer

    words = ["un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix"]
    data = tmp_path / "fr.tsv"
    lines = [f"{n}\t{w} élève{'s' if n > 1 else ''} à l’école\tCC-BY" for n, w in enumerate(words, 1)]
    data.write_text("\ufeff" + "\r\n".join(lines) + "\r\n", encoding="utf-8")
    cfg = trainer.task_defaults("data", data_file=str(data), target_tokenization="space", latent_dim=16,
                                epochs=3, batch_size=4)
    result = trainer.train(cfg, tmp_path / "run", quiet=True)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    target = config["preprocessing"]["target"]
    assert target["tokenization"] == "space" and target["max_tokens"] == 4
    assert {"élève", "élèves", "à", "l’école", "dix"} <= set(target["vocabulary"])
    assert config["preprocessing"]["input"]["max_tokens"] == 2
    assert result["test_pairs"] == 10


def test_existing_run_is_not_overwritten(tmp_path):
    from seq2seq_edge.errors import RunFolderError
    from seq2seq_edge.train import trainer

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="already exists; pass --force"):
        trainer.train(trainer.task_defaults("digits", epochs=1), tmp_path / "run", quiet=True)
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"


def test_early_stopping_ends_a_run_that_decodes_its_sample_perfectly(tmp_path):
    """A run whose validation sample is decoded without an error for `patience` epochs stops, however slowly its
    validation loss keeps creeping down; history.csv counts epochs from 1, as metrics.json does."""
    from seq2seq_edge.train import trainer

    cfg = trainer.task_defaults("digits", epochs=400, patience=3)
    metrics = trainer.train(cfg, tmp_path / "run", quiet=True)
    with open(tmp_path / "run" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert metrics["epochs_run"] < 400 and len(rows) == metrics["epochs_run"]
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))
    scored = [float(r["val_sample_exact_match"]) for r in rows if r["val_sample_exact_match"] != "nan"]
    assert scored[-3:] == [1.0, 1.0, 1.0]  # the sample is scored every few epochs at most (progress.SAMPLE_BUDGET)
    assert metrics["exact_match"] == 1.0


def test_min_improvement_is_checked(tmp_path):
    from seq2seq_edge.errors import TrainOptionError
    from seq2seq_edge.train import trainer

    with pytest.raises(TrainOptionError, match=r"^--min-improvement must be from 0 to below 1, got 1.5$"):
        trainer.task_defaults("digits", min_improvement=1.5)


def test_time_budget_ends_training_on_time_and_says_so(tmp_path):
    from seq2seq_edge.train import progress, trainer

    assert [progress.parse_duration(t) for t in ("90s", "45m", "2h", "1h30m", "10")] == [90, 2700, 7200, 5400, 600]
    with pytest.raises(ValueError, match=r"^not a duration: 'soon' \(say 90s, 45m, 2h or 1h30m\)$"):
        progress.parse_duration("soon")
    cfg = trainer.task_defaults("digits", epochs=100_000, time_budget_s=4.0, lr_schedule="plateau")
    metrics = trainer.train(cfg, tmp_path / "run", quiet=True)
    assert metrics["stopped_by_time_budget"] and metrics["epochs_run"] < 100_000
    with pytest.raises(Exception, match=r"unknown --lr-schedule 'cosine'; choose one of constant, plateau"):
        trainer.task_defaults("digits", lr_schedule="cosine")
