"""How text becomes token ids and back: the ``preprocessing`` section of a bundle's manifest, shared by training,
export and every runtime, and the padding of id lists into the encoder's input."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from . import text
from .errors import BundleError, InputTextError

# Bounds on what a manifest may declare (see manifest.py for the others; each is documented in docs/trust.md).
#: Tokens per vocabulary side, and characters per token.
MAX_VOCABULARY = 262_144
MAX_TOKEN_CHARS = 256
#: input.max_tokens, target.max_tokens (and the manifest's encoder_time_steps): the decode loop runs at most this
#: many steps.
MAX_SEQUENCE_TOKENS = 4096


@dataclass(frozen=True)
class Preprocessing:
    """How text becomes token ids and back; identical in training, export and every runtime."""

    #: Unicode normalization applied to input and target text ("NFC").
    normalization: str
    #: Tokenization of the input side: "char" or "space".
    input_tokenization: str
    #: Tokenization of the output side: "char" or "space".
    target_tokenization: str
    #: Input vocabulary; index = token id. Ids 0, 1, 2 are pad, start and end.
    input_vocabulary: tuple[str, ...]
    #: Output vocabulary; index = token id. Ids 0, 1, 2 are pad, start and end.
    target_vocabulary: tuple[str, ...]
    #: The longest input, in tokens, the model was trained on; longer inputs are refused.
    max_input_tokens: int
    #: The longest output, in tokens (end marker excluded), the decoder may emit.
    max_output_tokens: int
    #: An entry of the input vocabulary that input symbols outside it map to (``s2s train --min-symbol-count`` or
    #: ``--symbol-dropout`` trained it on rare symbols); None: such symbols are an error. Target symbols are never
    #: replaced.
    unknown_token: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "input_codec", text.Vocabulary(self.input_vocabulary, self.input_tokenization,
                                                                self.unknown_token))
        object.__setattr__(self, "target_codec", text.Vocabulary(self.target_vocabulary, self.target_tokenization))

    @property
    def special_tokens(self) -> dict[str, dict[str, Any]]:
        return {
            "pad": {"id": text.PAD_ID, "text": text.PAD_TOKEN},
            "start": {"id": text.START_ID, "text": text.START_TOKEN},
            "end": {"id": text.END_ID, "text": text.END_TOKEN},
        }

    def to_dict(self) -> dict[str, Any]:
        source = {"tokenization": self.input_tokenization, "vocabulary": list(self.input_vocabulary),
                  "max_tokens": self.max_input_tokens}
        if self.unknown_token is not None:  # absent otherwise: manifests without it keep their meaning
            source["unknown_token"] = self.unknown_token
        return {
            "normalization": self.normalization,
            "special_tokens": self.special_tokens,
            "padding": {"side": "right", "pad_id": text.PAD_ID, "masked_by_encoder": True},
            "input": source,
            "target": {"tokenization": self.target_tokenization, "vocabulary": list(self.target_vocabulary),
                       "max_tokens": self.max_output_tokens},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        problems = validate_preprocessing_dict(d)
        if problems:
            raise BundleError(problems)
        return cls(
            normalization=d["normalization"],
            input_tokenization=d["input"]["tokenization"],
            target_tokenization=d["target"]["tokenization"],
            input_vocabulary=tuple(d["input"]["vocabulary"]),
            target_vocabulary=tuple(d["target"]["vocabulary"]),
            max_input_tokens=int(d["input"]["max_tokens"]),
            max_output_tokens=int(d["target"]["max_tokens"]),
            unknown_token=d["input"].get("unknown_token"),
        )

    @property
    def max_input_chars(self) -> int:
        """Characters an input may have before it is refused unread: room for many characters per token (combining
        marks, spaces between words), and a bound on the work one input can cause."""
        return self.max_input_tokens * 64 + 1024

    # -- encoding ---------------------------------------------------------------------------------------------
    def encode_input(self, source: str, *, skip_unknown: bool = False) -> list[int]:
        """Token ids of one input text (normalized), checked against the vocabulary and the length limit."""
        if not isinstance(source, str):
            raise TypeError(f"input must be str, not {type(source).__name__}")
        # Refuse absurd lengths before touching the text (a million characters must fail fast).
        if len(source) > self.max_input_chars:
            raise InputTextError(
                f"input is {len(source)} characters long; the model takes at most {self.max_input_tokens} tokens")
        ids = self.input_codec.encode(text.normalize(source), skip_unknown=skip_unknown)
        if len(ids) > self.max_input_tokens:
            raise InputTextError(
                f"input is {len(ids)} tokens long; the model takes at most {self.max_input_tokens}")
        return ids

    def decode_output(self, ids: Sequence[int]) -> str:
        return self.target_codec.decode(ids)


def pad_batch(sequences: Sequence[Sequence[int]], length: int | None = None) -> np.ndarray:
    """Right-pad id lists with the pad id into an int32 [batch, time] array (time >= 1)."""
    width = max([length or 0, 1] + [len(s) for s in sequences])
    out = np.full((len(sequences), width), text.PAD_ID, dtype=np.int32)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out


def is_count(v: Any, limit: int) -> bool:
    """A positive int (not a bool) no larger than ``limit``."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= limit


