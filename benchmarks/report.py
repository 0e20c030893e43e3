"""Writes the harness's results: JSON with every figure, a Markdown report, a chart, and the table in docs/benchmarks.md.

``results.json`` (schema ``seq2seq-edge-bench``, version 1; ``compare.py`` reads it)::

    {"schema": "seq2seq-edge-bench", "schema_version": 1, "results": [RESULT, ...], "targets": [TARGET, ...]}

RESULT, one bundle measured on one machine:

    schema, schema_version  the same as the file's
    created                 when (UTC, ISO 8601)
    bundle                  name, path, architecture, latent_dim, target_vocab; models_sha256 (sha256 of the model
                            files' names and sha256s, sorted), golden_sha256 (golden.json: the timed inputs),
                            manifest_sha256; models {file: {sha256, size_bytes, format, variant, role}}
    settings                every count behind a figure: mode (quick/full), threads ("1" for every variant, the
                            others such as "max" for fp32), model_call_warmup, model_call_repeats, word_warmup,
                            word_sample, batch_sizes, throughput_batches, throughput_min_inputs,
                            cold_start_repeats, keras_predict_words, keras_direct_words
    machine                 label, slug, arch, cpu, board, cores, isa_flags, os, platform, python,
                            emulated (true under an emulator such as qemu-user), emulation (what emulated it)
    versions                {distribution: version}: seq2seq-edge, numpy, each interpreter, TensorFlow if any
    runtime                 [{backend, variant, threads, threads_setting, interpreter, decode_path ("one-call"
                              or "step-loop": how word_latency_ms and throughput decode, the path s2s run and
                              load() take by default), encoder_us, step_us,
                              loop_step_us, step_in_loop_us, loop_overhead_ratio, steps_per_word,
                              word_latency_ms {p50, p95, p99, mean}, throughput_seq_per_s {"1", "8", ...},
                              encoder_us_by_length {"1", "4", ..., "T"}, raw_invoke_ms (per word: encoder and
                              its steps invoked with no loop logic, median), with a one-call model also
                              one_call_invoke_ms (its call alone, same words) and the other path's figures:
                              step_loop_word_latency_ms and step_loop_throughput_seq_per_s, or
                              one_call_word_latency_ms and one_call_throughput_seq_per_s}]
    peers                   {name: {word_latency_ms, words, timed}}: decoders outside this project (peers.py)
    floors_us               {backend: µs per call of the floor model (floor.py)}
    cold_start              {"runtime_<backend>", "runtime_<backend>_first_load", "keras":
                              {seconds, peak_rss_mb, output}}: a fresh process imports, loads, decodes one input
    keras_predict_per_char, keras_direct    with TensorFlow only: {word_latency_ms, [step_us, encoder_us]}
    skipped                 {backend or "keras": why it was not measured}
    failed                  [{backend, variant ("floor", "cold start" or a variant), threads_setting, error}]:
                            measurements whose interpreter crashed or refused; the others went on
    venv_mb, ratios         installed sizes (run_all.py); ratios between this run's own figures

Times are µs (``*_us``), ms (``*_ms``) or seconds; no figure is comparable across runs with other settings or
another bundle, which is why both are in every result. Readers refuse another schema_version; new optional keys
do not change the version, a changed meaning or a removed key does.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

log = logging.getLogger("seq2seq_edge.bench")

TABLE_START = "<!-- benchmark table: written by benchmarks/run_all.py -->"
TABLE_END = "<!-- end of benchmark table -->"
#: The folder of the pages whose marked tables the harnesses rewrite (benchmarks.md, quality.md, embedding.md).
DOCS = Path(__file__).resolve().parent.parent / "docs"
RESULTS_JSON, RESULTS_MD = "results.json", "results.md"
#: Backend suffixes of the ratios, and how the report names them.
INTERPRETERS = (("", ""), ("@tflite", " [tflite-runtime]"), ("@litert", " [LiteRT]"), ("@onnx", " [ONNX Runtime]"))

#: (ratio key, comparison, target, label, which bundle it applies to: None = any)
TARGETS = [
    ("word_speedup_vs_seed_predict", ">=", 1000, "whole word vs the seed's predict loop (seed model)", 32),
    ("loop_step_over_raw_step", "<=", 1.3, "decode loop per step / step model's run() in that loop", 256),
    ("fp32_step_us", "<=", 40, "latent-256 decoder step, fp32 TFLite (µs)", 256),
    ("int8_over_fp32_step", "<", 1.0, "int8 step / fp32 step", 256),
    ("throughput_batch64_over_batch1", ">=", 10, "throughput batch 64 / batch 1", None),
    ("cold_start_speedup", ">=", 10, "cold start: TensorFlow + .keras / runtime", None),
    ("int8_tflite_decoder_size_fraction", "<=", 0.30, "int8 TFLite decoder size / fp32", 256),
    ("one_call_over_raw_invoke", "<=", 1.15, "one-call model's call / raw-invoke floor (encoder + steps called, no "
     "loop logic), per word", None),
    ("step_loop_over_one_call", ">=", 1.5, "step loop / one-call decode, per word (seed model)", 32),
    ("speedup_vs_g2p_en", ">=", 3, "per word, g2p_en's numpy decoder / this runtime (fp32)", None),
]


def _met(value, op, target) -> bool:
    return {"<=": value <= target, ">=": value >= target, "<": value < target}[op]


def target_rows(result: dict) -> list[dict]:
    """The project's targets that apply to this result's bundle, met or missed (TFLite targets on TFLite only);
    none for an emulated machine, whose times are the emulator's."""
    rows = []
    if result["machine"].get("emulated"):
        return rows
    for key, op, target, label, latent in TARGETS:
        if latent is not None and result["bundle"]["latent_dim"] != latent:
            continue
        for suffix, where in INTERPRETERS:
            if suffix == "@onnx" and key in ("fp32_step_us", "loop_step_over_raw_step"):
                continue  # stated for TFLite
            value = result["ratios"].get(key + suffix)
            if value is None:
                continue
            rows.append({"bundle": result["bundle"]["name"], "measure": label + where, "key": key + suffix,
                         "value": value, "target": f"{op} {target}", "met": _met(value, op, target)})
    return rows


