"""What the opt-in sandboxed decoder (seq2seq_edge.sandbox) costs: per word, against the same decoder in process.

    python benchmarks/sandbox.py BUNDLE [BUNDLE ...] [--rounds 5] [--out benchmarks/results]

For each bundle and backend: the golden inputs decoded one per call (batch 1) and all in one call (batch 32), in
process and sandboxed, interleaved round by round after a warm-up of each; the per-word median of each, their
difference and ratio; and the sandbox's start (a child process that imports the runtime and loads the bundle).
Writes sandbox.json and sandbox.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from seq2seq_edge.manifest import GOLDEN_FILE

REPO = Path(__file__).resolve().parent.parent


def _round(decoder, words: list[str], times: dict) -> None:
    """One round: each word alone, then all words in one call of 32-row batches; per-word milliseconds."""
    for w in words:
        t = time.perf_counter()
        decoder.decode(w)
        times["batch1_ms_per_word"].append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    decoder.decode_batch(words, batch_size=32)
    times["batch32_ms_per_word"].append((time.perf_counter() - t) * 1000 / len(words))


def measure(bundle: Path, backend: str, rounds: int) -> dict:
    import seq2seq_edge
    from seq2seq_edge.sandbox import SandboxedDecoder

    words = [i["input"] for i in json.loads((bundle / GOLDEN_FILE).read_text(encoding="utf-8"))["items"]][:100]
    direct = seq2seq_edge.load(bundle, backend=backend)
    t = time.perf_counter()
    boxed = SandboxedDecoder(bundle, backend=backend)
    start_ms = (time.perf_counter() - t) * 1000
    try:
        for d in (direct, boxed):  # warm-up
            d.decode_batch(words, batch_size=32)
        a = {"batch1_ms_per_word": [], "batch32_ms_per_word": []}
        b = {"batch1_ms_per_word": [], "batch32_ms_per_word": []}
        for _ in range(rounds):  # interleaved: a busy moment lands on both
            _round(direct, words, a)
            _round(boxed, words, b)
        a = {k: statistics.median(v) for k, v in a.items()}
        b = {k: statistics.median(v) for k, v in b.items()}
    finally:
        boxed.close()
    row = {"bundle": bundle.name, "backend": direct.backend, "decode_path": direct.decode_path, "words": len(words),
           "rounds": rounds, "sandbox_start_ms": start_ms}
    for key in ("batch1_ms_per_word", "batch32_ms_per_word"):
        row[key] = {"in_process": a[key], "sandboxed": b[key], "added_ms": b[key] - a[key], "ratio": b[key] / a[key]}
    return row


def markdown(result: dict) -> str:
    from seq2seq_edge.bench import report

    lines = [f"# The sandboxed decoder's cost ({result['date']})", "",
             f"Machine: {report.machine_line(result['machine'])}.", "",
             "Per word, median over the rounds: the golden inputs (up to 100) decoded one per call and 32 per call, "
             "in process (`seq2seq_edge.load`) and sandboxed (`seq2seq_edge.sandbox.SandboxedDecoder`: a limited "
             "child process, one JSON round trip per call). Start: the child's start and load, once.", "",
             "| bundle | backend | path | batch 1: in process ms | sandboxed ms | added ms | ratio "
             "| batch 32: in process ms | sandboxed ms | added ms | ratio | start ms |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        one, many = r["batch1_ms_per_word"], r["batch32_ms_per_word"]
        lines.append(f"| {r['bundle']} | {r['backend']} | {r['decode_path']} | {one['in_process']:.3f} | "
                     f"{one['sandboxed']:.3f} | {one['added_ms']:.3f} | {one['ratio']:.2f} | "
                     f"{many['in_process']:.4f} | {many['sandboxed']:.4f} | {many['added_ms']:.4f} | "
                     f"{many['ratio']:.2f} | {r['sandbox_start_ms']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundles", nargs="+", type=Path)
    p.add_argument("--backends", default="onnx,litert")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    from seq2seq_edge.bench import harness

    rows = []
    for bundle in args.bundles:
        for backend in args.backends.split(","):
            rows.append(measure(bundle, backend, args.rounds))
            r = rows[-1]
            print(f"{bundle.name:10} {backend:7} batch 1: +{r['batch1_ms_per_word']['added_ms']:.3f} ms/word "
                  f"(x{r['batch1_ms_per_word']['ratio']:.2f}), batch 32: +{r['batch32_ms_per_word']['added_ms']:.4f} "
                  f"ms/word (x{r['batch32_ms_per_word']['ratio']:.2f}), start {r['sandbox_start_ms']:.0f} ms",
                  flush=True)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": harness.machine(), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sandbox.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (args.out / "sandbox.md").write_text(markdown(result), encoding="utf-8")
    print(f"wrote {args.out / 'sandbox.json'} and sandbox.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
