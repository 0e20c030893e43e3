"""Runtime-side measurements of one bundle on one backend; needs only numpy and the backend.

Run in-process by the harness for the backends of the current environment, and as

    python -m seq2seq_edge.bench.runtime_bench BUNDLE --backend tflite --variant fp32 --json

inside a runtime-only venv (tflite-runtime 2.14 needs numpy<2, so it never shares a process with TensorFlow).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import seq2seq_edge
from seq2seq_edge import manifest as mf
from seq2seq_edge import text

BATCH_SIZES = (1, 8, 64, 256)


def golden_inputs(bundle: Path) -> list[str]:
    items = json.loads((Path(bundle) / "golden.json").read_text(encoding="utf-8"))["items"]
    return [i["input"] for i in items if i["input"]]


class _Timed:
    """A model adapter whose run() time is added up (the step's own cost inside a real decode loop)."""

    def __init__(self, model):
        self.model, self.ns, self.calls = model, 0, 0

    def run(self, feeds):
        t = time.perf_counter_ns()
        out = self.model.run(feeds)
        self.ns += time.perf_counter_ns() - t
        self.calls += 1
        return out


def _median_us(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, first-call paths)
    samples = []
    for _ in range(repeats):
        t = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1000


def _percentiles(values_ms: list[float]) -> dict:
    a = np.asarray(values_ms)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


def measure(bundle: str | Path, backend: str, variant: str, threads: int = 1, quick: bool = False) -> dict:
    """Encoder and step invoke times, loop overhead, per-sequence percentiles and batch throughput."""
    decoder = seq2seq_edge.load(bundle, backend=backend, variant=variant, threads=threads)
    words = golden_inputs(bundle)
    repeats = 200 if quick else 2000
    m = decoder.manifest
    prep = decoder.preprocessing
    ids1 = mf.pad_batch([prep.encode_input(words[0])], m.encoder_time_steps)
    state = decoder._encoder.run({mf.INPUT_IDS: ids1})
    feeds = {mf.PREV_TOKEN: np.full(1, text.START_ID, np.int32), mf.STATE_H: state[mf.STATE_H],
             mf.STATE_C: state[mf.STATE_C]}
    encoder_us = _median_us(lambda: decoder._encoder.run({mf.INPUT_IDS: ids1}), repeats)
    step_us = _median_us(lambda: decoder._step.run(feeds), repeats)

    # Whole words at batch 1: per-sequence latency; and, with the models' run() timed inside the same decodes,
    # the loop's time per step beside the step model's own time in that loop.
    sample = (words * (1 + (50 if quick else 500) // len(words)))[: 50 if quick else 500]
    for w in sample[:5]:
        decoder.decode_result(w)
    latencies, steps = [], 0
    for w in sample:
        t = time.perf_counter_ns()
        r = decoder.decode_result(w)
        latencies.append((time.perf_counter_ns() - t) / 1e6)
        steps += len(r.token_probs)
    # The loop itself: decoder._decode_ids on already-tokenized inputs (what remains of decode() once the text
    # is turned into ids), with the encoder's and the step's run() timed inside it.
    encoded = [[prep.encode_input(w)] for w in sample]
    limit = decoder.max_output_len
    encoder, step = _Timed(decoder._encoder), _Timed(decoder._step)
    decoder._encoder, decoder._step = encoder, step
    try:
        t = time.perf_counter_ns()
        for ids in encoded:
            decoder._decode_ids(ids, limit)
        total_ns = time.perf_counter_ns() - t
    finally:
        decoder._encoder, decoder._step = encoder.model, step.model
    loop_step_us = (total_ns - encoder.ns) / step.calls / 1000
    step_in_loop_us = step.ns / step.calls / 1000

    throughput = {}
    pool = words * (1 + 1024 // len(words))
    for bs in BATCH_SIZES:
        n = max(bs * (2 if quick else 8), 64 if quick else 256)
        batch_inputs = pool[:n] if n <= len(pool) else (pool * (1 + n // len(pool)))[:n]
        decoder.decode_batch(batch_inputs[:bs], batch_size=bs)
        t = time.perf_counter()
        decoder.decode_batch(batch_inputs, batch_size=bs)
        throughput[str(bs)] = n / (time.perf_counter() - t)
    return {
        "backend": backend, "variant": variant, "threads": threads,
        "encoder_us": encoder_us, "step_us": step_us, "loop_step_us": loop_step_us,
        "step_in_loop_us": step_in_loop_us, "loop_overhead_ratio": loop_step_us / step_in_loop_us,
        "steps_per_word": steps / len(sample),
        "word_latency_ms": _percentiles(latencies),
        "throughput_seq_per_s": throughput,
        "interpreter": _interpreter_version(backend),
    }


def _interpreter_version(backend: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"tflite": "tflite-runtime", "litert": "ai-edge-litert", "onnx": "onnxruntime"}[backend]
    try:
        return f"{dist} {version(dist)}, numpy {np.__version__}"
    except PackageNotFoundError:
        return dist


def floor_us(model_path: str | Path, backend: str, feeds: dict, quick: bool = False) -> float:
    """Median invoke time of a trivial model with the step model's inputs and outputs (framework overhead)."""
    from seq2seq_edge import backends

    model = backends.open_model(backend, Path(model_path).read_bytes(), 1)
    return _median_us(lambda: model.run(feeds), 200 if quick else 2000)


def step_feeds(latent: int, batch: int = 1) -> dict:
    return {mf.PREV_TOKEN: np.full(batch, text.START_ID, np.int32),
            mf.STATE_H: np.zeros((batch, latent), np.float32), mf.STATE_C: np.zeros((batch, latent), np.float32)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("--backend", required=True)
    p.add_argument("--variants", default="fp32,fp16,int8")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--floor", metavar="MODEL", help="also time this trivial model on the backend")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    manifest = mf.BundleManifest.load(args.bundle)
    fmt = seq2seq_edge.backends.BACKENDS[args.backend].format
    out = {"results": [measure(args.bundle, args.backend, v, args.threads, args.quick)
                       for v in args.variants.split(",") if v in manifest.variants(fmt)]}
    if args.floor:
        out["floor_us"] = floor_us(args.floor, args.backend, step_feeds(manifest.latent_dim), args.quick)
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
