"""The test vectors every runtime checks itself against: the Python runtime's outputs, written once as JSON.

    python tests/make_vectors.py FIXTURES      # writes FIXTURES/vectors.json (needs onnxruntime)

``decodes``: for each fixture bundle (``BUNDLES``), each ONNX variant and each greedy path
(``step-loop``; ``one-call`` where the bundle has a greedy model), the bundle's golden inputs decoded as one batch
(``batch_size`` rows per call) and one by one: text, tokens, per-token probabilities and ``finished``. Dynamic int8
quantization depends on the batch's values, so both are given.

``text``: awkward inputs through the text policy of a manifest's ``preprocessing`` section: the ids, or the
``InputTextError`` message word for word. Inputs are valid Unicode (lone surrogates cannot cross UTF-8; the
JavaScript tests keep those).

The Python, JavaScript, C (``c/``) and Kotlin (``kotlin/``) tests read this file; a difference in any runtime
fails CI. Everything here is computed by the Python runtime from the fixtures; nothing is typed by hand.

    python tests/make_vectors.py --lines VECTORS BUNDLE VARIANT DECODE_PATH inputs|batch|single

prints one vector's inputs or result texts, one per line (no third-party import: the CLI tests use it).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

VECTORS_FILE = "vectors.json"
#: The fixture bundles (tests/make_fixtures.py), in the order every runtime's tests list them.
BUNDLES = ("digits", "numbers", "attention", "embeddings", "ensemble")
BATCH_SIZE = 32

#: Inputs that have tripped text policies: combining marks, Unicode spaces and separators, controls, emoji,
#: digits of other scripts, quotes and backslashes (they appear in error messages), limits.
AWKWARD_INPUTS = [
    "1", "e\u0301", "\u00e9", "1\u00a02", "1\u20002", "1\u200b2", "1\ufeff2", "1\x1c2", "1\x852", " 12 ", "\t1\n",
    "", "z", "'", "\"'", "\\", "\U0001f600", "\u0000", "\u007f", "\u2028", "\u00e91z\U0001f600\u0000",
    "abcdefghijklmnop", "1" * 300, "1" * 2000, "\u0663", "\u216b", "1 2 3 4", "one two", "one  two\u3000three",
    "A\u030a", "\u212b", "\ufb01", "12\u0301", "\u00e9\u00e9\u00e9\u00e9", "z\u00e9z\u00e9zz",
]


def text_policies(numbers_manifest: dict) -> list[dict]:
    """The preprocessing sections the text vectors run through: the numbers bundle's (char inputs) with some
    non-ASCII symbols added, and space-tokenized inputs without and with an unknown token."""
    base = numbers_manifest["preprocessing"]
    char = copy.deepcopy(base)
    char["input"]["vocabulary"] += ["\u00e9", "\U0001f600", " ", "\u00c5"]
    space = copy.deepcopy(base)
    space["input"].update(tokenization="space", max_tokens=3,
                          vocabulary=base["input"]["vocabulary"][:3] + ["<s2s unk>", "1", "2", "one", "two", "three",
                                                                        "\u00e9"])
    unknown = copy.deepcopy(space)
    unknown["input"]["unknown_token"] = "<s2s unk>"
    return [
        {"name": "char inputs", "preprocessing": char, "skip_unknown": False},
        {"name": "char inputs, skip_unknown", "preprocessing": char, "skip_unknown": True},
        {"name": "space inputs", "preprocessing": space, "skip_unknown": False},
        {"name": "space inputs with an unknown token", "preprocessing": unknown, "skip_unknown": False},
    ]


def decode_vectors(bundle: Path) -> list[dict]:
    import seq2seq_edge
    from seq2seq_edge import manifest as mf

    manifest = json.loads((bundle / mf.MANIFEST_FILE).read_text(encoding="utf-8"))
    inputs = [item["input"] for item in json.loads((bundle / mf.GOLDEN_FILE).read_text(encoding="utf-8"))["items"]]
    out = []
    for variant in ("fp32", "int8"):
        roles = {m["role"] for m in manifest["models"] if m["format"] == "onnx" and m["variant"] == variant}
        if not {"encoder", "decoder_step"} <= roles:
            continue
        for one_call in ([False, True] if "greedy" in roles else [False]):
            decoder = seq2seq_edge.load(bundle, backend="onnx", variant=variant, one_call=one_call)
            out.append({
                "format": "onnx", "variant": variant, "decode_path": decoder.decode_path, "batch_size": BATCH_SIZE,
                "inputs": inputs,
                "batch": [r.to_dict() for r in decoder.decode_batch_results(inputs, batch_size=BATCH_SIZE)],
                "single": [decoder.decode_result(x).to_dict() for x in inputs],
            })
    return out


def text_vectors(numbers_manifest: dict) -> list[dict]:
    from seq2seq_edge.errors import InputTextError
    from seq2seq_edge.preprocessing import Preprocessing

    out = []
    for policy in text_policies(numbers_manifest):
        prep = Preprocessing.from_dict(policy["preprocessing"])
        cases = []
        for text in AWKWARD_INPUTS:
            try:
                case = {"ids": prep.encode_input(text, skip_unknown=policy["skip_unknown"])}
            except InputTextError as e:
                case = {"error": str(e)}
            # utf8_bytes: for readers whose JSON strings end at a NUL (cJSON), the input's length in UTF-8
            cases.append({"input": text, "utf8_bytes": len(text.encode("utf-8")), **case})
        out.append({**policy, "cases": cases})
    return out


def make(fixtures: Path) -> Path:
    """Write FIXTURES/vectors.json from the bundles under FIXTURES/bundles; returns its path."""
    bundles = fixtures / "bundles"
    numbers = json.loads((bundles / "numbers" / "manifest.json").read_text(encoding="utf-8"))
    vectors = {
        "description": __doc__.split("\n\n")[0],
        "decodes": {name: decode_vectors(bundles / name) for name in BUNDLES},
        "text": text_vectors(numbers),
    }
    path = fixtures / VECTORS_FILE
    path.write_text(json.dumps(vectors, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def lines(vectors: Path, bundle: str, variant: str, decode_path: str, field: str) -> list[str]:
    """One decode vector's ``inputs``, or the texts of its ``batch`` or ``single`` results: what the C and Kotlin
    command-line tests pipe through their CLIs and compare with."""
    for v in json.loads(Path(vectors).read_text(encoding="utf-8"))["decodes"][bundle]:
        if v["variant"] == variant and v["decode_path"] == decode_path:
            return v["inputs"] if field == "inputs" else [r["text"] for r in v[field]]
    sys.exit(f"{vectors}: no {bundle} {variant} {decode_path} decodes")


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--lines":
        print("\n".join(lines(Path(sys.argv[2]), *sys.argv[3:])))
    elif len(sys.argv) == 2:
        print(make(Path(sys.argv[1])))
    else:
        sys.exit("usage: python tests/make_vectors.py FIXTURES\n"
                 "       python tests/make_vectors.py --lines VECTORS BUNDLE VARIANT DECODE_PATH inputs|batch|single")
