"""At-scale benchmark: ``s2s run --input`` with 1 and 2 workers, the Ray Data predictor, and the peak memory of a
1,000,000-line file decode. Writes ``scale.json`` and ``scale.md``.

    python -m seq2seq_edge.bench.scale BUNDLE [--lines 200000] [--memory-lines 1000000] [--out benchmarks/results]

Inputs are drawn (seeded) from the bundle's golden inputs. Every run's outputs are compared with the 1-worker
run's, line by line. Times are wall times of the whole command (process start, loading, reading, writing), so
they include each configuration's fixed costs; the fixed costs are measured apart (a 1-line file; ``ray.init``).
Ray: the per-actor rate is ``BundlePredictor`` called in this process on the same batches, and Ray's overhead is
what the Ray run takes beyond (lines / (actors x per-actor rate)). Needs ``[ray]`` for the Ray rows (else they
are left out, and the report says so).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .harness import machine
from .runtime_bench import golden_inputs

SEED = 0


def _s2s(*args) -> list[str]:
    return [sys.executable, "-m", "seq2seq_edge.cli", *map(str, args)]


def _tree_rss_kb(pid: int) -> tuple[int, int]:
    """(RSS of ``pid`` alone, RSS of ``pid`` and all its descendants), in kB, from /proc."""
    def rss(p: int) -> int:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def children(p: int) -> list[int]:
        try:
            out = []
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    out += [int(x) for x in f.read().split()]
            return out
        except OSError:
            return []

    own = rss(pid)
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss(p)
        stack += children(p)
    return own, total


def timed_run(cmd: list[str], *, sample_memory: bool = False) -> dict:
    """Wall seconds of ``cmd``, and with ``sample_memory`` the peak RSS of it and of its process tree (every
    50 ms)."""
    peaks = [0, 0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    done = threading.Event()

    def sample():
        while not done.is_set():
            own, total = _tree_rss_kb(proc.pid)
            peaks[0], peaks[1] = max(peaks[0], own), max(peaks[1], total)
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_memory:
        sampler.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers too: s2s run waits for them
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3)}
    if sample_memory:
        sampler.join()
        out.update(peak_rss_parent_mb=round(peaks[0] / 1024, 1), peak_rss_tree_mb=round(peaks[1] / 1024, 1))
    return out


def write_inputs(path: Path, bundle: str, lines: int) -> None:
    words = golden_inputs(bundle)
    rng = random.Random(SEED)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(lines):
            f.write(rng.choice(words) + "\n")


def file_runs(bundle: str, tmp: Path, lines: int) -> list[dict]:
    src = tmp / "in.txt"
    write_inputs(src, bundle, lines)
    one = tmp / "one.txt"
    one.write_text("1\n")
    rows, reference = [], None
    for workers in (1, 2):
        fixed = timed_run(_s2s("run", bundle, "--input", one, "--output", tmp / "fixed.txt", "--force",
                               "--workers", workers))["seconds"]
        out = tmp / f"w{workers}.txt"
        load = os.getloadavg()[0]
        r = timed_run(_s2s("run", bundle, "--input", src, "--output", out, "--force", "--workers", workers))
        data = out.read_bytes()
        reference = reference or data
        rows.append({"what": f"s2s run --workers {workers}", "lines": lines, "seconds": r["seconds"],
                     "lines_per_s": round(lines / r["seconds"]), "fixed_seconds": fixed,
                     "lines_per_s_after_fixed": round(lines / max(1e-9, r["seconds"] - fixed)),
                     "cpu_seconds": r["cpu_seconds"], "lines_per_cpu_s": round(lines / r["cpu_seconds"]),
                     "same_as_1_worker": data == reference, "load_average_before": round(load, 2)})
    return rows


def ray_runs(bundle: str, tmp: Path, lines: int) -> tuple[list[dict], str | None]:
    try:
        import ray
    except ImportError:
        return [], "ray is not installed (pip install '.[ray]')"
    import numpy as np

    from seq2seq_edge.scale.ray_predictor import BundlePredictor, decode_dataset

    words = golden_inputs(bundle)
    rng = random.Random(SEED)
    inputs = [rng.choice(words) for _ in range(lines)]
    reference = (tmp / "w1.txt").read_text(encoding="utf-8").splitlines()
    rows_per_batch = 1024
    predictor = BundlePredictor(bundle)
    started = time.perf_counter()
    for i in range(0, lines, rows_per_batch):
        predictor({"input": np.array(inputs[i:i + rows_per_batch], dtype=object)})
    per_actor = lines / (time.perf_counter() - started)
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    init_seconds = time.perf_counter() - started
    rows = []
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        for actors, ship in ((2, True), (1, True), (2, False)):
            load = os.getloadavg()[0]
            started = time.perf_counter()
            ds = ray.data.from_items([{"i": i, "input": t} for i, t in enumerate(inputs)])
            got = decode_dataset(ds, bundle, ship=ship, actors=actors, rows_per_batch=rows_per_batch).take_all()
            seconds = time.perf_counter() - started
            got.sort(key=lambda r: r["i"])
            ideal = lines / (actors * per_actor)
            rows.append({"what": f"Ray Data, {actors} actor(s), bundle {'shipped' if ship else 'by path'}",
                         "lines": lines, "seconds": round(seconds, 3), "lines_per_s": round(lines / seconds),
                         "per_actor_lines_per_s": round(per_actor), "ideal_seconds": round(ideal, 3),
                         "overhead_seconds": round(seconds - ideal, 3), "ray_init_seconds": round(init_seconds, 2),
                         "same_as_1_worker": [r["output"] for r in got] == reference,
                         "load_average_before": round(load, 2)})
    finally:
        ray.shutdown()
    return rows, None


def memory_run(bundle: str, tmp: Path, lines: int, workers: int) -> dict:
    src = tmp / "big.txt"
    write_inputs(src, bundle, lines)
    out = tmp / "big.out.txt"
    r = timed_run(_s2s("run", bundle, "--input", src, "--output", out, "--force", "--workers", workers),
                  sample_memory=True)
    with open(out, "rb") as f:
        count = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return {"what": f"s2s run --workers {workers}, {lines:,} lines", "lines": lines, "output_lines": count,
            "input_mb": round(src.stat().st_size / 2**20, 1), "output_mb": round(out.stat().st_size / 2**20, 1),
            **r, "lines_per_s": round(lines / r["seconds"])}


def markdown(result: dict) -> str:
    m = result["machine"]
    out = [f"# At scale: {result['bundle']}", "",
           f"Measured {result['date']} on {m['cpu']} ({m['cores']} cores), {m.get('os', '')}; wall times of whole "
           "commands (start, load, read, decode, write). Written by `benchmarks/scale.py`; do not edit.", "",
           "| run | lines | seconds | lines/s | fixed cost (s) | lines/s after fixed cost | CPU s | lines per CPU s "
           "| same output | load avg |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in result["files"]:
        out.append(f"| {r['what']} | {r['lines']:,} | {r['seconds']:.2f} | {r['lines_per_s']:,} | "
                   f"{r['fixed_seconds']:.2f} | {r['lines_per_s_after_fixed']:,} | {r['cpu_seconds']:.1f} | "
                   f"{r['lines_per_cpu_s']:,} | {r['same_as_1_worker']} | "
                   f"{r['load_average_before']} |")
    out += ["", "load avg: the machine's 1-minute load average before the run (2 cores: above 2, other work shares "
            "them, and lines/s falls with it; lines per CPU second does not).", ""]
    if result["ray"]:
        out += ["| Ray run | lines | seconds | lines/s | per-actor lines/s (in process) | ideal s | Ray overhead s |"
                " same output | load avg |", "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
        for r in result["ray"]:
            out.append(f"| {r['what']} | {r['lines']:,} | {r['seconds']:.2f} | {r['lines_per_s']:,} | "
                       f"{r['per_actor_lines_per_s']:,} | {r['ideal_seconds']:.2f} | {r['overhead_seconds']:.2f} | "
                       f"{r['same_as_1_worker']} | {r['load_average_before']} |")
        out += ["", f"`ray.init(num_cpus=2)`: {result['ray'][0]['ray_init_seconds']} s, not in the times above.", ""]
    else:
        out += [f"Ray: not measured: {result['ray_skipped']}", ""]
    mem = result["memory"]
    out += [f"Memory: {mem['what']} ({mem['input_mb']} MB in, {mem['output_mb']} MB out, {mem['output_lines']:,} "
            f"lines written) in {mem['seconds']:.1f} s: peak RSS {mem['peak_rss_parent_mb']} MB for the parent, "
            f"{mem['peak_rss_tree_mb']} MB for the parent and its workers together (sampled every 50 ms), "
            f"{mem['cpu_seconds']:.0f} CPU s.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle")
    p.add_argument("--lines", type=int, default=200_000, help="lines for the throughput runs")
    p.add_argument("--memory-lines", type=int, default=1_000_000, help="lines for the memory run")
    p.add_argument("--out", default="benchmarks/results", help="folder for scale.json and scale.md")
    p.add_argument("--no-ray", action="store_true", help="leave the Ray rows out")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s2s-scale-") as tmp:
        tmp = Path(tmp)
        files = file_runs(args.bundle, tmp, args.lines)
        ray_rows, skipped = ([], "--no-ray") if args.no_ray else ray_runs(args.bundle, tmp, args.lines)
        memory = memory_run(args.bundle, tmp, args.memory_lines, workers=2)
    result = {"bundle": args.bundle, "date": time.strftime("%Y-%m-%d"), "machine": machine(), "files": files,
              "ray": ray_rows, "ray_skipped": skipped, "memory": memory}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "scale.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
