"""The benchmark chart (SVG, by hand, no plotting dependency) and the contender names it and the reports share."""

from __future__ import annotations

import html
import math

KERAS = (("keras_predict_per_char", "keras predict per char"), ("keras_direct", "keras direct"))
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def contender(row: dict) -> str:
    t = row.get("threads_setting", str(row["threads"]))
    return f"{row['backend']} {row['variant']}" + (f" ×{t}" if t != "1" else "")


def contender_order(name: str) -> tuple:
    """Keras first, then by backend (tflite, litert, onnx), variant (fp32, fp16, int8), 1 thread first."""
    keras = [label for _, label in KERAS]
    if name in keras:
        return (0, keras.index(name))
    backend, variant, *threads = name.split(" ")
    order = ("tflite", "litert", "onnx")
    return (1, order.index(backend) if backend in order else 9, _VARIANTS.get(variant, 9), threads)


_VARIANTS = {"fp32": 0, "fp16": 1, "int8": 2}


def svg_chart(panels: list[tuple[str, list[dict]]], title: str = "ms per word (p50)") -> str:
    """A horizontal grouped bar chart, log scale, by hand: per panel, each contender's per-word p50 on every
    machine. ``panels``: (panel title, results), one result per machine."""
    bar, gap, left, width, top = 12, 10, 200, 900, 40
    series = []  # (panel title, [(contender, [value per machine])], machine labels)
    values = []
    for name, results in panels:
        rows = {}
        for i, r in enumerate(results):
            for key, label in KERAS:
                if r.get(key):
                    rows.setdefault(label, [None] * len(results))[i] = r[key]["word_latency_ms"]["p50"]
            for x in r["runtime"]:
                rows.setdefault(contender(x), [None] * len(results))[i] = x["word_latency_ms"]["p50"]
        labels = [r["machine"].get("label", "?") + (" (EMULATED)" if r["machine"].get("emulated") else "")
                  for r in results]
        series.append((name, sorted(rows.items(), key=lambda kv: contender_order(kv[0])), labels))
        values += [v for vs in rows.values() for v in vs if v]
    if not values:
        values = [1.0]
    lo = 10 ** math.floor(math.log10(min(values)))
    hi = 10 ** math.ceil(math.log10(max(values)) + 1e-9)
    if hi <= lo:
        hi = lo * 10
    plot = width - left - 30

    def x(v):
        return left + plot * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    out, y = [], top
    for name, rows, labels in series:
        out.append(f'<text x="10" y="{y}" font-weight="bold">{html.escape(name)}</text>')
        y += 8
        for i, label in enumerate(labels):
            y += 16
            out.append(f'<rect x="{left}" y="{y - 10}" width="10" height="10" fill="{COLOURS[i % len(COLOURS)]}"/>'
                       f'<text x="{left + 16}" y="{y}">{chr(65 + i) if i < 26 else i + 1}: {html.escape(label)}</text>')
        y += 14
        y0 = y
        for c, vs in rows:
            out.append(f'<text x="{left - 6}" y="{y + len(vs) * bar / 2 + 4}" text-anchor="end">{html.escape(c)}</text>')
            for i, v in enumerate(vs):
                if v:
                    out.append(f'<rect x="{left}" y="{y}" width="{max(1.0, x(v) - left):.1f}" height="{bar - 2}" '
                               f'fill="{COLOURS[i % len(COLOURS)]}"><title>{html.escape(c)}: {v:.4g} ms</title></rect>')
                    out.append(f'<text x="{x(v) + 3:.1f}" y="{y + bar - 3}" font-size="9">{v:.3g}</text>')
                y += bar
            y += gap
        decade = lo
        while decade <= hi * 1.0001:
            out.append(f'<line x1="{x(decade):.1f}" y1="{y0 - 4}" x2="{x(decade):.1f}" y2="{y}" stroke="#ccc"/>'
                       f'<text x="{x(decade):.1f}" y="{y + 14}" text-anchor="middle" font-size="10">{decade:g}</text>')
            decade *= 10
        y += 40
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" font-family="sans-serif" '
            f'font-size="11"><rect width="100%" height="100%" fill="white"/>'
            f'<text x="10" y="20" font-size="13">{html.escape(title)}, log scale</text>')
    return head + "".join(out) + "</svg>\n"
