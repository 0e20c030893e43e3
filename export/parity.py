"""The parity gate: every exported variant, driven step by step beside the Keras models. It fails the export.

fp32 variants must reproduce Keras' probabilities and states at every step within FP32_ATOL, give the same
string for every input, and the same n-best lists under beam search (GATE_BEAM). Quantized variants are held to
string-level floors. Every variant's one-call greedy model must choose exactly the ids its step loop chooses, for
every input, with probabilities within ONE_CALL_ATOL of the step loop's. ``check_parity`` measures; ``GateResult.raise_if_failed`` is the gate.
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
from seq2seq_edge import metrics
from seq2seq_edge.pairs import Pair
from seq2seq_edge.train.reference import KerasDecoder, KerasTrace, beam_search
from seq2seq_edge.train.run_folder import RunFolder

log = logging.getLogger(__name__)

#: Largest absolute difference allowed between an fp32 export and Keras, for probabilities and LSTM states at
#: every step, given the same inputs. float32 sums taken in another order differ by about 1e-6 (each bundle's
#: parity.json gives its figures; Keras itself is that far from a float64 evaluation); 1e-5 leaves room for
#: other kernels and still catches a changed weight (the perturbation test moves one by 1e-2).
FP32_ATOL = 1e-5
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
        """Keras' greedy decodes of ``pairs``. ``on_batch(input_ids, trace)`` sees each batch's full trace (every
        step's inputs and outputs) as it is made; traces are not kept, so the gate's memory is one batch's."""
        sources, references = [p.source for p in pairs], [p.target for p in pairs]
        batches = list(padded_batches([prep.encode_input(s) for s in sources], GATE_BATCH, time_steps))
        strings = []
        for ids in batches:
            trace = keras.trace(ids)
            strings += [prep.decode_output(o) for o in trace.outputs]
            if on_batch is not None:
                on_batch(ids, trace)
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

    @property
    def failures(self) -> list[str]:
        return [f"{v.format} {v.variant}: {v.reason}" for v in self.variants if not v.passed]

    @property
    def passed(self) -> bool:
        return not self.failures

    def raise_if_failed(self, note: str = "") -> None:
        if self.failures:
            raise ExportError("parity gate failed: " + "; ".join(self.failures) + note)

    def to_dict(self) -> dict:
        """The figures as written to ``parity.json`` (and returned by export and verify)."""
        k = self.keras
        return {
            "inputs": len(k.sources),
            "keras": {"exact_match": k.exact_match,
                      "character_error_rate": metrics.character_error_rate(k.strings, k.references)},
            "tolerances": {"fp32_max_abs_diff": FP32_ATOL, "fp16_min_agreement": FP16_MIN_AGREEMENT,
                           "int8_max_exact_match_drop": INT8_MAX_EXACT_MATCH_DROP,
                           "fp32_beam_size": GATE_BEAM, "fp32_beam_inputs": GATE_BEAM_INPUTS,
                           "fp32_beam_near_tie": BEAM_NEAR_TIE,
                           "fp32_beam_tie_factor": BEAM_TIE_FACTOR, "one_call_max_prob_diff": ONE_CALL_ATOL},
            "variants": [v.to_dict() for v in self.variants],
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
    diffs: dict[str, dict] = {fmt: {} for fmt in fp32}

    def compare_steps(input_ids, trace):
        for fmt, decoder in fp32.items():
            _stepwise_diffs(decoder, input_ids, trace, diffs[fmt])

    reference = KerasReference.decode(keras, manifest.preprocessing, pairs, manifest.encoder_time_steps,
                                      on_batch=compare_steps)
    beams = KerasBeams.decode(keras, manifest.preprocessing, reference) if fp32 else None
    reports = []
    for fmt in mf.FORMATS:
        for variant in manifest.variants(fmt):
            decoder = fp32[fmt] if variant == "fp32" else gate_load(fmt, variant)
            r = check_variant(decoder, fmt, variant, reference, beams, diffs.get(fmt, {}) if variant == "fp32" else {})
            log.info("parity %s %s on %s: agreement %.2f%%, exact match %.2f%%%s", fmt, variant, r.backend,
                     100 * r.agreement, 100 * r.exact_match, "" if r.passed else f"  FAILED: {r.reason}")
            reports.append(r)
    return GateResult(reference, reports)


def check_variant(decoder: Seq2SeqDecoder, fmt: str, variant: str, keras: KerasReference,
                  beams: KerasBeams | None = None, diffs: dict | None = None) -> VariantReport:
    """One variant's figures: its strings against Keras' and the references, with ``diffs`` (fp32: the largest
    stepwise differences, from ``_stepwise_diffs``) and, for fp32, beam search against ``beams``."""
    step_loop = decoder.with_step_loop()
    results = step_loop.decode_batch_results(keras.sources, batch_size=GATE_BATCH)
    got = [r.text for r in results]
    report = VariantReport(fmt, variant, decoder.backend, metrics.exact_match(got, keras.strings),
                           metrics.exact_match(got, keras.references),
                           metrics.character_error_rate(got, keras.references), dict(diffs or {}))
    if decoder.greedy_model is not None:
        _one_call_figures(report, decoder, keras.sources, results)
    if variant == "fp32" and beams is not None:
        _beam_figures(report, decoder, keras.sources, beams)
    report.reason = _failure(report, keras.exact_match)
    report.disagreements = [{"input": s, "keras": k, "export": g}
                            for s, k, g in zip(keras.sources, keras.strings, got) if k != g][:10]
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
    """Why ``report`` fails its variant's tolerance, or "" when it passes."""
    if report.one_call_agreement is not None and (
            report.one_call_disagreements or report.one_call_max_prob_diff > ONE_CALL_ATOL[report.variant]):
        return (f"the one-call greedy model chose the step loop's ids for {report.one_call_agreement:.2%} of the "
                f"inputs (required 100%), probabilities within {report.one_call_max_prob_diff:.3g} (limit "
                f"{ONE_CALL_ATOL[report.variant]:g})")
    if report.variant == "fp32":
        worst = max(report.max_abs_diff.values(), default=0.0)
        if worst > FP32_ATOL or report.agreement < 1.0:
            return (f"largest difference {worst:.3g} (limit {FP32_ATOL:g}), "
                    f"string agreement {report.agreement:.2%} (required 100%)")
        if report.beam_agreement is not None and report.beam_disagreements:
            return (f"beam search (beam {GATE_BEAM}): n-best lists equal Keras' for {report.beam_agreement:.2%} of "
                    f"{report.beam_inputs} inputs, {report.beam_near_ties} numerical tie(s) excused, the others "
                    f"differ (first: input {report.beam_disagreements[0]['input']!r})")
    elif report.variant == "fp16":
        if report.agreement < FP16_MIN_AGREEMENT:
            return f"string agreement {report.agreement:.2%} below {FP16_MIN_AGREEMENT:.1%}"
    elif report.variant == "int8":
        if report.exact_match < keras_exact_match - INT8_MAX_EXACT_MATCH_DROP - 1e-12:
            return (f"exact match {report.exact_match:.2%} is more than "
                    f"{INT8_MAX_EXACT_MATCH_DROP:.0%} below Keras' {keras_exact_match:.2%}")
    return ""


def _stepwise_diffs(decoder: Seq2SeqDecoder, input_ids: np.ndarray, trace: KerasTrace, diffs: dict) -> None:
    """Add to ``diffs`` the largest differences when the exported models get exactly the inputs Keras got, step
    by step, for one batch.

    The encoder sees the same ids; each decoder step sees Keras' previous token and Keras' states. This measures
    the exported graphs themselves; free-running decodes (compared as strings) would add the drift of float32
    rounding through the recurrence. So the models are run directly here, not through the decode loop.
    """
    def note(label, ref, got):
        diffs[label] = max(diffs.get(label, 0.0), float(np.max(np.abs(np.asarray(ref) - got))))

    encoded = decoder.encoder.run({mf.INPUT_IDS: input_ids})
    h, c = trace.encoded[mf.STATE_H], trace.encoded[mf.STATE_C]
    note(mf.STATE_H, h, encoded[mf.STATE_H])
    note(mf.STATE_C, c, encoded[mf.STATE_C])
    attended = {k: v for k, v in trace.encoded.items() if k in (mf.ENCODER_OUTPUTS, mf.ENCODER_MASK)}
    if attended:  # outputs at padded positions carry no weight (the mask zeroes them): compare the others
        mask = attended[mf.ENCODER_MASK]
        note(mf.ENCODER_MASK, mask, encoded[mf.ENCODER_MASK])
        note(mf.ENCODER_OUTPUTS, attended[mf.ENCODER_OUTPUTS] * mask[:, :, None],
             encoded[mf.ENCODER_OUTPUTS] * mask[:, :, None])
    for ref in trace.steps:
        out = decoder.decoder_step.run({mf.PREV_TOKEN: ref[mf.PREV_TOKEN], mf.STATE_H: h, mf.STATE_C: c,
                                        **attended})
        note(mf.PROBS, ref[mf.PROBS], out[mf.PROBS])
        note(mf.STATE_H, ref[mf.NEXT_STATE_H], out[mf.NEXT_STATE_H])
        note(mf.STATE_C, ref[mf.NEXT_STATE_C], out[mf.NEXT_STATE_C])
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
    results = decoder.decode_batch_results(sources, GATE_BATCH, beam_size=GATE_BEAM, n_best=GATE_BEAM)
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
