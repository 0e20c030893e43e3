"""Crafted model files every runtime that reads model bytes must judge as the Python runtime does.

    python tests/make_crafted.py FIXTURES      # writes FIXTURES/crafted/ and FIXTURES/crafted/crafted.json

Each case is one model file and the manifest entry it is checked against (format, role, operator list, the
role's loop limit in the digits bundle): the attacks of docs/trust.md (loops without a provable bound or above
the limit, a loop bound defined twice, a condition that lists a tensor twice, nested loops, allocations sized by
the input's values, external data, model-local functions, truncated files, operators the manifest does not list)
and every real model of the fixture bundles. ``error`` is the Python runtime's message (``loader.check_model_ops``)
word for word, or null when the file is accepted; ``expect`` is the verdict this script states for it by hand
("refused" for every attack but the two that must pass, "accepted" for the exporter's models), which the
Python reader must give when the file is written and which the tests check again, so a reader that starts
accepting an attack fails here and not only in another runtime. The JavaScript tests (``js/test/node.test.js``) and
``tests/test_vectors.py`` read it. Building the attacks needs the [train] extra (TensorFlow, tf2onnx).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from make_vectors import BUNDLES

CRAFTED_DIR = "crafted"
CRAFTED_FILE = "crafted.json"


def _entry(manifest, role: str, fmt: str) -> dict:
    e = manifest.find(role, fmt, "fp32")
    return {"format": fmt, "role": role, "ops": list(e.ops), "loop_limit": manifest.loop_limit(role),
            "inputs": [t.to_dict() for t in e.inputs], "row_limit": manifest.row_limit()}


def _attacks(bundle: Path) -> list[tuple[str, bytes, dict]]:
    """(name, bytes, entry) of every crafted case built from the digits bundle."""
    import craft
    from seq2seq_edge import backends
    from seq2seq_edge import manifest as mf
    from seq2seq_edge.backends import onnx_wire

    manifest = mf.BundleManifest.load(bundle)
    read = lambda name: (bundle / name).read_bytes()  # noqa: E731
    enc_onnx, step_onnx, greedy_tflite = read("encoder.fp32.onnx"), read("decoder_step.fp32.onnx"), read("greedy.fp32.tflite")
    (_, m_name, _), = onnx_wire.summarize(enc_onnx).loops
    encoder = {fmt: _entry(manifest, mf.ENCODER, fmt) for fmt in ("onnx", "tflite")}
    step, greedy = _entry(manifest, mf.DECODER_STEP, "onnx"), _entry(manifest, mf.GREEDY, "tflite")
    greedy_onnx = _entry(manifest, mf.GREEDY, "onnx")
    cases = [(f"onnx-loop-bound-defined-twice-{how}", craft.redefined_in_main_graph(enc_onnx, m_name, 10**12, how),
              encoder["onnx"]) for how in ("dense", "sparse", "input")]
    cases += [
        ("onnx-external-data", craft.with_graph_nodes(step_onnx, [craft.constant_node(
            "x", craft.external_tensor("w", "secret.bin"))]), step),
        ("onnx-function", craft.with_function(step_onnx, craft.function("f", [craft.constant_node(
            "y", craft.int64_tensor("c", 1))])), step),
        ("onnx-loop-in-the-step", craft.with_graph_nodes(step_onnx, [craft.loop_node()]), step),
        ("onnx-operator-of-another-domain", craft.with_graph_nodes(step_onnx, [craft.ld(1, "probs") + craft.ld(
            2, "z") + craft.ld(4, "Gelu") + craft.ld(7, "com.microsoft")]), step),
        ("onnx-truncated", enc_onnx[:len(enc_onnx) // 2], encoder["onnx"]),
        ("onnx-ops-not-in-the-manifest", step_onnx, {**step, "ops": step["ops"][1:]}),
        ("tflite-condition-lists-a-tensor-twice", craft.tflite_with_repeated_condition_input(greedy_tflite), greedy),
        ("tflite-loop-limit-raised", craft.patched_loop_limit(greedy_tflite, greedy["loop_limit"], 10**6), greedy),
        ("tflite-truncated", greedy_tflite[:len(greedy_tflite) // 2], greedy),
        ("tflite-not-a-flatbuffer", b"TFL3" * 64, greedy),
    ]
    cases += [(name, content, {**greedy_onnx, "ops": ops}) for name, content, ops in craft.protobuf_attacks()]
    # linear work in the value-sized check (it passes it), then refused by the shape proof: no signature
    cases.append(("tflite-fills-of-one-shared-size", craft.tflite_fills_of_one_shared_size(3000, 3000),
                  {**greedy, "ops": ["FILL", "CONCATENATION"], "proof": "shapes"}))
    for fmt, build in (("tflite", craft.tflite_file), ("onnx", craft.onnx_file)):
        for name, loop in (("unbounded-loop", craft.unbounded), ("loop-of-a-billion", craft.counted(10**9)),
                           ("nested-loops", craft.nested)):
            cases.append((f"{fmt}-encoder-{name}", build(craft.encoder_fn(manifest, loop)), encoder[fmt]))
        cases.append((f"{fmt}-encoder-allocation-sized-by-the-input",
                      build(craft.encoder_with_allocation(manifest)), encoder[fmt]))
    # The shape proof's attacks: "proof": "shapes" marks a verdict only a runtime that runs the proof of the case's
    # format gives (docs/trust.md says which do).
    for fmt, build in (("onnx", craft.onnx_file), ("tflite", craft.tflite_file)):
        for name, grow in (("batch-squared", craft.batch_squared), ("outer-product-of-the-batch", craft.outer_product),
                           ("loop-that-grows-what-it-carries", craft.growing_loop)):
            content = build(craft.encoder_growing(manifest, grow))
            cases.append((f"{fmt}-encoder-{name}", content,
                          {**encoder[fmt], "proof": "shapes", "ops": sorted(backends.model_ops(fmt, content))}))
    row = manifest.row_limit()
    for name, content in (
            ("onnx-encoder-constant-of-a-huge-constant-size", craft.with_constant_bomb(enc_onnx, mf.STATE_H, (50_000, 50_000))),
            ("onnx-encoder-zeros-at-the-row-limit", craft.with_zeros_per_row(enc_onnx, mf.STATE_H, mf.INPUT_IDS, row)),
            ("onnx-encoder-zeros-past-the-row-limit", craft.with_zeros_per_row(enc_onnx, mf.STATE_H, mf.INPUT_IDS, row + 1)),
            ("onnx-encoder-slice-bounded-by-values", craft.with_slice_bounded_by_values(enc_onnx, mf.STATE_H, mf.INPUT_IDS)),
            ("onnx-encoder-rank-17", craft.with_rank(enc_onnx, mf.STATE_H, 17)),
            ("onnx-encoder-reduce-without-axes-kept-whole", craft.reduce_without_axes_kept_whole()),
            ("onnx-encoder-bound-taken-for-a-value", craft.bound_taken_for_a_value()),
            ("onnx-encoder-contract-input-also-an-initializer", craft.contract_input_also_an_initializer())):
        cases.append((name, content, {**encoder["onnx"], "proof": "shapes", "ops": sorted(backends.model_ops("onnx", content))}))
    return cases


def _real_models(bundles: Path) -> list[tuple[str, bytes, dict]]:
    """Every fp32 and int8 model of the fixture bundles, as the exporter wrote it: accepted."""
    from seq2seq_edge import manifest as mf

    cases = []
    for name in BUNDLES:
        manifest = mf.BundleManifest.load(bundles / name)
        for m in manifest.models:
            if m.variant in ("fp32", "int8"):
                entry = {"format": m.format, "role": m.role, "ops": list(m.ops), "loop_limit": manifest.loop_limit(m.role),
                         "inputs": [t.to_dict() for t in m.inputs], "row_limit": manifest.row_limit()}
                cases.append((f"{name}-{m.path}", (bundles / name / m.path).read_bytes(), entry))
    return cases


#: The crafted files that must be accepted: the readers must not refuse more than protobuf or the proof says.
MUST_PASS = {"onnx-loop-bound-over-64-bits",         # protobuf keeps a varint's low 64 bits: M is 3, in the limit
             "onnx-encoder-zeros-at-the-row-limit",  # row_limit elements per batch row: the bound, not past it
             "onnx-encoder-slice-bounded-by-values"}  # a slice read from values is at most what it slices


def _model_entry(case: dict):
    """What ``loader.check_model_ops`` reads of a manifest entry, from a crafted case."""
    from types import SimpleNamespace

    from seq2seq_edge.manifest import TensorSpec

    return SimpleNamespace(format=case["format"], role=case["role"], ops=case["ops"],
                           inputs=tuple(TensorSpec.from_dict(t) for t in case["inputs"]))


def _verdict(out: Path, file: str, content: bytes, entry: dict) -> str | None:
    """Write ``content`` to OUT/FILE and return the Python reader's message for it (None: accepted)."""
    from seq2seq_edge.errors import BundleError
    from seq2seq_edge.loader import check_model_ops

    (out / file).write_bytes(content)
    try:
        check_model_ops(content, _model_entry(entry), file, entry["loop_limit"], entry["row_limit"])
        return None
    except BundleError as e:
        return str(e)


