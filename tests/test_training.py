"""Training: the seed task decodes exactly, runs are deterministic, and user TSVs with accents train."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import default_signals, requires_train
from seq2seq_edge.train import staging

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


@pytest.mark.slow
def test_same_seed_same_weights(tmp_path):
    """--seed sets the weights and, unless --split-seed is given, the held-out split: runs with other seeds and one
    split seed hold out the same pairs with the same vocabularies (the members of an ensemble)."""
    from seq2seq_edge.train import trainer

    for name, seed, split_seed in (("a", 5, None), ("b", 5, None), ("c", 6, None), ("d", 6, 5)):
        cfg = trainer.task_defaults("numbers", max_number=60, latent_dim=8, epochs=2, batch_size=16, seed=seed,
                                    split_seed=split_seed)
        trainer.train(cfg, tmp_path / name, quiet=True)
    a, b, c, d = (_weights(tmp_path / n) for n in "abcd")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert not all(np.array_equal(x, y) for x, y in zip(a, d))  # one split, other weights
    held_out = {n: [(tmp_path / n / f"{part}.tsv").read_text() for part in ("validation", "test")] for n in "abcd"}
    assert held_out["a"] == held_out["b"] == held_out["d"] != held_out["c"]
    config = {n: json.loads((tmp_path / n / "config.json").read_text()) for n in "ad"}
    assert config["a"]["preprocessing"] == config["d"]["preprocessing"]
    assert (config["a"]["training"]["split_seed"], config["d"]["training"]["split_seed"]) == (None, 5)


@pytest.mark.slow
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


@pytest.mark.slow
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


@requires_train
def test_monitor_accuracy_keeps_the_epoch_of_best_validation_accuracy_not_of_lowest_loss():
    import keras
    import numpy as np

    from seq2seq_edge.errors import TrainOptionError
    from seq2seq_edge.train import progress, trainer

    # Label smoothing: the loss can rise while the accuracy still climbs. Epoch 3 has the lowest loss, epoch 5 the
    # best accuracy; the weights of each epoch are its number.
    curve = [(1.0, 0.50), (0.8, 0.60), (0.7, 0.70), (0.75, 0.8), (0.9, 0.85), (0.95, 0.85), (1.0, 0.8501),
             (1.1, 0.84), (1.2, 0.84)]
    kept = {}
    for monitor in trainer.MONITORS:
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
        key, mode = trainer.MONITORS[monitor]
        stopping = progress.EarlyStopping(patience=3, min_improvement=0.001, monitor=key, mode=mode)
        stopping.set_model(model)
        model.stop_training = False
        stopping.on_train_begin()
        for epoch, (loss, accuracy) in enumerate(curve):
            model.set_weights([np.full((1, 1), epoch + 1.0, "float32")])
            stopping.on_epoch_end(epoch, {"val_loss": loss, "val_accuracy": accuracy})
            if model.stop_training:
                break
        stopping.on_train_end()
        kept[monitor] = (float(model.get_weights()[0][0, 0]), epoch + 1)
    # loss: best at epoch 3, stopped 3 epochs later. accuracy: best at 5; 0.8501 is not 0.1% less error than 0.85.
    assert kept == {"loss": (3.0, 6), "accuracy": (5.0, 8)}
    history = {"val_loss": [c[0] for c in curve], "val_accuracy": [c[1] for c in curve],
               "loss": [0.5] * len(curve), "accuracy": [0.9] * len(curve)}
    assert trainer.generalisation(history, "loss")["best_epoch"] == 3
    assert trainer.generalisation(history, "accuracy")["best_epoch"] == 7  # the curve's own maximum
    with pytest.raises(TrainOptionError, match=r"^unknown --monitor 'wer'; choose one of loss, accuracy$"):
        trainer.task_defaults("data", data_file="x.tsv", monitor="wer")


def test_best_epochs_keeps_the_k_best_by_the_monitored_figure_and_averages_them():
    import keras

    from seq2seq_edge.train import checkpoints

    # The weights of each epoch are its number; epochs 2, 4 and 5 have the three lowest losses.
    losses = [0.9, 0.5, 0.7, 0.4, 0.45, float("nan"), 0.8]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    best = checkpoints.BestEpochs(3, "val_loss", "min")
    best.set_model(model)
    for epoch, loss in enumerate(losses):
        model.set_weights([np.full((1, 1), epoch + 1.0, "float32")])
        best.on_epoch_end(epoch, {"val_loss": loss})
    assert best.epochs == [2, 4, 5]
    (average,) = best.average()
    assert average.dtype == np.float32 and average.tolist() == [[np.float32(11.0 / 3.0)]]
    accuracy = checkpoints.BestEpochs(2, "val_accuracy", "max")
    accuracy.set_model(model)
    for epoch, value in enumerate([0.5, 0.9, 0.7, 0.9]):
        model.set_weights([np.full((1, 1), epoch + 1.0, "float32")])
        accuracy.on_epoch_end(epoch, {"val_accuracy": value})
    assert accuracy.epochs == [2, 4]  # a tie keeps the earlier epoch first, and both fit
    with pytest.raises(ValueError):
        checkpoints.BestEpochs(1)


def test_checkpoint_average_is_kept_only_when_it_decodes_more_validation_pairs_exactly(fixture_dir):
    from seq2seq_edge.train import checkpoints
    from seq2seq_edge.train.reference import KerasDecoder, decode_texts, normalized_targets
    from seq2seq_edge.train.run_folder import RunFolder

    run = RunFolder.open(fixture_dir / "runs" / "embeddings")  # it decodes some validation pairs exactly
    prep, validation = run.read_config().preprocessing, run.read_split("validation")
    model = run.load_keras_model()
    trained = [v.numpy().copy() for v in model.trainable_variables]
    zeros = [np.zeros_like(w) for w in trained]
    references = normalized_targets(prep, validation)

    def exact() -> float:
        decoder = KerasDecoder.from_training_model(model, prep.max_output_tokens)
        return sum(o == r for o, r in zip(decode_texts(decoder, prep, [p.source for p in validation]), references))

    def weights() -> list:
        return [v.numpy() for v in model.trainable_variables]

    def kept_epochs(*epochs):
        best = checkpoints.BestEpochs(2)
        best.kept = [(float(i), i + 1, w) for i, w in enumerate(epochs)]
        return best

    def set_weights(ws):
        for v, w in zip(model.trainable_variables, ws):
            v.assign(w)

    trained_exact = exact()
    assert trained_exact > 0
    # Fitted weights that decode nothing, an average of trained weights: the average is kept.
    set_weights(zeros)
    summary = checkpoints.keep_better(model, kept_epochs(trained, trained), prep, validation)["checkpoint_average"]
    assert summary["kept"] == "average" and summary["epochs"] == [1, 2]
    assert summary["val_exact_match_average"] == round(trained_exact / len(validation), 6)
    assert summary["val_exact_match_fitted"] == 0.0 and summary["scored_pairs"] == len(validation)
    assert summary["seconds"] >= 0
    assert all(np.array_equal(a, b) for a, b in zip(weights(), trained)) and exact() == trained_exact
    # An average that decodes worse, and one that decodes the same (a tie): the fitted weights stay, bit for bit.
    for epochs in ((zeros, zeros), (trained, trained)):
        summary = checkpoints.keep_better(model, kept_epochs(*epochs), prep, validation)["checkpoint_average"]
        assert summary["kept"] == "fitted"
        assert all(np.array_equal(a, b) for a, b in zip(weights(), trained))
    assert checkpoints.keep_better(model, kept_epochs(trained), prep, validation) == {}


def test_average_checkpoints_is_checked_and_on_for_data_only():
    from seq2seq_edge.errors import TrainOptionError
    from seq2seq_edge.train import trainer

    assert trainer.task_defaults("data", data_file="x.tsv").average_checkpoints == 5
    assert trainer.task_defaults("digits").average_checkpoints == 0
    assert trainer.task_defaults("numbers").average_checkpoints == 0
    for bad in (1, -2, 2.5):
        with pytest.raises(TrainOptionError, match=rf"^--average-checkpoints must be 0 \(off\) or an integer of at "
                                                   rf"least 2, got {bad}$"):
            trainer.task_defaults("data", data_file="x.tsv", average_checkpoints=bad)


@pytest.mark.slow
def test_time_budget_ends_training_on_time_and_says_so(tmp_path):
    from seq2seq_edge.train import durations, trainer

    assert [durations.parse_duration(t) for t in ("90s", "45m", "2h", "1h30m", "10")] == [90, 2700, 7200, 5400, 600]
    with pytest.raises(ValueError, match=r"^not a duration: 'soon' \(say 90s, 45m, 2h or 1h30m\)$"):
        durations.parse_duration("soon")
    cfg = trainer.task_defaults("digits", epochs=100_000, time_budget_s=4.0, lr_schedule="plateau")
    metrics = trainer.train(cfg, tmp_path / "run", quiet=True)
    assert metrics["stopped_by_time_budget"] and metrics["epochs_run"] < 100_000
    with pytest.raises(Exception, match=r"unknown --lr-schedule 'cosine'; choose one of constant, plateau"):
        trainer.task_defaults("digits", lr_schedule="cosine")


# ---- progress lines and curves -------------------------------------------------------------------------------------
@requires_train
def test_progress_lines_without_a_terminal(tmp_path):
    import io

    from seq2seq_edge.train import progress

    def run(epochs, every_s, stop_after=None):
        out = io.StringIO()
        p = progress.TrainingProgress(epochs, stream=out, every_s=every_s)
        p.set_params({"epochs": epochs, "steps": 3})
        p.on_train_begin()
        for e in range(stop_after or epochs):
            p.on_epoch_begin(e)
            for b in range(3):
                p.on_train_batch_end(b, {"loss": 1.0})
            p.on_epoch_end(e, {"loss": 1.0 / (e + 1), "val_loss": 2.0, progress.SAMPLE_KEY: math.nan})
        p.on_train_end()
        return out.getvalue().splitlines()

    lines = run(200, every_s=3600)  # a quick run: the first and the last epoch, not 200 lines
    assert len(lines) == 2 and lines[0].startswith("epoch 1/200: loss 1.0000, val_loss 2.0000 (")
    assert lines[1].startswith("epoch 200/200: loss 0.0050")
    every = run(5, every_s=0)  # each epoch, and inside each, each batch (a "long" epoch)
    assert [line.split(":")[0] for line in every if ": loss" in line] == [f"epoch {e}/5" for e in range(1, 6)]
    assert "epoch 1/5: batch 1/3, loss 1.0000" in every
    stopped = run(50, every_s=3600, stop_after=7)  # early stopping between two lines: its last epoch is shown
    assert stopped[-2].startswith("epoch 7/50:") and stopped[-1] == "early stopping after epoch 7 of 50"


@requires_train
def test_curves_mark_the_best_epoch_and_say_when_validation_is_training(tmp_path):
    from seq2seq_edge.train.run_folder import _plot_curves

    history = {"loss": [2.0, 1.0, 0.5], "val_loss": [2.1, 0.9, 1.2], "accuracy": [0.1, 0.5, 0.9],
               "val_accuracy": [0.1, 0.6, 0.8], "val_sample_exact_match": [0.0, math.nan, 1.0]}
    _plot_curves(history, tmp_path / "curves.png", validation_is_train=True)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- nothing left behind: staging folders, signals -----------------------------------------------------------------
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
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    assert list(tmp_path.iterdir()) == []  # neither the run nor a hidden .run.* folder


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_wrapped_by_a_library_still_ends_the_process_as_the_signal(tmp_path, sig):
    """TensorFlow, tracing a Keras layer when SIGTERM came, raised the handler's exception again as another kind
    (the CLI said "error" and exited 1). Here a library call wraps it the same way: the process still ends as the
    signal ends it (143 for SIGTERM, Python's KeyboardInterrupt exit for Ctrl-C), and the folder is removed."""
    code = (f"import os, time\nfrom seq2seq_edge.train.staging import staged_folder\n"
            f"def library_call():\n"
            f"    try:\n"
            f"        os.kill(os.getpid(), {int(sig)}); time.sleep(30)\n"
            f"    except BaseException as e:\n"
            f"        raise RuntimeError('wrapped by the library') from e\n"
            f"with staged_folder({str(tmp_path / 'run')!r}) as f:\n"
            f"    (f / 'partial').write_text('x'); library_call()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          preexec_fn=default_signals)
    assert proc.returncode == (143 if sig == signal.SIGTERM else -signal.SIGINT), proc.stderr
    assert "wrapped by the library" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@requires_train
def test_s2s_train_killed_by_sigterm_leaves_nothing(tmp_path):
    out = tmp_path / "runs" / "digits"
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq_edge.cli", "train", "--task", "digits", "--out", str(out),
                             "--epochs", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=default_signals)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "runs").glob(".digits.*/history.csv")) and time.monotonic() < deadline:
        time.sleep(0.5)  # training has started: the staging folder exists and Keras logs epochs into it
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert b"Traceback" not in err
    assert list((tmp_path / "runs").iterdir()) == []


