"""Generalisation controls: vocabularies from the training split only, dropout, recurrent dropout, the unknown
token (--min-symbol-count), label smoothing, R-Drop, and their option errors."""

import csv
import json
import os
import subprocess
import sys

import pytest

from conftest import requires_train
from seq2seq_edge.train import data
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


@pytest.mark.slow
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






@pytest.mark.slow
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
    from seq2seq_edge.errors import TrainOptionError
    from seq2seq_edge.train import trainer

    with pytest.raises(TrainOptionError, match=r"--dropout must be from 0 to below 1, got 1.0"):
        trainer.task_defaults("digits", dropout=1.0)
    with pytest.raises(TrainOptionError, match=r"--bidirectional needs --decoder attention"):
        trainer.task_defaults("digits", bidirectional=True)


# ---- the unknown token (--min-symbol-count) and recurrent dropout ----------------------------------------------------
def _rare_in_training(pairs, seed=0, min_count=2):
    """The input symbols seen fewer than ``min_count`` times in the training split of ``pairs``."""
    counts = {}
    for p in data.split_pairs(pairs, seed=seed).train:
        for ch in p.source:
            counts[ch] = counts.get(ch, 0) + 1
    return {ch for ch, n in counts.items() if n < min_count}, counts


@pytest.fixture(scope="module")
def unknown_token_run(tmp_path_factory):
    """A run trained with --min-symbol-count 2 and --recurrent-dropout 0.25 (attention, bidirectional), and its
    TFLite fp32 bundle; trained and exported once for the tests below."""
    if not __import__("conftest").HAS_TRAIN:
        pytest.skip("needs the [train] extra")
    from seq2seq_edge.export import export_bundle
    from seq2seq_edge.train import trainer

    tmp = tmp_path_factory.mktemp("unk")
    pairs, rare_in_test = _pairs_with_a_rare_symbol_in_test()
    tsv = tmp / "animals.tsv"
    tsv.write_text("".join(f"{p.source}\t{p.target}\n" for p in pairs), encoding="utf-8")
    # Trained until its probabilities are peaked: beam search on a near-uniform model meets near ties.
    cfg = trainer.task_defaults("data", data_file=str(tsv), latent_dim=16, epochs=40, batch_size=8, patience=0,
                                learning_rate=1e-2, min_symbol_count=2, recurrent_dropout=0.25, decoder="attention",
                                bidirectional=True)
    result = trainer.train(cfg, tmp / "run", force=True, quiet=True)
    gate = export_bundle(tmp / "run", tmp / "bundle", formats=["tflite"], quantize=["fp32"])
    return dict(tmp=tmp, pairs=pairs, rare_in_test=rare_in_test, result=result, gate=gate)


@pytest.mark.slow
def test_rare_input_symbols_become_the_unknown_token(unknown_token_run):
    from seq2seq_edge import text

    run = unknown_token_run
    rare, counts = _rare_in_training(run["pairs"])
    assert rare  # the copy task's letters seen once in training (j, x, ...)
    config = json.loads((run["tmp"] / "run" / "config.json").read_text())
    source = config["preprocessing"]["input"]
    assert source["unknown_token"] == text.UNKNOWN_TOKEN == "<s2s unk>"
    assert source["vocabulary"] == list(text.SPECIAL_TOKENS) + ["<s2s unk>"] + sorted(
        ch for ch, n in counts.items() if n >= 2)
    assert "unknown_token" not in config["preprocessing"]["target"]  # target symbols are never replaced
    assert set(counts) - set(source["vocabulary"]) == rare
    manifest = json.loads((run["tmp"] / "bundle" / "manifest.json").read_text())
    assert manifest["preprocessing"]["input"]["unknown_token"] == "<s2s unk>"
    metrics = json.loads((run["tmp"] / "run" / "metrics.json").read_text())
    training_letters = sum(counts.values())
    assert metrics["unknown_token"] == {"token": "<s2s unk>", "rare_symbols": len(rare),
                                        "replaced_tokens": sum(counts[ch] for ch in rare),
                                        "training_tokens": training_letters}
    # The test input with "ø" (never in training) is still counted, and now decoded rather than refused.
    assert metrics["held_out_with_unseen_symbols"] == {"validation": 0, "test": 1}
    assert metrics["undecoded"] == 0 and not metrics.get("undecoded_inputs")


