"""Decode-time ensembles: several bundles trained on the same data decode together, step by step.

At each step every member runs its own decoder step on its own state, and the ensemble's distribution over the
next token is the normalized geometric mean of the members' (the mean of their log-probabilities, renormalized):
the token chosen, greedily or by beam search, is fed back to every member. The members must read and write the
same tokens (identical ``preprocessing``: vocabularies, tokenizations, length limits) and share an architecture;
their sizes (units, embedding, attention memory) may differ. Each member is loaded with every check ``load``
makes; the ensemble only composes loaded models, so it runs on any backend, in this Python runtime only.

    import seq2seq_edge
    decoder = seq2seq_edge.load_ensemble(["bundles/a", "bundles/b"])
    decoder.decode("银行")
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from . import manifest as mf
from .decoder import Seq2SeqDecoder, check_probabilities
from .errors import BundleError
from .options import OptionError

log = logging.getLogger(__name__)

#: The most bundles one ensemble decodes with (each is a set of loaded models and its own state per step).
MAX_MEMBERS = mf.MAX_ENSEMBLE_MODELS
#: Why models that tokenize differently cannot decode together, and what makes them fit.
SAME_TOKENS = ("an ensemble's models must read and write the same tokens (train them on the same data with the same "
               "tokenization, --min-symbol-count and --symbol-dropout on or off)")
#: The floor a member's probability is raised to before its log is taken (a softmax's float32 can underflow to 0).
_MIN_PROB = np.float32(1e-30)


class EnsembleDecoder(Seq2SeqDecoder):
    """A ``Seq2SeqDecoder`` whose encoder and decoder step are the members' together (see the module's docstring).

    Every decode method of ``Seq2SeqDecoder`` works as documented there, by the step loop (``decode_path`` is
    "step-loop"): greedy, beam search, streaming. ``token_probs`` are the ensemble's probabilities.
    ``manifest`` is the first member's and ``bundle_dir`` None (no one folder holds an ensemble); ``members``
    holds every member's decoder.
    """

    def __init__(self, members: Sequence[Seq2SeqDecoder]):
        members = tuple(members)
        check_members(members)
        first = members[0]
        super().__init__(first.manifest, _Encoder(members), _Step(members), backend=first.backend,
                         variant=first.variant)
        self.members = members

    def __repr__(self) -> str:
        bundles = ", ".join(repr(str(m.bundle_dir) if m.bundle_dir else None) for m in self.members)
        return f"EnsembleDecoder(bundles=[{bundles}], backend={self.backend!r}, variant={self.variant!r})"


def load_ensemble(bundle_dirs: Sequence[str | Path], backend: str = "auto", variant: str = "fp32",
                  threads: int = 1) -> EnsembleDecoder:
    """Load 2 to ``MAX_MEMBERS`` bundles (each as ``load`` does, every check included, decoding by the step loop)
    and return them as one decoder that averages their log-probabilities at every step.

    ``backend``, ``variant`` and ``threads`` apply to every member (with "auto", the backend the first bundle
    gets). A BundleError names the first bundle that does not fit the first one (other vocabularies,
    tokenization, length limits or architecture); bundles whose training held out other pairs (another split
    seed) are decoded, with a warning that scores on either's held-out pairs are not held out from both."""
    from .loader import load

    if isinstance(bundle_dirs, (str, Path)):
        raise TypeError("load_ensemble takes a list of bundle folders; use load() for one bundle")
    bundle_dirs = list(bundle_dirs)
    _check_count(len(bundle_dirs))  # before any bundle is loaded
    first = load(bundle_dirs[0], backend=backend, variant=variant, threads=threads, one_call=False)
    # the others on the backend the first one got ("auto" could pick another format for another bundle)
    others = [load(b, backend=first.backend, variant=variant, threads=threads, one_call=False) for b in bundle_dirs[1:]]
    return EnsembleDecoder([first, *others])


def check_members(members: Sequence[Seq2SeqDecoder]) -> None:
    """BundleError unless every member reads and writes exactly the first member's tokens with its architecture."""
    _check_count(len(members))
    if any(isinstance(m, EnsembleDecoder) or not isinstance(m, Seq2SeqDecoder) for m in members):
        raise TypeError("an ensemble's members are decoders of one bundle each, as load() returns them")
    first = members[0]
    want, held_out = first.preprocessing.to_dict(), _split(first)
    for m in members[1:]:
        where = str(m.bundle_dir) if m.bundle_dir else None
        if (m.backend, m.variant) != (first.backend, first.variant):
            raise BundleError(f"loaded on {m.backend} {m.variant}, the first bundle on {first.backend} "
                              f"{first.variant}: an ensemble's members run on one backend and variant", where=where)
        if m.manifest.architecture != first.manifest.architecture:
            raise BundleError(f"its architecture {m.manifest.architecture!r} is not the first bundle's "
                              f"{first.manifest.architecture!r}: an ensemble's members share one", where=where)
        got = m.preprocessing.to_dict()
        if got != want:
            differ = first_difference(want, got)
            raise BundleError(f"its preprocessing differs from the first bundle's ({differ}): {SAME_TOKENS}",
                              where=where)
        if m.manifest.encoder_time_steps != first.manifest.encoder_time_steps:
            raise BundleError(f"its encoder takes {m.manifest.encoder_time_steps} time steps, the first bundle's "
                              f"{first.manifest.encoder_time_steps}", where=where)
        if _split(m) != held_out:
            log.warning("%s held out other pairs than %s (%s against %s): scores of the ensemble on either's "
                        "validation or test split count pairs the other was trained on", where, first.bundle_dir,
                        _split(m), held_out)


