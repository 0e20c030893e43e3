"""Scoring a bundle on pairs: the TSV reader training and ``s2s eval`` share (``pairs``), the metrics
(``metrics``) and ``s2s eval``'s decode-and-score (``evaluate``)."""
