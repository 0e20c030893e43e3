"""Soak test: many decodes in one process; resident memory must stay flat after warm-up.

    python -m seq2seq_edge.bench.soak BUNDLE [--decodes 1000000] [--backend auto]

Prints one JSON line: decodes, seconds, RSS after warm-up and at the end (from /proc/self/status), the growth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import seq2seq_edge

from .runtime_bench import golden_inputs


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def soak(bundle, decodes: int = 1_000_000, warmup: int = 10_000, backend: str = "auto", batch: int = 1) -> dict:
    decoder = seq2seq_edge.load(bundle, backend=backend)
    words = golden_inputs(bundle)
    n = len(words)
    for i in range(warmup):
        decoder.decode(words[i % n])
    start_rss, samples = rss_mb(), []
    t = time.perf_counter()
    for i in range(decodes):
        decoder.decode(words[i % n])
        if i % max(1, decodes // 20) == 0:
            samples.append(round(rss_mb(), 2))
    seconds = time.perf_counter() - t
    end_rss = rss_mb()
    return {"bundle": str(bundle), "backend": decoder.backend, "decodes": decodes, "seconds": round(seconds, 1),
            "rss_after_warmup_mb": round(start_rss, 2), "rss_end_mb": round(end_rss, 2),
            "rss_growth_mb": round(end_rss - start_rss, 3), "rss_samples_mb": samples}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("--decodes", type=int, default=1_000_000)
    p.add_argument("--warmup", type=int, default=10_000)
    p.add_argument("--backend", default="auto")
    args = p.parse_args(argv)
    print(json.dumps(soak(args.bundle, args.decodes, args.warmup, args.backend)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