#: The ratios ``s2s bench`` prints for any bundle: measured on it, with no goal attached.
HEADLINE_RATIOS = (("throughput_batch64_over_batch1", "throughput batch 64 / batch 1"),
                   ("int8_over_fp32_step", "int8 step / fp32 step"),
                   ("step_loop_over_one_call", "step loop / one-call decode, per word"),
                   ("cold_start_speedup", "cold start: TensorFlow + .keras / runtime"),
                   ("speedup_vs_g2p_en", "per word, g2p_en's numpy decoder / this runtime (fp32)"))


def headline_ratios(result: dict) -> list[tuple[str, float]]:
    """(label, value) of each HEADLINE_RATIOS ratio measured in ``result``, per interpreter."""
    rows = []
    for key, label in HEADLINE_RATIOS:
        for suffix, where in INTERPRETERS:
            value = result["ratios"].get(key + suffix)
            if value is not None:
                rows.append((label + where, value))
    return rows


def fmt(x, digits=1):
    return "–" if x is None else f"{x:,.{digits}f}"


def machine_line(m: dict) -> str:
    flags = ", ".join(m.get("isa_flags", [])) or "no ISA flags read"
    return (f"{m.get('cpu', '?')}, {m.get('cores')} cores ({flags}), {m.get('os')}, {m.get('arch')}, "
            f"{m.get('python')}")


def emulated_note(m: dict) -> str:
    return (f"**EMULATED**: {m.get('emulation') or 'run under an emulator'}. These figures show the code runs "
            "there; they say nothing about a real device's speed.")


def settings_line(s: dict, threads: bool = True) -> str:
    text = (f"Mode {s['mode']}: {s['model_call_repeats']:,} timed model calls after {s['model_call_warmup']} "
            f"(medians), {s['word_sample']:,} words after {s['word_warmup']} (percentiles), ")
    if threads:
        text += f"threads {'/'.join(s['threads'])} ('max' = every core; other than 1 for fp32 only), "
    return text + f"cold start median of {s['cold_start_repeats']}."


def failure_text(x: dict) -> str:
    t = x.get("threads_setting")
    return (f"{x['backend']} {x['variant']}" + (f" ({t} thread{'s' if t != '1' else ''})" if t else "")
            + f": {x['error']}")


