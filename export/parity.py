"""The parity gate: every exported variant, driven step by step beside the Keras models. It fails the export.

fp32 variants must reproduce Keras' probabilities, LSTM states and encoder outputs at every step within a tolerance
that scales with what is compared (``fp32_limit``), give the same string for every input, and the same n-best lists
under beam search (GATE_BEAM). Quantized variants are held to string-level floors. Every variant's one-call greedy
model must choose exactly the ids its step loop chooses, for every input, with probabilities within ONE_CALL_ATOL
of the step loop's. ``check_parity`` measures; ``GateResult.raise_if_failed`` is the gate.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from seq2seq_edge import manifest as mf
from seq2seq_edge import preprocessing as pp
from seq2seq_edge import decoder as decoder_mod
from seq2seq_edge.decoder import Seq2SeqDecoder, padded_batches
from seq2seq_edge.errors import ExportError, InputTextError
from seq2seq_edge.loader import load
from seq2seq_edge.evaluation import metrics
from seq2seq_edge.evaluation.pairs import Pair
from seq2seq_edge.train.reference import KerasDecoder, KerasTrace, beam_search
from seq2seq_edge.train.run_folder import RunFolder

log = logging.getLogger(__name__)

#: fp32 exports must reproduce Keras at every step, element by element, within
#:     |export - Keras| <= atol + FP32_RTOL * scale
#: where ``scale`` is the largest magnitude in the same row of Keras' tensor (one input, one step, one tensor:
#: the probabilities, h, c or the encoder's outputs at one position) and ``atol`` is FP32_PROBS_ATOL for the
#: probabilities, FP32_ATOL for the rest. float32 sums taken in another order move a result by an amount relative
#: to the size of what is summed: LSTM cell states and attention contexts are not bounded by 1, and a softmax over
#: large logits moves its probabilities by the logits' rounding, so a fixed 1e-5 refused exports whose every
#: string matched Keras. Chosen from the differences measured on real trainings (benchmarks/parity_noise.py,
#: benchmarks/results/parity_noise.md, seven models): the largest difference of a state was 6e-6 of its row's
#: scale, of a probability 2.8e-5; no element of any model used more than 12% of its limit, while one weight moved
#: by a tenth of a percent (tests/test_export.py) exceeds it.
FP32_RTOL = 1e-4
FP32_ATOL = 1e-5
FP32_PROBS_ATOL = 1e-4
#: float16 weights must give Keras' string for at least this fraction of the test inputs.
FP16_MIN_AGREEMENT = 0.995
#: int8 exact match may fall at most this far (absolute) below Keras' exact match.
INT8_MAX_EXACT_MATCH_DROP = 0.01
#: Largest difference allowed between a one-call greedy model's probabilities and its own step loop's: the
#: runtime's (decoder.ONE_CALL_ATOL).
ONE_CALL_ATOL = decoder_mod.ONE_CALL_ATOL
#: The backend that checks each format at export time.
GATE_BACKEND = {"tflite": "litert", "onnx": "onnx"}
#: Inputs per batch in the gate (Keras and the export see the same batches).
GATE_BATCH = 256
#: The gate looks at the whole test split, topped up from the validation and training splits to this many inputs.
MIN_GATE_INPUTS = 200
#: fp32 variants must also give Keras' n-best lists under beam search (beam and n_best GATE_BEAM, no length
#: penalty): the runtime's search (runtime/beam.py) against the reference's own (train/reference.py).
GATE_BEAM = 4
#: ... on the first this many of the gate's inputs (all of them for the built-in tasks' test splits): a beam of 4
#: runs the step model on four times the rows, so on a 12,000-input gate (CMUdict) every input would add a minute.
GATE_BEAM_INPUTS = 1000
#: ... except where Keras' search came closer than this (in log-probability) to deciding otherwise, or than
#: BEAM_TIE_FACTOR times the largest difference between an export's and Keras' score of the same hypothesis
#: (parity.json: beam_max_score_diff; 1e-6 on the test models, 4e-5 on a 12,000-input CMUdict model): such a
#: decision is a numerical tie, which either side may take. Mismatches excused so are counted (beam_near_ties).
BEAM_NEAR_TIE = 1e-4
BEAM_TIE_FACTOR = 10


def fp32_limit(tensor: str, scale):
    """The largest difference the gate allows between an fp32 export and Keras for an element of ``tensor`` whose
    row in Keras' tensor has largest magnitude ``scale`` (a number or an array)."""
    return (FP32_PROBS_ATOL if tensor == mf.PROBS else FP32_ATOL) + FP32_RTOL * scale


