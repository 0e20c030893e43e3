"""``s2s eval``: score a bundle on a TSV of pairs with the metrics of training (``seq2seq_edge.evaluation.metrics``).

Runtime-only: numpy and one interpreter. The TSV is read exactly as ``s2s train --data`` reads it. Inputs the
model cannot encode (symbols it never saw, too long) are not decoded: they are scored as errors and listed with
the reason, and the run goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from . import metrics
from ..answer import RunOptions, answer
from ..options import DecodeOptions
from .pairs import read_tsv


def read_pairs(path: str | Path, *, skip_header: bool = False) -> list[tuple[str, str]]:
    """(input, target) pairs of a TSV file, read as training reads ``--data``; DataFileError naming the line."""
    return [(p.source, p.target) for p in read_tsv(path, skip_header=skip_header)]


def evaluate(decoder, pairs: Sequence[tuple[str, str]], *, batch_size: int = 32, beam_size: int = 1,
             max_errors: int = metrics.MAX_ERRORS, options: DecodeOptions | None = None) -> dict:
    """Decode each distinct input of ``pairs`` once (greedy, or beam search for ``beam_size`` > 1) and score the
    outputs with :func:`metrics.score`. Adds the backend, the variant and the decoding to the scores. ``options``
    (a DecodeOptions) replaces ``batch_size`` and ``beam_size``."""
    if options is None:
        options = DecodeOptions(batch_size=batch_size, beam_size=beam_size)
    beam_size = options.beam
    opts = RunOptions(decode=options, keep_going=True)
    done = answer(decoder, [(s, s) for s in dict.fromkeys(s for s, _ in pairs)], opts)
    reasons = {a.text: a.reason for a in done.failed}
    outputs = {a.text: a.result.text for a in done.answers if a.error is None}
    prep = decoder.preprocessing
    scores = metrics.score(((s, t, outputs.get(s)) for s, t in pairs), prep.target_tokenization,
                           input_tokenization=prep.input_tokenization, max_errors=max_errors, reasons=reasons)
    return {"backend": decoder.backend, "variant": decoder.variant,
            "decoding": "greedy" if beam_size == 1 else f"beam {beam_size}", "beam_size": beam_size, **scores}


def format_text(result: dict, *, bundle: str = "", file: str = "") -> str:
    """The report of ``s2s eval`` without ``--json``."""
    where = f"{bundle} ({result['backend']} {result['variant']}, {result['decoding']})"
    return metrics.format_report(result, title=f"{where} on {file}" if file else where)