def one_call_lines(r: dict) -> list[str]:
    """The one-call decode beside the step loop and the raw-invoke floor, the encoder by input length, peers."""
    rows = [x for x in r["runtime"] if "raw_invoke_ms" in x]
    if not rows:
        return []
    lengths = sorted({int(n) for x in rows for n in x.get("encoder_us_by_length", {})})
    lines = ["", "Per word at batch 1, ms (p50): the whole decode (text in, result out) by the one-call model and by "
                 "the step loop; the calls alone with ready-made inputs: the one-call model's, and the raw-invoke "
                 "floor (the encoder and the word's decoder steps, no loop logic); the encoder alone by input length.",
             "", "| contender | threads | one-call decode | step-loop decode | step loop / one-call | one-call model "
                 "call | raw-invoke floor | call / floor | " + " | ".join(f"encoder µs, {n} tok" for n in lengths)
             + " |", "|---|---|---|---|---|---|---|---|" + "---|" * len(lengths)]
    for x in rows:
        one, loop = path_latencies(x)
        floor, call = x["raw_invoke_ms"], x.get("one_call_invoke_ms")
        enc = x.get("encoder_us_by_length", {})
        lines.append(f"| {x['backend']} {x['variant']} | {x['threads']} | {fmt(one, 3)} | {fmt(loop, 3)} | "
                     f"{fmt(loop / one if one and loop else None, 2)} | {fmt(call, 3)} | {fmt(floor, 3)} | "
                     f"{fmt(call / floor if call else None, 2)} | "
                     + " | ".join(fmt(enc.get(str(n))) for n in lengths) + " |")
    for name, p in r.get("peers", {}).items():
        lines.append(f"| peer: {name} ({p['timed']}) | 1 | – | {fmt(p['word_latency_ms']['p50'], 3)} | – | – | – | – |"
                     + " – |" * len(lengths))
    sizes = r["settings"]["batch_sizes"]
    lines += ["", "| throughput, seq/s | path | " + " | ".join(f"b{bs}" for bs in sizes) + " |",
              "|---|---|" + "---|" * len(sizes)]
    for x in rows:
        paths = [(x["decode_path"], x["throughput_seq_per_s"])]
        for key, path in (("step_loop", "step-loop"), ("one_call", "one-call")):
            if f"{key}_throughput_seq_per_s" in x:
                paths.append((path, x[f"{key}_throughput_seq_per_s"]))
        for path, tp in paths:
            lines.append(f"| {x['backend']} {x['variant']} | {path} | "
                         + " | ".join(fmt(tp.get(str(bs)), 0) for bs in sizes) + " |")
    return lines


def path_latencies(row: dict) -> tuple[float | None, float | None]:
    """Per-word p50 latency (ms) of a runtime row by the one-call model and by the step loop (None: not timed)."""
    def p50(path: str, key: str):
        figures = row["word_latency_ms"] if row.get("decode_path") == path else row.get(f"{key}_word_latency_ms")
        return figures["p50"] if figures else None
    return p50("one-call", "one_call"), p50("step-loop", "step_loop")


