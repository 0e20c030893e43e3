"""The bundle's human- and test-facing files beside the models: golden.json, parity.json, parity.md, report.md."""

from __future__ import annotations

from pathlib import Path

from seq2seq_edge import manifest as mf

from . import parity

GOLDEN_FILE = "golden.json"
PARITY_JSON = "parity.json"
PARITY_MD = "parity.md"
REPORT_MD = "report.md"


def write_reports(bundle: Path, manifest: mf.BundleManifest, gate: parity.GateResult) -> None:
    mf.write_json(bundle / GOLDEN_FILE, {"description": "Test inputs with the strings Keras decodes for them "
                                                        "(greedy); every fp32 export must reproduce them.",
                                         "items": gate.golden()})
    figures = gate.to_dict()
    mf.write_json(bundle / PARITY_JSON, figures)
    (bundle / PARITY_MD).write_text(parity_markdown(figures), encoding="utf-8")
    (bundle / REPORT_MD).write_text(export_markdown(manifest), encoding="utf-8")


def parity_markdown(figures: dict) -> str:
    """``parity.md``: the gate's figures (``GateResult.to_dict``) as a table, with the tolerances."""
    lines = [f"# Parity with Keras ({figures['inputs']} test inputs)", "",
             f"Keras: exact match {figures['keras']['exact_match']:.2%}, "
             f"CER {figures['keras']['character_error_rate']:.4f}", "",
             "| format | variant | backend | agreement with Keras | exact match | CER | max abs diff (probs / h / c) | gate |",
             "|---|---|---|---|---|---|---|---|"]
    for v in figures["variants"]:
        d = v["max_abs_diff"]
        diff = " / ".join(f"{d[k]:.2g}" for k in (mf.PROBS, mf.STATE_H, mf.STATE_C)) if d else "n/a"
        lines.append(f"| {v['format']} | {v['variant']} | {v['backend']} | {v['agreement']:.2%} | "
                     f"{v['exact_match']:.2%} | {v['character_error_rate']:.4f} | {diff} | "
                     f"{'pass' if v['passed'] else 'FAIL: ' + v['reason']} |")
    lines += ["", f"Tolerances: fp32 max abs diff {parity.FP32_ATOL:g} and 100% agreement; fp16 agreement >= "
                  f"{parity.FP16_MIN_AGREEMENT:.1%}; int8 exact match at most "
                  f"{parity.INT8_MAX_EXACT_MATCH_DROP:.0%} below Keras."]
    return "\n".join(lines) + "\n"


def export_markdown(manifest: mf.BundleManifest) -> str:
    """``report.md``: each model file's size and ops, the ONNX opset, and the versions that made the bundle."""
    lines = ["# Export report", "", "| file | role | format | variant | bytes | ops |", "|---|---|---|---|---|---|"]
    for m in manifest.models:
        lines.append(f"| {m.path} | {m.role} | {m.format} | {m.variant} | {m.size_bytes} | {', '.join(m.ops)} |")
    onnx_models = [m for m in manifest.models if m.format == "onnx"]
    if onnx_models:
        lines += ["", f"ONNX opset {onnx_models[0].opset}, IR version {onnx_models[0].ir_version}; weights embedded."]
    lines += ["", "No Flex/Select-TF ops; no control flow in the decoder step (checked at export).", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in manifest.versions.items())]
    return "\n".join(lines) + "\n"
