"""Decoding at scale, on top of the runtime: files on every core (``batch_files``, ``workers``) and Ray Data
(``ray_predictor``). Nothing here is needed to decode one input."""