@pytest.mark.slow
def test_a_never_seen_symbol_decodes_through_the_unknown_token(unknown_token_run):
    import seq2seq_edge
    from seq2seq_edge import text

    run = unknown_token_run
    rare, _ = _rare_in_training(run["pairs"])
    decoder = seq2seq_edge.load(run["tmp"] / "bundle", backend="litert")
    unk_id = decoder.preprocessing.input_vocabulary.index(text.UNKNOWN_TOKEN)
    assert unk_id == 3
    never_seen = "€"
    assert decoder.preprocessing.encode_input(f"ca{never_seen}") == decoder.preprocessing.encode_input(
        f"ca{min(rare)}")
    assert decoder.preprocessing.encode_input(f"ca{never_seen}")[-1] == unk_id
    # The runtime decodes it (no error), exactly as it decodes a rare training symbol: both are the unknown token.
    assert decoder.decode(f"ca{never_seen}") == decoder.decode(f"ca{min(rare)}")
    rc = subprocess.run([sys.executable, "-m", "seq2seq_edge.cli", "run", str(run["tmp"] / "bundle"),
                         f"ca{never_seen}"], capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    assert rc.stdout == decoder.decode(f"ca{never_seen}") + "\n"


@pytest.mark.slow
def test_recurrent_dropout_trains_and_exports_at_parity(unknown_token_run):
    run = unknown_token_run
    config = json.loads((run["tmp"] / "run" / "config.json").read_text())
    assert config["training"]["recurrent_dropout"] == 0.25 and config["training"]["min_symbol_count"] == 2
    (fp32,) = run["gate"]["variants"]
    assert fp32["passed"] and fp32["agreement"] == 1.0


def test_without_an_unknown_token_a_never_seen_symbol_is_still_an_error(digits_bundle):
    import seq2seq_edge
    from seq2seq_edge.errors import InputTextError

    decoder = seq2seq_edge.load(digits_bundle, backend="litert")
    assert decoder.preprocessing.unknown_token is None
    with pytest.raises(InputTextError, match=r"^input has 1 symbol\(s\) the model never saw: '€'$"):
        decoder.decode("7€")


def test_the_unknown_token_in_the_text_layer():
    from seq2seq_edge import text
    from seq2seq_edge.errors import InputTextError

    vocab = text.Vocabulary.build(["abab", "abc"], "char", min_count=2)
    assert vocab.tokens == text.SPECIAL_TOKENS + ("<s2s unk>", "a", "b") and vocab.unknown == "<s2s unk>"
    assert vocab.encode("cab€") == [3, 4, 5, 3]
    assert vocab.encode("cab€", skip_unknown=True) == [3, 4, 5, 3]  # nothing is unknown: nothing to skip
    assert text.Vocabulary.build(["abab", "abc"], "char").unknown is None  # min_count 1: every symbol kept
    assert text.Vocabulary.build(["aabb"], "char", min_count=2).tokens == text.SPECIAL_TOKENS + ("a", "b")
    with pytest.raises(InputTextError, match=r"^input has 2 symbol\(s\) the model never saw: 'c', '€'$"):
        text.Vocabulary(vocab.tokens[:3] + vocab.tokens[4:], "char").encode("cab€")
    with pytest.raises(ValueError, match=r"must be a vocabulary entry other than the reserved ones"):
        text.Vocabulary(vocab.tokens, "char", text.PAD_TOKEN)


@pytest.mark.parametrize("value, problem", [
    (5, "input.unknown_token must be a string of 1 to 256 characters, got 5"),
    ("", "input.unknown_token must be a string of 1 to 256 characters, got ''"),
    ("<s2s end>", "input.unknown_token must not be a reserved token, got '<s2s end>'"),
    ("x", "input.unknown_token 'x' is not an entry of input.vocabulary"),
])
def test_a_manifest_with_a_bad_unknown_token_is_refused(digits_bundle, tmp_path, value, problem):
    import shutil

    from seq2seq_edge.errors import BundleError
    from seq2seq_edge.manifest import BundleManifest

    bundle = tmp_path / "bundle"
    shutil.copytree(digits_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["preprocessing"]["input"]["unknown_token"] = value
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError) as e:
        BundleManifest.load(bundle)
    assert str(e.value) == f"{bundle / 'manifest.json'}: {problem}"


def test_the_unknown_token_field_in_a_manifest(digits_bundle):
    from seq2seq_edge.errors import BundleError
    from seq2seq_edge.manifest import BundleManifest

    manifest = json.loads((digits_bundle / "manifest.json").read_text())
    assert "unknown_token" not in manifest["preprocessing"]["input"]  # older manifests stay valid as they are
    manifest["preprocessing"]["target"]["unknown_token"] = "e"
    with pytest.raises(BundleError, match=r"^target.unknown_token is not allowed: only input symbols map to an "
                                          r"unknown token$"):
        BundleManifest.from_dict(manifest)
    del manifest["preprocessing"]["target"]["unknown_token"]
    manifest["preprocessing"]["input"]["unknown_token"] = "1"  # any data entry may be declared the unknown token
    prep = BundleManifest.from_dict(manifest).preprocessing
    assert prep.unknown_token == "1" and prep.to_dict()["input"]["unknown_token"] == "1"
    assert prep.encode_input("x") == [prep.input_vocabulary.index("1")]
    assert prep.input_codec.encode("7x") == [prep.input_vocabulary.index("7"), prep.input_vocabulary.index("1")]


@pytest.mark.parametrize("option, value, message", [
    ("--recurrent-dropout", "1", "--recurrent-dropout must be from 0 to below 1, got 1.0"),
    ("--label-smoothing", "-0.1", "--label-smoothing must be from 0 to below 1, got -0.1"),
    ("--weight-decay", "2", "--weight-decay must be from 0 to below 1, got 2.0"),
    ("--min-symbol-count", "0", "--min-symbol-count must be an integer of at least 1, got 0"),
    ("--average-checkpoints", "1", "--average-checkpoints must be 0 (off) or an integer of at least 2, got 1"),
    ("--attend-embeddings", None, "--attend-embeddings needs --decoder attention"),
    ("--attention-dropout", "0.2", "--attention-dropout needs --decoder attention"),
    ("--input-feeding", None, "--input-feeding needs --decoder attention"),
    ("--symbol-dropout", "0.25", "--symbol-dropout replaces symbols in length-bucketed batches: add --length-buckets"),
    ("--symbol-dropout", "-1", "--symbol-dropout must be from 0 to 100, got -1.0"),
    ("--symbol-dropout", "nan", "--symbol-dropout must be from 0 to 100, got nan"),
    ("--symbol-dropout", "inf", "--symbol-dropout must be from 0 to 100, got inf"),
    ("--r-drop", "-1", "--r-drop must be from 0 to 100, got -1.0"),
    ("--r-drop", "nan", "--r-drop must be from 0 to 100, got nan"),
    ("--r-drop", "101", "--r-drop must be from 0 to 100, got 101.0"),
    ("--r-drop", "inf", "--r-drop must be from 0 to 100, got inf"),
    ("--r-drop", "1", "--r-drop compares two dropout passes of each pair: it needs --dropout, --recurrent-dropout or "
     "--attention-dropout above 0"),
    ("--r-drop=1 --dropout", "0.2", "--r-drop doubles each length-bucketed batch: add --length-buckets (it is not "
     "available with --distribute)"),
    ("--r-drop=1 --dropout=0.2 --length-buckets --distribute mirrored", None,
     "--r-drop is not available with --distribute (it doubles length-bucketed batches; --distribute trains on "
     "padded arrays)"),
    ("--symbol-dropout=0.5 --length-buckets --distribute mirrored", None,
     "--symbol-dropout is not available with --distribute (it replaces symbols in length-bucketed batches; "
     "--distribute trains on padded arrays)"),
])
def test_invalid_hygiene_options_are_one_line_errors(tmp_path, option, value, message):
    # Without the test session's TF_CPP_MIN_LOG_LEVEL, as a user runs it: the options are checked before
    # TensorFlow is imported, so its native log lines cannot come before the error.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "seq2seq_edge.cli", "train", "--task", "digits", "--out",
                           str(tmp_path / "run"), "--time-budget", "30m", *option.split()] + ([value] if value else []),
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"s2s train: error: {message}"]
    assert not (tmp_path / "run").exists()