def markdown(results: list[dict], targets: bool = False) -> str:
    m = results[0]["machine"]
    lines = [f"Machine: {machine_line(m)}. {settings_line(results[0]['settings'])}", ""]
    if m.get("emulated"):
        lines += [emulated_note(m), ""]
    for r in results:
        b = r["bundle"]
        lines += [f"### {b['name']} (latent {b['latent_dim']}, {b['target_vocab']} output tokens)", "",
                  f"Bundle model files sha256 `{b['models_sha256'][:16]}`, golden inputs `{b['golden_sha256'][:16]}`.",
                  "",
                  "| contender | threads | encoder µs | step µs | loop µs/step | word p50 ms | p95 | p99 | "
                  + " | ".join(f"seq/s b{bs}" if i == 0 else f"b{bs}" for i, bs in enumerate(r["settings"]["batch_sizes"]))
                  + " |",
                  "|---|---|---|---|---|---|---|---|" + "---|" * len(r["settings"]["batch_sizes"])]
        dashes = " – |" * len(r["settings"]["batch_sizes"])
        for name in ("keras_predict_per_char", "keras_direct"):
            k = r.get(name)
            if k:
                w = k["word_latency_ms"]
                lines.append(f"| {name.replace('_', ' ')} | – | {fmt(k.get('encoder_us'))} | {fmt(k.get('step_us'))} | – | "
                             f"{fmt(w['p50'], 3)} | {fmt(w['p95'], 3)} | {fmt(w['p99'], 3)} |{dashes}")
        for x in r["runtime"]:
            w, t = x["word_latency_ms"], x["throughput_seq_per_s"]
            lines.append(f"| {x['backend']} {x['variant']} | {x['threads']} | {fmt(x['encoder_us'])} | {fmt(x['step_us'])} | "
                         f"{fmt(x['loop_step_us'])} | {fmt(w['p50'], 3)} | {fmt(w['p95'], 3)} | {fmt(w['p99'], 3)} | "
                         + " | ".join(fmt(t.get(str(bs)), 0) for bs in r["settings"]["batch_sizes"]) + " |")
        lines += one_call_lines(r)
        if r["floors_us"]:
            lines += ["", "Floor (a trivial model with the step's inputs and outputs, per call): " +
                      ", ".join(f"{b_} {fmt(v, 1)} µs" for b_, v in r["floors_us"].items()) + "."]
        cold = r["cold_start"]
        if cold:
            lines += ["", "| cold start (fresh process: import, load, decode one input) | seconds | peak RSS MB |",
                      "|---|---|---|"]
            lines += [f"| {k.replace('_', ' ')} | {fmt(v['seconds'], 2)} | {fmt(v['peak_rss_mb'])} |" for k, v in cold.items()]
        sizes = {p: x["size_bytes"] for p, x in b["models"].items()}
        lines += ["", "Model files (KB): " + ", ".join(f"{k} {sizes[k] / 1024:,.0f}" for k in sorted(sizes)) + "."]
        interpreters = sorted({x["interpreter"] for x in r["runtime"]})
        if interpreters:
            lines += ["", "Interpreters: " + "; ".join(interpreters) + "."]
        if r.get("failed"):
            lines += ["", "**Failed**: " + "; ".join(failure_text(x) for x in r["failed"]) + "."]
        skipped = {k: v for k, v in r.get("skipped", {}).items() if v != "not installed"}
        if skipped:
            lines += ["", "Not measured: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + "."]
        if r.get("venv_mb"):
            lines += ["", "Installed venv sizes (MB): " + ", ".join(f"{k} {v:,.0f}" for k, v in r["venv_mb"].items()) + "."]
        lines.append("")
    rows = [row for r in results for row in target_rows(r)] if targets else []
    if rows:
        lines += ["### Targets (ratios from this run)", "", "| bundle | measure | measured | target | |", "|---|---|---|---|---|"]
        lines += [f"| {row['bundle']} | {row['measure']} | {fmt(row['value'], 2)} | {row['target']} | "
                  f"{'met' if row['met'] else 'missed'} |" for row in rows]
    return "\n".join(lines) + "\n"


def chart_png(results: list[dict], path: Path) -> None:
    """Per-word latency of every contender, one panel per bundle (matplotlib: the [train] extra)."""
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
        ax.set_title(f"{r['bundle']['name']} (latent {r['bundle']['latent_dim']})")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def replace_marked_block(page: Path, start: str, end: str, body: str) -> None:
    """Replace the text between the ``start`` and ``end`` marker lines of ``page`` with ``body``: how the harnesses
    put their tables in the docs, so nobody types a figure. A page without both markers is an error."""
    text = page.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{page} has no {start} ... {end} block")
    page.write_text(pattern.sub(lambda _: f"{start}\n{body}{end}", text), encoding="utf-8")
    log.info("updated %s", page)


def write(results: list[dict], out_dir: Path, page: Path | None = None, png: bool = False,
          targets: bool = False) -> dict:
    """Write results.json, results.md and chart.svg (and chart.png with ``png``) into ``out_dir``; with ``page``,
    replace the benchmark table between its markers (docs/benchmarks.md). ``targets``: also this project's goals for its reference
    bundles (benchmarks/run_all.py), met or missed; a user's own bundle is measured, not judged."""
    from . import chart
    from .runtime_bench import SCHEMA, SCHEMA_VERSION

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "results": results,
               "targets": [row for r in results for row in target_rows(r)] if targets else []}
    (out_dir / RESULTS_JSON).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    md = markdown(results, targets)
    (out_dir / RESULTS_MD).write_text(md, encoding="utf-8")
    (out_dir / "chart.svg").write_text(chart.svg_chart([(r["bundle"]["name"], [r]) for r in results],
                                                         title="ms per word (p50)"), encoding="utf-8")
    if png:
        chart_png(results, out_dir / "chart.png")
    if page is not None:
        replace_marked_block(page, TABLE_START, TABLE_END, md)
    return summary