class StepwiseDiffs:
    """The largest differences between an fp32 export and Keras, per tensor, and where the worst one is.

    Per tensor: the largest absolute difference, the largest difference relative to its row's scale (the largest
    magnitude in that row of Keras' tensor), the largest magnitude seen, and the element that used most of its
    limit (``fp32_limit``), with the input, the step, the unit and both values. A NaN or infinite value in the
    export counts as an infinite difference.
    """

    def __init__(self) -> None:
        self.tensors: dict[str, dict] = {}

    def note(self, tensor: str, ref, got, sources: list[str], step: int | None) -> None:
        """Compare one batch of ``tensor`` (rows: the inputs ``sources``; last axis: units) at decoder ``step``
        (None: the encoder's outputs)."""
        ref = np.asarray(ref, dtype=np.float64)
        diff = np.abs(np.asarray(got, dtype=np.float64) - ref)
        diff[~np.isfinite(diff)] = np.inf
        scale = np.max(np.abs(ref), axis=-1, keepdims=True)
        used = diff / fp32_limit(tensor, scale)
        at = np.unravel_index(int(np.argmax(used)), used.shape)
        t = self.tensors.setdefault(tensor, {"max_abs_diff": 0.0, "max_rel_diff": 0.0, "max_magnitude": 0.0,
                                             "tolerance_used": 0.0, "worst": None})
        t["max_abs_diff"] = max(t["max_abs_diff"], float(np.max(diff)))
        t["max_rel_diff"] = max(t["max_rel_diff"], float(np.max(diff / np.maximum(scale, 1e-12))))
        t["max_magnitude"] = max(t["max_magnitude"], float(np.max(scale)))
        if float(used[at]) > t["tolerance_used"] or t["worst"] is None:
            t["tolerance_used"] = float(used[at])
            row_scale = float(scale[at[:-1] + (0,)])  # scale keeps the unit axis, of length 1
            t["worst"] = {"input": sources[at[0]], "step": step, "position": int(at[1]) if len(at) == 3 else None,
                          "unit": int(at[-1]), "keras": float(ref[at]), "export": float(np.asarray(got)[at]),
                          "difference": float(diff[at]), "limit": float(fp32_limit(tensor, row_scale))}

    @property
    def max_abs_diff(self) -> dict[str, float | str]:
        return {k: _finite_or_str(t["max_abs_diff"]) for k, t in self.tensors.items()}

    def worst(self) -> tuple[str, dict] | None:
        """The tensor and the element that used most of its limit."""
        return worst_tensor(self.tensors)

    def to_dict(self) -> dict:
        return {k: {**t, **{f: _finite_or_str(t[f]) for f in ("max_abs_diff", "max_rel_diff", "tolerance_used")},
                    "worst": None if t["worst"] is None else {
                        f: _finite_or_str(v) for f, v in t["worst"].items()}}
                for k, t in self.tensors.items()}


def worst_tensor(stepwise: dict) -> tuple[str, dict] | None:
    """(tensor, figures) of the tensor that used most of its limit, in ``StepwiseDiffs`` figures or in their JSON
    form (``to_dict``: non-finite figures as strings); None when nothing was compared."""
    return max(stepwise.items(), key=lambda kv: float(kv[1]["tolerance_used"]), default=None)


def _finite_or_str(v):
    """JSON has no NaN or infinity: such a figure is written as a string."""
    return str(v) if isinstance(v, float) and not np.isfinite(v) else v


def describe_worst(tensor: str, w: dict, verdict: str = ">") -> str:
    """One line naming the tensor, the step, the input, the unit and both values of the worst difference."""
    where = "the encoder's output" if w["step"] is None else f"decoder step {w['step'] + 1}"
    if w.get("position") is not None:
        where += f" at input position {w['position'] + 1}"
    return (f"{tensor} at {where} for input {w['input']!r}, unit {w['unit']}: Keras {float(w['keras']):.7g}, "
            f"export {float(w['export']):.7g}, difference {float(w['difference']):.3g} {verdict} limit "
            f"{w['limit']:.3g}")


