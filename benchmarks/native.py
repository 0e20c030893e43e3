"""Per-word latency of one bundle through every runtime on ONNX Runtime: Python, C (c/), Kotlin (kotlin/) and,
when its packages are installed, JavaScript in node (js/), one after another in the same run, as ratios.

    python benchmarks/native.py BUNDLE [BUNDLE ...] [--rounds 5] [--repeats 3] [--out benchmarks/results]

One protocol everywhere (js/bench/protocol.js): each golden input decoded alone (batch 1), fp32, one intra-op
thread; a warm-up round, then ROUNDS timed rounds; the per-word median and 90th percentile. Each runtime is
measured REPEATS times, interleaved (Python, C, Kotlin, JavaScript, Python, ...), and the median of those medians is
reported, so a busy moment of a shared machine does not land on one runtime only. Needs c/build (c/ci.sh) and
kotlin/target/s2s-kotlin.jar (kotlin/ci.sh). Writes native.json and native.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seq2seq_edge.bench import report
from seq2seq_edge.manifest import GOLDEN_FILE

REPO = Path(__file__).resolve().parent.parent
C_BENCH = REPO / "c" / "build" / "s2s-bench"
KOTLIN_JAR = REPO / "kotlin" / "target" / "s2s-kotlin.jar"
TABLE_START = "<!-- native latency table: written by benchmarks/native.py -->"
TABLE_END = "<!-- end of native latency table -->"
JS_BENCH = r"""
import { readFileSync } from 'node:fs';
import { loadBundleFromDir } from './src/node.js';
const [dir, wordsFile, path, rounds] = process.argv.slice(1); // node -e: no script path
const words = readFileSync(wordsFile, 'utf8').split('\n').filter((w) => w);
const t0 = performance.now();
const d = await loadBundleFromDir(dir, { variant: 'fp32', threads: 1, oneCall: path === 'step-loop' ? false : 'auto' });
const loadMs = performance.now() - t0;
const times = [];
for (let r = -1; r < +rounds; r++) for (const w of words) { const t = performance.now(); await d.decode(w); if (r >= 0) times.push(performance.now() - t); }
times.sort((a, b) => a - b);
const ort = JSON.parse(readFileSync('node_modules/onnxruntime-node/package.json', 'utf8')).version;
console.log(JSON.stringify({ runtime: 'javascript', engine: `onnxruntime-node ${ort} (node ${process.version})`,
  decode_path: d.decodePath, variant: 'fp32', words: words.length, rounds: +rounds,
  ms_per_word_p50: times[Math.floor(times.length / 2)], ms_per_word_p90: times[Math.floor(times.length * 9 / 10)], load_ms: loadMs }));
