"""The Python runtime timed with the JavaScript benchmark's protocol (js/bench/protocol.js), in the same run.

python js/bench/python_latency.py FIXTURES BUNDLES ROUNDS  ->  a JSON list of rows, one per bundle/backend/variant.
Each golden input decoded alone, one warm-up round, then ROUNDS timed rounds; cold start: a fresh interpreter to
the first decoded word (import, load with every check, one decode), median of 3.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import seq2seq_edge

COLD = ("import time, sys; t0 = time.perf_counter(); import seq2seq_edge; "
        "d = seq2seq_edge.load(sys.argv[1], backend=sys.argv[2], variant=sys.argv[3]); d.decode(sys.argv[4]); "
        "print((time.perf_counter() - t0) * 1000)")


def summarize(times):
    s = sorted(times)
    q = lambda p: s[min(len(s) - 1, int(p * len(s)))]  # noqa: E731 - the same quantile as protocol.js
    return {"per_word_ms_p50": round(q(0.5), 3), "per_word_ms_p90": round(q(0.9), 3),
            "per_word_ms_mean": round(sum(s) / len(s), 3), "calls": len(s)}


def main(fixtures: str, bundles: str, rounds: int) -> list:
    rows = []
    for name in bundles.split(","):
        bundle = Path(fixtures) / "bundles" / name
        inputs = [item["input"] for item in json.loads((bundle / "golden.json").read_text())["items"]]
        for backend, fmt, variants in (("onnx", "onnx", ("fp32", "int8")), ("litert", "tflite", ("fp32", "fp16", "int8"))):
            for variant in variants:
                decoder = seq2seq_edge.load(bundle, backend=backend, variant=variant, threads=1)
                for x in inputs:
                    decoder.decode(x)
                times = []
                for _ in range(rounds):
                    for x in inputs:
                        t0 = time.perf_counter()
                        decoder.decode(x)
                        times.append((time.perf_counter() - t0) * 1000)
                colds = sorted(float(subprocess.run([sys.executable, "-c", COLD, str(bundle), backend, variant, inputs[0]],
                                                    capture_output=True, text=True, check=True, env=os.environ).stdout)
                               for _ in range(3))
                rows.append({"runtime": "python", "engine": backend, "format": fmt, "bundle": name, "variant": variant,
                             "path": getattr(decoder, "decode_path", "step-loop"), "threads": 1, "words": len(inputs), **summarize(times),
                             "cold_start_ms": round(colds[1], 1)})
    return rows


if __name__ == "__main__":
    json.dump(main(sys.argv[1], sys.argv[2], int(sys.argv[3])), sys.stdout)