def gate_pairs(run: RunFolder) -> list[Pair]:
    """The run's test split, topped up to MIN_GATE_INPUTS from validation and training pairs where it is smaller.
    Inputs with symbols the model never saw (only in held-out pairs) cannot be decoded and are left out."""
    prep = run.read_config().preprocessing
    pairs, seen = [], set()
    for part in ("test", "validation", "train"):
        for p in run.read_split(part):
            if (p.source, p.target) not in seen and (part == "test" or len(pairs) < MIN_GATE_INPUTS):
                try:
                    prep.encode_input(p.source)
                except InputTextError:
                    continue
                seen.add((p.source, p.target))
                pairs.append(p)
    return pairs


@dataclass(frozen=True)
class KerasReference:
    """What Keras decoded for the gate's inputs, batch by batch."""

    sources: list[str]
    references: list[str]
    #: The padded input ids, GATE_BATCH rows at a time; the exported models see the same batches.
    batches: list[np.ndarray]
    strings: list[str]

    @classmethod
    def decode(cls, keras: KerasDecoder, prep: pp.Preprocessing, pairs: list[Pair], time_steps: int,
               on_batch=None) -> "KerasReference":
        """Keras' greedy decodes of ``pairs``. ``on_batch(sources, input_ids, trace)`` sees each batch's inputs and
        full trace (every step's inputs and outputs) as it is made; traces are not kept, so the gate's memory is one
        batch's."""
        sources, references = [p.source for p in pairs], [p.target for p in pairs]
        batches = list(padded_batches([prep.encode_input(s) for s in sources], GATE_BATCH, time_steps))
        strings = []
        for ids in batches:
            trace = keras.trace(ids)
            if on_batch is not None:
                on_batch(sources[len(strings):len(strings) + len(ids)], ids, trace)
            strings += [prep.decode_output(o) for o in trace.outputs]
        return cls(sources, references, batches, strings)

    @property
    def exact_match(self) -> float:
        return metrics.exact_match(self.strings, self.references)


@dataclass
class VariantReport:
    format: str
    variant: str
    backend: str
    agreement: float
    exact_match: float
    character_error_rate: float
    max_abs_diff: dict = field(default_factory=dict)
    #: fp32: per tensor, the largest absolute and relative differences from Keras and the worst element
    #: (StepwiseDiffs.to_dict).
    stepwise: dict = field(default_factory=dict)
    #: Why the variant fails the gate; empty when it passes.
    reason: str = ""
    disagreements: list = field(default_factory=list)
    #: fp32: the fraction of inputs whose beam-search n-best list (texts and finished flags, in order) is Keras';
    #: the others must be numerical ties (margin below beam_tie_tolerance, see BEAM_NEAR_TIE), counted here, with
    #: the largest score difference between the same hypothesis in both lists, and the first lists that differ.
    beam_agreement: float | None = None
    beam_inputs: int = 0
    beam_near_ties: int = 0
    beam_max_score_diff: float | None = None
    beam_tie_tolerance: float | None = None
    beam_disagreements: list = field(default_factory=list)
    #: With a one-call greedy model: the fraction of inputs for which it chose exactly the step loop's ids (and
    #: finished alike), its largest probability difference from the step loop's, and the first inputs that differ.
    one_call_agreement: float | None = None
    one_call_max_prob_diff: float | None = None
    one_call_disagreements: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reason

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


