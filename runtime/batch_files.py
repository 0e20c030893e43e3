"""Moved to ``seq2seq_edge.scale.batch_files``; this name keeps code written against it working (with a
DeprecationWarning)."""

import warnings

from .answer import RunOptions
from .scale.batch_files import FileSummary, decode_file, iter_decode_file, resume_point

#: 0.4's batch_files.DecodeOptions (the load and decode options in one flat type): RunOptions.of takes its keywords.
DecodeOptions = RunOptions.of

__all__ = ["DecodeOptions", "FileSummary", "decode_file", "iter_decode_file", "resume_point"]

warnings.warn("seq2seq_edge.batch_files moved to seq2seq_edge.scale.batch_files", DeprecationWarning, stacklevel=2)
