"""Durations as ``s2s train`` reads them (``--time-budget``) and says them (progress lines). No Keras here: the CLI
reads ``--time-budget`` before anything heavy is imported, so that a bad option is a one-line error."""

from __future__ import annotations

import re


def duration(seconds: float) -> str:
    """A duration as people say it: 42 s, 3 min, 1 h 05 min."""
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def parse_duration(text: str) -> float:
    """Seconds in "90s", "45m", "2h", "1h30m" or a bare number of minutes; ValueError otherwise."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t) * 60
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?:in)?)?(?:(\d+(?:\.\d+)?)s)?", t)
    if not t or not parts or not any(parts.groups()):
        raise ValueError(f"not a duration: {text!r} (say 90s, 45m, 2h or 1h30m)")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + s
