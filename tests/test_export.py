"""Export: the bundle's contents, graph quality, the manifest contract, and a parity gate that can fail."""

import hashlib
import json
import shutil

import pytest

from conftest import requires_train
from support import resign
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
    # a one-call greedy model for every variant but ONNX int8 (export/model_files.NO_GREEDY says why)
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
        # the encoder's weights sit in a loop's body: quantized too (at the fixture's small latent the graph weighs
        # about as much as the weights; a latent-256 encoder's int8 file is about a quarter of its fp32 one)
        for role in (mf.ENCODER, mf.DECODER_STEP):
            assert size[(role, fmt, "int8")] < 0.75 * size[(role, fmt, "fp32")], (role, fmt)


def test_gate_figures_and_golden_outputs(numbers_bundle, digits_bundle):
    parity = json.loads((numbers_bundle / "parity.json").read_text())
    assert parity["passed"] and parity["inputs"] == 200
    for v in parity["variants"]:
        if v["variant"] == "fp32":
            assert v["agreement"] == 1.0
            assert set(v["stepwise"]) == {"probs", "state_h", "state_c"}
            assert all(0 < t["tolerance_used"] <= 1 and t["max_abs_diff"] < 1e-5 for t in v["stepwise"].values())
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


def _lstm_kernels(proto) -> list:
    """The initializers shaped as an LSTM's recurrent kernel [units, 4 * units] (every step uses every one of
    them; in a Loop's body for the greedy model and the encoder), in the order the file holds them."""
    return [t for g in _graphs(proto.graph) for t in g.initializer if len(t.dims) == 2 and t.dims[1] == 4 * t.dims[0]]