@requires_train
def test_symbol_dropout_replaces_rare_input_symbols_more_often():
    import numpy as np

    from seq2seq_edge import text
    from seq2seq_edge.train.batches import SymbolDropout

    unk = len(text.SPECIAL_TOKENS)
    a, b, c = unk + 1, unk + 2, unk + 3
    # a seen 9 times, b 3 times, c once; the unknown id itself is never replaced again
    enc = [[a, a, a, b], [a, a, a, b], [a, a, a, b, c]]
    dropout = SymbolDropout.from_training_ids(enc, unk + 4, unk, alpha=1.0)
    np.testing.assert_allclose(dropout.probabilities, [0, 0, 0, 0, 1 / 10, 1 / 4, 1 / 2])
    assert dropout.expected_share(enc) == pytest.approx((9 / 10 + 3 / 4 + 1 / 2) / 13)
    rng = np.random.default_rng(0)
    draws = np.array([dropout.apply([a, b, c, unk, text.END_ID], rng) for _ in range(20_000)])
    assert set(np.unique(draws[:, :3])) == {a, b, c, unk}
    assert (draws[:, 3] == unk).all() and (draws[:, 4] == text.END_ID).all()
    replaced = (draws[:, :3] == unk).mean(axis=0)
    np.testing.assert_allclose(replaced, [1 / 10, 1 / 4, 1 / 2], atol=0.01)