@dataclass
class GateResult:
    """The gate's figures for every variant of a bundle, beside Keras'."""

    keras: KerasReference
    variants: list[VariantReport]
    #: Variants that failed and were left out of the bundle (``leaving_out_failed``).
    left_out: list[VariantReport] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return [f"{v.format} {v.variant}: {v.reason}" for v in self.variants if not v.passed]

    @property
    def passed(self) -> bool:
        return not self.failures

    def raise_if_failed(self, note: str = "") -> None:
        if self.failures:
            raise ExportError("parity gate failed: " + "; ".join(self.failures) + note)

    def fatal_failures(self) -> list[str]:
        """Failures no option may leave out: an fp32 variant whose strings differ from Keras'."""
        return [f"{v.format} {v.variant}: {v.reason}" for v in self.variants
                if not v.passed and v.variant == "fp32" and v.agreement < 1.0]

    def leaving_out_failed(self) -> "GateResult":
        """The same figures with the failed variants moved to ``left_out``. Raises ExportError when a failure is
        fatal (``fatal_failures``) or no variant passed."""
        fatal = self.fatal_failures()
        if fatal:
            raise ExportError("parity gate failed: " + "; ".join(fatal) + " (an fp32 variant must give Keras' "
                              "strings; it cannot be left out)")
        kept = [v for v in self.variants if v.passed]
        if not kept:
            raise ExportError("parity gate failed: no variant passed: " + "; ".join(self.failures))
        return GateResult(self.keras, kept, self.left_out + [v for v in self.variants if not v.passed])

    def to_dict(self) -> dict:
        """The figures as written to ``parity.json`` (and returned by export and verify)."""
        k = self.keras
        return {
            "inputs": len(k.sources),
            "keras": {"exact_match": k.exact_match,
                      "character_error_rate": metrics.character_error_rate(k.strings, k.references)},
            "tolerances": {"fp32_atol": FP32_ATOL, "fp32_probs_atol": FP32_PROBS_ATOL, "fp32_rtol": FP32_RTOL,
                           "fp32_rule": "|export - Keras| <= atol + fp32_rtol * (largest magnitude in the row of "
                                        "Keras' tensor), at every step; atol: fp32_probs_atol for probs, fp32_atol "
                                        "for states and encoder outputs",
                           "fp16_min_agreement": FP16_MIN_AGREEMENT,
                           "int8_max_exact_match_drop": INT8_MAX_EXACT_MATCH_DROP,
                           "fp32_beam_size": GATE_BEAM, "fp32_beam_inputs": GATE_BEAM_INPUTS,
                           "fp32_beam_near_tie": BEAM_NEAR_TIE,
                           "fp32_beam_tie_factor": BEAM_TIE_FACTOR, "one_call_max_prob_diff": ONE_CALL_ATOL},
            "variants": [v.to_dict() for v in self.variants],
            "left_out": [v.to_dict() for v in self.left_out],
            "passed": self.passed,
        }

    def golden(self) -> list[dict]:
        """Each input with Keras' string and the reference, for ``golden.json``."""
        k = self.keras
        return [{"input": s, "output": o, "reference": r} for s, o, r in zip(k.sources, k.strings, k.references)]


def check_parity(bundle_dir: Path, keras: KerasDecoder, manifest: mf.BundleManifest, pairs: list[Pair]) -> GateResult:
    """Decode ``pairs`` with Keras and with every variant in the bundle and compare. Measures only: the caller
    decides with ``GateResult.raise_if_failed``."""
    def gate_load(fmt: str, variant: str) -> Seq2SeqDecoder:  # the greedy model too, whatever load's default
        return load(bundle_dir, backend=GATE_BACKEND[fmt], variant=variant,
                    one_call=manifest.find(mf.GREEDY, fmt, variant) is not None)

    fp32 = {fmt: gate_load(fmt, "fp32") for fmt in mf.FORMATS if "fp32" in manifest.variants(fmt)}
    diffs = {fmt: StepwiseDiffs() for fmt in fp32}

    def compare_steps(sources, input_ids, trace):
        for fmt, decoder in fp32.items():
            _stepwise_diffs(decoder, input_ids, trace, diffs[fmt], sources)

    reference = KerasReference.decode(keras, manifest.preprocessing, pairs, manifest.encoder_time_steps,
                                      on_batch=compare_steps)
    beams = KerasBeams.decode(keras, manifest.preprocessing, reference) if fp32 else None
    reports = []
    for fmt in mf.FORMATS:
        for variant in manifest.variants(fmt):
            decoder = fp32[fmt] if variant == "fp32" else gate_load(fmt, variant)
            r = check_variant(decoder, fmt, variant, reference, beams, diffs.get(fmt) if variant == "fp32" else None)
            log.info("parity %s %s on %s: agreement %.2f%%, exact match %.2f%%%s", fmt, variant, r.backend,
                     100 * r.agreement, 100 * r.exact_match, "" if r.passed else f"  FAILED: {r.reason}")
            reports.append(r)
    return GateResult(reference, reports)