def make(fixtures: Path) -> Path:
    """Write FIXTURES/crafted/ (the model files and crafted.json) from the bundles under FIXTURES/bundles."""
    out = fixtures / CRAFTED_DIR
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    attacks = _attacks(fixtures / "bundles" / "digits")
    real = _real_models(fixtures / "bundles")
    for (name, content, entry), expect in ([(a, "accepted" if a[0] in MUST_PASS else "refused") for a in attacks]
                                           + [(r, "accepted") for r in real]):
        file = f"{name}.{entry['format']}"
        error = _verdict(out, file, content, entry)
        if (error is None) != (expect == "accepted"):
            raise AssertionError(f"{name}: the Python reader says {error or 'accepted'}; it must be {expect}")
        cases.append({"name": name, "file": file, **entry, "expect": expect, "error": error})
    path = out / CRAFTED_FILE
    doc = {"cases": cases, "mutants": _mutants(fixtures / "bundles", out)}
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


#: Mutants per model (tests/mutants.py), of the digits and attention bundles' fp32 and int8 models.
MUTANTS_PER_MODEL = 20


def _mutants(bundles: Path, out: Path) -> list[dict]:
    """Seeded mutants of the fixture models with the Python reader's verdict (``error``, null when accepted): not
    stated by hand, but recorded so that every other runtime gives the same one, word for word."""
    import mutants
    from seq2seq_edge import manifest as mf

    folder = out / "mutants"
    folder.mkdir(exist_ok=True)
    models, entries = [], {}
    for name in ("digits", "attention"):
        manifest = mf.BundleManifest.load(bundles / name)
        for m in manifest.models:
            if m.variant in ("fp32", "int8"):
                label = f"{name}-{m.path}"
                models.append((label, m.format, (bundles / name / m.path).read_bytes()))
                entries[label] = {"format": m.format, "role": m.role, "ops": list(m.ops),
                                  "loop_limit": manifest.loop_limit(m.role), "inputs": [t.to_dict() for t in m.inputs],
                                  "row_limit": manifest.row_limit()}
    records = []
    for name, label, content in mutants.mutants(models, MUTANTS_PER_MODEL):
        entry = entries[label]
        file = f"mutants/{name}"
        error = _verdict(out, file, content, entry)
        records.append({"name": name, "file": file, **entry, "error": error})
    accepted = sum(r["error"] is None for r in records)
    if not 0 < accepted < len(records):
        raise AssertionError(f"the mutants are all {'accepted' if accepted else 'refused'}: they test nothing")
    return records


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    print(make(Path(sys.argv[1])))