def _check_count(n: int) -> None:
    if not 2 <= n <= MAX_MEMBERS:
        raise OptionError(f"an ensemble decodes with 2 to {MAX_MEMBERS} bundles, got {n}")


def _split(decoder: Seq2SeqDecoder) -> dict:
    """What decided the pairs a bundle's training held out (its manifest's provenance; empty if not recorded)."""
    return held_out_split(decoder.manifest.provenance.get("training"))


def held_out_split(training) -> dict:
    """What decided the pairs a training held out, from its settings (a manifest's ``provenance.training``, a
    run's ``training``): task, fractions and split seed; empty if not recorded."""
    if not isinstance(training, dict):
        return {}
    split = {k: training.get(k) for k in ("task", "validation_fraction", "test_fraction")}
    split["split_seed"] = training.get("seed") if training.get("split_seed") is None else training.get("split_seed")
    return split


def mean_log_probs(distributions: Sequence[np.ndarray]) -> np.ndarray:
    """The mean of the distributions' logs, each probability raised to ``_MIN_PROB`` first: the log of their
    normalized geometric mean (what an ensemble decodes with) less a constant per row."""
    return sum(np.log(np.maximum(p, _MIN_PROB)) for p in distributions) / len(distributions)


def first_difference(a, b, path: str = "preprocessing") -> str:
    """Where two JSON-like values first differ, as a path (``preprocessing.input.vocabulary``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{path}.{key}")
    return path


class _Members:
    """The members' state side by side: ``state_h`` and ``state_c`` are the members' concatenated on the last axis,
    as is ``encoder_outputs`` (attention bundles); each member gets its own slice back."""

    def __init__(self, members: Sequence[Seq2SeqDecoder]):
        self.encoders = [m.internals.encoder for m in members]
        self.steps = [m.internals.decoder_step for m in members]
        self.states = _slices([m.manifest.latent_dim for m in members])
        dims = [m.manifest.encoder_output_dim for m in members]
        self.memories = _slices(dims) if all(d is not None for d in dims) else None
        self.step_inputs = [tuple(t.name for t in m.manifest.io(mf.DECODER_STEP)[0]) for m in members]

    def split(self, feeds: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
        """Member ``i``'s share of the ensemble's feeds."""
        own = {}
        for name in self.step_inputs[i]:
            value = feeds[name]
            if name in (mf.STATE_H, mf.STATE_C):
                value = value[:, self.states[i]]
            elif name == mf.ENCODER_OUTPUTS:
                value = value[:, :, self.memories[i]]
            own[name] = value
        return own


def _slices(widths: Sequence[int]) -> list[slice]:
    ends = np.cumsum(widths).tolist()
    return [slice(end - w, end) for w, end in zip(widths, ends)]


class _Encoder(_Members):
    label = "ensemble encoder"

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = [encoder.run(feeds) for encoder in self.encoders]
        joined = {mf.STATE_H: np.concatenate([o[mf.STATE_H] for o in outs], axis=1),
                  mf.STATE_C: np.concatenate([o[mf.STATE_C] for o in outs], axis=1)}
        if self.memories is not None:
            joined[mf.ENCODER_OUTPUTS] = np.concatenate([o[mf.ENCODER_OUTPUTS] for o in outs], axis=2)
            joined[mf.ENCODER_MASK] = outs[0][mf.ENCODER_MASK]  # the same inputs: the same padding
        return joined


class _Step(_Members):
    label = "ensemble decoder step"

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = [step.run(self.split(feeds, i)) for i, step in enumerate(self.steps)]
        for out, step in zip(outs, self.steps):  # what a member emits is checked before it is averaged in
            check_probabilities(out[mf.PROBS], getattr(step, "label", "decoder step"))
        log_probs = mean_log_probs([o[mf.PROBS] for o in outs])
        log_probs -= log_probs.max(axis=1, keepdims=True)
        probs = np.exp(log_probs)
        probs /= probs.sum(axis=1, keepdims=True)
        return {mf.PROBS: probs.astype(np.float32, copy=False),
                mf.NEXT_STATE_H: np.concatenate([o[mf.NEXT_STATE_H] for o in outs], axis=1),
                mf.NEXT_STATE_C: np.concatenate([o[mf.NEXT_STATE_C] for o in outs], axis=1)}