@requires_train
def test_symbol_dropout_draws_anew_each_epoch_and_leaves_targets_and_padding(tmp_path):
    import numpy as np

    from seq2seq_edge import text
    from seq2seq_edge.train import batches

    unk = len(text.SPECIAL_TOKENS)
    rng = np.random.default_rng(1)
    enc = [list(rng.integers(unk + 1, unk + 6, size=int(n))) for n in rng.integers(1, 7, size=40)]
    tgt = [list(rng.integers(unk, unk + 4, size=int(n))) for n in rng.integers(1, 5, size=40)]
    dropout = batches.SymbolDropout.from_training_ids(enc, unk + 6, unk, alpha=20.0)
    plain, dropped = (batches.length_bucketed(enc, tgt, 8, seed=3, symbol_dropout=d) for d in (None, dropout))
    plain_epochs, epochs = ([list(ds.as_numpy_iterator()) for _ in range(2)] for ds in (plain, dropped))
    masks = []
    for epoch, plain_epoch in zip(epochs, plain_epochs):
        mask = []
        for (x, y, w), (x0, y0, w0) in zip(epoch, plain_epoch):  # the batches and order it has without dropout
            enc_in, enc_in0 = x["input_ids"], x0["input_ids"]
            changed = enc_in != enc_in0
            assert (enc_in[changed] == unk).all() and (enc_in0[changed] > unk).all()  # never padding
            np.testing.assert_array_equal(x["decoder_input_ids"], x0["decoder_input_ids"])
            np.testing.assert_array_equal(y, y0)
            np.testing.assert_array_equal(w, w0)
            mask.append(changed)
        masks.append(np.concatenate([m.ravel() for m in mask]))
    assert 0 < masks[0].sum() and 0 < masks[1].sum() and (masks[0] != masks[1]).any()
    again = batches.length_bucketed(enc, tgt, 8, seed=3, symbol_dropout=dropout).as_numpy_iterator()
    for (x, _, _), (x1, _, _) in zip(again, epochs[0]):  # seeded: a new dataset's first epoch draws the same
        np.testing.assert_array_equal(x["input_ids"], x1["input_ids"])


@pytest.mark.slow
@requires_train
def test_symbol_dropout_trains_a_model_with_the_unknown_token(tmp_path, monkeypatch):
    from seq2seq_edge import text
    from seq2seq_edge.train import batches, trainer

    datasets = []  # what fit asked of length_bucketed: (pairs, its symbol dropout)
    bucketed = batches.length_bucketed

    def recorded(enc_ids, tgt_ids, *args, symbol_dropout=None, **kwargs):
        datasets.append((len(enc_ids), symbol_dropout))
        return bucketed(enc_ids, tgt_ids, *args, symbol_dropout=symbol_dropout, **kwargs)

    monkeypatch.setattr(batches, "length_bucketed", recorded)

    pairs, _ = _pairs_with_a_rare_symbol_in_test()
    tsv = tmp_path / "animals.tsv"
    tsv.write_text("".join(f"{p.source}\t{p.target}\n" for p in pairs), encoding="utf-8")
    cfg = trainer.task_defaults("data", data_file=str(tsv), latent_dim=16, epochs=2, batch_size=8,
                                symbol_dropout=0.5)
    trainer.train(cfg, tmp_path / "run", force=True, quiet=True)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["training"]["symbol_dropout"] == 0.5 and config["training"]["min_symbol_count"] == 1
    source = config["preprocessing"]["input"]
    # Every training symbol is kept, and the unknown token the batches used stands for unseen ones at run time.
    assert source["unknown_token"] == text.UNKNOWN_TOKEN and source["vocabulary"][3] == text.UNKNOWN_TOKEN
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["unknown_token"]["rare_symbols"] == 0 and metrics["unknown_token"]["replaced_tokens"] == 0
    assert metrics["held_out_with_unseen_symbols"]["test"] == 1 and metrics["undecoded"] == 0
    # The training batches, and only they, replace symbols, with the counts of the training split.
    (train_size, replacer), (validation_size, none) = datasets
    assert none is None and validation_size == config["splits"]["validation"]
    assert train_size == config["splits"]["train"] and replacer.unknown_id == 3
    letters = [ch for line in (tmp_path / "run" / "train.tsv").read_text(encoding="utf-8").splitlines()
               for ch in line.split("\t")[0]]
    share = sum(0.5 / (0.5 + letters.count(ch)) for ch in letters) / len(letters)
    assert metrics["symbol_dropout"] == {"alpha": 0.5, "expected_share": pytest.approx(share, abs=1e-6)}