def _perturb_onnx_weight(bundle, path, delta=1e-2, relative=False, kernel=-1):
    """Move one weight of the LSTM kernel ``kernel`` of ``_lstm_kernels`` (by default the last found: the
    decoder's). ``relative``: multiply the kernel's largest weight by 1 + delta; else add delta to its middle
    weight."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(bundle / path)
    init = _lstm_kernels(proto)[kernel]
    values = numpy_helper.to_array(init).copy()
    if relative:
        values.flat[int(np.argmax(np.abs(values)))] *= 1 + delta
    else:
        values.flat[values.size // 2] += delta
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    resign(bundle, path, proto.SerializeToString())  # so only the gate can notice


#: How the gate names a stepwise difference: the variant, the tensor, where, the input, the unit and both values.
_STEPWISE_FAILURE = (r"parity gate failed: onnx fp32: {tensor} at {where} for input '\d+', unit \d+: Keras "
                     r"-?[0-9.e-]+, export -?[0-9.e-]+, difference [0-9.e-]+ > limit [0-9.e-]+")


@pytest.mark.parametrize("path, where", [("decoder_step.fp32.onnx", r"decoder step \d+"),
                                         ("encoder.fp32.onnx", "the encoder's output")])
def test_gate_refuses_a_weight_moved_by_a_tenth_of_a_percent(fixture_dir, tmp_path, path, where):
    from seq2seq_edge.errors import ExportError
    from seq2seq_edge.export import verify_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(fixture_dir / "bundles" / "numbers", bundle)
    run = fixture_dir / "runs" / "numbers"
    assert verify_bundle(bundle, run)["passed"]
    _perturb_onnx_weight(bundle, path, delta=1e-3, relative=True)
    with pytest.raises(ExportError, match=_STEPWISE_FAILURE.format(tensor="(probs|state_h|state_c)", where=where)):
        verify_bundle(bundle, run)


def test_gate_refuses_a_perturbed_weight_of_an_attention_model(fixture_dir, tmp_path):
    """Each of the attention fixture's decoder kernels of an LSTM's shape (its two layers' recurrent kernels, the
    upper layer's input kernel and the fed attention output's kernel), its largest weight moved by 1%: the gate
    refuses every one. (Moved by a tenth of a percent, the bottom layer's recurrent kernel and the fed output's
    kernel move the states by about a third and four fifths of the limit, where the largest float noise measured
    is an eighth; the upper layer's kernels, by more than twice the limit.)"""
    import onnx

    from seq2seq_edge.errors import ExportError
    from seq2seq_edge.export import verify_bundle

    kernels = len(_lstm_kernels(onnx.load(fixture_dir / "bundles" / "attention" / "decoder_step.fp32.onnx")))
    assert kernels == 4
    for kernel in range(kernels):
        bundle = tmp_path / f"bundle{kernel}"
        shutil.copytree(fixture_dir / "bundles" / "attention", bundle)
        _perturb_onnx_weight(bundle, "decoder_step.fp32.onnx", delta=1e-2, relative=True, kernel=kernel)
        with pytest.raises(ExportError, match=_STEPWISE_FAILURE.format(tensor="(probs|state_h|state_c)",
                                                                      where=r"decoder step \d+")):
            verify_bundle(bundle, fixture_dir / "runs" / "attention")


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


def test_failed_gate_leaves_no_bundle_and_its_report_beside_it(fixture_dir, tmp_path, monkeypatch, capsys):
    from seq2seq_edge import cli
    from seq2seq_edge.export import parity

    monkeypatch.setattr(parity, "FP16_MIN_AGREEMENT", 1.01)  # impossible: fp16 must fail
    out = tmp_path / "b"
    assert cli.main(["export", str(fixture_dir / "runs" / "digits"), "--out", str(out), "--format", "tflite",
                     "--quantize", "fp32,fp16"]) == 2
    err = capsys.readouterr().err.strip()
    report = tmp_path / "b.parity-failed.md"
    assert err == (f"s2s export: error: parity gate failed: tflite fp16: string agreement 100.00% below 101.0% (no "
                   f"bundle written; the gate's report: {report}; to write the variants that passed without the "
                   "others, add --leave-out-failed)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.parity-failed.json", "b.parity-failed.md"]
    figures = json.loads((tmp_path / "b.parity-failed.json").read_text())
    assert not figures["passed"] and [(v["variant"], v["passed"]) for v in figures["variants"]] == [
        ("fp32", True), ("fp16", False)]
    assert "**The gate failed:**\n\n- tflite fp16: string agreement 100.00% below 101.0%" in report.read_text()


def test_leave_out_failed_writes_only_the_variants_that_passed(fixture_dir, tmp_path, monkeypatch, capsys):
    from seq2seq_edge import cli
    from seq2seq_edge.export import parity

    monkeypatch.setattr(parity, "INT8_MAX_EXACT_MATCH_DROP", -0.5)  # impossible: int8 must fail
    out = tmp_path / "b"
    (tmp_path / "b.parity-failed.md").write_text("an earlier refusal")
    assert cli.main(["export", str(fixture_dir / "runs" / "digits"), "--out", str(out), "--format", "tflite,onnx",
                     "--quantize", "fp32,int8", "--leave-out-failed", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "  tflite int8  LEFT OUT: exact match 100.00% is more than -50% below Keras' 100.00%" in printed
    manifest = mf.BundleManifest.load(out)
    assert sorted({(m.format, m.variant) for m in manifest.models}) == [("onnx", "fp32"), ("tflite", "fp32")]
    assert sorted(p.name for p in out.glob("*int8*")) == []
    assert manifest.provenance["left_out"] == [
        {"format": f, "variant": "int8", "reason": "exact match 100.00% is more than -50% below Keras' 100.00%"}
        for f in ("tflite", "onnx")]
    assert not (tmp_path / "b.parity-failed.md").exists()  # the export passed: the old refusal no longer holds
    assert cli.main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert ("  tflite int8  left out at export (failed the parity gate: exact match 100.00% is more than -50% below "
            "Keras' 100.00%)") in info
    assert "parity:    passed on 9 inputs" in info
    assert json.loads((out / "parity.json").read_text())["left_out"][0]["variant"] == "int8"


def test_an_fp32_variant_that_changes_a_string_cannot_be_left_out(fixture_dir):
    from seq2seq_edge.errors import ExportError
    from seq2seq_edge.export import parity

    keras = parity.KerasReference(["1", "2"], ["one", "two"], [], ["one", "two"])
    fp32 = parity.VariantReport("onnx", "fp32", "onnx", 0.5, 0.5, 0.1, reason="string agreement 50.00% (required "
                                "100%): input '2' gives 'twe', Keras 'two'")
    int8 = parity.VariantReport("onnx", "int8", "onnx", 1.0, 1.0, 0.0)
    gate = parity.GateResult(keras, [fp32, int8])
    with pytest.raises(ExportError, match=r"^parity gate failed: onnx fp32: string agreement 50.00% \(required "
                                          r"100%\): input '2' gives 'twe', Keras 'two' \(an fp32 variant must give "
                                          r"Keras' strings; it cannot be left out\)$"):
        gate.leaving_out_failed()
    fp32.agreement, fp32.reason = 1.0, "state_c at decoder step 1 ..."
    assert [v.variant for v in gate.leaving_out_failed().left_out] == ["fp32"]


def test_gate_limit_scales_with_the_row_and_counts_nan_as_a_failure():
    import numpy as np
    from seq2seq_edge.export import parity

    diffs = parity.StepwiseDiffs()
    keras_c = np.array([[40.0, -3.0, 0.5], [0.2, 0.1, -0.3]], dtype=np.float32)
    noise = keras_c * 2e-6  # float32 noise relative to the magnitude: passes however large the state
    diffs.note("state_c", keras_c, keras_c + noise, ["a", "b"], 0)
    assert diffs.tensors["state_c"]["tolerance_used"] < 0.1
    probs = np.array([[0.5, 0.5]], dtype=np.float32)
    diffs.note("probs", probs, probs + [[parity.fp32_limit("probs", 0.5) * 1.5, 0]], ["c"], 2)
    tensor, figures = diffs.worst()
    assert tensor == "probs" and 1.4 < figures["tolerance_used"] < 1.6
    assert parity.describe_worst(tensor, figures["worst"]) == (
        "probs at decoder step 3 for input 'c', unit 0: Keras 0.5, export 0.500225, difference 0.000225 > limit "
        "0.00015")
    diffs.note("state_h", probs, np.array([[np.nan, 0.5]]), ["d"], None)
    assert diffs.worst()[0] == "state_h" and diffs.to_dict()["state_h"]["tolerance_used"] == "inf"


@pytest.mark.slow
def test_format_and_variant_selection(fixture_dir, tmp_path):
    from seq2seq_edge.export import export_bundle

    export_bundle(fixture_dir / "runs" / "digits", tmp_path / "b", formats=["onnx"], quantize=["int8"])
    manifest = mf.BundleManifest.load(tmp_path / "b")
    assert [(m.role, m.format, m.variant) for m in manifest.models] == [
        ("encoder", "onnx", "int8"), ("decoder_step", "onnx", "int8")]


@pytest.mark.slow
def test_learned_embedding_exports_with_parity(tmp_path):
    from seq2seq_edge.export import export_bundle
    from seq2seq_edge.train import trainer

    cfg = trainer.task_defaults("numbers", max_number=60, latent_dim=8, embedding_dim=6, epochs=2, batch_size=16)
    trainer.train(cfg, tmp_path / "run", quiet=True)
    result = export_bundle(tmp_path / "run", tmp_path / "b", formats=["tflite", "onnx"], quantize=["fp32"])
    assert result["passed"] and all(v["agreement"] == 1.0 for v in result["variants"])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["training"]["embedding_dim"] == 6


@pytest.mark.slow
@pytest.mark.parametrize("embedding_dim", [0, 6])
def test_attended_embeddings_export_with_parity(tmp_path, embedding_dim):
    """--attend-embeddings: the encoder's outputs are [LSTM outputs; input embedding] (one-hot or learned), in
    Keras, TFLite and ONNX alike; the runtime decodes what Keras decodes. The learned one is trained with
    --attention-dropout, whose layers act in training only."""
    import seq2seq_edge
    from seq2seq_edge.export import export_bundle
    from seq2seq_edge.train import trainer
    from seq2seq_edge.train.reference import decode_texts, load_reference

    cfg = trainer.task_defaults("numbers", max_number=99, latent_dim=8, embedding_dim=embedding_dim, epochs=8,
                                batch_size=16, learning_rate=5e-3, patience=0, decoder="attention",
                                bidirectional=True, attend_embeddings=True,
                                attention_dropout=0.2 if embedding_dim else None)
    trainer.train(cfg, tmp_path / "run", quiet=True)
    result = export_bundle(tmp_path / "run", tmp_path / "b", formats=["tflite", "onnx"], quantize=["fp32"])
    assert result["passed"] and all(v["agreement"] == 1.0 for v in result["variants"])
    manifest = mf.BundleManifest.load(tmp_path / "b")
    inputs = len(manifest.preprocessing.input_vocabulary)
    assert manifest.encoder_output_dim == 2 * 8 + (embedding_dim or inputs)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["training"]["attention_dropout"] == (0.2 if embedding_dim else 0.0)
    keras_decoder, prep = load_reference(tmp_path / "run")
    words = [str(n) for n in range(100)]
    expected = decode_texts(keras_decoder, prep, words)
    for backend in ("litert", "onnx"):
        for one_call in (False, True):
            decoder = seq2seq_edge.load(tmp_path / "b", backend=backend, one_call=one_call)
            assert decoder.decode_batch(words) == expected, (backend, one_call)


@pytest.mark.slow
@pytest.mark.parametrize("decoder, encoder_layers, decoder_layers, latent, epochs, input_feeding",
                         [("attention", 1, 2, 16, 10, False), ("seed", 3, 2, 32, 30, False),
                          ("attention", 1, 1, 16, 10, True)])
def test_stacked_lstms_export_with_parity(tmp_path, decoder, encoder_layers, decoder_layers, latent, epochs,
                                          input_feeding):
    """--encoder-layers / --decoder-layers: the bundle keeps the encoder/step contract, the decoder's layers'
    states side by side in state_h and state_c (the manifest's latent_dim is layers x units); the gate passes
    and every runtime path decodes what Keras decodes (the gate also holds beam search to Keras'). The attention
    case has more decoder layers than encoder layers (both start from the encoder's one, bidirectional); the seed
    decoder's fewer (they start from the encoder's top two). --input-feeding adds the fed attention output as one
    slot more of the state (latent_dim is units x (layers + 1)). The attention fixture bundle is 2 + 2 with input
    feeding."""
    import seq2seq_edge
    from seq2seq_edge.export import export_bundle
    from seq2seq_edge.train import trainer
    from seq2seq_edge.train.reference import decode_texts, load_reference

    attention = decoder == "attention"
    cfg = trainer.task_defaults("numbers", max_number=99, latent_dim=latent, epochs=epochs, batch_size=16,
                                learning_rate=1e-2, patience=0, decoder=decoder, bidirectional=attention or None,
                                attend_embeddings=attention or None, dropout=0.1, encoder_layers=encoder_layers,
                                decoder_layers=decoder_layers, input_feeding=input_feeding)
    trainer.train(cfg, tmp_path / "run", quiet=True)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["training"]["encoder_layers"], config["training"]["decoder_layers"]) == (encoder_layers,
                                                                                          decoder_layers)
    result = export_bundle(tmp_path / "run", tmp_path / "b", formats=["tflite", "onnx"], quantize=["fp32"])
    assert result["passed"] and all(v["agreement"] == 1.0 for v in result["variants"])
    manifest = mf.BundleManifest.load(tmp_path / "b")
    assert manifest.latent_dim == latent * (2 if attention else 1) * (decoder_layers + input_feeding)
    from seq2seq_edge.cli.info import bundle_info, format_info

    shown = ", ".join(f"{n} {side} layers" for n, side in ((encoder_layers, "encoder"), (decoder_layers, "decoder"))
                      if n > 1)  # s2s info names a side's layers when it stacks them
    info = format_info(bundle_info(tmp_path / "b"))
    assert shown in info and ("encoder layers" in info) == (encoder_layers > 1)
    assert ("input feeding" in info) == input_feeding
    keras_decoder, prep = load_reference(tmp_path / "run")
    words = [str(n) for n in range(100)]
    expected = decode_texts(keras_decoder, prep, words)
    # A model that tells inputs apart, so a miswired layer would change its strings: the seed decoder's gives 10
    # to 12 distinct strings (12 in a process of its own, 10 in a CI run where the fixtures trained first in the
    # same process), the attention ones more.
    assert len(set(expected)) >= 8
    for backend in ("litert", "onnx"):
        for one_call in (False, True):
            decoder_ = seq2seq_edge.load(tmp_path / "b", backend=backend, one_call=one_call)
            assert decoder_.decode_batch(words) == expected, (backend, one_call)


@pytest.mark.slow
def test_a_model_with_large_cell_states_exports(tmp_path):
    """LSTM cell states are not bounded by 1: forget and input gates held open make c count the input's 40
    positions. The export must pass the gate on the differences float32 really makes at that scale."""
    import random

    import keras
    import numpy as np
    from seq2seq_edge.export import export_bundle
    from seq2seq_edge.train import trainer

    rng = random.Random(0)
    tsv = tmp_path / "long.tsv"
    tsv.write_text("".join(f"{''.join(rng.choice('ab') for _ in range(rng.randint(30, 40)))}\t{n}\n"
                           for n in range(300)), encoding="utf-8")
    cfg = trainer.task_defaults("data", data_file=str(tsv), latent_dim=16, epochs=1, batch_size=64, patience=0,
                                decoder="seed")
    trainer.train(cfg, tmp_path / "run", quiet=True)
    model_file = tmp_path / "run" / "model.keras"
    model = keras.saving.load_model(model_file, compile=False)
    for layer in model.layers:
        if isinstance(layer, keras.layers.LSTM):
            kernel, recurrent, bias = layer.get_weights()
            units = recurrent.shape[0]
            bias[:2 * units] += 12.0  # input and forget gates open
            bias[2 * units:3 * units] = 4.0  # the candidate near 1: c grows by about 1 a step
            layer.set_weights([kernel, recurrent, bias])
    model.save(model_file)
    result = export_bundle(tmp_path / "run", tmp_path / "b", formats=["tflite", "onnx"], quantize=["fp32"])
    assert result["passed"]
    for v in result["variants"]:
        assert v["stepwise"]["state_c"]["max_magnitude"] > 35
        assert np.isfinite(v["stepwise"]["state_c"]["max_abs_diff"])
