"""The bundle's model files: each role in each format and variant converted, checked, written and described for
the manifest (``seq2seq_edge.manifest.ModelFile``)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from seq2seq_edge import manifest as mf

from . import convert

log = logging.getLogger(__name__)


#: (format, variant) pairs without a one-call greedy model, and why.
NO_GREEDY = {("onnx", "int8"): "ONNX Runtime's dynamic quantization computes each activation's scale per call over "
                               "the whole tensor, so a one-call model, whose calls see other tensors than the step "
                               "loop's, is not shown to choose the int8 step loop's ids"}


def write_model_files(bundle: Path, modules: dict, formats, variants, weights, steps: int,
                      max_output_tokens: int) -> list[mf.ModelFile]:
    """Every (format, variant) the format has, each with every role's ``modules`` (role -> tf.Module); no greedy
    model where ``NO_GREEDY`` says."""
    return [write_model_file(bundle, role, module, fmt, variant, weights, steps, max_output_tokens)
            for fmt in formats for variant in variants if variant in mf.VARIANTS[fmt]
            for role, module in modules.items() if not (role == mf.GREEDY and (fmt, variant) in NO_GREEDY)]


def write_model_file(bundle: Path, role: str, module, fmt: str, variant: str, weights, steps: int,
                     max_output_tokens: int) -> mf.ModelFile:
    name = f"{role}.{variant}.{fmt}"
    extra = {}
    if fmt == "tflite":
        content = convert.to_tflite(module, variant)
        ops = convert.tflite_ops(content)
        extra["signature"] = mf.SIGNATURE_KEY
    else:
        proto = convert.to_onnx(module)
        content = proto.SerializeToString()
        if variant == "int8":
            content = convert.quantize_onnx_int8(content)
        info = convert.check_onnx(content, name)
        ops = info["ops"]
        extra.update(opset=info["opset"], ir_version=info["ir_version"])
    convert.check_ops(name, ops, fmt, role)
    (bundle / name).write_bytes(content)
    ins, outs = mf.expected_io(role, weights.latent_dim, steps, weights.target_vocab_size,
                               weights.encoder_output_dim, max_output_tokens)
    log.info("wrote %s (%d bytes)", name, len(content))
    return mf.ModelFile(role=role, format=fmt, variant=variant, path=name, sha256=hashlib.sha256(content).hexdigest(),
                        size_bytes=len(content), inputs=ins, outputs=outs, ops=tuple(ops), **extra)