def check_variant(decoder: Seq2SeqDecoder, fmt: str, variant: str, keras: KerasReference,
                  beams: KerasBeams | None = None, diffs: StepwiseDiffs | None = None) -> VariantReport:
    """One variant's figures: its strings against Keras' and the references, with ``diffs`` (fp32: the stepwise
    differences, from ``_stepwise_diffs``) and, for fp32, beam search against ``beams``."""
    step_loop = decoder.internals.with_step_loop()
    results = step_loop.decode_batch_results(keras.sources, batch_size=GATE_BATCH)
    got = [r.text for r in results]
    report = VariantReport(fmt, variant, decoder.backend, metrics.exact_match(got, keras.strings),
                           metrics.exact_match(got, keras.references),
                           metrics.character_error_rate(got, keras.references),
                           diffs.max_abs_diff if diffs else {}, diffs.to_dict() if diffs else {})
    if decoder.internals.greedy_model is not None:
        _one_call_figures(report, decoder, keras.sources, results)
    if variant == "fp32" and beams is not None:
        _beam_figures(report, decoder, keras.sources, beams)
    report.disagreements = [{"input": s, "keras": k, "export": g}
                            for s, k, g in zip(keras.sources, keras.strings, got) if k != g][:10]
    report.reason = _failure(report, keras.exact_match)
    return report


def _one_call_figures(report: VariantReport, decoder: Seq2SeqDecoder, sources: list[str], step_loop: list) -> None:
    """Compare the one-call greedy model's results with the step loop's, input by input."""
    one_call = decoder.decode_batch_results(sources, batch_size=GATE_BATCH)
    same, worst = 0, 0.0
    for source, a, b in zip(sources, one_call, step_loop):
        if a.tokens == b.tokens and a.finished == b.finished:
            same += 1
            worst = max(worst, max((abs(x - y) for x, y in zip(a.token_probs, b.token_probs)), default=0.0))
        elif len(report.one_call_disagreements) < 10:
            report.one_call_disagreements.append({"input": source, "step_loop": b.text, "one_call": a.text})
    report.one_call_agreement = same / max(1, len(sources))
    report.one_call_max_prob_diff = worst


def _failure(report: VariantReport, keras_exact_match: float) -> str:
    """Why ``report`` fails its variant's tolerance, or "" when it passes: the first of its differences from
    Keras, its one-call model's from its step loop, and (fp32) its beam search's from Keras'."""
    return _keras_failure(report, keras_exact_match) or _one_call_failure(report) or _beam_failure(report)


def _keras_failure(report: VariantReport, keras_exact_match: float) -> str:
    if report.variant == "fp32":
        if report.agreement < 1.0:
            d = report.disagreements[0]
            return (f"string agreement {report.agreement:.2%} (required 100%): input {d['input']!r} gives "
                    f"{d['export']!r}, Keras {d['keras']!r}")
        worst = worst_tensor(report.stepwise)
        if worst is not None and float(worst[1]["tolerance_used"]) > 1.0:
            return describe_worst(worst[0], worst[1]["worst"])
    elif report.variant == "fp16":
        if report.agreement < FP16_MIN_AGREEMENT:
            return f"string agreement {report.agreement:.2%} below {FP16_MIN_AGREEMENT:.1%}"
    elif report.variant == "int8":
        if report.exact_match < keras_exact_match - INT8_MAX_EXACT_MATCH_DROP - 1e-12:
            return (f"exact match {report.exact_match:.2%} is more than "
                    f"{INT8_MAX_EXACT_MATCH_DROP:.0%} below Keras' {keras_exact_match:.2%}")
    return ""


def _one_call_failure(report: VariantReport) -> str:
    if report.one_call_agreement is not None and (
            report.one_call_disagreements or report.one_call_max_prob_diff > ONE_CALL_ATOL[report.variant]):
        return (f"the one-call greedy model chose the step loop's ids for {report.one_call_agreement:.2%} of the "
                f"inputs (required 100%), probabilities within {report.one_call_max_prob_diff:.3g} (limit "
                f"{ONE_CALL_ATOL[report.variant]:g})")
    return ""


def _beam_failure(report: VariantReport) -> str:
    if report.beam_agreement is not None and report.beam_disagreements:
        return (f"beam search (beam {GATE_BEAM}): n-best lists equal Keras' for {report.beam_agreement:.2%} of "
                f"{report.beam_inputs} inputs, {report.beam_near_ties} numerical tie(s) excused, the others "
                f"differ (first: input {report.beam_disagreements[0]['input']!r})")
    return ""