@requires_train
def test_label_smoothing_loss_by_hand():
    import numpy as np

    from seq2seq_edge.train.trainer import smoothed_sparse_crossentropy

    probs = np.array([[[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]]], np.float32)
    got = np.asarray(smoothed_sparse_crossentropy(0.1)(np.array([[0, 2]]), probs))
    want = [-(0.9 * np.log(p[t]) + 0.1 * np.mean(np.log(p))) for p, t in zip(probs[0], (0, 2))]
    np.testing.assert_allclose(got[0], want, rtol=1e-6)


# ---- R-Drop (--r-drop) -----------------------------------------------------------------------------------------------
@requires_train
def test_r_drop_loss_by_hand():
    """Rows i and i + n of a batch of 2n are one pair's two passes: each row's loss is its smoothed cross-entropy
    plus alpha / 2 times KL(its distribution || the other pass's), for id targets and for distributions; two
    equal passes (no dropout) add nothing."""
    import numpy as np

    from seq2seq_edge.train.trainer import smoothed_sparse_crossentropy

    rng = np.random.default_rng(4)
    n, steps, vocabulary = 3, 2, 5
    logits = rng.normal(size=(2 * n, steps, vocabulary))
    probs = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    ids = rng.integers(0, vocabulary, size=(2 * n, steps))
    soft = rng.dirichlet(np.ones(vocabulary), size=(2 * n, steps)).astype(np.float32)
    for targets in (ids, soft):
        got = np.asarray(smoothed_sparse_crossentropy(0.1, r_drop=4.0)(targets, probs))
        for row in range(2 * n):
            other = (row + n) % (2 * n)  # the same pair's other pass
            for k in range(steps):
                p, q = probs[row, k].astype(np.float64), probs[other, k].astype(np.float64)
                target = targets[row, k] if targets.ndim == 3 else np.eye(vocabulary)[targets[row, k]]
                want = -(0.9 * np.sum(target * np.log(p)) + 0.1 * np.mean(np.log(p))) + 2.0 * np.sum(p * np.log(p / q))
                assert got[row, k] == pytest.approx(want, rel=1e-5), (row, k)
    same = np.concatenate([probs[:n], probs[:n]])
    np.testing.assert_allclose(np.asarray(smoothed_sparse_crossentropy(0.1, r_drop=4.0)(ids, same)),
                               np.asarray(smoothed_sparse_crossentropy(0.1)(ids, same)), rtol=1e-6)


@requires_train
def test_r_drop_batches_hold_each_pair_twice():
    """Each batch is the batch it is without R-Drop followed by a copy of itself, in the same order each epoch,
    with the same symbol replacements in both copies."""
    import numpy as np

    from seq2seq_edge import text
    from seq2seq_edge.train import batches

    unk = len(text.SPECIAL_TOKENS)
    rng = np.random.default_rng(2)
    enc = [list(rng.integers(unk + 1, unk + 6, size=int(n))) for n in rng.integers(1, 7, size=30)]
    tgt = [list(rng.integers(unk, unk + 4, size=int(n))) for n in rng.integers(1, 5, size=30)]
    dropout = batches.SymbolDropout.from_training_ids(enc, unk + 6, unk, alpha=20.0)
    plain, twice = (batches.length_bucketed(enc, tgt, 8, seed=5, symbol_dropout=dropout, twice=t)
                    for t in (False, True))
    for _ in range(2):  # two epochs
        for (x0, y0, w0), (x, y, w) in zip(plain.as_numpy_iterator(), twice.as_numpy_iterator(), strict=True):
            n = len(y0)
            assert len(y) == 2 * n
            for key in x0:
                np.testing.assert_array_equal(x[key], np.concatenate([x0[key], x0[key]]))
            np.testing.assert_array_equal(y, np.concatenate([y0, y0]))
            np.testing.assert_array_equal(w, np.concatenate([w0, w0]))