def test_stacked_layers_and_input_feeding_are_bounded_and_so_is_the_state_they_pack():
    from seq2seq_edge.errors import TrainOptionError
    from seq2seq_edge.train import trainer

    assert (trainer.task_defaults("data").encoder_layers, trainer.task_defaults("data").decoder_layers) == (1, 1)
    for name, value in (("encoder_layers", 0), ("decoder_layers", 5), ("encoder_layers", 2.0)):
        with pytest.raises(TrainOptionError, match=rf"^--{name.replace('_', '-')} must be an integer from 1 to 4, "
                                                   rf"got {value}$"):
            trainer.task_defaults("data", **{name: value})
    # 3 decoder layers of 2 x 4096 units: a state of 24576, wider than a bundle may declare
    with pytest.raises(TrainOptionError, match=r"^the decoder's state would be 24576 wide \(8192 units x 3 layers\), "
                                               r"more than a bundle's 16384; use a smaller --latent or fewer "
                                               r"--decoder-layers$"):
        trainer.task_defaults("data", latent_dim=4096, decoder_layers=3)
    with pytest.raises(TrainOptionError, match=r"^the decoder's state would be 20000 wide \(20000 units\), more than a "
                                               r"bundle's 16384; use a smaller --latent$"):
        trainer.task_defaults("data", latent_dim=20000, decoder="seed")
    assert trainer.task_defaults("data", latent_dim=4096, decoder_layers=2).decoder_layers == 2
    # input feeding adds one slot of the decoder's units to the state
    with pytest.raises(TrainOptionError, match=r"^the decoder's state would be 24576 wide \(8192 units x 2 layers, and "
                                               r"8192 for input feeding\), more than a bundle's 16384; use a smaller "
                                               r"--latent or fewer --decoder-layers or --no-input-feeding$"):
        trainer.task_defaults("data", latent_dim=4096, decoder_layers=2, input_feeding=True)
    assert trainer.task_defaults("data", latent_dim=4096, input_feeding=True).input_feeding
    with pytest.raises(TrainOptionError, match=r"^--input-feeding has no --recurrent-dropout "):
        trainer.task_defaults("data", input_feeding=True, recurrent_dropout=0.1)


