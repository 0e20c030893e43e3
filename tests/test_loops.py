"""Loops in a bundle: the encoder's loop over the input's real length and the one-call greedy model's decode loop
are allowed; any other loop is refused before an interpreter sees the file.

Each attack replaces a model of a real bundle with a crafted one (re-signed, so only the loop check can stop it)
and runs ``s2s run`` in a child process with a memory limit and a timeout, expecting the one-line error.
The crafted models are built with TensorFlow and its converters, the way an attacker would build them.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import seq2seq_edge
from seq2seq_edge import backends
from seq2seq_edge import manifest as mf
from seq2seq_edge.decoder import Seq2SeqDecoder
from seq2seq_edge.errors import BundleError

import craft
from make_vectors import BUNDLES
from support import TFLITE_BACKEND, assert_refused, copy_bundle, resign, s2s_limited

HAS_TF = importlib.util.find_spec("tensorflow") is not None
needs_tflite_and_tf = pytest.mark.skipif(TFLITE_BACKEND is None or not HAS_TF,
                                         reason="needs TensorFlow to build the models and a TFLite backend")
needs_onnx_and_tf2onnx = pytest.mark.skipif(
    not backends.is_installed("onnx") or importlib.util.find_spec("tf2onnx") is None,
    reason="needs tf2onnx to build the models and onnxruntime")


def _replace_encoder(bundle, fmt: str, content: bytes) -> str:
    """Re-sign ``content`` as the bundle's fp32 encoder (its manifest ops left as they were: the loop check
    reports its problem beside the ops' mismatch, in the same line)."""
    name = f"encoder.fp32.{fmt}"
    resign(bundle, name, content)
    return name


@needs_tflite_and_tf
@pytest.mark.parametrize("loop, pattern", [
    (craft.unbounded, r"a WHILE loop whose trip count has no provable bound"),
    (craft.counted(10**9), r"has a loop of up to 1000000000 steps; a encoder of this bundle may loop at most 1 times"),
    (craft.nested, r"a loop's condition or body holds control flow \(nested loops are refused\)"),
], ids=["unbounded", "above-the-bound", "nested"])
def test_tflite_encoder_loops_other_than_the_exporters_are_refused(digits_bundle, tmp_path, loop, pattern):
    bundle = copy_bundle(digits_bundle, tmp_path)
    _replace_encoder(bundle, "tflite", craft.tflite_file(craft.encoder_fn(mf.BundleManifest.load(bundle), loop)))
    proc = s2s_limited("run", bundle, "7", "--backend", TFLITE_BACKEND, cache=tmp_path / "cache", timeout=60)
    assert_refused(proc, rf"encoder\.fp32\.tflite: .*{pattern}")


@pytest.mark.skipif(TFLITE_BACKEND is None, reason="needs a TFLite backend")
def test_tflite_greedy_model_with_a_raised_loop_limit_is_refused(digits_bundle, tmp_path):
    """The exporter's own greedy model with its decode loop's limit raised (max_tokens + 1 = 6 -> 10**6)."""
    bundle = copy_bundle(digits_bundle, tmp_path)
    limit = mf.BundleManifest.load(bundle).loop_limit(mf.GREEDY)
    name = "greedy.fp32.tflite"
    resign(bundle, name, craft.patched_loop_limit((bundle / name).read_bytes(), limit, 10**6))
    proc = s2s_limited("run", bundle, "7", "--backend", TFLITE_BACKEND, cache=tmp_path / "cache", timeout=60)
    assert_refused(proc, rf"greedy\.fp32\.tflite: has a loop of up to \d+ steps; a greedy of this bundle may loop "
                         rf"at most {limit} times")
    # the step loop does not read the greedy model
    proc = s2s_limited("run", bundle, "7", "--backend", TFLITE_BACKEND, "--step-loop", cache=tmp_path / "cache", timeout=60)
    assert proc.returncode == 0 and proc.stdout.decode().strip() == "seven"


@needs_onnx_and_tf2onnx
@pytest.mark.parametrize("loop, pattern", [
    (craft.counted(10**6), r"has a loop of up to 1000000 steps; a encoder of this bundle may loop at most 1 times"),
    (craft.unbounded, r"holds a Loop whose trip count M is not a constant of the main graph"),
    (craft.nested, r"holds a Loop inside a loop body \(nested loops are refused\)"),
], ids=["above-the-bound", "unbounded", "nested"])
def test_onnx_encoder_loops_other_than_the_exporters_are_refused(digits_bundle, tmp_path, loop, pattern):
    bundle = copy_bundle(digits_bundle, tmp_path)
    name = _replace_encoder(bundle, "onnx", craft.onnx_file(craft.encoder_fn(mf.BundleManifest.load(bundle), loop)))
    proc = s2s_limited("run", bundle, "7", "--backend", "onnx", cache=tmp_path / "cache", timeout=60)
    assert_refused(proc, rf"{name}: .*{pattern}")


