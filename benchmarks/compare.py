"""Runs of ``s2s bench`` from several machines, merged into one table and one chart.

    s2s bench --compare A.json B.json ... [--out DIR] [--allow-mismatch]

Each file is a ``results.json`` written by ``s2s bench`` (schema: report.py). Runs compare only when they timed the
same thing: the same bundle (the model files' sha256s and the golden inputs') and the same settings (every count
behind a figure; the thread list only chooses contenders, and rows are matched by their own thread setting). Anything else is refused with one line naming the difference; ``--allow-mismatch`` merges them
anyway, with a warning, and the report says so. Writes compare.md, compare.json and chart.svg (no dependency
beyond the standard library: it runs on the device too).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from seq2seq_edge import files
from seq2seq_edge.errors import Seq2SeqEdgeError

from . import report
from .chart import KERAS, contender, contender_order, svg_chart
from .runtime_bench import SCHEMA, SCHEMA_VERSION

COMPARE_SCHEMA = "seq2seq-edge-bench-compare"
#: Settings that choose which contenders are measured, not how: rows are matched by their own thread setting, so
#: runs with different thread lists compare on the rows they share.
SELECTION_SETTINGS = {"threads"}


# ---- reading -----------------------------------------------------------------------------------------------------
#: A results.json is a few hundred KB; a larger file is not one s2s bench wrote.
MAX_RESULTS_BYTES = 64 * 2**20


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON has")


def load(path: str | Path) -> list[dict]:
    """The results in a results.json; Seq2SeqEdgeError (one line) for anything else."""
    path = Path(path)
    raw = files.read_data_file(path, "results file", max_bytes=MAX_RESULTS_BYTES)
    try:
        d = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise Seq2SeqEdgeError(f"{path}: not a JSON results file ({type(e).__name__}: {e})") from None
    except RecursionError:
        raise Seq2SeqEdgeError(f"{path}: not a JSON results file (nested too deeply)") from None
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        raise Seq2SeqEdgeError(f"{path}: not a results.json of s2s bench (no \"schema\": \"{SCHEMA}\"); results "
                               "written before schema version 1 cannot be compared: measure again")
    if d.get("schema_version") != SCHEMA_VERSION:
        raise Seq2SeqEdgeError(f"{path}: schema version {d.get('schema_version')!r}; this s2s reads version "
                               f"{SCHEMA_VERSION} (use the seq2seq-edge that wrote it, or measure again)")
    results = d.get("results")
    if not isinstance(results, list) or not results:
        raise Seq2SeqEdgeError(f"{path}: holds no results")
    for r in results:
        missing = [k for k in ("bundle", "settings", "machine", "runtime", "floors_us", "cold_start")
                   if not isinstance(r, dict) or k not in r]
        if missing:
            raise Seq2SeqEdgeError(f"{path}: a result lacks {', '.join(missing)}")
    _check_shapes(path, results)
    return results


def _short(sha: str) -> str:
    return sha[:12]


def differences(a: dict, b: dict) -> list[str]:
    """What makes result ``b`` not comparable with ``a``, one phrase each (empty: comparable)."""
    out = []
    ba, bb = a["bundle"], b["bundle"]
    if ba["models_sha256"] != bb["models_sha256"]:
        files = sorted(set(ba["models"]) | set(bb["models"]))
        first = next((f for f in files if ba["models"].get(f, {}).get("sha256") != bb["models"].get(f, {}).get("sha256")),
                     None)
        why = f", first {first}" if first else ""
        out.append(f"different bundles ({ba['name']} model files {_short(ba['models_sha256'])} vs {bb['name']} "
                   f"{_short(bb['models_sha256'])}{why})")
    elif ba["golden_sha256"] != bb["golden_sha256"]:
        out.append(f"different golden inputs, the timed words ({_short(ba['golden_sha256'])} vs "
                   f"{_short(bb['golden_sha256'])})")
    sa, sb = a["settings"], b["settings"]
    changed = [k for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k) and k not in SELECTION_SETTINGS]
    if changed:
        shown = ", ".join(f"{k} {_setting(sa.get(k))} vs {_setting(sb.get(k))}" for k in changed[:3])
        out.append(f"different settings ({shown}{', ...' if len(changed) > 3 else ''})")
    return out


def _setting(v) -> str:
    return "/".join(map(str, v)) if isinstance(v, list) else str(v)


# ---- merging ----------------------------------------------------------------------------------------------------
def _key(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"M{i + 1}"


def _distinct_labels(entries: list[tuple[Path, dict]]) -> None:
    """Runs that share a label (two runs on one machine) are told apart by their results folder, then by the time
    they were made, then by their place on the command line: each result's ``machine.label`` is made unique in
    place."""
    def label(r):
        return r["machine"].get("label", "?")

    positions = {id(r): i + 1 for i, (_, r) in enumerate(entries)}
    for tell in (lambda p, r: p.resolve().parent.name, lambda p, r: str(r.get("created", "?")),
                 lambda p, r: f"#{positions[id(r)]}"):
        counts: dict[str, int] = {}
        for _, r in entries:
            counts[label(r)] = counts.get(label(r), 0) + 1
        for path, r in entries:
            if counts[label(r)] > 1:
                r["machine"] = {**r["machine"], "label": f"{label(r)} ({tell(path, r)})"}


def merge(paths: list[str | Path], allow_mismatch: bool = False) -> dict:
    """Read every file and merge its results, after checking they are comparable (see ``differences``)."""
    if len(paths) < 2:
        raise Seq2SeqEdgeError("--compare needs at least two results.json files")
    entries = [(Path(p), r) for p in paths for r in load(p)]
    return _merged(entries, allow_mismatch)


def _check_shapes(path: Path, results: list[dict]) -> None:
    """Put a file's results through the merge and the report with themselves, so a field of a wrong type or a
    missing one (a file s2s bench did not write, or edited) is an error naming the file, not a traceback later."""
    import copy

    entries = [(path, copy.deepcopy(r)) for _ in range(2) for r in results]
    try:
        merged = _merged(entries, allow_mismatch=True)
        markdown(merged)
        svg_chart([(str(merged["bundle"]["name"]), [r for _, r in entries])])
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, ZeroDivisionError) as e:
        raise Seq2SeqEdgeError(f"{path}: not a results file s2s bench wrote ({type(e).__name__}: "
                               f"{str(e)[:120]})") from None


def _merged(entries: list[tuple[Path, dict]], allow_mismatch: bool) -> dict:
    ref_path, ref = entries[0]
    warnings = []
    for path, r in entries[1:]:
        diffs = differences(ref, r)
        if diffs and not allow_mismatch:
            raise Seq2SeqEdgeError(f"cannot compare {path} with {ref_path}: {'; '.join(diffs)} "
                                   "(--allow-mismatch compares them anyway)")
        warnings += [f"{path} vs {ref_path}: {d}" for d in diffs]
    _distinct_labels(entries)
    machines, rows = [], []
    for i, (path, r) in enumerate(entries):
        key = _key(i)
        m = r["machine"]
        interpreters = sorted({x["interpreter"].split(",")[0] for x in r["runtime"]})
        machines.append({"key": key, "file": str(path), "label": m.get("label", "?"), "machine": m,
                         "versions": r.get("versions", {}), "interpreters": interpreters, "created": r.get("created"),
                         "bundle": {k: r["bundle"].get(k) for k in ("name", "models_sha256", "golden_sha256")},
                         "settings": r["settings"], "floors_us": r["floors_us"], "cold_start": r["cold_start"],
                         "failed": r.get("failed", [])})
        for name, label in KERAS:
            if r.get(name):
                rows.append({"machine": key, "contender": label, "word_latency_ms": r[name]["word_latency_ms"],
                             "step_us": r[name].get("step_us"), "encoder_us": r[name].get("encoder_us")})
        for x in r["runtime"]:
            rows.append({"machine": key, "contender": contender(x), "backend": x["backend"], "variant": x["variant"],
                         "threads": x["threads"], **{k: x.get(k) for k in (
                             "word_latency_ms", "step_us", "encoder_us", "loop_step_us", "throughput_seq_per_s")}})
    return {"schema": COMPARE_SCHEMA, "schema_version": SCHEMA_VERSION, "bundle": machines[0]["bundle"],
            "settings": ref["settings"], "mismatches": warnings, "machines": machines,
            "contenders": sorted(dict.fromkeys(r["contender"] for r in rows), key=contender_order), "rows": rows}


def _times(r: float) -> str:
    return f"×{r:,.0f}" if r >= 10 else f"×{r:.2f}"


# ---- the report ---------------------------------------------------------------------------------------------------
def _cell(rows: dict, key: str, fn) -> str:
    row = rows.get(key)
    if row is None:
        return "–"
    try:
        return fn(row)
    except (KeyError, TypeError):
        return "–"


def _machines_table(ms: list[dict]) -> list[str]:
    """The machines compared, one row each, then each one's emulation note and failures."""
    lines = ["| | machine | CPU | cores | ISA flags | OS | Python | interpreters | measured |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m in ms:
        x = m["machine"]
        label = html.escape(m["label"]) + (" **EMULATED**" if x.get("emulated") else "")
        lines.append(f"| {m['key']} | {label} | {x.get('cpu')} | {x.get('cores')} | {', '.join(x.get('isa_flags', []))} | "
                     f"{x.get('os')} | {x.get('python')} | {', '.join(m['interpreters'])} | "
                     f"{(m['created'] or '')[:10]} |")
    for m in ms:
        if m["machine"].get("emulated"):
            lines += ["", f"{m['key']}: " + report.emulated_note(m["machine"])]
        if m["failed"]:
            lines += ["", f"{m['key']} **failed**: " + "; ".join(report.failure_text(x) for x in m["failed"]) + "."]
    return lines


def markdown(merged: dict) -> str:
    """compare.md: the machines, then per contender and machine the latency, step, floor, throughput and cold start."""
    f = report.fmt
    ms = merged["machines"]
    keys = [m["key"] for m in ms]
    b = merged["bundle"]
    lines = [f"## Benchmark comparison: {b['name']}", "",
             f"Bundle {b['name']}: model files sha256 `{_short(b['models_sha256'])}`, golden inputs "
             f"`{_short(b['golden_sha256'])}`. {report.settings_line(merged['settings'], threads=False)} Contenders: backend, "
             "variant and, other than 1, the interpreter's threads (×max: every core of that machine).", ""]
    if merged["mismatches"]:
        lines += ["**Forced comparison** (--allow-mismatch): " + "; ".join(merged["mismatches"]) +
                  ". Figures in different columns did not time the same thing.", ""]
    lines += _machines_table(ms)
    by = {(r["machine"], r["contender"]): r for r in merged["rows"]}
    table = {c: {k: by.get((k, c)) for k in keys} for c in merged["contenders"]}
    header = "| contender | " + " | ".join(keys) + " |"
    rule = "|---|" + "---|" * len(keys)

    def ratio(row, base):
        if not base or not row or base is row:
            return ""
        return " " + _times(row["word_latency_ms"]["p50"] / base["word_latency_ms"]["p50"])

    lines += ["", "### Per-word latency, ms: p50 (p95, p99); ×: p50 over the first column's", "", header, rule]
    for c, row in table.items():
        base = next((x for x in row.values() if x), None)
        cells = [_cell(row, k, lambda x, base=base: f"{f(x['word_latency_ms']['p50'], 3)} "
                       f"({f(x['word_latency_ms']['p95'], 3)}, {f(x['word_latency_ms']['p99'], 3)}){ratio(x, base)}")
                 for k in keys]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    def section(title: str, field: str, show) -> None:
        """A table of ``show(row)`` per contender and machine, for the contenders that measured ``field``."""
        lines.extend(["", title, "", header, rule])
        for c, row in table.items():
            if any(x and x.get(field) for x in row.values()):
                lines.append(f"| {c} | " + " | ".join(_cell(row, k, show) for k in keys) + " |")

    section("### Decoder step / encoder, µs per call at batch 1 (medians)", "step_us",
            lambda x: f"{f(x.get('step_us'))} / {f(x.get('encoder_us'))}")
    backends_ = list(dict.fromkeys(b_ for m in ms for b_ in m["floors_us"]))
    if backends_:
        lines += ["", "### Floor: a trivial model with the step's inputs and outputs, µs per call", "",
                  "| backend | " + " | ".join(keys) + " |", rule]
        for b_ in backends_:
            lines.append(f"| {b_} | " + " | ".join(f(m["floors_us"].get(b_)) for m in ms) + " |")
    sizes = merged["settings"].get("batch_sizes", [])
    section(f"### Throughput, sequences/s at batch {' / '.join(map(str, sizes))}", "throughput_seq_per_s",
            lambda x: " / ".join(f(x["throughput_seq_per_s"].get(str(s)), 0) for s in sizes))
    colds = list(dict.fromkeys(k for m in ms for k in m["cold_start"]))
    if colds:
        lines += ["", "### Cold start: a fresh process imports, loads and decodes one input (s, peak RSS MB)", "",
                  "| | " + " | ".join(keys) + " |", rule]
        for c in colds:
            cells = [f"{f(m['cold_start'][c]['seconds'], 2)} s, {f(m['cold_start'][c]['peak_rss_mb'], 0)} MB"
                     if c in m["cold_start"] else "–" for m in ms]
            lines.append(f"| {c.replace('_', ' ')} | " + " | ".join(cells) + " |")
    lines += ["", "Files: " + ", ".join(f"{m['key']} `{m['file']}`" for m in ms) + "."]
    return "\n".join(lines) + "\n"


def write(merged: dict, results_by_machine: list[dict], out_dir: Path) -> Path:
    """compare.md, compare.json and chart.svg in ``out_dir``; returns the Markdown's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "compare.json").write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    md = out_dir / "compare.md"
    md.write_text(markdown(merged), encoding="utf-8")
    (out_dir / "chart.svg").write_text(svg_chart([(merged["bundle"]["name"], results_by_machine)]), encoding="utf-8")
    return md


def compare(paths: list[str | Path], out_dir: str | Path, allow_mismatch: bool = False) -> dict:
    """Merge ``paths`` (see ``merge``) and write the report into ``out_dir``."""
    merged = merge(paths, allow_mismatch)
    results = [r for p in paths for r in load(p)]
    write(merged, results, Path(out_dir))
    return merged
