"""The bundle's human- and test-facing files beside the models: golden.json, parity.json, parity.md, report.md."""

from __future__ import annotations

from pathlib import Path

from seq2seq_edge import manifest as mf
from seq2seq_edge import files

from . import parity

GOLDEN_FILE, PARITY_JSON, PARITY_MD, REPORT_MD = mf.GOLDEN_FILE, mf.PARITY_FILE, mf.PARITY_MD, mf.REPORT_MD


def write_reports(bundle: Path, manifest: mf.BundleManifest, gate: parity.GateResult) -> None:
    files.write_json(bundle / GOLDEN_FILE, {"description": "Test inputs with the strings Keras decodes for them "
                                                        "(greedy); every fp32 export must reproduce them.",
                                         "items": gate.golden()})
    figures = gate.to_dict()
    files.write_json(bundle / PARITY_JSON, figures)
    (bundle / PARITY_MD).write_text(parity_markdown(figures), encoding="utf-8")
    (bundle / REPORT_MD).write_text(export_markdown(manifest), encoding="utf-8")


def failed_report_paths(out_dir: Path) -> tuple[Path, Path]:
    """Where a refused export's gate report goes: beside the bundle folder that was not written."""
    out_dir = Path(out_dir)
    return (out_dir.parent / f"{out_dir.name}.parity-failed.md", out_dir.parent / f"{out_dir.name}.parity-failed.json")


def write_failed_report(out_dir: Path, gate: parity.GateResult) -> Path:
    """Write the gate's figures of a refused export beside ``out_dir``; returns the Markdown report's path."""
    md, js = failed_report_paths(out_dir)
    for path in (md, js):  # a link at our report's name is not followed
        if path.is_symlink():
            path.unlink()
    figures = gate.to_dict()
    files.write_json(js, figures)
    md.write_text(parity_markdown(figures), encoding="utf-8")
    return md


def remove_failed_report(out_dir: Path) -> None:
    """After an export that passed, the report of an earlier refusal beside it no longer holds."""
    for path in failed_report_paths(out_dir):
        if path.is_file() and not path.is_symlink():
            path.unlink()


def parity_markdown(figures: dict) -> str:
    """``parity.md``: the gate's figures (``GateResult.to_dict``) as tables, with the tolerances."""
    lines = [f"# Parity with Keras ({figures['inputs']} test inputs)", "",
             f"Keras: exact match {figures['keras']['exact_match']:.2%}, "
             f"CER {figures['keras']['character_error_rate']:.4f}", ""]
    if not figures["passed"]:
        lines += ["**The gate failed:**", ""] + [f"- {v['format']} {v['variant']}: {v['reason']}"
                                                  for v in figures["variants"] if not v["passed"]] + [""]
    lines += ["| format | variant | backend | agreement with Keras | exact match | CER | fp32: share of the limit used "
              f"(worst tensor) | beam-{parity.GATE_BEAM} n-best lists equal to Keras' | one-call = step loop (ids; max "
              "prob diff) | gate |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for v in figures["variants"] + figures.get("left_out", []):
        lines.append(_variant_row(v, left_out=v in figures.get("left_out", [])))
    for v in figures["variants"] + figures.get("left_out", []):
        if v.get("stepwise"):
            lines += _stepwise_table(v)
    t = figures["tolerances"]
    lines += ["", f"Tolerances: fp32 |export - Keras| <= atol + {t['fp32_rtol']:g} x (largest magnitude in the same "
                  "row of Keras' tensor: one input, one step, one tensor), at every step, with atol "
                  f"{t['fp32_probs_atol']:g} for the probabilities and {t['fp32_atol']:g} for states and encoder "
                  "outputs, and 100% string agreement; fp16 "
                  f"agreement >= {parity.FP16_MIN_AGREEMENT:.1%}; int8 exact match at most "
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


def _variant_row(v: dict, left_out: bool) -> str:
    diff = "n/a"
    if v.get("stepwise"):
        tensor, t = parity.worst_tensor(v["stepwise"])
        diff = f"{float(t['tolerance_used']):.1%} ({tensor})"
    beam = "n/a"
    if v.get("beam_agreement") is not None:
        beam = f"{v['beam_agreement']:.2%} of {v['beam_inputs']} (score diff {v['beam_max_score_diff']:.2g}"
        beam += f", {v['beam_near_ties']} numerical ties)" if v["beam_near_ties"] else ")"
    one_call = "no greedy model"
    if v.get("one_call_agreement") is not None:
        one_call = f"{v['one_call_agreement']:.2%}; {v['one_call_max_prob_diff']:.2g}"
    gate = "pass" if v["passed"] else ("LEFT OUT: " if left_out else "FAIL: ") + v["reason"]
    return (f"| {v['format']} | {v['variant']} | {v['backend']} | {v['agreement']:.2%} | {v['exact_match']:.2%} | "
            f"{v['character_error_rate']:.4f} | {diff} | {beam} | {one_call} | {gate} |")


def _stepwise_table(v: dict) -> list[str]:
    """Per tensor: the largest differences from Keras and the element that came closest to its limit."""
    lines = ["", f"## {v['format']} {v['variant']}: differences from Keras, per tensor", "",
             "| tensor | largest abs diff | largest diff / row scale | largest magnitude | share of the limit used | "
             "worst element |", "|---|---|---|---|---|---|"]
    for tensor, t in v["stepwise"].items():
        worst = parity.describe_worst(tensor, t["worst"], "<=" if float(t["tolerance_used"]) <= 1 else ">")
        lines.append(f"| {tensor} | {float(t['max_abs_diff']):.3g} | {float(t['max_rel_diff']):.3g} | "
                     f"{t['max_magnitude']:.4g} | {float(t['tolerance_used']):.1%} | {worst} |")
    return lines


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
