"""The Python runtime against the shared test vectors (FIXTURES/vectors.json, tests/make_vectors.py), the file the
JavaScript, C and Kotlin tests read too. In the runtime-only venvs this is another install (numpy, one interpreter)
agreeing with the one that wrote the file; on TFLite, the same texts from the other model format."""

from __future__ import annotations

import importlib.util
import json

import pytest

import seq2seq_edge
from seq2seq_edge.errors import InputTextError
from seq2seq_edge.preprocessing import Preprocessing

from make_vectors import BUNDLES

HAS_ONNX = importlib.util.find_spec("onnxruntime") is not None
HAS_TFLITE = any(importlib.util.find_spec(m) is not None for m in ("tflite_runtime", "ai_edge_litert"))


@pytest.fixture(scope="module")
def vectors(fixture_dir):
    path = fixture_dir / "vectors.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing: python tests/make_vectors.py {fixture_dir}")
    return json.loads(path.read_text(encoding="utf-8"))


def _results(results):
    return [(r.text, list(r.tokens), r.finished) for r in results]


def _expected(items):
    return [(r["text"], r["tokens"], r["finished"]) for r in items]


@pytest.mark.skipif(not HAS_ONNX, reason="needs onnxruntime")
@pytest.mark.parametrize("bundle", BUNDLES)
def test_onnx_decodes_as_the_vectors_say(vectors, fixture_dir, bundle):
    for v in vectors["decodes"][bundle]:
        decoder = seq2seq_edge.load(fixture_dir / "bundles" / bundle, backend="onnx", variant=v["variant"],
                                    one_call=v["decode_path"] == "one-call")
        assert decoder.decode_path == v["decode_path"]
        batch = decoder.decode_batch_results(v["inputs"], batch_size=v["batch_size"])
        single = [decoder.decode_result(x) for x in v["inputs"]]
        where = f"{bundle} {v['variant']} {v['decode_path']}"
        assert _results(batch) == _expected(v["batch"]), where
        assert _results(single) == _expected(v["single"]), where
        for got, want in zip(batch + single, v["batch"] + v["single"]):
            assert got.token_probs == pytest.approx(want["token_probs"], abs=1e-6), where


@pytest.mark.skipif(not HAS_TFLITE, reason="needs tflite-runtime or ai-edge-litert")
@pytest.mark.parametrize("bundle", BUNDLES)
def test_tflite_fp32_gives_the_onnx_vectors_texts(vectors, fixture_dir, bundle):
    backend = "litert" if importlib.util.find_spec("ai_edge_litert") else "tflite"
    for v in vectors["decodes"][bundle]:
        if v["variant"] != "fp32":
            continue
        decoder = seq2seq_edge.load(fixture_dir / "bundles" / bundle, backend=backend,
                                    one_call=v["decode_path"] == "one-call")
        assert decoder.decode_batch(v["inputs"], batch_size=v["batch_size"]) == [r["text"] for r in v["batch"]]


def test_text_policy_answers_as_the_vectors_say(vectors):
    for policy in vectors["text"]:
        prep = Preprocessing.from_dict(policy["preprocessing"])
        for case in policy["cases"]:
            try:
                got = {"ids": prep.encode_input(case["input"], skip_unknown=policy["skip_unknown"])}
            except InputTextError as e:
                got = {"error": str(e)}
            want = {k: case[k] for k in ("ids", "error") if k in case}
            assert got == want, f"{policy['name']}: {case['input']!r}"


def test_mutated_models_are_judged_as_when_they_were_written(fixture_dir):
    """The seeded mutants of the fixture models (tests/mutants.py) get the verdict the training install's reader
    recorded, word for word: the runtime-only installs, and the other runtimes' tests, are held to the same list."""
    from make_crafted import _model_entry
    from seq2seq_edge.errors import BundleError
    from seq2seq_edge.loader import check_model_ops

    path = fixture_dir / "crafted" / "crafted.json"
    mutants = json.loads(path.read_text(encoding="utf-8"))["mutants"]
    assert len(mutants) >= 200 and 0 < sum(m["error"] is None for m in mutants) < len(mutants)
    for m in mutants:
        try:
            check_model_ops((path.parent / m["file"]).read_bytes(), _model_entry(m), m["file"], m["loop_limit"],
                            m["row_limit"])
            got = None
        except BundleError as e:
            got = str(e)
        assert got == m["error"], m["name"]


def test_crafted_models_are_judged_as_the_vectors_say(fixture_dir):
    """The crafted model files (tests/make_crafted.py) get the recorded verdict, message for message, from this
    install's reader: the JavaScript runtime is held to the same file."""
    from make_crafted import _model_entry
    from seq2seq_edge.errors import BundleError
    from seq2seq_edge.loader import check_model_ops

    path = fixture_dir / "crafted" / "crafted.json"
    if not path.is_file():
        pytest.fail(f"{path} is missing: python tests/make_crafted.py {fixture_dir}")
    cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
    assert sum(c["expect"] == "accepted" for c in cases) >= 30 and sum(c["expect"] == "refused" for c in cases) >= 20
    for case in cases:
        content = (path.parent / case["file"]).read_bytes()
        try:
            check_model_ops(content, _model_entry(case), case["file"], case["loop_limit"], case["row_limit"])
            got = None
        except BundleError as e:
            got = str(e)
        assert got == case["error"], case["name"]
        assert (got is None) == (case["expect"] == "accepted"), case["name"]  # the verdict stated by hand
