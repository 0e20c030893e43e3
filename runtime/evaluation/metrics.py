"""Quality measures of decoded strings: one scoring for ``s2s train`` (``metrics.json``), ``s2s eval`` and the
parity gate. Numpy only, so it works in a runtime-only install.

Definitions (docs/cli.md, "s2s eval", gives them to users):

* exact match: the output equals the reference.
* CER (character error rate): Levenshtein distance over characters / reference characters, summed over inputs.
* WER (token error rate), only for ``space`` target tokenization: Levenshtein distance over the target's tokens
  (words, or phonemes in a pronunciation dictionary, where it is the PER) / reference tokens, summed over inputs.
* An input listed several times with different references (a dictionary with several pronunciations) is scored
  once: against its first listed reference (the headline figures and buckets) and against the best of its
  references (``any_reference``: exact if the output equals any of them; each rate against the closest one).
* Buckets: inputs grouped by input length (input tokens) and by output length (tokens of the first reference):
  each length up to 10 on its own, then 11-20, 21-40, 41-80 and so on. The worst buckets are those with the
  lowest exact match among buckets of at least ``MIN_WORST_COUNT`` inputs, listed with some of their errors.
* An input the model could not decode (hypothesis ``None``) is scored as an error with an empty output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from .. import text

#: Lengths up to this have a bucket each; longer ones share doubling ranges (11-20, 21-40, ...).
EXACT_LENGTHS = 10
#: Buckets with fewer inputs than this are not ranked among the worst (unless no bucket has that many).
MIN_WORST_COUNT = 3
#: How many worst buckets a report lists.
WORST_BUCKETS = 3
#: Errors listed overall and per worst bucket, unless the caller says otherwise.
MAX_ERRORS = 5


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two sequences: strings (characters) or token lists; insertions, deletions
    and substitutions cost 1. One numpy pass per item of the shorter sequence."""
    if len(a) > len(b):
        a, b = b, a
    if not a or a == b:
        return 0 if a == b else len(b)
    ids: dict = {}
    x = [ids.setdefault(t, len(ids)) for t in a]
    y = np.array([ids.setdefault(t, len(ids)) for t in b])
    offsets = np.arange(len(b) + 1)
    previous = offsets
    current = np.empty(len(b) + 1, dtype=np.int64)
    for i, xi in enumerate(x, 1):
        current[0] = i
        # substitution (or match) and deletion; then insertions, row-wise: d[j] = min_k<=j d[k] + (j - k)
        np.minimum(previous[:-1] + (y != xi), previous[1:] + 1, out=current[1:])
        previous = np.minimum.accumulate(current - offsets) + offsets
    return int(previous[-1])


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of predictions equal to their reference."""
    if not references:
        return 0.0
    return sum(p == r for p, r in zip(predictions, references)) / len(references)


def character_error_rate(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Total edit distance over total reference length, in characters."""
    total = sum(len(r) for r in references)
    return sum(edit_distance(p, r) for p, r in zip(predictions, references)) / max(total, 1)


def token_error_rate(predictions: Sequence[str], references: Sequence[str], tokenization: str = "space") -> float:
    """Total edit distance over total reference length, in tokens (words for ``space``): WER, or PER for
    phoneme targets."""
    refs = [text.tokenize(r, tokenization) for r in references]
    dist = sum(edit_distance(text.tokenize(p, tokenization), r) for p, r in zip(predictions, refs))
    return dist / max(sum(len(r) for r in refs), 1)


# -- scoring a set of (input, reference, hypothesis) triples -----------------------------------------------------
@dataclass
class _Item:
    """One distinct input with all its references and the model's output (None: could not be decoded)."""

    source: str
    references: list[str]
    hypothesis: str | None
    input_len: int = 0
    output_len: int = 0
    # against the first reference: (distance, reference length) in characters and in tokens
    exact: bool = False
    chars: tuple[int, int] = (0, 0)
    tokens: tuple[int, int] = (0, 0)
    # against the best reference
    any_exact: bool = False
    any_chars: tuple[int, int] = (0, 0)
    any_tokens: tuple[int, int] = (0, 0)


def _measure(item: _Item, input_tokenization: str, target_tokenization: str, words: bool) -> None:
    got = item.hypothesis if item.hypothesis is not None else ""
    got_tokens = text.tokenize(got, target_tokenization) if words else []
    item.input_len = len(text.tokenize(item.source, input_tokenization))
    item.output_len = len(text.tokenize(item.references[0], target_tokenization))
    chars, tokens = [], []
    for ref in item.references:
        chars.append((edit_distance(got, ref), len(ref)))
        if words:
            ref_tokens = text.tokenize(ref, target_tokenization)
            tokens.append((edit_distance(got_tokens, ref_tokens), len(ref_tokens)))
    decoded = item.hypothesis is not None
    item.exact = decoded and got == item.references[0]
    item.any_exact = decoded and got in item.references
    item.chars, item.any_chars = chars[0], min(chars, key=lambda dl: dl[0])  # closest; ties: first listed
    if words:
        item.tokens, item.any_tokens = tokens[0], min(tokens, key=lambda dl: dl[0])


