"""Moved to ``seq2seq_edge.scale.ray_predictor``; this name keeps code written against it working (with a
DeprecationWarning)."""

import warnings

from .scale.ray_predictor import BundlePredictor, decode_dataset, pack_bundle

__all__ = ["BundlePredictor", "decode_dataset", "pack_bundle"]

warnings.warn("seq2seq_edge.ray_predictor moved to seq2seq_edge.scale.ray_predictor", DeprecationWarning,
              stacklevel=2)
