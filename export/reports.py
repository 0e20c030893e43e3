"""The bundle's human- and test-facing files beside the models: golden.json, parity.json, parity.md, report.md."""

from __future__ import annotations

from pathlib import Path

from seq2seq_edge import manifest as mf
from seq2seq_edge import files

from . import parity

GOLDEN_FILE = "golden.json"
PARITY_JSON = "parity.json"
PARITY_MD = "parity.md"
REPORT_MD = "report.md"


def write_reports(bundle: Path, manifest: mf.BundleManifest, gate: parity.GateResult) -> None:
    files.write_json(bundle / GOLDEN_FILE, {"description": "Test inputs with the strings Keras decodes for them "
                                                        "(greedy); every fp32 export must reproduce them.",
                                         "items": gate.golden()})
    figures = gate.to_dict()
    files.write_json(bundle / PARITY_JSON, figures)
    (bundle / PARITY_MD).write_text(parity_markdown(figures), encoding="utf-8")
    (bundle / REPORT_MD).write_text(export_markdown(manifest), encoding="utf-8")


def parity_markdown(figures: dict) -> str:
    """``parity.md``: the gate's figures (``GateResult.to_dict``) as a table, with the tolerances."""
    lines = [f"# Parity with Keras ({figures['inputs']} test inputs)", "",
             f"Keras: exact match {figures['keras']['exact_match']:.2%}, "
             f"CER {figures['keras']['character_error_rate']:.4f}", "",
             "| format | variant | backend | agreement with Keras | exact match | CER | max abs diff (probs / h / c) | "
             f"beam-{parity.GATE_BEAM} n-best lists equal to Keras' | one-call = step loop (ids; max prob diff) | "
             "gate |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for v in figures["variants"]:
        d = v["max_abs_diff"]
        diff = " / ".join(f"{d[k]:.2g}" for k in (mf.PROBS, mf.STATE_H, mf.STATE_C)) if d else "n/a"
        beam = "n/a"
        if v.get("beam_agreement") is not None:
            beam = f"{v['beam_agreement']:.2%} of {v['beam_inputs']} (score diff {v['beam_max_score_diff']:.2g}"
            beam += f", {v['beam_near_ties']} numerical ties)" if v["beam_near_ties"] else ")"
        one_call = "no greedy model"
        if v.get("one_call_agreement") is not None:
            one_call = f"{v['one_call_agreement']:.2%}; {v['one_call_max_prob_diff']:.2g}"
        lines.append(f"| {v['format']} | {v['variant']} | {v['backend']} | {v['agreement']:.2%} | "
                     f"{v['exact_match']:.2%} | {v['character_error_rate']:.4f} | {diff} | {beam} | {one_call} | "
                     f"{'pass' if v['passed'] else 'FAIL: ' + v['reason']} |")
    lines += ["", f"Tolerances: fp32 max abs diff {parity.FP32_ATOL:g} and 100% agreement; fp16 agreement >= "
                  f"{parity.FP16_MIN_AGREEMENT:.1%}; int8 exact match at most "
                  f"{parity.INT8_MAX_EXACT_MATCH_DROP:.0%} below Keras.",
              "", f"Beam search (fp32): beam {parity.GATE_BEAM}, on the first {parity.GATE_BEAM_INPUTS} inputs: the "
                  f"{parity.GATE_BEAM} best outputs of each (texts and finished flags, in order) equal to those of the "
                  "Keras reference's own beam search; "
                  "a difference is excused only where Keras' search came within "
                  f"{parity.BEAM_NEAR_TIE:g} (log-probability), or {parity.BEAM_TIE_FACTOR} times the largest score "
                  "difference measured, of deciding otherwise (a numerical tie).",
              "", "One-call greedy models: the ids chosen for every input must be those of the same variant's step "
                  "loop, probabilities within " + ", ".join(f"{k} {v:g}" for k, v in parity.ONE_CALL_ATOL.items())
                  + "."]
    return "\n".join(lines) + "\n"


def export_markdown(manifest: mf.BundleManifest) -> str:
    """``report.md``: each model file's size and ops, the ONNX opset, and the versions that made the bundle."""
    lines = ["# Export report", "", "| file | role | format | variant | bytes | ops |", "|---|---|---|---|---|---|"]
    for m in manifest.models:
        lines.append(f"| {m.path} | {m.role} | {m.format} | {m.variant} | {m.size_bytes} | {', '.join(m.ops)} |")
    onnx_models = [m for m in manifest.models if m.format == "onnx"]
    if onnx_models:
        lines += ["", f"ONNX opset {onnx_models[0].opset}, IR version {onnx_models[0].ir_version}; weights embedded."]
    lines += ["", "No Flex/Select-TF ops; no control flow in the decoder step; the encoder's and the greedy model's "
                  "loops have constant trip-count bounds (checked at export, and by the runtime at load).", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in manifest.versions.items())]
    return "\n".join(lines) + "\n"