@pytest.mark.parametrize("bundle_name", BUNDLES)
def test_exported_loops_are_bounded_by_the_bundle(fixture_dir, bundle_name):
    """What export writes passes: every loop's proven bound is at most its role's limit, and the greedy model's
    decode loop is exactly max_tokens + 1 steps."""
    bundle = fixture_dir / "bundles" / bundle_name
    manifest = mf.BundleManifest.load(bundle)
    for m in manifest.models:
        _, bounds = backends.inspect_model(m.format, (bundle / m.path).read_bytes())
        if m.role == mf.DECODER_STEP:
            assert bounds == []
        else:
            assert bounds and max(bounds) <= manifest.loop_limit(m.role), (m.path, bounds)
        if m.role == mf.GREEDY:
            assert manifest.preprocessing.max_output_tokens + 1 in bounds
        if m.role == mf.ENCODER:
            assert set(bounds) == {manifest.encoder_time_steps}


class _FakeGreedy:
    inputs, outputs, label = (), (), "greedy.fake"

    def __init__(self, ids):
        self.ids = ids

    def run(self, feeds):
        batch = feeds[mf.INPUT_IDS].shape[0]
        ids = np.tile(np.asarray(self.ids, np.int32), (batch, 1))
        return {mf.OUTPUT_IDS: ids, mf.OUTPUT_PROBS: np.full(ids.shape, 0.5, np.float32)}


@pytest.mark.parametrize("bad_id", [-1, 10**6])
def test_greedy_ids_outside_the_vocabulary_are_a_bundle_error(digits_bundle, bad_id):
    """A crafted greedy model's ids index the vocabulary: out of range is an error, never a wrapped index."""
    real = seq2seq_edge.load(digits_bundle, one_call=False)
    steps = real.max_output_len + 1
    fake = Seq2SeqDecoder(real.manifest, real.internals.encoder, real.internals.decoder_step, backend=real.backend,
                          variant=real.variant, greedy=_FakeGreedy([3, bad_id] + [0] * (steps - 2)))
    with pytest.raises(BundleError, match=r"greedy\.fake: the greedy model returned ids outside the target "
                                          r"vocabulary"):
        fake.decode("7")
    ok = Seq2SeqDecoder(real.manifest, real.internals.encoder, real.internals.decoder_step, backend=real.backend,
                        variant=real.variant, greedy=_FakeGreedy([3, 2] + [0] * (steps - 2)))
    result = ok.decode_result("7")
    assert result.tokens == (real.preprocessing.target_vocabulary[3],) and result.finished
    assert result.token_probs == (0.5, 0.5)


@pytest.mark.skipif(TFLITE_BACKEND is None, reason="needs a TFLite backend")
def test_tflite_loop_whose_condition_lists_a_tensor_twice_is_refused(digits_bundle, tmp_path):
    """The interpreter would compare another loop variable than the one the proof read: refused before it runs."""
    bundle = copy_bundle(digits_bundle, tmp_path)
    name = "greedy.fp32.tflite"
    resign(bundle, name, craft.tflite_with_repeated_condition_input((bundle / name).read_bytes()))
    proc = s2s_limited("run", bundle, "1", "--backend", TFLITE_BACKEND, cache=tmp_path / "cache", timeout=60)
    assert_refused(proc, r"greedy\.fp32\.tflite: not a valid TFLite model \(a WHILE loop whose condition's inputs "
                         r"list a tensor twice")


@pytest.mark.skipif(not backends.is_installed("onnx"), reason="needs onnxruntime")
@pytest.mark.parametrize("how", ["dense", "sparse", "input"])
def test_onnx_loop_bound_defined_twice_is_refused(digits_bundle, tmp_path, how):
    """A second definition of the Loop's M (ONNX Runtime may take it instead of the one a proof reads)."""
    from seq2seq_edge.backends import onnx_wire

    bundle = copy_bundle(digits_bundle, tmp_path)
    name = "encoder.fp32.onnx"
    content = (bundle / name).read_bytes()
    (_, m_name, _), = onnx_wire.summarize(content).loops
    resign(bundle, name, craft.redefined_in_main_graph(content, m_name, 10**12, how))
    proc = s2s_limited("run", bundle, "1", "--backend", "onnx", cache=tmp_path / "cache", timeout=60)
    assert_refused(proc, r"encoder\.fp32\.onnx: holds a Loop whose trip count M \('.+'\) is defined 2 times in the "
                         r"main graph")


@needs_tflite_and_tf
def test_tflite_allocation_sized_by_the_inputs_values_is_refused(digits_bundle, tmp_path):
    bundle = copy_bundle(digits_bundle, tmp_path)
    fn = craft.encoder_with_allocation(mf.BundleManifest.load(bundle))
    name = _replace_encoder(bundle, "tflite", craft.tflite_file(fn))
    proc = s2s_limited("run", bundle, "7", "--backend", TFLITE_BACKEND, cache=tmp_path / "cache", timeout=60)
    assert_refused(proc, rf"{name}: .*a FILL whose size is computed from tensor values, not from shapes and "
                         r"constants \(it could allocate without bound; refused\)")


@needs_onnx_and_tf2onnx
def test_onnx_allocation_sized_by_the_inputs_values_is_refused(digits_bundle, tmp_path):
    bundle = copy_bundle(digits_bundle, tmp_path)
    fn = craft.encoder_with_allocation(mf.BundleManifest.load(bundle))
    name = _replace_encoder(bundle, "onnx", craft.onnx_file(fn))
    proc = s2s_limited("run", bundle, "7", "--backend", "onnx", cache=tmp_path / "cache", timeout=60)
    assert_refused(proc, rf"{name}: .*holds a (ConstantOfShape|Expand) whose size is computed from tensor values")