def test_the_data_defaults_and_what_opting_out_of_them_gives():
    """--data trains attention over a bidirectional LSTM of 128 units a direction; the tutorial's decoder (or one
    direction) gets the decoder's 256 units, unless --latent says otherwise; --decoder seed --bidirectional is
    refused."""
    from seq2seq_edge.errors import TrainOptionError
    from seq2seq_edge.train import trainer

    cfg = trainer.task_defaults("data")
    assert (cfg.decoder, cfg.bidirectional, cfg.attend_embeddings, cfg.latent_dim, cfg.dropout, cfg.label_smoothing,
            cfg.lr_schedule, cfg.average_checkpoints) == ("attention", True, True, 128, 0.2, 0.1, "plateau", 5)
    for overrides in ({"decoder": "seed"}, {"bidirectional": False}):
        cfg = trainer.task_defaults("data", **overrides)
        assert (cfg.bidirectional, cfg.latent_dim) == (False, 256), overrides
    assert trainer.task_defaults("data", decoder="seed").attend_embeddings is False  # the seed decoder cannot
    assert trainer.task_defaults("data", attend_embeddings=False).attend_embeddings is False
    assert trainer.task_defaults("data", decoder="seed", latent_dim=64).latent_dim == 64
    with pytest.raises(TrainOptionError, match="--bidirectional needs --decoder attention"):
        trainer.task_defaults("data", decoder="seed", bidirectional=True)
    digits = trainer.task_defaults("digits")  # the seed's model exactly
    assert (digits.decoder, digits.bidirectional, digits.latent_dim, digits.dropout, digits.label_smoothing) == (
        "seed", False, 32, 0.0, 0.0)
