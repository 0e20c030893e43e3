"""The parity gate: every exported variant, driven step by step beside the Keras models. It fails the export.

fp32 variants must reproduce Keras' probabilities and states at every step within FP32_ATOL and give the same
string for every input. Quantized variants are held to string-level floors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seq2seq_edge import manifest as mf
from seq2seq_edge import metrics
from seq2seq_edge.loader import load

log = logging.getLogger(__name__)

#: Largest absolute difference allowed between an fp32 export and Keras, for probabilities and LSTM states at
#: every step, given the same inputs. Measured: ~1e-6 at latent 256 (float32 sums in another order; Keras itself
#: is ~1e-6 from a float64 evaluation); 1e-5 leaves room for other kernels and still catches a changed weight
#: (the perturbation test moves one by 1e-2).
FP32_ATOL = 1e-5
#: float16 weights must give Keras' string for at least this fraction of the test inputs.
FP16_MIN_AGREEMENT = 0.995
#: int8 exact match may fall at most this far (absolute) below Keras' exact match.
INT8_MAX_EXACT_MATCH_DROP = 0.01
#: The backend that checks each format at export time.
GATE_BACKEND = {"tflite": "litert", "onnx": "onnx"}
#: Inputs per batch in the gate (Keras and the export see the same batches).
GATE_BATCH = 256


@dataclass
class VariantReport:
    format: str
    variant: str
    backend: str
    agreement: float
    exact_match: float
    character_error_rate: float
    max_abs_diff: dict = field(default_factory=dict)
    passed: bool = False
    reason: str = ""
    disagreements: list = field(default_factory=list)


def keras_reference(keras_decoder, prep: mf.Preprocessing, sources: list[str], time_steps: int):
    """Keras strings and per-batch traces (encoder outputs, then each step's outputs)."""
    strings, traces = [], []
    for start in range(0, len(sources), GATE_BATCH):
        ids = mf.pad_batch([prep.encode_input(s) for s in sources[start:start + GATE_BATCH]], time_steps)
        outs = keras_decoder.decode_ids(ids, record=True)
        strings += [prep.decode_output(o) for o in outs]
        traces.append(keras_decoder.trace)
    return strings, traces


def _stepwise_diffs(decoder, input_ids: np.ndarray, keras_trace: list) -> dict:
    """Largest differences when the exported models get exactly the inputs Keras got, step by step.

    The encoder sees the same ids; each decoder step sees Keras' previous token and Keras' states. This measures
    the exported graphs themselves; free-running decodes (compared as strings) would add the drift of float32
    rounding through the recurrence.
    """
    diffs = {mf.PROBS: 0.0, mf.STATE_H: 0.0, mf.STATE_C: 0.0}

    def note(label, ref, got):
        diffs[label] = max(diffs[label], float(np.max(np.abs(np.asarray(ref) - got))))

    encoded = decoder._encoder.run({mf.INPUT_IDS: input_ids})
    note(mf.STATE_H, keras_trace[0][mf.STATE_H], encoded[mf.STATE_H])
    note(mf.STATE_C, keras_trace[0][mf.STATE_C], encoded[mf.STATE_C])
    h, c = keras_trace[0][mf.STATE_H], keras_trace[0][mf.STATE_C]
    for ref in keras_trace[1:]:
        out = decoder._step.run({mf.PREV_TOKEN: ref[mf.PREV_TOKEN], mf.STATE_H: h, mf.STATE_C: c})
        note(mf.PROBS, ref[mf.PROBS], out[mf.PROBS])
        note(mf.STATE_H, ref[mf.NEXT_STATE_H], out[mf.NEXT_STATE_H])
        note(mf.STATE_C, ref[mf.NEXT_STATE_C], out[mf.NEXT_STATE_C])
        h, c = ref[mf.NEXT_STATE_H], ref[mf.NEXT_STATE_C]
    return diffs


def check_variant(bundle_dir: Path, fmt: str, variant: str, sources, references, keras_strings, keras_traces,
                  keras_exact_match: float) -> VariantReport:
    backend = GATE_BACKEND[fmt]
    decoder = load(bundle_dir, backend=backend, variant=variant)
    prep = decoder.preprocessing
    got = decoder.decode_batch(sources, batch_size=GATE_BATCH)
    diffs = {}
    if variant == "fp32":
        for b, start in enumerate(range(0, len(sources), GATE_BATCH)):
            ids = mf.pad_batch([prep.encode_input(s) for s in sources[start:start + GATE_BATCH]],
                               decoder.manifest.encoder_time_steps)
            for k, v in _stepwise_diffs(decoder, ids, keras_traces[b]).items():
                diffs[k] = max(diffs.get(k, 0.0), v)
    agreement = metrics.exact_match(got, keras_strings)
    report = VariantReport(fmt, variant, backend, agreement, metrics.exact_match(got, references),
                           metrics.character_error_rate(got, references), diffs)
    report.disagreements = [{"input": s, "keras": k, "export": g}
                            for s, k, g in zip(sources, keras_strings, got) if k != g][:10]
    if variant == "fp32":
        worst = max(diffs.values(), default=0.0)
        if worst > FP32_ATOL or agreement < 1.0:
            report.reason = (f"largest difference {worst:.3g} (limit {FP32_ATOL:g}), "
                             f"string agreement {agreement:.2%} (required 100%)")
    elif variant == "fp16":
        if agreement < FP16_MIN_AGREEMENT:
            report.reason = f"string agreement {agreement:.2%} below {FP16_MIN_AGREEMENT:.1%}"
    elif variant == "int8":
        if report.exact_match < keras_exact_match - INT8_MAX_EXACT_MATCH_DROP - 1e-12:
            report.reason = (f"exact match {report.exact_match:.2%} is more than "
                             f"{INT8_MAX_EXACT_MATCH_DROP:.0%} below Keras' {keras_exact_match:.2%}")
    report.passed = not report.reason
    return report


def run_gate(bundle_dir: Path, keras_decoder, manifest: mf.BundleManifest, pairs) -> dict:
    """Check every variant in the bundle; returns the parity dict. Raises ExportError if any variant fails."""
    prep = manifest.preprocessing
    sources = [p[0] for p in pairs]
    references = [p[1] for p in pairs]
    keras_strings, traces = keras_reference(keras_decoder, prep, sources, manifest.encoder_time_steps)
    keras_em = metrics.exact_match(keras_strings, references)
    reports = []
    for fmt in mf.FORMATS:
        for variant in manifest.variants(fmt):
            r = check_variant(bundle_dir, fmt, variant, sources, references, keras_strings, traces, keras_em)
            log.info("parity %s %s on %s: agreement %.2f%%, exact match %.2f%%%s", fmt, variant, r.backend,
                     100 * r.agreement, 100 * r.exact_match, "" if r.passed else f"  FAILED: {r.reason}")
            reports.append(r)
    result = {
        "inputs": len(sources),
        "keras": {"exact_match": keras_em, "character_error_rate": metrics.character_error_rate(keras_strings, references)},
        "tolerances": {"fp32_max_abs_diff": FP32_ATOL, "fp16_min_agreement": FP16_MIN_AGREEMENT,
                       "int8_max_exact_match_drop": INT8_MAX_EXACT_MATCH_DROP},
        "variants": [r.__dict__ for r in reports],
        "passed": all(r.passed for r in reports),
        "golden": [{"input": s, "output": k, "reference": r} for s, k, r in zip(sources, keras_strings, references)],
    }
    return result


def failures(result: dict) -> list[str]:
    return [f"{v['format']} {v['variant']}: {v['reason']}" for v in result["variants"] if not v["passed"]]


def parity_markdown(result: dict) -> str:
    lines = [f"# Parity with Keras ({result['inputs']} test inputs)", "",
             f"Keras: exact match {result['keras']['exact_match']:.2%}, "
             f"CER {result['keras']['character_error_rate']:.4f}", "",
             "| format | variant | backend | agreement with Keras | exact match | CER | max abs diff (probs / h / c) | gate |",
             "|---|---|---|---|---|---|---|---|"]
    for v in result["variants"]:
        d = v["max_abs_diff"]
        diff = " / ".join(f"{d[k]:.2g}" for k in (mf.PROBS, mf.STATE_H, mf.STATE_C)) if d else "n/a"
        lines.append(f"| {v['format']} | {v['variant']} | {v['backend']} | {v['agreement']:.2%} | "
                     f"{v['exact_match']:.2%} | {v['character_error_rate']:.4f} | {diff} | "
                     f"{'pass' if v['passed'] else 'FAIL: ' + v['reason']} |")
    lines += ["", f"Tolerances: fp32 max abs diff {FP32_ATOL:g} and 100% agreement; fp16 agreement >= "
                  f"{FP16_MIN_AGREEMENT:.1%}; int8 exact match at most {INT8_MAX_EXACT_MATCH_DROP:.0%} below Keras."]
    return "\n".join(lines) + "\n"
