"""Export: the bundle's contents, graph quality, the manifest contract, and a parity gate that can fail."""

import hashlib
import json
import shutil

import pytest

from conftest import requires_train, resign
from seq2seq_edge import manifest as mf

pytestmark = requires_train


def test_bundle_holds_both_graphs_in_every_format_and_variant(digits_bundle):
    manifest = mf.BundleManifest.load(digits_bundle)
    assert manifest.variants("tflite") == ["fp32", "fp16", "int8"]
    assert manifest.variants("onnx") == ["fp32", "int8"]
    for m in manifest.models:
        content = (digits_bundle / m.path).read_bytes()
        assert hashlib.sha256(content).hexdigest() == m.sha256 and len(content) == m.size_bytes
        assert not {"IF", "If", "Scan", "CALL_ONCE"} & set(m.ops)
        # loops only where the exporter writes them: the encoder (over the real length) and the greedy model
        assert bool({"WHILE", "Loop"} & set(m.ops)) == (m.role != mf.DECODER_STEP)
        assert not [op for op in m.ops if op.startswith("Flex")]
        if m.format == "onnx":
            assert (m.opset, m.ir_version) == (17, 8)
        else:
            assert m.signature == "serving_default"
    fp32 = {m.role: m for m in manifest.models if m.variant == "fp32" and m.format == "tflite"}
    assert [t.name for t in fp32[mf.DECODER_STEP].inputs] == ["prev_token", "state_h", "state_c"]
    assert {t.name: t.shape for t in fp32[mf.DECODER_STEP].outputs} == {
        "probs": (-1, 17), "next_state_h": (-1, 32), "next_state_c": (-1, 32)}
    assert manifest.preprocessing.target_vocabulary[:3] == ("<s2s pad>", "<s2s start>", "<s2s end>")
    # a one-call greedy model for every variant but ONNX int8 (its quantizer does not reach into a Loop)
    assert sorted((m.format, m.variant) for m in manifest.models if m.role == mf.GREEDY) == [
        ("onnx", "fp32"), ("tflite", "fp16"), ("tflite", "fp32"), ("tflite", "int8")]
    assert {t.name: t.shape for t in fp32[mf.GREEDY].outputs} == {"output_ids": (-1, 6), "output_probs": (-1, 6)}
    assert "one_call" in json.loads((digits_bundle / "manifest.json").read_text())["model"]
    for name in ("parity.json", "parity.md", "golden.json", "report.md"):
        assert (digits_bundle / name).is_file()


def test_int8_files_are_smaller(numbers_bundle):
    manifest = mf.BundleManifest.load(numbers_bundle)
    size = {(m.role, m.format, m.variant): m.size_bytes for m in manifest.models}
    for fmt in ("tflite", "onnx"):
        assert size[(mf.DECODER_STEP, fmt, "int8")] < size[(mf.DECODER_STEP, fmt, "fp32")]


def test_gate_figures_and_golden_outputs(numbers_bundle, digits_bundle):
    parity = json.loads((numbers_bundle / "parity.json").read_text())
    assert parity["passed"] and parity["inputs"] == 200
    for v in parity["variants"]:
        if v["variant"] == "fp32":
            assert v["agreement"] == 1.0
            assert max(v["max_abs_diff"].values()) <= 1e-5
    golden = json.loads((digits_bundle / "golden.json").read_text())["items"]
    assert [(g["input"], g["output"]) for g in golden] == [
        (str(d), w) for d, w in enumerate(["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"], 1)]


def _graphs(graph):
    """An ONNX graph and every graph nested in its nodes' attributes (Loop bodies)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)


def _perturb_onnx_weight(bundle, path, delta=1e-2):
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(bundle / path)
    # a recurrent kernel [latent, 4 * latent], whose every weight every step uses (in a Loop's body for the greedy
    # model): the last one found, the decoder's
    init = [t for g in _graphs(proto.graph) for t in g.initializer
            if len(t.dims) == 2 and t.dims[1] == 4 * t.dims[0]][-1]
    values = numpy_helper.to_array(init).copy()
    values.flat[values.size // 2] += delta
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    resign(bundle, path, proto.SerializeToString())  # so only the gate can notice


def test_gate_refuses_a_perturbed_weight(fixture_dir, tmp_path):
    from seq2seq_edge.errors import ExportError
    from seq2seq_edge.export import verify_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(fixture_dir / "bundles" / "numbers", bundle)
    run = fixture_dir / "runs" / "numbers"
    assert verify_bundle(bundle, run)["passed"]
    _perturb_onnx_weight(bundle, "decoder_step.fp32.onnx")
    with pytest.raises(ExportError, match=r"parity gate failed: onnx fp32: largest difference [0-9.e-]+ \(limit 1e-05\)"):
        verify_bundle(bundle, run)


def test_gate_refuses_a_greedy_model_that_strays_from_its_step_loop(fixture_dir, tmp_path):
    from seq2seq_edge.errors import ExportError
    from seq2seq_edge.export import verify_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(fixture_dir / "bundles" / "numbers", bundle)
    _perturb_onnx_weight(bundle, "greedy.fp32.onnx", delta=0.5)
    with pytest.raises(ExportError, match=r"parity gate failed: onnx fp32: the one-call greedy model chose the step "
                                          r"loop's ids for [0-9.]+% of the inputs \(required 100%\), probabilities "
                                          r"within [0-9.e-]+ \(limit 1e-05\)"):
        verify_bundle(bundle, fixture_dir / "runs" / "numbers")


def test_failed_gate_leaves_no_bundle(fixture_dir, tmp_path, monkeypatch):
    from seq2seq_edge.errors import ExportError
    from seq2seq_edge.export import export_bundle, parity

    monkeypatch.setattr(parity, "FP16_MIN_AGREEMENT", 1.01)  # impossible: fp16 must fail
    with pytest.raises(ExportError, match="parity gate failed: tflite fp16: string agreement 100.00% below 101.0%"):
        export_bundle(fixture_dir / "runs" / "digits", tmp_path / "b", formats=["tflite"], quantize=["fp32", "fp16"])
    assert list(tmp_path.iterdir()) == []


def test_format_and_variant_selection(fixture_dir, tmp_path):
    from seq2seq_edge.export import export_bundle

    export_bundle(fixture_dir / "runs" / "digits", tmp_path / "b", formats=["onnx"], quantize=["int8"])
    manifest = mf.BundleManifest.load(tmp_path / "b")
    assert [(m.role, m.format, m.variant) for m in manifest.models] == [
        ("encoder", "onnx", "int8"), ("decoder_step", "onnx", "int8")]


def test_learned_embedding_exports_with_parity(tmp_path):
    from seq2seq_edge.export import export_bundle
    from seq2seq_edge.train import trainer

    cfg = trainer.task_defaults("numbers", max_number=60, latent_dim=8, embedding_dim=6, epochs=2, batch_size=16)
    trainer.train(cfg, tmp_path / "run", quiet=True)
    result = export_bundle(tmp_path / "run", tmp_path / "b", formats=["tflite", "onnx"], quantize=["fp32"])
    assert result["passed"] and all(v["agreement"] == 1.0 for v in result["variants"])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["training"]["embedding_dim"] == 6
