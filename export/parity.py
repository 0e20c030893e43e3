"""The parity gate: every exported variant, driven step by step beside the Keras models. It fails the export.

fp32 variants must reproduce Keras' probabilities and states at every step within FP32_ATOL and give the same
string for every input. Quantized variants are held to string-level floors. ``check_parity`` measures;
``GateResult.raise_if_failed`` is the gate.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from seq2seq_edge import manifest as mf
from seq2seq_edge.decoder import Seq2SeqDecoder, padded_batches
from seq2seq_edge.errors import ExportError
from seq2seq_edge.loader import load
from seq2seq_edge.train import metrics
from seq2seq_edge.train.data import Pair
from seq2seq_edge.train.reference import KerasDecoder, KerasTrace
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
#: The backend that checks each format at export time.
GATE_BACKEND = {"tflite": "litert", "onnx": "onnx"}
#: Inputs per batch in the gate (Keras and the export see the same batches).
GATE_BATCH = 256
#: The gate looks at the whole test split, topped up from the validation and training splits to this many inputs.
MIN_GATE_INPUTS = 200


def gate_pairs(run: RunFolder) -> list[Pair]:
    """The run's test split, topped up to MIN_GATE_INPUTS from validation and training pairs where it is smaller."""
    pairs, seen = [], set()
    for part in ("test", "validation", "train"):
        for p in run.read_split(part):
            if (p.source, p.target) not in seen and (part == "test" or len(pairs) < MIN_GATE_INPUTS):
                seen.add((p.source, p.target))
                pairs.append(p)
    return pairs


@dataclass(frozen=True)
class KerasReference:
    """What Keras decoded for the gate's inputs, batch by batch, with everything it computed on the way."""

    sources: list[str]
    references: list[str]
    #: The padded input ids, GATE_BATCH rows at a time; the exported models see the same batches.
    batches: list[np.ndarray]
    traces: list[KerasTrace]
    strings: list[str]

    @classmethod
    def decode(cls, keras: KerasDecoder, prep: mf.Preprocessing, pairs: list[Pair], time_steps: int):
        sources, references = [p.source for p in pairs], [p.target for p in pairs]
        batches = list(padded_batches([prep.encode_input(s) for s in sources], GATE_BATCH, time_steps))
        traces = [keras.trace(ids) for ids in batches]
        strings = [prep.decode_output(o) for t in traces for o in t.outputs]
        return cls(sources, references, batches, traces, strings)

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
                           "int8_max_exact_match_drop": INT8_MAX_EXACT_MATCH_DROP},
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
    reference = KerasReference.decode(keras, manifest.preprocessing, pairs, manifest.encoder_time_steps)
    reports = []
    for fmt in mf.FORMATS:
        for variant in manifest.variants(fmt):
            r = check_variant(bundle_dir, fmt, variant, reference)
            log.info("parity %s %s on %s: agreement %.2f%%, exact match %.2f%%%s", fmt, variant, r.backend,
                     100 * r.agreement, 100 * r.exact_match, "" if r.passed else f"  FAILED: {r.reason}")
            reports.append(r)
    return GateResult(reference, reports)


def check_variant(bundle_dir: Path, fmt: str, variant: str, keras: KerasReference) -> VariantReport:
    backend = GATE_BACKEND[fmt]
    decoder = load(bundle_dir, backend=backend, variant=variant)
    got = decoder.decode_batch(keras.sources, batch_size=GATE_BATCH)
    diffs = _stepwise_diffs(decoder, keras) if variant == "fp32" else {}
    report = VariantReport(fmt, variant, backend, metrics.exact_match(got, keras.strings),
                           metrics.exact_match(got, keras.references),
                           metrics.character_error_rate(got, keras.references), diffs)
    report.reason = _failure(report, keras.exact_match)
    report.disagreements = [{"input": s, "keras": k, "export": g}
                            for s, k, g in zip(keras.sources, keras.strings, got) if k != g][:10]
    return report


def _failure(report: VariantReport, keras_exact_match: float) -> str:
    """Why ``report`` fails its variant's tolerance, or "" when it passes."""
    if report.variant == "fp32":
        worst = max(report.max_abs_diff.values(), default=0.0)
        if worst > FP32_ATOL or report.agreement < 1.0:
            return (f"largest difference {worst:.3g} (limit {FP32_ATOL:g}), "
                    f"string agreement {report.agreement:.2%} (required 100%)")
    elif report.variant == "fp16":
        if report.agreement < FP16_MIN_AGREEMENT:
            return f"string agreement {report.agreement:.2%} below {FP16_MIN_AGREEMENT:.1%}"
    elif report.variant == "int8":
        if report.exact_match < keras_exact_match - INT8_MAX_EXACT_MATCH_DROP - 1e-12:
            return (f"exact match {report.exact_match:.2%} is more than "
                    f"{INT8_MAX_EXACT_MATCH_DROP:.0%} below Keras' {keras_exact_match:.2%}")
    return ""


def _stepwise_diffs(decoder: Seq2SeqDecoder, keras: KerasReference) -> dict:
    """Largest differences when the exported models get exactly the inputs Keras got, step by step.

    The encoder sees the same ids; each decoder step sees Keras' previous token and Keras' states. This measures
    the exported graphs themselves; free-running decodes (compared as strings) would add the drift of float32
    rounding through the recurrence. So the models are run directly here, not through the decode loop.
    """
    diffs = {mf.PROBS: 0.0, mf.STATE_H: 0.0, mf.STATE_C: 0.0}

    def note(label, ref, got):
        diffs[label] = max(diffs[label], float(np.max(np.abs(np.asarray(ref) - got))))

    for input_ids, trace in zip(keras.batches, keras.traces):
        encoded = decoder.encoder.run({mf.INPUT_IDS: input_ids})
        h, c = trace.encoded[mf.STATE_H], trace.encoded[mf.STATE_C]
        note(mf.STATE_H, h, encoded[mf.STATE_H])
        note(mf.STATE_C, c, encoded[mf.STATE_C])
        for ref in trace.steps:
            out = decoder.decoder_step.run({mf.PREV_TOKEN: ref[mf.PREV_TOKEN], mf.STATE_H: h, mf.STATE_C: c})
            note(mf.PROBS, ref[mf.PROBS], out[mf.PROBS])
            note(mf.STATE_H, ref[mf.NEXT_STATE_H], out[mf.NEXT_STATE_H])
            note(mf.STATE_C, ref[mf.NEXT_STATE_C], out[mf.NEXT_STATE_C])
            h, c = ref[mf.NEXT_STATE_H], ref[mf.NEXT_STATE_C]
    return diffs
