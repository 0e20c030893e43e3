"""Writes the harness's results: JSON with every figure, a Markdown table, a PNG chart, and the README table."""

from __future__ import annotations

import json
import re
from pathlib import Path

README_START = "<!-- benchmark table: written by benchmarks/run_all.py -->"
README_END = "<!-- end of benchmark table -->"

#: (ratio key, comparison, target, label, which bundle it applies to: None = any)
TARGETS = [
    ("word_speedup_vs_seed_predict", ">=", 1000, "whole word vs the seed's predict loop (seed model)", 32),
    ("loop_step_over_raw_step", "<=", 1.3, "decode loop per step / step model's run() in that loop", 256),
    ("fp32_step_us", "<=", 40, "latent-256 decoder step, fp32 TFLite (µs)", 256),
    ("int8_over_fp32_step", "<", 1.0, "int8 step / fp32 step", 256),
    ("throughput_batch64_over_batch1", ">=", 10, "throughput batch 64 / batch 1", None),
    ("cold_start_speedup", ">=", 10, "cold start: TensorFlow + .keras / runtime", None),
    ("int8_tflite_decoder_size_fraction", "<=", 0.30, "int8 TFLite decoder size / fp32", 256),
]


def _met(value, op, target) -> bool:
    return {"<=": value <= target, ">=": value >= target, "<": value < target}[op]


def target_rows(result: dict) -> list[dict]:
    rows = []
    for key, op, target, label, latent in TARGETS:
        if latent is not None and result["latent_dim"] != latent:
            continue
        for suffix, where in (("", ""), ("@tflite", " [tflite-runtime]"), ("@litert", " [LiteRT]")):
            value = result["ratios"].get(key + suffix)
            if value is None:
                continue
            rows.append({"bundle": result["name"], "measure": label + where, "key": key + suffix, "value": value,
                         "target": f"{op} {target}", "met": _met(value, op, target)})
    return rows


def _f(x, digits=1):
    return "–" if x is None else f"{x:,.{digits}f}"


def markdown(results: list[dict]) -> str:
    m = results[0]["machine"]
    lines = [f"Machine: {m.get('cpu', '?')}, {m.get('cores')} cores ({', '.join(m.get('flags', []))}), "
             f"{m.get('platform')}, Python {m.get('python')}. Mode: {results[0]['mode']}. "
             f"Medians; 1 interpreter thread unless stated.", ""]
    for r in results:
        lines += [f"### {r['name']} (latent {r['latent_dim']}, {r['target_vocab']} output tokens)", "",
                  "| contender | threads | encoder µs | step µs | loop µs/step | word p50 ms | p95 | p99 | "
                  "seq/s b1 | b8 | b64 | b256 |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name in ("keras_predict_per_char", "keras_direct"):
            k = r.get(name)
            if k:
                w = k["word_latency_ms"]
                lines.append(f"| {name.replace('_', ' ')} | – | {_f(k.get('encoder_us'))} | {_f(k.get('step_us'))} | – | "
                             f"{_f(w['p50'], 3)} | {_f(w['p95'], 3)} | {_f(w['p99'], 3)} | – | – | – | – |")
        for x in r["runtime"]:
            w, t = x["word_latency_ms"], x["throughput_seq_per_s"]
            lines.append(f"| {x['backend']} {x['variant']} | {x['threads']} | {_f(x['encoder_us'])} | {_f(x['step_us'])} | "
                         f"{_f(x['loop_step_us'])} | {_f(w['p50'], 3)} | {_f(w['p95'], 3)} | {_f(w['p99'], 3)} | "
                         f"{_f(t['1'], 0)} | {_f(t['8'], 0)} | {_f(t['64'], 0)} | {_f(t['256'], 0)} |")
        if r["floors_us"]:
            lines += ["", "Floor (a trivial model with the step's inputs and outputs): " +
                      ", ".join(f"{b} {_f(v, 1)} µs" for b, v in r["floors_us"].items()) + "."]
        cold = r["cold_start"]
        if cold:
            lines += ["", "| cold start (fresh process: import, load, decode one input) | seconds | peak RSS MB |",
                      "|---|---|---|"]
            lines += [f"| {k.replace('_', ' ')} | {_f(v['seconds'], 2)} | {_f(v['peak_rss_mb'])} |" for k, v in cold.items()]
        sizes = r["sizes_bytes"]
        lines += ["", "Model files (KB): " + ", ".join(f"{k} {sizes[k] / 1024:,.0f}" for k in sorted(sizes)) + "."]
        if r.get("venv_mb"):
            lines += ["", "Installed venv sizes (MB): " + ", ".join(f"{k} {v:,.0f}" for k, v in r["venv_mb"].items()) + "."]
        lines.append("")
    rows = [row for r in results for row in target_rows(r)]
    if rows:
        lines += ["### Targets (ratios from this run)", "", "| bundle | measure | measured | target | |", "|---|---|---|---|---|"]
        lines += [f"| {row['bundle']} | {row['measure']} | {_f(row['value'], 2)} | {row['target']} | "
                  f"{'met' if row['met'] else 'missed'} |" for row in rows]
    return "\n".join(lines) + "\n"


def chart(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, r in zip(axes[0], results):
        labels, values = [], []
        for name in ("keras_predict_per_char", "keras_direct"):
            if name in r:
                labels.append(name.replace("_", " "))
                values.append(r[name]["word_latency_ms"]["p50"])
        for x in r["runtime"]:
            if x["threads"] == 1:
                labels.append(f"{x['backend']} {x['variant']}")
                values.append(x["word_latency_ms"]["p50"])
        ax.barh(labels, values, color="tab:blue")
        ax.set_xscale("log")
        ax.set_xlabel("ms per word (median, log scale)")
        ax.set_title(f"{r['name']} (latent {r['latent_dim']})")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(results: list[dict], out_dir: Path, readme: Path | None = None) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"results": results, "targets": [row for r in results for row in target_rows(r)]}
    (out_dir / "results.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    md = markdown(results)
    (out_dir / "results.md").write_text(md, encoding="utf-8")
    chart(results, out_dir / "chart.png")
    if readme is not None and readme.is_file():
        text = readme.read_text(encoding="utf-8")
        block = f"{README_START}\n{md}{README_END}"
        pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
        if pattern.search(text):
            readme.write_text(pattern.sub(lambda _: block, text), encoding="utf-8")
    return summary
