"""Token-level distillation (``s2s train --distill-from``): what the student learns from, and what is refused."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import requires_train

pytestmark = requires_train


def _train(data, out, force=False, **settings):
    from seq2seq_edge.train import trainer

    cfg = trainer.task_defaults("data", data_file=str(data), **{"latent_dim": 32, "epochs": 4, "batch_size": 16,
                                                               "learning_rate": 0.01,
                                                               "average_checkpoints": 0, **settings})
    return trainer.train(cfg, out, force=force, quiet=True)


@pytest.fixture(scope="module")
def numbers(tmp_path_factory):
    """A small real data set (numbers as English words, by character) and two teachers trained on it."""
    from num2words import num2words

    root = tmp_path_factory.mktemp("distill")
    data = root / "numbers.tsv"
    data.write_text("".join(f"{n}\t{num2words(n)}\n" for n in range(300)), encoding="utf-8")
    _train(data, root / "teacher-a", epochs=12)
    _train(data, root / "teacher-b", epochs=12, seed=1, split_seed=0)
    return root


def test_soft_targets_mix_the_reference_and_the_teachers_distribution():
    from seq2seq_edge.train.distill import SoftTargets

    soft = SoftTargets(ids=[np.array([[5, 3], [4, 2]], np.int32), np.array([[3, 5]], np.int32)],
                       probs=[np.array([[0.75, 0.25], [1.0, 0.0]], np.float32), np.array([[0.5, 0.5]], np.float32)],
                       weight=0.4, vocabulary_size=6)
    gold = np.array([[3, 2, 0], [3, 0, 0]])  # the references (end token included), padded with 0
    dense = soft.dense([0, 1], gold)
    assert dense.shape == (2, 3, 6)
    np.testing.assert_allclose(dense[0, 0], [0, 0, 0, 0.6 + 0.4 * 0.25, 0, 0.4 * 0.75])
    np.testing.assert_allclose(dense[0, 1], [0, 0, 0.6, 0, 0.4, 0])
    np.testing.assert_allclose(dense[1, 0], [0, 0, 0, 0.6 + 0.2, 0, 0.2])
    assert not dense[0, 2].any() and not dense[1, 1:].any()  # padding weighs nothing
    np.testing.assert_allclose(dense[[0, 0, 1], [0, 1, 0]].sum(axis=-1), 1.0, rtol=1e-6)
    # The batch's order, not the split's: pair 1 first.
    np.testing.assert_allclose(soft.dense([1, 0], gold[::-1])[1, 0], dense[0, 0])


def test_the_teachers_distribution_of_each_training_token_is_their_ensembles(numbers):
    """Computed in sorted, padded batches, each pair's rows are what the teachers give that pair alone (each run's
    Keras model, unpadded), their normalized geometric mean, its TOP_K tokens renormalized."""
    from seq2seq_edge import text
    from seq2seq_edge.train import distill
    from seq2seq_edge.train.run_folder import RunFolder

    runs = [RunFolder.open(numbers / name) for name in ("teacher-a", "teacher-b")]
    prep = runs[0].read_config().preprocessing
    pairs = runs[0].read_split("train")
    enc = [prep.encode_input(p.source) for p in pairs]
    tgt = [prep.target_codec.encode(p.target) for p in pairs]
    soft, summary = distill.soft_targets(runs, enc, tgt, weight=0.5, prep=prep)
    models = [run.load_keras_model() for run in runs]
    agree = 0
    for i in (0, 7, len(pairs) // 2, len(pairs) - 1):
        feeds = {"input_ids": np.array([enc[i]]), "decoder_input_ids": np.array([[text.START_ID] + tgt[i]])}
        log_mean = np.mean([np.log(m.predict_on_batch(feeds)[0]) for m in models], axis=0)
        top = np.argsort(-log_mean, axis=-1)[:, :distill.TOP_K]
        probs = np.exp(np.take_along_axis(log_mean, top, axis=-1))
        assert soft.ids[i].shape == (len(tgt[i]) + 1, distill.TOP_K)
        np.testing.assert_array_equal(soft.ids[i][:, 0], top[:, 0])
        np.testing.assert_allclose(soft.probs[i], probs / probs.sum(axis=-1, keepdims=True), atol=1e-5)
    for i, ids in enumerate(soft.ids):
        agree += int((ids[:, 0] == np.array(tgt[i] + [text.END_ID])).sum())
    total = sum(len(t) + 1 for t in tgt)
    assert summary == {"teachers": [str(numbers / "teacher-a"), str(numbers / "teacher-b")], "weight": 0.5,
                       "top_k": distill.TOP_K, "teacher_agreement": round(agree / total, 6)}
    assert 0.3 < summary["teacher_agreement"] < 1.0, summary


def test_the_student_learns_what_its_teachers_say(numbers, tmp_path):
    """With --distill-weight 1 the references only pick the teachers' rows: a student of a teacher that has barely
    begun to learn ends worse on the validation references than the same training on the references, and its
    run records where it learnt from."""
    _train(numbers / "numbers.tsv", tmp_path / "novice", epochs=1)
    plain = _train(numbers / "numbers.tsv", tmp_path / "plain", epochs=5)
    student = _train(numbers / "numbers.tsv", tmp_path / "student", epochs=5, distill_from=(str(tmp_path / "novice"),),
                     distill_weight=1.0)
    novice = json.loads((tmp_path / "novice" / "metrics.json").read_text())
    assert student["distillation"]["teachers"] == [str(tmp_path / "novice")]
    assert student["distillation"]["weight"] == 1.0
    assert "distillation" not in plain and "distillation" not in novice
    assert student["best_val_loss"] > plain["best_val_loss"] + 0.1
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert config["training"]["distill_from"] == [str(tmp_path / "novice")]


def test_a_student_of_the_ensemble_trains_and_scores_like_any_run(numbers, tmp_path):
    teachers = (str(numbers / "teacher-a"), str(numbers / "teacher-b"))
    result = _train(numbers / "numbers.tsv", tmp_path / "student", epochs=2, distill_from=teachers)
    assert result["distillation"]["teachers"] == list(teachers) and result["test_pairs"] == 30
    with open(tmp_path / "student" / "history.csv") as f:  # the validation split is scored on its references
        header = f.readline().strip().split(",")
    assert {"accuracy", "loss", "val_accuracy", "val_loss"} <= set(header)


@pytest.mark.parametrize("teacher_settings, message", [
    (dict(split_seed=1), r"^--distill-from \S+/other: it held out other validation pairs than this training \(a "
                         r"teacher that learnt the held-out pairs would pass them on\); train it on the same data with "
                         r"the same --split-seed$"),
    (dict(target_tokenization="space"), r"^--distill-from \S+/other: its tokens differ from this training's "
                                        r"\(preprocessing\.target\.[a-z_]+\); a teacher must read and write the same "
                                        r"tokens \(train it on the same data with the same tokenization, "
                                        r"--min-symbol-count and --symbol-dropout on or off\)$"),
    (dict(symbol_dropout=0.5), r"^--distill-from \S+/other: its tokens differ from this training's "
                               r"\(preprocessing\.input\.[a-z_]+\); a teacher must read"),
])
def test_a_teacher_that_held_out_other_pairs_or_reads_other_tokens_is_refused(numbers, tmp_path, teacher_settings,
                                                                              message):
    from seq2seq_edge.errors import RunFolderError

    _train(numbers / "numbers.tsv", tmp_path / "other", epochs=1, **teacher_settings)
    with pytest.raises(RunFolderError, match=message):
        _train(numbers / "numbers.tsv", tmp_path / "student", distill_from=(str(tmp_path / "other"),))
    assert not (tmp_path / "student").exists()


@pytest.mark.parametrize("options, message", [
    (["--distill-from", "nowhere"], "--distill-from nowhere: no such run folder"),
    (["--distill-from", "nowhere", "--distill-weight", "0"], "--distill-weight must be above 0 and at most 1, got 0.0"),
    (["--distill-from", "nowhere", "--distill-weight", "nan"], "--distill-weight must be above 0 and at most 1, got nan"),
    (["--distill-weight", "0.3"], "--distill-weight needs --distill-from"),
    (["--distill-from", "nowhere", "--no-length-buckets"],
     "--distill-from builds its targets in length-bucketed batches: add --length-buckets"),
    (["--distill-from", "nowhere", "--distribute", "mirrored"],
     "--distill-from is not available with --distribute (its targets are built in length-bucketed batches; "
     "--distribute trains on padded arrays)"),
    ([a for i in range(9) for a in ("--distill-from", f"run{i}")], "--distill-from takes at most 8 runs, got 9"),
])
def test_distillation_options_are_checked_in_one_line(numbers, tmp_path, options, message):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "seq2seq_edge.cli", "train", "--data", str(numbers / "numbers.tsv"),
                           "--out", str(tmp_path / "run"), *options], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"s2s train: error: {message}"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("swap", ["targets", "fewer inputs", "more inputs"])
def test_a_teacher_whose_model_does_not_fit_its_config_is_refused(numbers, tmp_path, swap):
    """A run folder whose model.keras came from a run with other vocabularies (its config.json still matching the
    student's) is refused in one line, before the first epoch, not with a traceback from Keras."""
    import shutil

    from num2words import num2words
    from seq2seq_edge.errors import RunFolderError

    other = tmp_path / "other.tsv"  # one target symbol more, or input symbols fewer (base 5) or more (base 16)
    base = {"targets": 10, "fewer inputs": 5, "more inputs": 16}[swap]
    pairs = ((np.base_repr(n, base), num2words(n) + ("#" if swap == "targets" else "")) for n in range(300))
    other.write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    _train(other, tmp_path / "other", epochs=1)
    shutil.copytree(numbers / "teacher-a", tmp_path / "forged")
    shutil.copy(tmp_path / "other" / "model.keras", tmp_path / "forged" / "model.keras")
    with pytest.raises(RunFolderError, match=r"^--distill-from \S+/forged: its model.keras does not fit the "
                                             r"vocabularies of its config.json \(re-run s2s train for it\)$"):
        _train(numbers / "numbers.tsv", tmp_path / "student", distill_from=(str(tmp_path / "forged"),))
    assert not (tmp_path / "student").exists()


def test_the_output_folder_cannot_teach_the_run_that_replaces_it(numbers, tmp_path):
    import shutil

    from seq2seq_edge.errors import RunFolderError

    shutil.copytree(numbers / "teacher-a", tmp_path / "self")
    with pytest.raises(RunFolderError, match=r"^--distill-from \S+/self: it is the folder --out writes; a run cannot "
                                             r"teach the run that replaces it$"):
        trainer_run = _train(numbers / "numbers.tsv", tmp_path / "self", distill_from=(str(tmp_path / "self"),),
                             force=True)
        assert trainer_run is None
    assert (tmp_path / "self" / "model.keras").read_bytes() == (numbers / "teacher-a" / "model.keras").read_bytes()


@pytest.mark.parametrize("damage, message", [
    (lambda run: _edit_config(run, lambda c: c.pop("preprocessing")), r"config.json: no preprocessing object"),
    (lambda run: _edit_config(run, lambda c: c.update(preprocessing={})),
     r"config.json: its preprocessing is not valid: \d+ problems"),
    (lambda run: _edit_config(run, lambda c: c.update(training=[1])), r"config.json: training is not an object"),
    (lambda run: (run / "validation.tsv").write_text("no tab here\n"),
     r"validation.tsv, line 1: no tab between input and target"),
    (lambda run: (run / "test.tsv").write_bytes(b"\xff\tx\n"), r"test.tsv: not UTF-8 text"),
    (lambda run: (run / "model.keras").write_bytes(b"PK\x03\x04 not a zip"), r"model.keras: Keras could not load it"),
])
def test_a_damaged_teacher_is_one_error_naming_it(numbers, tmp_path, damage, message):
    import shutil

    shutil.copytree(numbers / "teacher-a", tmp_path / "damaged")
    damage(tmp_path / "damaged")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "seq2seq_edge.cli", "train", "--data", str(numbers / "numbers.tsv"),
                           "--out", str(tmp_path / "run"), "--epochs", "1", "--quiet", "--distill-from",
                           str(tmp_path / "damaged")], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("s2s train: error: ")]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(f"s2s train: error: --distill-from {tmp_path / 'damaged'}"), errors[0]
    assert re.search(message, errors[0]), errors[0]
    assert not (tmp_path / "run").exists()


def _edit_config(run, edit):
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))
