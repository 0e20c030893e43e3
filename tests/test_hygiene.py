"""Training hygiene: vocabularies from the training split only, generalisation figures, nothing left behind."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import requires_train
from seq2seq_edge.train import data, staging
from seq2seq_edge.train.data import Pair

WORDS = ["cat", "dog", "bird", "fish", "cow", "pig", "hen", "fox", "owl", "bee", "ant", "elk", "yak", "emu",
         "gnu", "ram", "ewe", "cod", "eel", "asp", "bat", "rat", "hog", "kid", "pup", "cub", "doe", "jay",
         "kit", "tit", "auk", "koi", "orc", "roc", "boa", "gar", "ray", "sow", "tom", "nit"]


def _pairs_with_a_rare_symbol_in_test(seed: int = 0) -> tuple[list[Pair], str]:
    """Copy-task pairs (word -> WORD) where exactly one held-out test input holds a symbol ("ø") no other pair
    has: the split depends only on the set of inputs, so try the candidates until one lands in test."""
    for i in range(len(WORDS)):
        sources = list(WORDS)
        sources[i] = sources[i] + "ø"
        pairs = [Pair(s, s.upper()) for s in sources]
        splits = data.split_pairs(pairs, seed=seed)
        if any(p.source == sources[i] for p in splits.test):
            return pairs, sources[i]
    raise AssertionError("no candidate landed in the test split")


@requires_train
def test_vocabularies_come_from_the_training_split_only(tmp_path):
    from seq2seq_edge.train import trainer

    pairs, rare = _pairs_with_a_rare_symbol_in_test()
    tsv = tmp_path / "animals.tsv"
    tsv.write_text("".join(f"{p.source}\t{p.target}\n" for p in pairs), encoding="utf-8")
    cfg = trainer.task_defaults("data", data_file=str(tsv), latent_dim=8, epochs=2, batch_size=8, patience=0)
    result = trainer.train(cfg, tmp_path / "run", force=True, quiet=True)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "ø" not in config["preprocessing"]["input"]["vocabulary"]
    assert "Ø" not in config["preprocessing"]["target"]["vocabulary"]
    assert result["held_out_with_unseen_symbols"] == {"validation": 0, "test": 1}
    assert result["undecoded"] == 1
    assert result["undecoded_inputs"] == [{"input": rare, "reason": "input has 1 symbol(s) the model never saw: 'ø'"}]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["held_out_with_unseen_symbols"]["test"] == 1
    for key in ("best_epoch", "train_accuracy", "val_accuracy", "accuracy_gap"):
        assert key in metrics, key
    assert 1 <= metrics["best_epoch"] <= 2
    assert metrics["accuracy_gap"] == pytest.approx(metrics["train_accuracy"] - metrics["val_accuracy"], abs=1e-6)


def test_the_vocabulary_rule_on_its_own():
    from seq2seq_edge.train import trainer

    pairs, rare = _pairs_with_a_rare_symbol_in_test()
    splits = data.split_pairs(pairs, seed=0)
    cfg = trainer.TrainConfig(task="data")
    prep = trainer.build_preprocessing(pairs, cfg, vocabulary_from=splits.train)
    assert "ø" not in prep.input_vocabulary and "Ø" not in prep.target_vocabulary
    assert prep.max_input_tokens == max(len(p.source) for p in pairs)  # limits still cover every pair
    assert trainer.without_unseen_symbols(splits.test, prep) == [p for p in splits.test if p.source != rare]


def test_balance_input_lengths_repeats_rare_lengths():
    pairs = [Pair(str(n), "x") for n in range(1000)]  # 10 of length 1, 90 of length 2, 900 of length 3
    counts = {}
    for p in data.balance_input_lengths(pairs):
        counts[len(p.source)] = counts.get(len(p.source), 0) + 1
    assert counts == {1: 10 * 9, 2: 90 * 3, 3: 900}  # sqrt(900/10) = 9, sqrt(900/90) = 3.2 -> 3


def test_short_inputs_move_to_training_only_when_they_are_rare():
    few = [Pair(str(n), "x") for n in range(1000, 3000)] + [Pair(str(n), "x") for n in range(20)]
    splits = data.move_short_inputs_to_train(data.split_pairs(few, seed=0), max_chars=2)
    assert {p.source for p in splits.train} >= {str(n) for n in range(20)}
    assert not [p for p in splits.validation + splits.test if len(p.source) <= 2]
    many = [Pair(str(n), "x") for n in range(100)]
    kept = data.split_pairs(many, seed=0)
    assert data.move_short_inputs_to_train(kept, max_chars=2) == kept


# ---- nothing left behind ---------------------------------------------------------------------------------------------
def test_a_stale_staging_folder_of_a_dead_process_is_swept(tmp_path, caplog):
    out = tmp_path / "run"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / ".run.abc123"
    stale.mkdir()
    (stale / staging.MARKER).write_text(dead.stdout.strip())
    foreign = tmp_path / ".run.notours"
    foreign.mkdir()  # no marker: not this tool's, left alone
    live = tmp_path / ".run.live"
    live.mkdir()
    (live / staging.MARKER).write_text(str(os.getpid()))
    with caplog.at_level("WARNING"):
        with staging.staged_folder(out) as folder:
            (folder / "x").write_text("1")
    assert not stale.exists() and foreign.exists() and live.exists() and (out / "x").read_text() == "1"
    assert f"removed {stale}, a temporary folder left by an interrupted run" in caplog.text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_staging_removes_the_folder(tmp_path, sig):
    code = (f"import time, sys\nfrom seq2seq_edge.train.staging import staged_folder\n"
            f"with staged_folder({str(tmp_path / 'run')!r}) as f:\n"
            f"    (f / 'partial').write_text('x'); print('ready', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    assert list(tmp_path.iterdir()) == []  # neither the run nor a hidden .run.* folder


@requires_train
def test_s2s_train_killed_by_sigterm_leaves_nothing(tmp_path):
    out = tmp_path / "runs" / "digits"
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq_edge.cli", "train", "--task", "digits", "--out", str(out),
                             "--epochs", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "runs").glob(".digits.*/history.csv")) and time.monotonic() < deadline:
        time.sleep(0.5)  # training has started: the staging folder exists and Keras logs epochs into it
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert b"Traceback" not in err
    assert list((tmp_path / "runs").iterdir()) == []


@requires_train
def test_dropout_trains_and_exports_at_parity(tmp_path):
    """Dropout acts in training only: the exported attention model still matches Keras exactly."""
    from seq2seq_edge.export import export_bundle
    from seq2seq_edge.train import trainer

    cfg = trainer.task_defaults("numbers", max_number=60, latent_dim=8, epochs=2, batch_size=16, dropout=0.3,
                                decoder="attention", bidirectional=True)
    trainer.train(cfg, tmp_path / "run", force=True, quiet=True)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["training"]["dropout"] == 0.3
    gate = export_bundle(tmp_path / "run", tmp_path / "bundle", formats=["tflite"], quantize=["fp32"])
    (fp32,) = gate["variants"]
    assert fp32["passed"] and fp32["agreement"] == 1.0


def test_dropout_out_of_range_is_refused():
    from seq2seq_edge.errors import DataFileError
    from seq2seq_edge.train import trainer

    with pytest.raises(DataFileError, match=r"--dropout must be from 0 to below 1, got 1.0"):
        trainer.task_defaults("digits", dropout=1.0)
    with pytest.raises(DataFileError, match=r"--bidirectional needs --decoder attention"):
        trainer.task_defaults("digits", bidirectional=True)
