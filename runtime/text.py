"""Text preprocessing shared by training and the runtime: normalization, tokenization and vocabularies.

The same code runs when a model is trained and when it is decoded, so that both see identical token ids.
Policy (documented in the README):

* Unicode text is normalized to NFC on both sides, in training and at run time. Text that is not valid Unicode
  (a lone surrogate, e.g. bytes that were not UTF-8 decoded with ``surrogateescape``) is refused there.
* ``char`` tokenization: one token per character (after NFC). ``space``: tokens are the runs of non-whitespace
  (``str.split()``), and detokenization joins them with one space.
* Ids 0, 1 and 2 are reserved for padding, start and end in every vocabulary. Their strings contain a space
  and are longer than one character, so neither tokenizer can ever produce them from data.
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
    """One side's token list. ``tokens[i]`` is the string of id ``i``; ids 0-2 are pad, start and end."""

    tokens: tuple[str, ...]
    tokenization: str

    def __post_init__(self):
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    @classmethod
    def build(cls, texts: Iterable[str], tokenization: str) -> "Vocabulary":
        """Collect the sorted set of tokens of normalized ``texts`` after the reserved ones."""
        symbols = set()
        for text in texts:
            symbols.update(tokenize(text, tokenization))
        return cls(SPECIAL_TOKENS + tuple(sorted(symbols)), tokenization)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, *, skip_unknown: bool = False) -> list[int]:
        """Token ids of normalized ``text`` (no start or end markers). Unknown symbols (unless skipped) and text
        that is not valid Unicode raise InputTextError."""
        check_unicode(text)
        ids, unknown = [], []
        for token in tokenize(text, self.tokenization):
            i = self._index.get(token)
            if i is None or i < len(SPECIAL_TOKENS):
                if token not in unknown:
                    unknown.append(token)
                continue
            ids.append(i)
        if unknown and not skip_unknown:
            shown = ", ".join(_describe(t) for t in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            raise InputTextError(f"input has {len(unknown)} symbol(s) the model never saw: {shown}")
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
