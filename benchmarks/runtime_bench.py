"""Runtime-side measurements of one bundle on one backend; needs only numpy and the backend.

Run in-process by the harness for the backends of the current environment, and as

    python -m seq2seq_edge.bench.runtime_bench BUNDLE --backend tflite [--variants fp32,int8] [--floor MODEL]

(which prints its figures as JSON) inside a runtime-only venv: tflite-runtime 2.14 needs numpy<2, so it never
shares a process with TensorFlow.
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
from seq2seq_edge.decoder import Seq2SeqDecoder

BATCH_SIZES = (1, 8, 64, 256)


def golden_inputs(bundle: Path) -> list[str]:
    items = json.loads((Path(bundle) / "golden.json").read_text(encoding="utf-8"))["items"]
    return [i["input"] for i in items if i["input"]]


class _Timed:
    """A model whose run() time is added up: the step's own cost inside a real decode loop."""

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


def cycle(words: list[str], n: int) -> list[str]:
    """``n`` inputs, going round ``words`` as often as needed."""
    return (words * (1 + n // len(words)))[:n]


def per_call_ms(fn, inputs: list, warmup: int) -> tuple[dict, list]:
    """Latency percentiles (ms) of ``fn`` called on each of ``inputs`` after ``warmup`` untimed calls, and the
    results."""
    for x in inputs[:warmup]:
        fn(x)
    times, results = [], []
    for x in inputs:
        t = time.perf_counter_ns()
        r = fn(x)
        times.append((time.perf_counter_ns() - t) / 1e6)
        results.append(r)
    return _percentiles(times), results


def measure(bundle: str | Path, backend: str, variant: str, threads: int = 1, quick: bool = False) -> dict:
    """Encoder and step invoke times, loop overhead, per-sequence percentiles and batch throughput."""
    decoder = seq2seq_edge.load(bundle, backend=backend, variant=variant, threads=threads)
    words = golden_inputs(bundle)
    sample = cycle(words, 50 if quick else 500)
    times = model_times(decoder, words[0], 200 if quick else 2000)
    latency, steps_per_word = word_latency(decoder, sample)
    loop = loop_per_step(decoder, sample)
    return {
        "backend": backend, "variant": variant, "threads": threads, **times, **loop,
        "loop_overhead_ratio": loop["loop_step_us"] / loop["step_in_loop_us"],
        "steps_per_word": steps_per_word,
        "word_latency_ms": latency,
        "throughput_seq_per_s": throughput(decoder, words, quick),
        "interpreter": _interpreter_version(backend),
    }


def model_times(decoder: Seq2SeqDecoder, word: str, repeats: int) -> dict:
    """Median run() time of the encoder on ``word`` and of one decoder step after it, alone, at batch 1."""
    input_ids = mf.pad_batch([decoder.preprocessing.encode_input(word)], decoder.manifest.encoder_time_steps)
    state = decoder.encoder.run({mf.INPUT_IDS: input_ids})
    feeds = {mf.PREV_TOKEN: np.full(1, text.START_ID, np.int32), mf.STATE_H: state[mf.STATE_H],
             mf.STATE_C: state[mf.STATE_C]}
    return {"encoder_us": _median_us(lambda: decoder.encoder.run({mf.INPUT_IDS: input_ids}), repeats),
            "step_us": _median_us(lambda: decoder.decoder_step.run(feeds), repeats)}


def word_latency(decoder: Seq2SeqDecoder, sample: list[str]) -> tuple[dict, float]:
    """Per-word latency percentiles (ms) of whole decodes at batch 1, and the decoder steps per word."""
    latency, results = per_call_ms(decoder.decode_result, sample, warmup=5)
    return latency, sum(len(r.token_probs) for r in results) / len(sample)


def loop_per_step(decoder: Seq2SeqDecoder, sample: list[str]) -> dict:
    """The decode loop's time per step beside the step model's own run() time in that loop (µs).

    The loop is ``decode_ids`` on already-tokenized inputs, one at a time (what remains of decode() once the
    text is turned into ids), in a decoder built around the same models with their run() timed.
    """
    encoder, step = _Timed(decoder.encoder), _Timed(decoder.decoder_step)
    timed = Seq2SeqDecoder(decoder.manifest, encoder, step, backend=decoder.backend, variant=decoder.variant)
    encoded = [[decoder.preprocessing.encode_input(w)] for w in sample]
    t = time.perf_counter_ns()
    for ids in encoded:
        timed.decode_ids(ids)
    total_ns = time.perf_counter_ns() - t
    return {"loop_step_us": (total_ns - encoder.ns) / step.calls / 1000,
            "step_in_loop_us": step.ns / step.calls / 1000}


def throughput(decoder: Seq2SeqDecoder, words: list[str], quick: bool) -> dict:
    """Sequences per second through ``decode_batch`` at each of BATCH_SIZES."""
    out = {}
    for bs in BATCH_SIZES:
        inputs = cycle(words, max(bs * (2 if quick else 8), 64 if quick else 256))
        decoder.decode_batch(inputs[:bs], batch_size=bs)
        t = time.perf_counter()
        decoder.decode_batch(inputs, batch_size=bs)
        out[str(bs)] = len(inputs) / (time.perf_counter() - t)
    return out


def _interpreter_version(backend: str) -> str:
    from seq2seq_edge import backends

    dist, installed = backends.BACKENDS[backend].dist, backends.interpreter_version(backend)
    return f"{dist} {installed}, numpy {np.__version__}" if installed else dist


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