def _rate(pairs: Iterable[tuple[int, int]]) -> float:
    dist = total = 0
    for d, n in pairs:
        dist += d
        total += n
    return dist / max(total, 1)


def _summary(items: Sequence[_Item], words: bool, *, any_reference: bool = False) -> dict:
    exact = sum(i.any_exact if any_reference else i.exact for i in items)
    out = {"count": len(items), "exact": exact, "exact_match": exact / len(items) if items else 0.0,
           "character_error_rate": _rate(i.any_chars if any_reference else i.chars for i in items)}
    if words:
        out["word_error_rate"] = _rate(i.any_tokens if any_reference else i.tokens for i in items)
    return out


def bucket_of(length: int) -> tuple[int, int]:
    """The (lowest, highest) length of the bucket that holds ``length``: itself up to EXACT_LENGTHS, then
    doubling ranges 11-20, 21-40, 41-80, ..."""
    if length <= EXACT_LENGTHS:
        return length, length
    high = EXACT_LENGTHS * 2
    while high < length:
        high *= 2
    return high // 2 + 1, high


def _label(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


def _error(item: _Item) -> dict:
    e = {"input": item.source, "expected": item.references[0], "got": item.hypothesis}
    if len(item.references) > 1:
        e["references"] = list(item.references)
    return e


def _buckets(items: Sequence[_Item], attr: str, words: bool) -> list[tuple[dict, list[_Item]]]:
    groups: dict[tuple[int, int], list[_Item]] = {}
    for item in items:
        groups.setdefault(bucket_of(getattr(item, attr)), []).append(item)
    return [({"length": _label(*key), "min": key[0], "max": key[1], **_summary(groups[key], words)}, groups[key])
            for key in sorted(groups)]


def score(triples: Iterable[tuple[str, str, str | None]], target_tokenization: str, *,
          input_tokenization: str = "char", max_errors: int = MAX_ERRORS, worst: int = WORST_BUCKETS,
          reasons: Mapping[str, str] | None = None) -> dict:
    """Score (input, reference, hypothesis) triples; the dict ``metrics.json`` and ``s2s eval --json`` give.

    An input that appears in several triples is one scored input with several references (its first
    hypothesis counts). With ``space`` targets, a reference's whitespace is taken as the model writes it (tokens
    joined by one space). A hypothesis of None means the input could not be decoded: it is scored as an empty
    output and counted in ``undecoded``; ``reasons`` (input -> why) lists up to ``max_errors`` of them.
    ``errors`` lists the first ``max_errors`` inputs whose output is not their first reference; each of the
    ``worst`` buckets lists up to ``max_errors`` of its own.
    """
    for tok in (input_tokenization, target_tokenization):
        if tok not in text.TOKENIZATIONS:
            raise ValueError(f"unknown tokenization {tok!r}; expected one of {', '.join(text.TOKENIZATIONS)}")
    words = target_tokenization == "space"
    by_input: dict[str, _Item] = {}
    pairs = 0
    for source, reference, hypothesis in triples:
        pairs += 1
        if words:  # outputs are tokens joined by one space: "a  b" and " a b" are the reference "a b"
            reference = text.detokenize(text.tokenize(reference, target_tokenization), target_tokenization)
        item = by_input.get(source)
        if item is None:
            by_input[source] = _Item(source, [reference], hypothesis)
        elif reference not in item.references:
            item.references.append(reference)
    items = list(by_input.values())
    for item in items:
        _measure(item, input_tokenization, target_tokenization, words)

    overall = _summary(items, words)
    result: dict = {"pairs": pairs, "inputs": overall.pop("count"), **overall,
                    "undecoded": sum(i.hypothesis is None for i in items)}
    if result["undecoded"]:
        result["undecoded_inputs"] = [{"input": i.source, "reason": (reasons or {}).get(i.source, "")}
                                      for i in items if i.hypothesis is None][:max_errors]
    any_ref = _summary(items, words, any_reference=True)
    result["any_reference"] = {"inputs_with_several": sum(len(i.references) > 1 for i in items),
                               **{k: v for k, v in any_ref.items() if k != "count"}}
    result["input_tokenization"], result["target_tokenization"] = input_tokenization, target_tokenization
    dimensions = {"input_length": _buckets(items, "input_len", words),
                  "output_length": _buckets(items, "output_len", words)}
    result["by_input_length"] = [b for b, _ in dimensions["input_length"]]
    result["by_output_length"] = [b for b, _ in dimensions["output_length"]]
    result["worst_buckets"] = _worst(dimensions, worst, max_errors)
    result["errors"] = [_error(i) for i in items if not i.exact][:max_errors]
    return result


def _worst(dimensions: dict[str, list[tuple[dict, list[_Item]]]], worst: int, max_errors: int) -> list[dict]:
    """The ``worst`` buckets with errors, lowest exact match first (then the larger, then the higher CER), among
    those of at least MIN_WORST_COUNT inputs when there are any."""
    failing = [(by, b, members) for by, buckets in dimensions.items() for b, members in buckets
               if b["exact"] < b["count"]]
    enough = [f for f in failing if f[1]["count"] >= MIN_WORST_COUNT]
    ranked = sorted(enough or failing,
                    key=lambda f: (f[1]["exact_match"], -f[1]["count"], -f[1]["character_error_rate"]))
    listed, seen = [], []
    for by, b, members in ranked:
        inputs = {id(i) for i in members}
        if inputs in seen:  # the same inputs as a bucket already listed (every 3-digit input has 4 words)
            continue
        seen.append(inputs)
        listed.append({"by": by, **b, "errors": [_error(i) for i in members if not i.exact][:max_errors]})
        if len(listed) == worst:
            break
    return listed


# -- the report: plain text (s2s eval) or markdown (the run folder's report.md) -----------------------------------
_UNITS = {"char": "characters", "space": "words"}
_TARGET_UNITS = {"char": "characters", "space": "tokens"}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _figures(d: dict, words: bool) -> str:
    out = f"exact match {_pct(d['exact_match'])} ({d['exact']}/{d.get('count', d.get('inputs'))}), " \
          f"CER {d['character_error_rate']:.4f}"
    return out + (f", WER {d['word_error_rate']:.4f}" if words else "")


def _table(headers: list[str], rows: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        return ["| " + " | ".join(r) + " |" for r in [headers, ["---"] * len(headers), *rows]]
    widths = [max([len(h)] + [len(r[k]) for r in rows]) for k, h in enumerate(headers)]

    def line(r: list[str]) -> str:
        return ("  " + "  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths)))
                ).rstrip()
    return [line(r) for r in [headers, *rows]]


def _bucket_rows(buckets: list[dict], words: bool) -> list[list[str]]:
    return [[b["length"], str(b["count"]), f"{b['exact']}/{b['count']}", _pct(b["exact_match"]),
             f"{b['character_error_rate']:.4f}"] + ([f"{b['word_error_rate']:.4f}"] if words else [])
            for b in buckets]


def _show(s: str | None) -> str:
    return "(not decoded)" if s is None else repr(s)


def _inputs(n: int) -> str:
    return f"{n} input{'' if n == 1 else 's'}"


def worst_lines(scores: dict) -> list[str]:
    """One line per worst bucket: "inputs of length 1: 1/10 exact (10.0%), CER 0.5000"."""
    words = "word_error_rate" in scores
    return [f"{'inputs' if b['by'] == 'input_length' else 'references'} of length {b['length']}: "
            f"{b['exact']}/{b['count']} exact ({_pct(b['exact_match'])}), CER {b['character_error_rate']:.4f}"
            + (f", WER {b['word_error_rate']:.4f}" if words else "") for b in scores["worst_buckets"]]


def format_report(scores: dict, *, markdown: bool = False, max_errors: int | None = None, title: str = "") -> str:
    """The scores of :func:`score` as a short report: overall figures, the undecodable inputs, a table by input
    length and one by output length, and the worst buckets with (up to ``max_errors`` of) their errors."""
    words = "word_error_rate" in scores
    out = [f"# {title}", ""] if title and markdown else [title] if title else []

    def section(name: str) -> None:
        out.extend(["", f"## {name}", ""] if markdown else ["", f"{name}:"])

    out.append(f"{_figures(scores, words)} on {_inputs(scores['inputs'])} ({scores['pairs']} pairs)")
    several = scores["any_reference"]["inputs_with_several"]
    if several:
        out.append(f"any reference ({_inputs(several)} with several): "
                   f"{_figures({**scores['any_reference'], 'count': scores['inputs']}, words)}")
    if scores["undecoded"]:
        listed = scores.get("undecoded_inputs", [])
        shown = "; ".join(repr(u["input"]) + (f" ({u['reason']})" if u["reason"] else "") for u in listed)
        more = " ..." if scores["undecoded"] > len(listed) else ""
        out.append(f"{_inputs(scores['undecoded'])} could not be decoded (scored as errors): {shown}{more}")
    headers = ["length", "count", "exact", "exact %", "CER"] + (["WER"] if words else [])
    section(f"by input length ({_UNITS[scores['input_tokenization']]})")
    out += _table(headers, _bucket_rows(scores["by_input_length"], words), markdown)
    section(f"by output length ({_TARGET_UNITS[scores['target_tokenization']]} of the reference)")
    out += _table(headers, _bucket_rows(scores["by_output_length"], words), markdown)
    section("worst buckets")
    bullet, sub = ("- ", "  - ") if markdown else ("  ", "    ")
    if not scores["worst_buckets"]:
        out.append(f"{bullet}none: every input is exact")
    for b, line in zip(scores["worst_buckets"], worst_lines(scores)):
        out.append(bullet + line)
        out += [f"{sub}{e['input']!r}: expected {e['expected']!r}, got {_show(e['got'])}"
                for e in b["errors"][:max_errors]]
    return "\n".join(out) + "\n"