def short_repr(v: Any) -> str:
    """A value for an error message, cut short (a crafted manifest can hold anything)."""
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def validate_preprocessing_dict(d: Any) -> list[str]:
    """Every problem of a preprocessing section, as readable strings (empty when it is valid). Never raises."""
    if not isinstance(d, dict):
        return ["preprocessing must be an object"]
    problems = []
    if d.get("normalization") != text.NORMALIZATION:
        problems.append(f"normalization must be {text.NORMALIZATION!r}, got {short_repr(d.get('normalization'))}")
    for side in ("input", "target"):
        s = d.get(side)
        if not isinstance(s, dict):
            problems.append(f"missing section '{side}'")
            continue
        if not isinstance(s.get("tokenization"), str) or s["tokenization"] not in text.TOKENIZATIONS:
            problems.append(f"{side}.tokenization must be one of {list(text.TOKENIZATIONS)}, "
                            f"got {short_repr(s.get('tokenization'))}")
        problems += _vocabulary_problems(side, s.get("vocabulary"))
        if not is_count(s.get("max_tokens"), MAX_SEQUENCE_TOKENS):
            problems.append(f"{side}.max_tokens must be an integer from 1 to {MAX_SEQUENCE_TOKENS}, "
                            f"got {short_repr(s.get('max_tokens'))}")
        if "unknown_token" in s:
            problems += _unknown_token_problems(side, s["unknown_token"], s.get("vocabulary"))
    return problems


def _unknown_token_problems(side: str, token: Any, vocab: Any) -> list[str]:
    """The optional ``input.unknown_token``: a string naming a data entry of the input vocabulary."""
    if side != "input":
        return [f"{side}.unknown_token is not allowed: only input symbols map to an unknown token"]
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
        return [f"input.unknown_token must be a string of 1 to {MAX_TOKEN_CHARS} characters, got {short_repr(token)}"]
    if token in text.SPECIAL_TOKENS:
        return [f"input.unknown_token must not be a reserved token, got {short_repr(token)}"]
    if isinstance(vocab, list) and token not in vocab:
        return [f"input.unknown_token {short_repr(token)} is not an entry of input.vocabulary"]
    return []


def _vocabulary_problems(side: str, vocab: Any) -> list[str]:
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        return [f"{side}.vocabulary must be a list of strings"]
    if len(vocab) > MAX_VOCABULARY:
        return [f"{side}.vocabulary has {len(vocab)} entries, more than the {MAX_VOCABULARY} allowed"]
    problems = []
    if tuple(vocab[: len(text.SPECIAL_TOKENS)]) != text.SPECIAL_TOKENS:
        problems.append(f"{side}.vocabulary must start with the special tokens {list(text.SPECIAL_TOKENS)}")
    if len(vocab) <= len(text.SPECIAL_TOKENS):
        problems.append(f"{side}.vocabulary has no data tokens")
    bad = [t for t in vocab if not 0 < len(t) <= MAX_TOKEN_CHARS]
    if bad:
        problems.append(f"{side}.vocabulary has {len(bad)} empty entries or entries over {MAX_TOKEN_CHARS} "
                        "characters")
    not_unicode = [t for t in vocab if not text.is_valid_unicode(t)]
    if not_unicode:
        problems.append(f"{side}.vocabulary has {len(not_unicode)} entries that are not valid Unicode (lone "
                        "surrogates)")
    dupes = sorted(t for t, n in Counter(vocab).items() if n > 1)
    if dupes:
        problems.append(f"{side}.vocabulary has duplicate entries: {', '.join(short_repr(t) for t in dupes[:5])}")
    return problems
