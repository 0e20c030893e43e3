"""Metrics that cannot hide a failure class: the scoring of training and ``s2s eval``, buckets and all."""

import inspect
import json
import re
import subprocess
import sys

import pytest

from conftest import requires_train
from seq2seq_edge.evaluation import metrics
from support import HEAVY, one_error_line, s2s


# -- the scoring functions ------------------------------------------------------------------------------------
def test_edit_distance():
    assert metrics.edit_distance("kitten", "sitting") == 3
    assert metrics.edit_distance("", "abc") == metrics.edit_distance("abc", "") == 3
    assert metrics.edit_distance("same", "same") == 0
    assert metrics.edit_distance("ab", "ba") == 2
    assert metrics.edit_distance(["twenty", "one"], ["twenty", "two"]) == 1  # tokens, not characters
    assert metrics.edit_distance(["a", "b", "c"], ("a", "c")) == 1
    assert metrics.edit_distance("flaw", "lawn") == 2


def test_rates_of_lists():
    assert metrics.exact_match(["a", "b"], ["a", "c"]) == 0.5
    assert metrics.character_error_rate(["kitten", "x"], ["sitting", "x"]) == 3 / 8
    assert metrics.token_error_rate(["x z", "p q"], ["x y z", "p q"]) == 1 / 5


#: Space-tokenized targets. "a"'s reference has stray spaces (the model writes "x y"); "d" is listed twice: its
#: first reference is wrong, its second right; "cc" could not be decoded (None).
TRIPLES = [("a", " x  y", "x y"), ("b", "x y z", "x z"), ("cc", "p q", None), ("d", "m", "n"), ("d", "n", "n")]


def test_score_overall_any_reference_and_undecoded():
    s = metrics.score(TRIPLES, "space", reasons={"cc": "unknown symbol"})
    assert (s["pairs"], s["inputs"], s["exact"], s["undecoded"]) == (5, 4, 1, 1)
    assert s["exact_match"] == 0.25
    assert s["character_error_rate"] == 6 / 12    # 0 + 2 ("y " deleted) + 3 (all of "p q") + 1, over 3+5+3+1
    assert s["word_error_rate"] == 4 / 8          # 0 + 1 + 2 + 1, over 2+3+2+1 words
    assert s["any_reference"] == {"inputs_with_several": 1, "exact": 2, "exact_match": 0.5,
                                  "character_error_rate": 5 / 12, "word_error_rate": 3 / 8}
    assert s["undecoded_inputs"] == [{"input": "cc", "reason": "unknown symbol"}]
    assert s["errors"] == [{"input": "b", "expected": "x y z", "got": "x z"},
                           {"input": "cc", "expected": "p q", "got": None},
                           {"input": "d", "expected": "m", "got": "n", "references": ["m", "n"]}]


def test_score_buckets_and_worst():
    s = metrics.score(TRIPLES, "space")
    assert s["by_input_length"] == [
        {"length": "1", "min": 1, "max": 1, "count": 3, "exact": 1, "exact_match": 1 / 3,
         "character_error_rate": 3 / 9, "word_error_rate": 2 / 6},
        {"length": "2", "min": 2, "max": 2, "count": 1, "exact": 0, "exact_match": 0.0,
         "character_error_rate": 1.0, "word_error_rate": 1.0}]
    assert [(b["length"], b["count"], b["exact"]) for b in s["by_output_length"]] == [("1", 1, 0), ("2", 2, 1),
                                                                                        ("3", 1, 0)]
    assert s["by_output_length"][1]["character_error_rate"] == 3 / 6
    assert s["by_output_length"][2]["word_error_rate"] == 1 / 3
    # Only buckets of at least MIN_WORST_COUNT inputs are ranked when there are any.
    assert [(w["by"], w["length"]) for w in s["worst_buckets"]] == [("input_length", "1")]
    assert [e["input"] for e in s["worst_buckets"][0]["errors"]] == ["b", "d"]
    assert metrics.worst_lines(s) == ["inputs of length 1: 1/3 exact (33.3%), CER 0.3333, WER 0.3333"]


