"""Converters: TFLite (TensorFlow's converter) and ONNX (tf2onnx), with the graph-quality checks."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from seq2seq_edge import backends
from seq2seq_edge import manifest as mf
from seq2seq_edge.errors import BundleError, ExportError

log = logging.getLogger(__name__)
# The converters log every pass at INFO; keep their chatter out of the CLI's output.
for _name in ("tf2onnx", "onnxruntime", "root"):
    logging.getLogger(_name).setLevel(logging.WARNING if _name != "root" else logging.getLogger().level)

#: ONNX opset written by tf2onnx: 17 runs on onnxruntime >= 1.13 and ONNX Runtime Mobile.
ONNX_OPSET = 17


def to_tflite(module, variant: str) -> bytes:
    """Convert a module's ``serve`` function to TFLite builtins only (no Flex / Select-TF ops)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant in ("fp16", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8":
        # Per-channel dynamic-range FULLY_CONNECTED is op version 12, which tflite-runtime 2.14 (the Raspberry Pi
        # OS Bookworm interpreter) cannot load; per-tensor weights keep the op at a version it runs.
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    try:
        return converter.convert()
    except Exception as e:  # the converter raises ConverterError and friends
        raise ExportError(f"TFLite conversion of {module.name} ({variant}) failed: {e}") from None


def model_ops(content: bytes, fmt: str, name: str) -> list[str]:
    """Sorted operator names of a model file, read exactly as the runtime reads them before it loads the file."""
    try:
        return sorted(backends.model_ops(fmt, content))
    except BundleError as e:
        raise ExportError(f"{name}: {e}") from None


def tflite_ops(content: bytes) -> list[str]:
    """Sorted operator names of a TFLite model."""
    return model_ops(content, "tflite", "TFLite model")


def to_onnx(module):
    """Convert a module's ``serve`` function with tf2onnx; returns the ModelProto (weights embedded)."""
    import tf2onnx

    try:
        proto, _ = tf2onnx.convert.from_function(module.serve, input_signature=module.serve.input_signature,
                                                 opset=ONNX_OPSET)
    except Exception as e:
        raise ExportError(f"ONNX conversion of {module.name} failed: {e}") from None
    return proto


def quantize_onnx_int8(content: bytes) -> bytes:
    """ONNX Runtime's dynamic quantization (int8 weights, activations quantized at run time), inside Loop bodies
    too (``EnableSubgraph``): the encoder's LSTM weights live in its Loop's body, and without it they stay fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(content)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, extra_options={"EnableSubgraph": True})
        return dst.read_bytes()


def check_onnx(content: bytes, name: str) -> dict:
    """Full onnx.checker pass, no external data; returns opset, IR version and op types."""
    import onnx

    proto = onnx.load_from_string(content)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:
        raise ExportError(f"{name}: onnx.checker failed: {e}") from None
    external = [t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ExportError(f"{name}: weights stored as external data: {external[:3]}")
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"opset": opset, "ir_version": proto.ir_version, "ops": model_ops(content, "onnx", name)}


def check_ops(name: str, ops: list[str], fmt: str, role: str) -> None:
    """Refuse a model whose operators the runtime would refuse: outside what the contract allows its role (no
    control flow but the bounded loops of the encoder and greedy model, no custom or Flex ops)."""
    outside = sorted(set(ops) - mf.ALLOWED_OPS[fmt][role])
    if outside:
        raise ExportError(f"{name}: has operators a {role} may not have: {outside} (the runtime allows "
                          f"{sorted(mf.ALLOWED_OPS[fmt][role])}); the converter's output changed, or the model "
                          "needs an op the contract does not cover yet")
