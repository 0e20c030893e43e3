"""``s2s eval``: score a bundle on a TSV of pairs with the metrics of training (``seq2seq_edge.metrics``).

Runtime-only: numpy and one interpreter. The TSV is read exactly as ``s2s train --data`` reads it. Inputs the
model cannot encode (symbols it never saw, too long) are not decoded: they are scored as errors and listed with
the reason, and the run goes on.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Sequence

from . import metrics
from .errors import InputTextError, Seq2SeqEdgeError
from .pairs import read_tsv


def read_pairs(path: str | Path, *, skip_header: bool = False) -> list[tuple[str, str]]:
    """(input, target) pairs of a TSV file, read as training reads ``--data``; DataFileError naming the line."""
    return [(p.source, p.target) for p in read_tsv(path, skip_header=skip_header)]


def supports_beam(decoder) -> bool:
    """Whether ``decoder.decode_batch_results`` takes ``beam_size``."""
    return "beam_size" in inspect.signature(decoder.decode_batch_results).parameters


def evaluate(decoder, pairs: Sequence[tuple[str, str]], *, batch_size: int = 32, beam_size: int = 1,
             max_errors: int = metrics.MAX_ERRORS) -> dict:
    """Decode each distinct input of ``pairs`` once (greedy, or beam search for ``beam_size`` > 1) and score the
    outputs with :func:`metrics.score`. Adds the backend, the variant and the decoding to the scores."""
    if beam_size < 1:
        raise Seq2SeqEdgeError(f"beam size must be at least 1, got {beam_size}")
    if beam_size > 1 and not supports_beam(decoder):
        raise Seq2SeqEdgeError("beam search is not available in this version of the runtime; use greedy (--beam 1)")
    prep = decoder.preprocessing
    reasons: dict[str, str] = {}
    decodable = []
    for source in dict.fromkeys(s for s, _ in pairs):
        try:
            prep.encode_input(source)
        except InputTextError as e:
            reasons[source] = str(e)
        else:
            decodable.append(source)
    options = {"beam_size": beam_size} if beam_size > 1 else {}
    try:
        results = decoder.decode_batch_results(decodable, batch_size, **options) if decodable else []
    except ValueError as e:
        if not options:
            raise
        raise Seq2SeqEdgeError(f"beam search: {e}") from None
    outputs = {s: r.text for s, r in zip(decodable, results)}
    scores = metrics.score(((s, t, outputs.get(s)) for s, t in pairs), prep.target_tokenization,
                           input_tokenization=prep.input_tokenization, max_errors=max_errors, reasons=reasons)
    return {"backend": decoder.backend, "variant": decoder.variant,
            "decoding": "greedy" if beam_size == 1 else f"beam {beam_size}", "beam_size": beam_size, **scores}


def format_text(result: dict, *, bundle: str = "", file: str = "") -> str:
    """The report of ``s2s eval`` without ``--json``."""
    where = f"{bundle} ({result['backend']} {result['variant']}, {result['decoding']})"
    return metrics.format_report(result, title=f"{where} on {file}" if file else where)