def test_buckets_lengths_and_ranking():
    assert [metrics.bucket_of(n) for n in (0, 1, 10, 11, 20, 21, 40, 41, 81, 200)] == [
        (0, 0), (1, 1), (10, 10), (11, 20), (11, 20), (21, 40), (21, 40), (41, 80), (81, 160), (161, 320)]
    # The motivating failure: long inputs are nearly all right, single digits nearly all wrong.
    triples = [(str(n), f"w{n}", f"w{n}") for n in range(1000, 1990)]
    triples += [(str(d), f"w{d}", f"w{d}" if d == 0 else "w") for d in range(10)]  # CER 9 / 20
    s = metrics.score(triples, "char", max_errors=2)
    assert s["exact_match"] == 0.991 and "word_error_rate" not in s
    assert [(b["length"], b["count"], b["exact"]) for b in s["by_input_length"]] == [("1", 10, 1), ("4", 990, 990)]
    assert [(b["by"], b["length"]) for b in s["worst_buckets"]] == [("input_length", "1")]  # output 2: same inputs
    assert len(s["worst_buckets"][0]["errors"]) == 2 and len(s["errors"]) == 2
    report = metrics.format_report(s)
    assert "inputs of length 1: 1/10 exact (10.0%)" in report
    assert re.search(r"^  1 +10 +1/10 +10\.0% +0\.4500$", report, re.M)
    # With no bucket of MIN_WORST_COUNT inputs, the failing ones are ranked anyway: lowest exact match first,
    # then the larger bucket, then the higher CER.
    s = metrics.score([("a", "x", "y"), ("bb", "xx", "xx"), ("bb2", "x", "x"), ("ccc", "xxx", "xxy")], "char")
    assert [(b["by"], b["length"], b["exact"], b["count"]) for b in s["worst_buckets"]] == [
        ("input_length", "1", 0, 1), ("output_length", "3", 0, 1), ("output_length", "1", 1, 2)]


def test_score_of_nothing_and_bad_tokenization():
    s = metrics.score([], "space")
    assert (s["inputs"], s["exact_match"], s["character_error_rate"], s["word_error_rate"]) == (0, 0.0, 0.0, 0.0)
    assert s["worst_buckets"] == [] and "none: every input is exact" in metrics.format_report(s)
    with pytest.raises(ValueError, match="unknown tokenization"):
        metrics.score(TRIPLES, "bpe")


# -- s2s eval ---------------------------------------------------------------------------------------------------
#: The digits bundle decodes 1-9 right. "3" has a wrong reference; "4" two references, the first wrong; "x" is a
#: symbol the model never saw and "12" is longer than its inputs: both are scored as errors.
DIGITS_TSV = "1\tone\n2\ttwo\n3\ttree\n4\tvier\n4\tfour\nx\tex\n12\ttwelve\n"


@pytest.fixture
def digits_tsv(tmp_path):
    path = tmp_path / "digits.tsv"
    path.write_text(DIGITS_TSV, encoding="utf-8")
    return path


