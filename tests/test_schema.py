"""The JSON Schema of manifest.json (runtime/schema.py): the copy the JavaScript runtime checks manifests with
(js/src/manifest.schema.json) is the generated one, every fixture manifest is valid under it, and it refuses what
the Python validator refuses."""

import copy
import json
from pathlib import Path

import pytest

from seq2seq_edge import manifest as mf
from seq2seq_edge import schema

COMMITTED = Path(__file__).resolve().parent.parent / "js" / "src" / "manifest.schema.json"
from make_vectors import BUNDLES


def test_committed_schema_is_the_generated_one():
    assert COMMITTED.read_text(encoding="utf-8") == schema.dumps(), (
        "js/src/manifest.schema.json is stale: run `python -m seq2seq_edge.schema > js/src/manifest.schema.json`")


def test_schema_reads_the_python_constants():
    s = schema.manifest_schema()
    assert s["properties"]["version"] == {"const": mf.MANIFEST_VERSION}
    assert s["properties"]["models"]["maxItems"] == mf.MAX_MODELS
    assert s["properties"]["model"]["properties"]["architecture"]["enum"] == list(mf.ARCHITECTURES)
    assert s["x-contract"]["names"]["probs"] == mf.PROBS


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema")
    cls = jsonschema.validators.validator_for(schema.manifest_schema())
    cls.check_schema(schema.manifest_schema())
    return cls(schema.manifest_schema())


@pytest.mark.parametrize("name", BUNDLES)
def test_fixture_manifests_are_valid(validator, fixture_dir, name):
    d = json.loads((fixture_dir / "bundles" / name / "manifest.json").read_text(encoding="utf-8"))
    assert [e.message for e in validator.iter_errors(d)] == []
    assert mf.validate_manifest_dict(d) == []


def _mutations():
    def drop(key):
        return lambda d: d.pop(key)

    def setter(path, value):
        def apply(d):
            node = d
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = value
        return apply

    return {
        "version 2": setter(["version"], 2),
        "no models": drop("models"),
        "no preprocessing": drop("preprocessing"),
        "wrong format": setter(["format"], "something-else"),
        "normalization NFD": setter(["preprocessing", "normalization"], "NFD"),
        "tokenization word": setter(["preprocessing", "input", "tokenization"], "word"),
        "max_tokens 0": setter(["preprocessing", "target", "max_tokens"], 0),
        "max_tokens too big": setter(["preprocessing", "input", "max_tokens"], 4097),
        "vocabulary without specials": lambda d: d["preprocessing"]["input"]["vocabulary"].pop(0),
        "latent_dim string": setter(["model", "latent_dim"], "32"),
        "unknown architecture": setter(["model", "architecture"], "transformer"),
        "attention dim on a seed model": setter(["model", "encoder_output_dim"], 32),
        "path outside the bundle": setter(["models", 0, "path"], "../encoder.onnx"),
        "sha256 uppercase": lambda d: d["models"][0].update(sha256=d["models"][0]["sha256"].upper()),
        "size 0": setter(["models", 0, "size_bytes"], 0),
        "fp16 onnx": lambda d: d["models"].__setitem__(
            0, dict(d["models"][[m["format"] for m in d["models"]].index("onnx")], variant="fp16")),
        "shape with 0": setter(["models", 0, "inputs", 0, "shape"], [0, 1]),
        "target unknown token": setter(["preprocessing", "target", "unknown_token"], "one"),
        "reserved unknown token": setter(["preprocessing", "input", "unknown_token"], "<s2s pad>"),
        "empty unknown token": setter(["preprocessing", "input", "unknown_token"], ""),
    }


@pytest.mark.parametrize("case", sorted(_mutations()))
def test_schema_refuses_what_python_refuses(validator, fixture_dir, case):
    d = json.loads((fixture_dir / "bundles" / "digits" / "manifest.json").read_text(encoding="utf-8"))
    bad = copy.deepcopy(d)
    _mutations()[case](bad)
    assert mf.validate_manifest_dict(bad) != []
    assert list(validator.iter_errors(bad)) != []


def test_an_input_unknown_token_is_valid(validator, fixture_dir):
    d = json.loads((fixture_dir / "bundles" / "digits" / "manifest.json").read_text(encoding="utf-8"))
    d["preprocessing"]["input"]["unknown_token"] = d["preprocessing"]["input"]["vocabulary"][3]
    assert mf.validate_manifest_dict(d) == []
    assert [e.message for e in validator.iter_errors(d)] == []
