"""Runtime-side measurements of one bundle on one backend; needs only numpy and the backend.

The harness runs it as a child process per backend, with this environment's python or another venv's
(tflite-runtime 2.14 needs numpy<2, so it never shares a process with TensorFlow):

    python -m seq2seq_edge.bench.runtime_bench BUNDLE --backend tflite [--settings JSON] [--items JSON]

It prints one JSON line per figure as it goes (see ``main``), so an interpreter that crashes on one variant costs
that variant only, and no backend's threads or allocations share a process with another's.

Every count that shapes a figure (repetitions, warm-up calls, inputs per batch size, thread counts) is in the
run's ``settings`` (see ``settings``), which the results record: runs with equal settings on the same bundle
compare by construction, whatever machine made them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import seq2seq_edge
from seq2seq_edge import backends
from seq2seq_edge import manifest as mf
from seq2seq_edge import preprocessing as pp
from seq2seq_edge import text
from seq2seq_edge.decoder import Seq2SeqDecoder
from seq2seq_edge.errors import Seq2SeqEdgeError

from . import floor

#: The results' format; a reader refuses another version (bump it when a field changes meaning or goes away).
SCHEMA = "seq2seq-edge-bench"
SCHEMA_VERSION = 1
BATCH_SIZES = (1, 8, 64, 256)
#: Thread settings: "1" is measured for every variant; any other (a number, or "max": all cores) for fp32 only.
DEFAULT_THREADS = ("1", "max")


def settings(quick: bool = False, threads=DEFAULT_THREADS, **overrides) -> dict:
    """The counts behind every figure; ``quick`` (a check of the harness, rough figures) or full."""
    threads = [str(t).strip() for t in threads]
    for t in threads:
        if t != "max" and not (t.isdigit() and int(t) >= 1):
            raise Seq2SeqEdgeError(f"--threads takes positive numbers or 'max', got {t!r}")
    if "1" not in threads:
        threads.insert(0, "1")
    out = {
        "mode": "quick" if quick else "full",
        # "1" for every variant; the others for fp32 only. "max" is os.cpu_count() of the machine measured.
        "threads": list(dict.fromkeys(threads)),
        # encoder, decoder step and floor: untimed calls, then timed calls (their median is the figure)
        "model_call_warmup": 1,
        "model_call_repeats": 200 if quick else 2000,
        # whole decodes at batch 1: untimed inputs, then timed inputs (the bundle's golden inputs, round robin)
        "word_warmup": 5,
        "word_sample": 50 if quick else 500,
        # decode_batch at each size: one untimed batch, then max(size * batches, min_inputs) inputs, timed
        "batch_sizes": list(BATCH_SIZES),
        "throughput_batches": 2 if quick else 8,
        "throughput_min_inputs": 64 if quick else 256,
        # fresh processes per backend (median), after one untimed one
        "cold_start_repeats": 1 if quick else 5,
        # Keras contenders (with TensorFlow only): words decoded the seed's way and with direct calls
        "keras_predict_words": 3 if quick else 20,
        "keras_direct_words": 10 if quick else 100,
    }
    unknown = set(overrides) - set(out)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    out.update(overrides)
    return out


def resolve_threads(setting: str) -> int:
    """A thread setting as a number for this machine; a number above its cores is an error."""
    cores = os.cpu_count() or 1
    n = cores if setting == "max" else int(setting)
    if n > cores:
        raise Seq2SeqEdgeError(f"--threads {setting}: this machine has {cores} cores")
    return n


def golden_inputs(bundle: Path) -> list[str]:
    items = json.loads((Path(bundle) / mf.GOLDEN_FILE).read_text(encoding="utf-8"))["items"]
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


def _median_us(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):  # allocations, first-call paths
        fn()
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


def interpreter(backend: str) -> str:
    """The interpreter package and version (and numpy's), as measured."""
    dist, installed = backends.BACKENDS[backend].dist, backends.interpreter_version(backend)
    return f"{dist} {installed}, numpy {np.__version__}" if installed else dist


def measure(bundle: str | Path, backend: str, variant: str, threads: str, s: dict) -> dict:
    """Encoder and step invoke times, loop overhead, per-word percentiles and batch throughput of one variant at
    one thread setting."""
    n_threads = resolve_threads(threads)
    # The headline figures decode as `s2s run` does (load()'s default path: the one-call model on TFLite when the
    # bundle has one, the step loop on ONNX); with a one-call model, the other path is timed beside it.
    fmt = backends.BACKENDS[backend].format
    has_greedy = mf.BundleManifest.load(bundle).find(mf.GREEDY, fmt, variant) is not None
    decoder = seq2seq_edge.load(bundle, backend=backend, variant=variant, threads=n_threads)
    one_call = None
    if has_greedy:
        one_call = decoder if decoder.internals.greedy_model is not None else seq2seq_edge.load(
            bundle, backend=backend, variant=variant, threads=n_threads, one_call=True)
    words = golden_inputs(bundle)
    sample = cycle(words, s["word_sample"])
    times = model_times(decoder, words[0], s)
    latency, steps_per_word = word_latency(decoder, sample, s["word_warmup"])
    loop = loop_per_step(decoder, sample)
    row = {
        "backend": backend, "variant": variant, "threads": n_threads, "threads_setting": threads,
        "interpreter": interpreter(backend), "decode_path": decoder.decode_path, **times, **loop,
        "loop_overhead_ratio": loop["loop_step_us"] / loop["step_in_loop_us"],
        "steps_per_word": steps_per_word,
        "word_latency_ms": latency,
        "throughput_seq_per_s": throughput(decoder, words, s),
        "encoder_us_by_length": encoder_by_length(decoder, s),
        **invoke_floor(one_call or decoder, sample, s["word_warmup"]),
    }
    if one_call is not None:  # the same models, greedy decodes by the other path, for the ratios
        other, key = ((one_call.internals.with_step_loop(), "step_loop") if decoder is one_call
                      else (one_call, "one_call"))
        row[f"{key}_word_latency_ms"] = word_latency(other, sample, s["word_warmup"])[0]
        row[f"{key}_throughput_seq_per_s"] = throughput(other, words, s)
    return row


def first_step_feeds(decoder: Seq2SeqDecoder, input_ids: np.ndarray) -> dict:
    """The encoder's outputs that the step takes (its state; an attention step's encoder outputs and mask), and
    the start token: the first step's inputs."""
    encoded = decoder.internals.encoder.run({mf.INPUT_IDS: input_ids})
    feeds = {t.name: encoded[t.name] for t in decoder.internals.decoder_step.inputs if t.name in encoded}
    feeds[mf.PREV_TOKEN] = np.full(input_ids.shape[0], text.START_ID, np.int32)
    return feeds


def model_times(decoder: Seq2SeqDecoder, word: str, s: dict) -> dict:
    """Median run() time of the encoder on ``word`` and of one decoder step after it, alone, at batch 1."""
    input_ids = pp.pad_batch([decoder.preprocessing.encode_input(word)], decoder.manifest.encoder_time_steps)
    feeds = first_step_feeds(decoder, input_ids)
    n, warm = s["model_call_repeats"], s["model_call_warmup"]
    return {"encoder_us": _median_us(lambda: decoder.internals.encoder.run({mf.INPUT_IDS: input_ids}), n, warm),
            "step_us": _median_us(lambda: decoder.internals.decoder_step.run(feeds), n, warm)}


#: Input lengths (tokens) at which the encoder is timed, up to the bundle's maximum (always included).
ENCODER_LENGTHS = (1, 4, 8, 16, 32, 64)


def encoder_by_length(decoder: Seq2SeqDecoder, s: dict) -> dict:
    """Median encoder run() time (µs) at batch 1 for inputs of each length in ENCODER_LENGTHS up to the maximum
    (and at the maximum): the first real input symbol, repeated."""
    t_max = decoder.manifest.encoder_time_steps
    symbol = len(decoder.preprocessing.special_tokens)  # the first id after pad, start and end
    out = {}
    for n in sorted({n for n in ENCODER_LENGTHS if n < t_max} | {t_max}):
        ids = pp.pad_batch([[symbol] * n], t_max)
        out[str(n)] = _median_us(lambda: decoder.internals.encoder.run({mf.INPUT_IDS: ids}), s["model_call_repeats"],
                                 s["model_call_warmup"])
    return out


def invoke_floor(decoder: Seq2SeqDecoder, sample: list[str], warmup: int) -> dict:
    """Per word, median ms of model calls alone, with ready-made inputs (no text processing, no loop logic):
    ``raw_invoke_ms``, the encoder and as many decoder steps as the word's greedy decode takes, invoked back to
    back (the floor of any step loop); with a one-call greedy model, ``one_call_invoke_ms``, its one call on the
    same word. The two are timed word by word in turn, so they see the same machine."""
    prep, t_max = decoder.preprocessing, decoder.manifest.encoder_time_steps
    step_loop = decoder.internals.with_step_loop()
    plans = []
    for word in sample:
        ids = pp.pad_batch([prep.encode_input(word)], t_max)
        steps = len(step_loop.decode_ids([prep.encode_input(word)])[0].token_probs)
        plans.append((ids, first_step_feeds(decoder, ids), steps))
    encoder, step = decoder.internals.encoder.run, decoder.internals.decoder_step.run
    greedy = decoder.internals.greedy_model.run if decoder.internals.greedy_model is not None else None
    warm = cycle(plans, warmup)
    raw, one_call = [], []
    for i, (ids, feeds, steps) in enumerate(warm + plans):
        t = time.perf_counter_ns()
        encoder({mf.INPUT_IDS: ids})
        for _ in range(steps):
            step(feeds)
        t2 = time.perf_counter_ns()
        if greedy is not None:
            greedy({mf.INPUT_IDS: ids})
        t3 = time.perf_counter_ns()
        if i >= len(warm):
            raw.append((t2 - t) / 1e6)
            one_call.append((t3 - t2) / 1e6)
    out = {"raw_invoke_ms": float(np.median(raw))}
    if greedy is not None:
        out["one_call_invoke_ms"] = float(np.median(one_call))
    return out


def word_latency(decoder: Seq2SeqDecoder, sample: list[str], warmup: int) -> tuple[dict, float]:
    """Per-word latency percentiles (ms) of whole decodes at batch 1, and the decoder steps per word."""
    latency, results = per_call_ms(decoder.decode_result, sample, warmup=warmup)
    return latency, sum(len(r.token_probs) for r in results) / len(sample)


def loop_per_step(decoder: Seq2SeqDecoder, sample: list[str]) -> dict:
    """The decode loop's time per step beside the step model's own run() time in that loop (µs).

    The loop is ``decode_ids`` on already-tokenized inputs, one at a time (what remains of decode() once the
    text is turned into ids), in a decoder built around the same models with their run() timed.
    """
    encoder, step = _Timed(decoder.internals.encoder), _Timed(decoder.internals.decoder_step)
    timed = Seq2SeqDecoder(decoder.manifest, encoder, step, backend=decoder.backend, variant=decoder.variant)
    encoded = [[decoder.preprocessing.encode_input(w)] for w in sample]
    t = time.perf_counter_ns()
    for ids in encoded:
        timed.decode_ids(ids)
    total_ns = time.perf_counter_ns() - t
    return {"loop_step_us": (total_ns - encoder.ns) / step.calls / 1000,
            "step_in_loop_us": step.ns / step.calls / 1000}


def throughput(decoder: Seq2SeqDecoder, words: list[str], s: dict) -> dict:
    """Sequences per second through ``decode_batch`` at each batch size."""
    out = {}
    for bs in s["batch_sizes"]:
        inputs = cycle(words, max(bs * s["throughput_batches"], s["throughput_min_inputs"]))
        decoder.decode_batch(cycle(words, bs), batch_size=bs)
        t = time.perf_counter()
        decoder.decode_batch(inputs, batch_size=bs)
        out[str(bs)] = len(inputs) / (time.perf_counter() - t)
    return out


def floor_us(manifest: mf.BundleManifest, backend: str, s: dict) -> float:
    """Median run() time of the floor model (``floor.py``: the step's inputs and outputs, almost no work) on
    ``backend`` at batch 1, fed what the step is fed: the interpreter's own cost per call."""
    content = floor.floor_models(manifest)[backends.BACKENDS[backend].format]
    model = backends.open_model(backend, content, 1)  # the same structural checks as any model file
    feeds = backends.zero_feeds(model)
    return _median_us(lambda: model.run(feeds), s["model_call_repeats"], s["model_call_warmup"])


def plan(manifest: mf.BundleManifest, backend: str, s: dict, variants=None) -> list[tuple[str, str]]:
    """(variant, thread setting) pairs measured on ``backend``: every variant at 1 thread, fp32 at the others
    (a setting that comes to 1 thread on this machine is not measured twice)."""
    held = manifest.variants(backends.BACKENDS[backend].format)
    chosen = [v for v in held if variants is None or v in variants]
    out = [(v, "1") for v in chosen]
    seen = {1}
    for t in s["threads"]:
        n = resolve_threads(t)
        if n not in seen and "fp32" in chosen:
            seen.add(n)
            out.append(("fp32", t))
    return out


def items(manifest: mf.BundleManifest, backend: str, s: dict, variants=None) -> list[list]:
    """What a backend's measurement does, in order: [variant, thread setting] pairs (``plan``), then
    ["floor", None]."""
    return [[v, t] for v, t in plan(manifest, backend, s, variants)] + [[FLOOR, None]]


FLOOR = "floor"
#: main's exit status when the backend does not import (the harness then leaves it out, saying why).
EXIT_UNAVAILABLE = 3


def _emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv=None) -> int:
    """Measure ``--items`` on one backend and report on stdout, one JSON object per line, as it goes:
    {"hello": schema version, ...}, then per item {"start": item} and {"row": ...}, {"floor_us": ...} or
    {"error": ...}, then {"done": true}. A crash of the interpreter leaves the lines before it: the harness keeps
    those figures, records the crash against the item that started last, and starts a new process for the rest."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("--backend", required=True, choices=sorted(backends.BACKENDS))
    p.add_argument("--settings", help="the run's settings as JSON (default: full, or --quick)")
    p.add_argument("--quick", action="store_true", help="quick settings (ignored with --settings)")
    p.add_argument("--items", help='JSON list of [variant, threads] and ["floor", null] (default: every variant, '
                                   "the thread settings, the floor)")
    args = p.parse_args(argv)
    s = json.loads(args.settings) if args.settings else settings(args.quick)
    try:
        backends.import_interpreter_module(args.backend)
    except Seq2SeqEdgeError as e:
        print(f"runtime_bench: error: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        manifest = mf.BundleManifest.load(args.bundle)
        todo = json.loads(args.items) if args.items else items(manifest, args.backend, s)
    except Seq2SeqEdgeError as e:
        print(f"runtime_bench: error: {e}", file=sys.stderr)
        return 2
    _emit({"hello": SCHEMA_VERSION, "interpreter": interpreter(args.backend),
           "interpreter_version": backends.interpreter_version(args.backend)})
    for item in todo:
        _emit({"start": item})
        try:
            if item[0] == FLOOR:
                _emit({"floor_us": floor_us(manifest, args.backend, s)})
            else:
                _emit({"row": measure(args.bundle, args.backend, item[0], item[1], s)})
        except Seq2SeqEdgeError as e:
            _emit({"error": str(e)})
    _emit({"done": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
