"""Export a trained run to TFLite and ONNX bundles, with a parity gate against Keras (needs the [train] extra)."""

from .bundle import export_bundle, verify_bundle

__all__ = ["export_bundle", "verify_bundle"]