@requires_train
def test_r_drop_without_doubled_batches_is_refused_by_train(tmp_path):
    """A TrainConfig changed after task_defaults' checks (the Python API) is checked again by train(): R-Drop's
    loss cannot pair the wrong rows."""
    from dataclasses import replace

    from seq2seq_edge.errors import TrainOptionError
    from seq2seq_edge.train import trainer

    cfg = replace(trainer.task_defaults("data", data_file="pairs.tsv", r_drop=1.0), length_buckets=False)
    with pytest.raises(TrainOptionError, match=r"^--r-drop doubles each length-bucketed batch: add --length-buckets "
                                               r"\(it is not available with --distribute\)$"):
        trainer.train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _dropout_disagreement(model, x) -> float:
    """The mean symmetric KL divergence between two training-mode (dropout) passes of ``model`` over ``x``'s
    target tokens."""
    import numpy as np

    weights = (x["decoder_input_ids"] != 0).astype(np.float64)
    p, q = (np.clip(np.asarray(model(x, training=True), np.float64), 1e-9, 1.0) for _ in range(2))
    kl = np.sum((p - q) * (np.log(p) - np.log(q)), axis=-1)
    return float((kl * weights).sum() / weights.sum())


@pytest.mark.slow
@requires_train
def test_r_drop_makes_the_dropout_passes_agree(tmp_path):
    """What R-Drop trains for: two dropout passes of a model trained with --r-drop disagree far less than two
    passes of the same training without it; the run records the option; validation losses stay comparable."""
    import keras

    from seq2seq_edge.train import batches, trainer
    from seq2seq_edge.train.run_folder import RunFolder

    pairs, _ = _pairs_with_a_rare_symbol_in_test()
    tsv = tmp_path / "animals.tsv"
    tsv.write_text("".join(f"{p.source}\t{p.target}\n" for p in pairs), encoding="utf-8")
    disagreement, val_losses = {}, {}
    for alpha in (0.0, 10.0):
        cfg = trainer.task_defaults("data", data_file=str(tsv), latent_dim=16, epochs=30, batch_size=8, dropout=0.3,
                                    learning_rate=1e-2,
                                    r_drop=alpha, average_checkpoints=0, patience=0)
        run_dir = tmp_path / f"run-{alpha:g}"
        trainer.train(cfg, run_dir, force=True, quiet=True)
        config = json.loads((run_dir / "config.json").read_text())
        assert config["training"]["r_drop"] == alpha
        run = RunFolder(run_dir)
        prep = run.read_config().preprocessing
        x, _, _ = trainer.vectorize(run.read_split("train"), prep)
        keras.utils.set_random_seed(1)
        model = run.load_keras_model()
        disagreement[alpha] = _dropout_disagreement(model, x)
        model.compile(loss=trainer.smoothed_sparse_crossentropy(cfg.label_smoothing))
        validation = run.read_split("validation")
        val_data = batches.length_bucketed([prep.encode_input(p.source) for p in validation],
                                           [prep.target_codec.encode(p.target) for p in validation],
                                           cfg.batch_size, cfg.seed, shuffle=False)
        with open(run_dir / "history.csv", newline="") as f:
            logged = float(list(csv.DictReader(f))[-1]["val_loss"])
        val_losses[alpha] = (model.evaluate(val_data, verbose=0), logged)
    assert disagreement[10.0] < 0.2 * disagreement[0.0], disagreement  # measured: a tenth
    # With R-Drop, validation batches hold each pair twice and the divergence of two equal passes is 0: the
    # validation loss fit logged for the last epoch is the plain smoothed loss of the final weights.
    for recomputed, logged in val_losses.values():
        assert recomputed == pytest.approx(logged, rel=1e-4)
