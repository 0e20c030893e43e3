"""Quality measures of decoded strings, for training and the parity gate: exact match and character error rate."""

from __future__ import annotations

from typing import Sequence


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings (insertions, deletions and substitutions cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of predictions equal to their reference."""
    if not references:
        return 0.0
    return sum(p == r for p, r in zip(predictions, references)) / len(references)


def character_error_rate(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Total edit distance over total reference length, in characters."""
    total = sum(len(r) for r in references)
    return sum(edit_distance(p, r) for p, r in zip(predictions, references)) / max(total, 1)