await d.release();
"""


def python_row(bundle: Path, words: list[str], path: str, rounds: int) -> dict:
    import onnxruntime

    import seq2seq_edge

    t0 = time.perf_counter()
    decoder = seq2seq_edge.load(bundle, backend="onnx", threads=1, one_call=path == "one-call")
    load_ms = (time.perf_counter() - t0) * 1000
    times = []
    for r in range(-1, rounds):  # round -1: warm-up, not timed
        for w in words:
            t = time.perf_counter()
            decoder.decode(w)
            if r >= 0:
                times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"runtime": "python", "engine": f"onnxruntime {onnxruntime.__version__} (Python {sys.version.split()[0]})",
            "decode_path": decoder.decode_path, "variant": "fp32", "words": len(words), "rounds": rounds,
            "ms_per_word_p50": times[len(times) // 2], "ms_per_word_p90": times[len(times) * 9 // 10],
            "load_ms": load_ms}


def _json_line(cmd: list[str], cwd: Path | None = None) -> dict:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=cwd).stdout
    return json.loads(out.strip().splitlines()[-1])


def runners(bundle: Path, words_file: Path, path: str, rounds: int) -> dict:
    """Each available runtime: a function that measures once and returns its row."""
    words = words_file.read_text(encoding="utf-8").split("\n")
    words = [w for w in words if w]
    step = ["--step-loop"] if path == "step-loop" else []
    one_call = ["--one-call"] if path == "one-call" else []  # the C library's default is the step loop
    found = {"python": lambda: python_row(bundle, words, path, rounds)}
    if C_BENCH.is_file():
        found["c"] = lambda: _json_line([str(C_BENCH), str(bundle), str(words_file), *one_call, "--rounds", str(rounds)])
    if KOTLIN_JAR.is_file():
        found["kotlin"] = lambda: _json_line(["java", "-cp", str(KOTLIN_JAR), "dev.seq2seqedge.BenchKt", str(bundle),
                                              str(words_file), *step, "--rounds", str(rounds)])
    js = REPO / "js"
    if (js / "node_modules" / "onnxruntime-node").is_dir():
        found["javascript"] = lambda: _json_line(["node", "--input-type=module", "-e", JS_BENCH, str(bundle),
                                                  str(words_file), path, str(rounds)], cwd=js)
    return found


def measure(bundles: list[Path], rounds: int, repeats: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bundle in bundles:
            words = [i["input"] for i in json.loads((bundle / GOLDEN_FILE).read_text(encoding="utf-8"))["items"]]
            words_file = Path(tmp) / f"{bundle.name}.txt"
            words_file.write_text("\n".join(words) + "\n", encoding="utf-8")
            for path in ("one-call", "step-loop"):
                found = runners(bundle, words_file, path, rounds)
                runs: dict[str, list[dict]] = {name: [] for name in found}
                for _ in range(repeats):
                    for name, run in found.items():
                        runs[name].append(run())
                for name, got in runs.items():
                    row = dict(got[0], bundle=bundle.name, repeats=repeats,
                               ms_per_word_p50=statistics.median(r["ms_per_word_p50"] for r in got),
                               ms_per_word_p90=statistics.median(r["ms_per_word_p90"] for r in got),
                               load_ms=statistics.median(r["load_ms"] for r in got))
                    if row["decode_path"] != path:
                        row["note"] = f"asked for {path}"
                    rows.append(row)
                    print(f"{bundle.name:10} {path:9} {name:10} {row['ms_per_word_p50']:.3f} ms/word p50", flush=True)
    return rows


def markdown(result: dict) -> str:
    from seq2seq_edge.bench import report

    lines = [f"# Per-word latency through every runtime ({result['date']})", "",
             f"Machine: {report.machine_line(result['machine'])}.", "",
             f"Protocol: each golden input decoded alone (batch 1), fp32, 1 intra-op thread; a warm-up round, then "
             f"{result['rounds']} timed rounds; each runtime measured {result['repeats']} times interleaved, median "
             "of the medians. Ratio: the runtime's median over Python's, same bundle and path (below 1: faster).", "",
             "| bundle | path | runtime | engine | ms/word p50 | p90 | vs Python | load ms |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    base = {(r["bundle"], r["decode_path"]): r["ms_per_word_p50"] for r in result["rows"] if r["runtime"] == "python"}
    for r in result["rows"]:
        ratio = r["ms_per_word_p50"] / base[(r["bundle"], r["decode_path"])]
        lines.append(f"| {r['bundle']} | {r['decode_path']} | {r['runtime']} | {r['engine']} | "
                     f"{r['ms_per_word_p50']:.3f} | {r['ms_per_word_p90']:.3f} | {ratio:.2f} | {r['load_ms']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundles", nargs="+", type=Path)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--no-docs", action="store_true", help="do not rewrite the table in docs/embedding.md")
    args = p.parse_args(argv)
    from seq2seq_edge.bench import harness

    result = {"date": time.strftime("%Y-%m-%d"), "machine": harness.machine(), "rounds": args.rounds,
              "repeats": args.repeats, "rows": measure(args.bundles, args.rounds, args.repeats)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "native.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (args.out / "native.md").write_text(markdown(result), encoding="utf-8")
    print(f"wrote {args.out / 'native.json'} and native.md")
    if not args.no_docs:
        table = markdown(result).split("\n", 2)[2]  # without the title
        report.replace_marked_block(report.DOCS / "embedding.md", TABLE_START, TABLE_END, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