def _stepwise_diffs(decoder: Seq2SeqDecoder, input_ids: np.ndarray, trace: KerasTrace, diffs: StepwiseDiffs,
                    sources: list[str]) -> None:
    """Add to ``diffs`` the largest differences when the exported models get exactly the inputs Keras got, step
    by step, for one batch.

    The encoder sees the same ids; each decoder step sees Keras' previous token and Keras' states. This measures
    the exported graphs themselves; free-running decodes (compared as strings) would add the drift of float32
    rounding through the recurrence. So the models are run directly here, not through the decode loop.
    """
    encoded = decoder.internals.encoder.run({mf.INPUT_IDS: input_ids})
    h, c = trace.encoded[mf.STATE_H], trace.encoded[mf.STATE_C]
    diffs.note(mf.STATE_H, h, encoded[mf.STATE_H], sources, None)
    diffs.note(mf.STATE_C, c, encoded[mf.STATE_C], sources, None)
    attended = {k: v for k, v in trace.encoded.items() if k in (mf.ENCODER_OUTPUTS, mf.ENCODER_MASK)}
    if attended:  # outputs at padded positions carry no weight (the mask zeroes them): compare the others
        mask = attended[mf.ENCODER_MASK]
        diffs.note(mf.ENCODER_MASK, mask, encoded[mf.ENCODER_MASK], sources, None)
        diffs.note(mf.ENCODER_OUTPUTS, attended[mf.ENCODER_OUTPUTS] * mask[:, :, None],
                   encoded[mf.ENCODER_OUTPUTS] * mask[:, :, None], sources, None)
    for step, ref in enumerate(trace.steps):
        out = decoder.internals.decoder_step.run({mf.PREV_TOKEN: ref[mf.PREV_TOKEN], mf.STATE_H: h, mf.STATE_C: c,
                                        **attended})
        diffs.note(mf.PROBS, ref[mf.PROBS], out[mf.PROBS], sources, step)
        diffs.note(mf.STATE_H, ref[mf.NEXT_STATE_H], out[mf.NEXT_STATE_H], sources, step)
        diffs.note(mf.STATE_C, ref[mf.NEXT_STATE_C], out[mf.NEXT_STATE_C], sources, step)
        h, c = ref[mf.NEXT_STATE_H], ref[mf.NEXT_STATE_C]


@dataclass(frozen=True)
class KerasBeams:
    """Keras' n-best lists for the first GATE_BEAM_INPUTS of the gate's inputs (``train.reference.beam_search``,
    beam GATE_BEAM), best first as (text, finished, score), with each input's smallest decision margin."""

    lists: list[list[tuple[str, bool, float]]]
    margins: list[float]

    @classmethod
    def decode(cls, keras: KerasDecoder, prep: pp.Preprocessing, reference: KerasReference) -> "KerasBeams":
        lists: list[list[tuple[str, bool, float]]] = []
        margins: list[float] = []
        for input_ids in reference.batches:  # the batches the exported models see
            input_ids = input_ids[:GATE_BEAM_INPUTS - len(lists)]
            if not len(input_ids):
                break
            for hyps in beam_search(keras, input_ids, GATE_BEAM, GATE_BEAM, margins=margins):
                lists.append([(prep.decode_output(h.ids), h.finished, h.score) for h in hyps])
        return cls(lists, margins)


def _beam_figures(report: VariantReport, decoder: Seq2SeqDecoder, sources: list[str], keras: KerasBeams) -> None:
    """Beam search with the exported models, compared with Keras' n-best lists: every input must give Keras' list
    (texts and finished flags, in order), unless Keras' own search met a numerical tie on the way."""
    sources = sources[:len(keras.lists)]
    results = decoder.decode_batch_results(sources, batch_size=GATE_BATCH, beam_size=GATE_BEAM, n_best=GATE_BEAM)
    same, worst, mismatched = 0, 0.0, []
    for source, result, want, margin in zip(sources, results, keras.lists, keras.margins):
        got = [(r.text, r.finished, r.score) for r in (result, *result.alternatives)]
        if [g[:2] for g in got] == [w[:2] for w in want]:
            same += 1
            worst = max([worst] + [abs(g[2] - w[2]) for g, w in zip(got, want)])
        else:
            mismatched.append((margin, {"input": source, "keras": [w[0] for w in want],
                                        "export": [g[0] for g in got], "keras_finished": [w[1] for w in want],
                                        "export_finished": [g[1] for g in got]}))
    tolerance = max(BEAM_NEAR_TIE, BEAM_TIE_FACTOR * worst)
    differ = [d for margin, d in mismatched if margin >= tolerance]
    report.beam_agreement = same / len(sources) if sources else 1.0
    report.beam_inputs = len(sources)
    report.beam_near_ties = len(mismatched) - len(differ)
    report.beam_max_score_diff = worst
    report.beam_tie_tolerance = tolerance
    report.beam_disagreements = differ[:10]
