"""Text preprocessing shared by training and the runtime: normalization, tokenization and vocabularies.

The same code runs when a model is trained and when it is decoded, so that both see identical token ids.
Policy (documented in docs/cli.md, "Text policy"):

* Unicode text is normalized to NFC on both sides, in training and at run time. Text that is not valid Unicode
  (a lone surrogate, e.g. bytes that were not UTF-8 decoded with ``surrogateescape``) is refused there.
* ``char`` tokenization: one token per character (after NFC). ``space``: tokens are the runs of non-whitespace
  (``str.split()``), and detokenization joins them with one space.
* Ids 0, 1 and 2 are reserved for padding, start and end in every vocabulary. Their strings contain a space
  and are longer than one character, so neither tokenizer can ever produce them from data.
* An input vocabulary may declare an unknown token (``s2s train --min-symbol-count N``: symbols seen fewer than N
  times in training were replaced by it; ``--symbol-dropout``: rare symbols were, now and then). Then every
  input symbol outside the vocabulary maps to its id instead of being an error. The one training writes,
  ``UNKNOWN_TOKEN``, contains a space too; a manifest may name any entry of its input vocabulary but the reserved
  ones.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

from .errors import InputTextError

NORMALIZATION = "NFC"
TOKENIZATIONS = ("char", "space")

PAD_TOKEN = "<s2s pad>"
START_TOKEN = "<s2s start>"
END_TOKEN = "<s2s end>"
SPECIAL_TOKENS = (PAD_TOKEN, START_TOKEN, END_TOKEN)
PAD_ID, START_ID, END_ID = 0, 1, 2
#: The ids no output text holds (a beam search never extends a hypothesis with one; the end id ends it).
RESERVED_IDS = (PAD_ID, START_ID, END_ID)
#: The reserved ids no honest model chooses at all (the end id ends an output).
NEVER_CHOSEN_IDS = (PAD_ID, START_ID)
#: The unknown token ``s2s train --min-symbol-count`` or ``--symbol-dropout`` adds to the input vocabulary, right
#: after the reserved ones.
UNKNOWN_TOKEN = "<s2s unk>"


_SURROGATE = re.compile("[\ud800-\udfff]")


def is_valid_unicode(text: str) -> bool:
    """False if ``text`` holds a lone surrogate: such a str is not Unicode text and cannot be written as UTF-8
    (Python makes one from invalid UTF-8, e.g. in command-line arguments, or from a "\\udcff" escape in JSON)."""
    return text.isascii() or _SURROGATE.search(text) is None


def check_unicode(text: str) -> None:
    """Raise InputTextError if ``text`` is not valid Unicode (see :func:`is_valid_unicode`)."""
    m = None if text.isascii() else _SURROGATE.search(text)
    if m:
        raise InputTextError(f"not valid Unicode: lone surrogate U+{ord(m.group()):04X} at column {m.start() + 1}")


def normalize(text: str) -> str:
    """Apply the toolkit's Unicode normalization policy (NFC); InputTextError if ``text`` is not valid Unicode."""
    check_unicode(text)
    return unicodedata.normalize(NORMALIZATION, text)


def tokenize(text: str, tokenization: str) -> list[str]:
    """Split already-normalized text into tokens."""
    if tokenization == "char":
        return list(text)
    if tokenization == "space":
        return text.split()
    raise ValueError(f"unknown tokenization {tokenization!r}; expected one of {', '.join(TOKENIZATIONS)}")


def detokenize(tokens: Iterable[str], tokenization: str) -> str:
    """Join tokens back into text: characters are concatenated, words joined by one space."""
    return ("" if tokenization == "char" else " ").join(tokens)


def _describe(symbol: str) -> str:
    """A printable description of a symbol for error messages, e.g. 'é' or U+0000."""
    if len(symbol) == 1 and not symbol.isprintable():
        return f"U+{ord(symbol):04X}"
    return repr(symbol)


@dataclass(frozen=True)
class Vocabulary:
    """One side's token list. ``tokens[i]`` is the string of id ``i``; ids 0-2 are pad, start and end.
    ``unknown``: an entry of ``tokens`` that every symbol outside the vocabulary maps to (None: they are errors)."""

    tokens: tuple[str, ...]
    tokenization: str
    unknown: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})
        if self.unknown is not None and self._index.get(self.unknown, 0) < len(SPECIAL_TOKENS):
            raise ValueError(f"the unknown token {self.unknown!r} must be a vocabulary entry other than the "
                             "reserved ones")

    @classmethod
    def build(cls, texts: Iterable[str], tokenization: str, *, min_count: int = 1,
              unknown: str = UNKNOWN_TOKEN, with_unknown: bool = False) -> "Vocabulary":
        """The sorted tokens of normalized ``texts`` after the reserved ones. With ``min_count`` > 1, tokens seen
        fewer times are left out and ``unknown`` stands for them (right after the reserved ones) if any was, or
        always with ``with_unknown``."""
        counts: dict[str, int] = {}
        for text in texts:
            for token in tokenize(text, tokenization):
                counts[token] = counts.get(token, 0) + 1
        kept = sorted(t for t, n in counts.items() if n >= min_count)
        if len(kept) == len(counts) and not with_unknown:
            return cls(SPECIAL_TOKENS + tuple(kept), tokenization)
        return cls(SPECIAL_TOKENS + (unknown,) + tuple(kept), tokenization, unknown)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, *, skip_unknown: bool = False) -> list[int]:
        """Token ids of normalized ``text`` (no start or end markers). Symbols outside the vocabulary map to the
        unknown token's id when there is one; otherwise they raise InputTextError (or are left out with
        ``skip_unknown``). Text that is not valid Unicode raises InputTextError."""
        check_unicode(text)
        ids, unknown = [], []
        unknown_id = None if self.unknown is None else self._index[self.unknown]
        for token in tokenize(text, self.tokenization):
            i = self._index.get(token)
            if i is None or i < len(SPECIAL_TOKENS):
                if unknown_id is not None:
                    ids.append(unknown_id)
                    continue
                if token not in unknown:
                    unknown.append(token)
                continue
            ids.append(i)
        if unknown and not skip_unknown:
            shown = ", ".join(_describe(t) for t in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            inner = text.strip(" \t")
            hint = ("; it is whitespace around the text, which the model's inputs never had: strip it"
                    if all(t in (" ", "\t") and t not in inner for t in unknown) else "")
            raise InputTextError(f"input has {len(unknown)} symbol(s) the model never saw: {shown}{hint}")
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, stopping at the end token and leaving out pad and start."""
        out = []
        for i in ids:
            i = int(i)
            if i == END_ID:
                break
            if i >= len(SPECIAL_TOKENS):
                out.append(self.tokens[i])
        return detokenize(out, self.tokenization)
