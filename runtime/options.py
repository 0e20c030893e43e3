"""How a decode runs: ``DecodeOptions``, the one options object every decode method takes, with its bounds
checked in one place for the Python API and the command line alike."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields, replace
from typing import Mapping

from .errors import Seq2SeqEdgeError

#: The widest beam: beyond it the search costs far more than it finds (see ``beam``).
MAX_BEAM_SIZE = 64
#: The largest GNMT length penalty alpha: published systems use 0.6 to 1.
MAX_LENGTH_PENALTY = 10.0
#: The largest batch size: throughput stops growing long before it (see the benchmarks' batch 64 and 256), while
#: every input of a batch, and its decoder state at each step, is held in memory at once.
MAX_BATCH_SIZE = 4096

#: How ``s2s run`` spells each option in its errors (the API uses the field names).
CLI_NAMES = {"batch_size": "--batch-size", "max_output_len": "--max-output-len", "skip_unknown": "--skip-unknown",
             "beam_size": "--beam", "n_best": "--n-best", "length_penalty": "--length-penalty"}


class OptionError(Seq2SeqEdgeError, ValueError):
    """A decode option out of its bounds, or two that contradict each other; the message names the option."""


@dataclass(frozen=True)
class DecodeOptions:
    """How inputs are decoded; checked when made (TypeError for a wrong type, OptionError, a ValueError, for a
    value out of bounds).

    - ``batch_size``: inputs per model call, 1 to ``MAX_BATCH_SIZE`` (with beam search, at most
      ``beam.MAX_BEAM_ROWS // beam_size`` inputs go through the step model together).
    - ``max_output_len``: stop after this many tokens, 1 to the bundle's trained maximum (None: that maximum).
    - ``skip_unknown``: drop input symbols the model never saw instead of refusing the input.
    - ``beam_size``: 1 to ``MAX_BEAM_SIZE``; None means ``n_best``, so 1: greedy decoding, exactly.
    - ``n_best``: 1 to ``beam_size``; with more than 1, ``DecodeResult.alternatives`` holds the runners-up.
    - ``length_penalty``: GNMT's alpha, 0 to ``MAX_LENGTH_PENALTY`` (0: rank by log-probability).
    """

    batch_size: int = 32
    max_output_len: int | None = None
    skip_unknown: bool = False
    beam_size: int | None = None
    n_best: int = 1
    length_penalty: float = 0.0

    def __post_init__(self):
        check_values({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def of(cls, options: "DecodeOptions | None" = None, /, **overrides) -> "DecodeOptions":
        """``options`` (default: the defaults) with ``overrides`` replacing fields; TypeError names an unknown one."""
        base = options if options is not None else _DEFAULT
        if not isinstance(base, DecodeOptions):
            raise TypeError(f"options must be a DecodeOptions, not {type(base).__name__}")
        if not overrides:
            return base
        unknown = sorted(set(overrides) - _FIELDS)
        if unknown:
            raise TypeError(f"unknown decode option {unknown[0]!r} (the options: {', '.join(sorted(_FIELDS))})")
        return replace(base, **overrides)

    @property
    def beam(self) -> int:
        """The beam width the decode runs with: ``beam_size``, or ``n_best`` when it is None (1: greedy)."""
        return self.beam_size if self.beam_size is not None else self.n_best

    @property
    def path(self) -> str | None:
        """"beam-search" when the options ask for it, else None (the decoder's own path)."""
        return "beam-search" if self.beam > 1 else None

    def limit(self, trained_max: int, names: Mapping[str, str] | None = None) -> int:
        """The output length limit for a bundle trained to ``trained_max`` tokens: ``max_output_len`` (OptionError
        when above it) or ``trained_max``."""
        if self.max_output_len is None:
            return trained_max
        if self.max_output_len > trained_max:
            name = (names or {}).get("max_output_len", "max_output_len")
            raise OptionError(f"{name} must be between 1 and the trained maximum {trained_max}, "
                              f"got {self.max_output_len}")
        return self.max_output_len


_FIELDS = frozenset(f.name for f in fields(DecodeOptions))


def resolve(options, overrides: dict, stacklevel: int = 3) -> DecodeOptions:
    """A decode method's options: ``options`` (a DecodeOptions or None) with ``overrides`` replacing its fields. An
    int where the options go is the positional batch size of 0.3 and before: it still works, with a
    DeprecationWarning pointing at the caller of the method that calls this (``stacklevel``)."""
    if isinstance(options, int) and not isinstance(options, bool):
        warnings.warn("pass batch_size=N (or a DecodeOptions) instead of a positional batch size",
                      DeprecationWarning, stacklevel=stacklevel)
        options, overrides = None, {"batch_size": options, **overrides}
    return DecodeOptions.of(options, **overrides)
_DEFAULTS = {f.name: f.default for f in fields(DecodeOptions)}


def check_values(values: Mapping[str, object], names: Mapping[str, str] | None = None) -> None:
    """Check decode option values (a mapping of ``DecodeOptions`` fields), naming each as ``names`` spells it
    (``CLI_NAMES`` for the command line; the field name by default). TypeError for a wrong type, OptionError for
    a value out of bounds or two that contradict each other."""
    def name(field: str) -> str:
        return (names or {}).get(field, field)

    values = {**_DEFAULTS, **values}
    for field in ("batch_size", "max_output_len", "beam_size", "n_best"):
        value = values[field]
        if (value is not None or field in ("batch_size", "n_best")) and (
                isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{name(field)} must be an int, not {type(value).__name__}")
    length_penalty = values["length_penalty"]
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
        raise TypeError(f"{name('length_penalty')} must be a number, not {type(length_penalty).__name__}")
    if not isinstance(values["skip_unknown"], bool):
        raise TypeError(f"{name('skip_unknown')} must be True or False, not "
                        f"{type(values['skip_unknown']).__name__}")
    batch_size, max_len, beam_size, n_best = (values[k] for k in ("batch_size", "max_output_len", "beam_size",
                                                                   "n_best"))
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise OptionError(f"{name('batch_size')} must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}")
    if max_len is not None and max_len < 1:
        raise OptionError(f"{name('max_output_len')} must be at least 1, got {max_len}")
    if not 1 <= n_best <= MAX_BEAM_SIZE:
        raise OptionError(f"{name('n_best')} must be between 1 and {MAX_BEAM_SIZE}, got {n_best}")
    if beam_size is not None and not 1 <= beam_size <= MAX_BEAM_SIZE:
        raise OptionError(f"{name('beam_size')} must be between 1 and {MAX_BEAM_SIZE}, got {beam_size}")
    if n_best > (beam_size if beam_size is not None else n_best):
        raise OptionError(f"{name('n_best')} ({n_best}) cannot exceed {name('beam_size')} ({beam_size})")
    if not (math.isfinite(length_penalty) and 0 <= length_penalty <= MAX_LENGTH_PENALTY):
        raise OptionError(f"{name('length_penalty')} must be between 0 and {MAX_LENGTH_PENALTY:g}, "
                          f"got {length_penalty}")


_DEFAULT = DecodeOptions()