def test_eval_json_figures(digits_bundle, digits_tsv):
    rc, out, err = s2s("eval", digits_bundle, digits_tsv, "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert (r["variant"], r["decoding"], r["file"]) == ("fp32", "greedy", str(digits_tsv))
    assert r["backend"] in ("litert", "tflite", "onnx")
    assert (r["pairs"], r["inputs"], r["exact"], r["undecoded"]) == (7, 6, 2, 2)
    assert r["exact_match"] == 2 / 6
    # distances 0, 0, 1 (three/tree), 3 (four/vier), 2 (ex), 6 (twelve) over 3+3+4+4+2+6 characters
    assert r["character_error_rate"] == 12 / 22 and "word_error_rate" not in r
    assert r["any_reference"] == {"inputs_with_several": 1, "exact": 3, "exact_match": 0.5,
                                  "character_error_rate": 9 / 22}
    assert r["undecoded_inputs"] == [
        {"input": "x", "reason": "input has 1 symbol(s) the model never saw: 'x'"},
        {"input": "12", "reason": "input is 2 tokens long; the model takes at most 1"}]
    assert [(b["length"], b["count"], b["exact"], b["character_error_rate"]) for b in r["by_input_length"]] == [
        ("1", 5, 2, 6 / 16), ("2", 1, 0, 1.0)]
    assert [(b["length"], b["count"], b["exact"]) for b in r["by_output_length"]] == [
        ("2", 1, 0), ("3", 2, 2), ("4", 2, 0), ("6", 1, 0)]
    assert [(w["by"], w["length"], w["exact"], w["count"]) for w in r["worst_buckets"]] == [("input_length", "1", 2, 5)]
    assert r["errors"] == [{"input": "3", "expected": "tree", "got": "three"},
                           {"input": "4", "expected": "vier", "got": "four", "references": ["vier", "four"]},
                           {"input": "x", "expected": "ex", "got": None},
                           {"input": "12", "expected": "twelve", "got": None}]


def test_eval_text_report(digits_bundle, digits_tsv):
    rc, out, err = s2s("eval", digits_bundle, digits_tsv, "--max-errors", "1")
    assert rc == 0, err
    assert out.splitlines()[1] == "exact match 33.3% (2/6), CER 0.5455 on 6 inputs (7 pairs)"
    assert "any reference (1 input with several): exact match 50.0% (3/6), CER 0.4091" in out
    assert ("2 inputs could not be decoded (scored as errors): 'x' (input has 1 symbol(s) the model never saw: "
            "'x') ...") in out  # --max-errors 1: one is listed
    table = out[out.index("by input length (characters):"):].splitlines()[:4]
    assert table == ["by input length (characters):",
                     "  length  count  exact  exact %     CER",
                     "  1           5    2/5    40.0%  0.3750",
                     "  2           1    0/1     0.0%  1.0000"]
    assert "  inputs of length 1: 2/5 exact (40.0%), CER 0.3750\n    '3': expected 'tree', got 'three'\n" in out


def test_eval_scores_a_bundle_as_training_scored_its_run(numbers_bundle, fixture_dir):
    """fp32 decodes exactly as Keras does (the parity gate), so the bundle on the run's test split gets the
    figures of the run's metrics.json; space targets add WER."""
    rc, out, err = s2s("eval", numbers_bundle, fixture_dir / "runs" / "numbers" / "test.tsv", "--json")
    assert rc == 0, err
    r = json.loads(out)
    trained = json.loads((fixture_dir / "runs" / "numbers" / "metrics.json").read_text())
    assert r["pairs"] == trained["test_pairs"] and "word_error_rate" in r
    for key in ("exact_match", "character_error_rate", "word_error_rate"):
        assert r[key] == pytest.approx(trained[key]), key
    for key in ("by_input_length", "by_output_length"):  # lists of buckets: compare each bucket's figures
        assert [b["length"] for b in r[key]] == [b["length"] for b in trained[key]], key
        for got, want in zip(r[key], trained[key]):
            assert got == pytest.approx(want), (key, want["length"])


@pytest.mark.skipif("beam_size" not in inspect.signature(
    __import__("seq2seq_edge").Seq2SeqDecoder.decode_batch_results).parameters,
    reason="the decoder has no beam search yet")
def test_eval_with_beam(digits_bundle, digits_tsv):
    rc, out, err = s2s("eval", digits_bundle, digits_tsv, "--json", "--beam", "3")
    assert rc == 0, err
    r = json.loads(out)
    assert (r["decoding"], r["beam_size"], r["exact"], r["inputs"], r["undecoded"]) == ("beam 3", 3, 2, 6, 2)


def test_eval_user_errors_are_one_line(digits_bundle, digits_tsv, tmp_path):
    rc, _, err = s2s("eval", digits_bundle, tmp_path / "missing.tsv")
    assert rc == 2 and one_error_line(err).endswith("missing.tsv: no such file")
    rc, _, err = s2s("eval", tmp_path, digits_tsv)
    assert rc == 2 and one_error_line(err).startswith("s2s eval: error: ")
    bad = tmp_path / "bad.tsv"
    bad.write_text("1\tone\n2 two\n")
    rc, _, err = s2s("eval", digits_bundle, bad)
    assert rc == 2 and one_error_line(err).endswith("bad.tsv:2: no TAB between input and target")
    for flag, value, message in (("--beam", 0, "--beam must be between 1 and 64, got 0"),
                                 ("--batch-size", 0, "--batch-size must be between 1 and"),
                                 ("--max-errors", -1, "--max-errors must be 0 or more")):
        rc, _, err = s2s("eval", digits_bundle, digits_tsv, flag, value)
        assert rc == 2 and message in one_error_line(err)


IMPORT_SCRIPT = """
import json, sys
from seq2seq_edge import load
from seq2seq_edge.evaluation import evaluate
from seq2seq_edge.evaluation import metrics
result = evaluate.evaluate(load(sys.argv[1]), [("1", "one"), ("2", "deux")])
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"exact": result["exact"], "heavy": heavy}))
"""


def test_eval_imports_no_heavy_module(digits_bundle):
    proc = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT, str(digits_bundle), json.dumps(HEAVY)],
                          capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"exact": 1, "heavy": []}


# -- training writes the same figures ---------------------------------------------------------------------------
@pytest.mark.slow
@requires_train
def test_training_metrics_have_the_buckets(tmp_path):
    from seq2seq_edge.train import trainer

    result = trainer.train(trainer.task_defaults("digits", epochs=2), tmp_path / "run", quiet=True)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written == json.loads(json.dumps(result))
    assert {"test_pairs", "exact_match", "character_error_rate", "errors", "epochs_run"} <= set(written)
    assert "word_error_rate" not in written and written["test_pairs"] == written["inputs"] == 9
    assert [(b["length"], b["count"]) for b in written["by_input_length"]] == [("1", 9)]
    assert [(b["length"], b["count"]) for b in written["by_output_length"]] == [("3", 3), ("4", 3), ("5", 3)]
    assert sum(b["exact"] for b in written["by_input_length"]) == written["exact"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert report.startswith("# run: test split\n") and "## by input length (characters)" in report
    assert "| 1 | 9 | " in report
