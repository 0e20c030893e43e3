"""The benchmark harness behind ``s2s bench``: every contender on the same inputs, in one run, on this machine.

Contenders: the seed's way (Keras ``predict`` once per output character), Keras models called directly per
step, and the runtime on tflite-runtime (its own venv), ai-edge-litert and onnxruntime for every variant; plus
each runtime's floor (a trivial model with the step model's inputs and outputs). Figures are medians; the report
gives ratios between contenders measured in this run, with the machine described. Nothing here asserts a time.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from seq2seq_edge import backends
from seq2seq_edge import manifest as mf
from seq2seq_edge import probe, text
from seq2seq_edge.errors import Seq2SeqEdgeError
from seq2seq_edge.versions import package_version

from . import runtime_bench

log = logging.getLogger(__name__)

# Peak memory is the process's VmHWM: ru_maxrss would include what the forked child inherited from this process.
PEAK_RSS_KB = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
COLD_RUNTIME = f"""
import sys
import seq2seq_edge
d = seq2seq_edge.load(sys.argv[1], backend=sys.argv[2])
out = d.decode(sys.argv[3])
print(out); print({PEAK_RSS_KB})
"""
COLD_KERAS = f"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
from seq2seq_edge.train.reference import decode_texts, load_reference
kd, prep = load_reference(sys.argv[1])
print(decode_texts(kd, prep, [sys.argv[2]])[0]); print({PEAK_RSS_KB})
"""
#: Distributions whose versions the results give.
VERSIONS_OF = ("seq2seq-edge", "numpy", "tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert", "onnxruntime")


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cores": os.cpu_count()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        for line in cpuinfo.splitlines():
            if line.startswith("model name") and "cpu" not in info:
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("flags") and "flags" not in info:
                flags = set(line.split(":", 1)[1].split())
                info["flags"] = sorted(flags & {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni",
                                                "avx512_bf16", "amx_tile", "neon", "asimd"})
    except OSError:
        pass
    return info


def _du_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return round(total / 2**20, 1)


# ---- Keras contenders ---------------------------------------------------------------------------------------
def keras_contenders(run_dir: Path, words: list[str], quick: bool) -> dict:
    """The seed's way (Keras ``predict`` once per step, as the tutorial's decode_sequence) and the Keras models
    called directly: per-word latency, and the direct models' encoder and step times."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from seq2seq_edge.train.reference import decode_texts, load_reference

    kd, prep = load_reference(run_dir)
    seed_way = replace(kd, use_predict=True)

    def per_word(decoder, n):
        return runtime_bench.per_call_ms(lambda w: decode_texts(decoder, prep, [w]), runtime_bench.cycle(words, n),
                                         warmup=1)[0]

    ids = mf.pad_batch([prep.encode_input(words[0])], prep.max_input_tokens)
    st = kd.encode(ids)
    step_args = (np.full(1, text.START_ID, np.int32), st[mf.STATE_H], st[mf.STATE_C])
    return {
        "keras_predict_per_char": {"word_latency_ms": per_word(seed_way, 3 if quick else 20)},
        "keras_direct": {
            "word_latency_ms": per_word(kd, 10 if quick else 100),
            "step_us": runtime_bench._median_us(lambda: kd.step_once(*step_args), 20 if quick else 300),
            "encoder_us": runtime_bench._median_us(lambda: kd.encode(ids), 20 if quick else 300),
        },
    }


# ---- floors -------------------------------------------------------------------------------------------------
def write_floor_models(out_dir: Path, latent: int, vocab: int) -> dict:
    """Trivial TFLite and ONNX models with the decoder step's inputs and outputs."""
    import tensorflow as tf

    from seq2seq_edge.export import convert

    class Floor(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name=mf.PREV_TOKEN),
                                      tf.TensorSpec([None, latent], tf.float32, name=mf.STATE_H),
                                      tf.TensorSpec([None, latent], tf.float32, name=mf.STATE_C)])
        def serve(self, prev_token, state_h, state_c):
            probs = tf.broadcast_to(tf.cast(prev_token, tf.float32)[:, None], tf.stack([tf.shape(prev_token)[0], vocab]))
            return {mf.PROBS: probs, mf.NEXT_STATE_H: state_h + 1.0, mf.NEXT_STATE_C: state_c + 1.0}

    module = Floor(name="floor")
    paths = {"tflite": out_dir / "floor.tflite", "onnx": out_dir / "floor.onnx"}
    paths["tflite"].write_bytes(convert.to_tflite(module, "fp32"))
    paths["onnx"].write_bytes(convert.to_onnx(module).SerializeToString())
    return paths


# ---- cold start -----------------------------------------------------------------------------------------------
def cold_starts(bundle: Path, word: str, tflite_python: str | None, repeats: int) -> dict:
    """A fresh process per run for each backend installed here (and tflite-runtime in its own venv): import,
    load ``bundle`` and decode ``word``."""
    out = {}
    pythons = [("litert", sys.executable), ("onnx", sys.executable)]
    if tflite_python:
        pythons.insert(0, ("tflite", tflite_python))
    for backend, python in pythons:
        if python == sys.executable and not backends.is_installed(backend):
            continue
        log.info("cold start %s", backend)
        cmd = [python, "-c", COLD_RUNTIME, str(bundle), backend, word]
        if backend in probe.PROBED_BACKENDS:
            out[f"runtime_{backend}_first_load"] = _cold(cmd, repeats, fresh_cache=True)
        _cold(cmd, 1)  # the files are probed once, then remembered
        out[f"runtime_{backend}"] = _cold(cmd, repeats)
    return out


def _cold(cmd: list[str], repeats: int, fresh_cache: bool = False) -> dict:
    """Median wall time and peak RSS of ``cmd`` in fresh processes. ``fresh_cache``: an empty $XDG_CACHE_HOME
    each time, so tflite-runtime's first-load probe of the model files is included."""
    times, rss = [], []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for _ in range(repeats):
        if fresh_cache:
            env["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="s2s-cold-")
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise Seq2SeqEdgeError(f"cold-start run failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        lines = proc.stdout.strip().splitlines()
        rss.append(int(lines[-1]) / 1024)
    return {"seconds": statistics.median(times), "peak_rss_mb": round(max(rss), 1), "output": lines[-2]}


# ---- the whole benchmark of one bundle --------------------------------------------------------------------
def bench(bundle: str | Path, *, run_dir: str | Path | None = None, quick: bool = False,
          tflite_python: str | None = None, venvs: dict[str, str] | None = None) -> dict:
    """Benchmark one bundle; returns the results dict (see report.write)."""
    bundle = Path(bundle)
    manifest = mf.BundleManifest.load(bundle)
    run_dir = Path(run_dir or manifest.provenance.get("run_dir", ""))
    words = runtime_bench.golden_inputs(bundle)
    word = words[0]
    repeats = 1 if quick else 5
    result = describe(bundle, manifest, quick)
    with tempfile.TemporaryDirectory() as tmp:
        floors = write_floor_models(Path(tmp), manifest.latent_dim, result["target_vocab"])
        measure_here(result, bundle, manifest, floors, quick)
        if tflite_python:
            measure_in_venv(result, bundle, floors["tflite"], tflite_python, quick)
    result["cold_start"] = cold_starts(bundle, word, tflite_python, repeats)
    if run_dir.is_dir():
        log.info("keras contenders")
        result.update(keras_contenders(run_dir, words, quick))
        result["cold_start"]["keras"] = _cold([sys.executable, "-c", COLD_KERAS, str(run_dir), word], repeats)
    result["venv_mb"] = {name: _du_mb(Path(p)) for name, p in (venvs or {}).items() if Path(p).is_dir()}
    result["ratios"] = ratios(result)
    return result


def describe(bundle: Path, manifest: mf.BundleManifest, quick: bool) -> dict:
    """The results' header: the bundle, the machine, the versions, the file sizes; empty measurements."""
    return {"bundle": str(bundle), "name": bundle.name, "latent_dim": manifest.latent_dim,
            "target_vocab": len(manifest.preprocessing.target_vocabulary),
            "mode": "quick" if quick else "full", "machine": machine(),
            "versions": {d: v for d in VERSIONS_OF if (v := package_version(d))},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "sizes_bytes": {m.path: m.size_bytes for m in manifest.models}, "runtime": [], "floors_us": {},
            "cold_start": {}}


def measure_here(result: dict, bundle: Path, manifest: mf.BundleManifest, floors: dict, quick: bool) -> None:
    """Every variant on each backend installed in this process, at 1 thread (fp32 also at all cores), and
    each backend's floor."""
    cores = os.cpu_count() or 1
    feeds = runtime_bench.step_feeds(manifest.latent_dim)
    for backend in ("litert", "onnx"):
        if not backends.is_installed(backend):
            continue
        fmt = backends.BACKENDS[backend].format
        for variant in manifest.variants(fmt):
            log.info("runtime %s %s", backend, variant)
            result["runtime"].append(runtime_bench.measure(bundle, backend, variant, 1, quick))
        if cores > 1:
            result["runtime"].append(runtime_bench.measure(bundle, backend, "fp32", cores, quick))
        result["floors_us"][backend] = runtime_bench.floor_us(floors[fmt], backend, feeds, quick)


def measure_in_venv(result: dict, bundle: Path, floor: Path, tflite_python: str, quick: bool) -> None:
    """tflite-runtime, measured by runtime_bench in its own venv (it needs numpy<2, TensorFlow numpy 2)."""
    log.info("runtime tflite (tflite-runtime, %s)", tflite_python)
    cmd = [tflite_python, "-m", "seq2seq_edge.bench.runtime_bench", str(bundle), "--backend", "tflite",
           "--floor", str(floor)] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise Seq2SeqEdgeError(f"the tflite-runtime measurement in {tflite_python} failed: {last} "
                               "(that venv needs this version of seq2seq-edge[tflite])")
    out = json.loads(proc.stdout)
    result["runtime"] += out["results"]
    result["floors_us"]["tflite"] = out["floor_us"]


def _pick(result: dict, backend: str, variant: str, threads: int = 1) -> dict | None:
    return next((r for r in result["runtime"] if (r["backend"], r["variant"], r["threads"]) ==
                 (backend, variant, threads)), None)


def ratios(result: dict) -> dict:
    """The comparisons the project's targets are stated in, each from this run's own figures.

    Keys end in ``@tflite`` or ``@litert``: each TFLite interpreter measured in the run gets its own ratios.
    """
    out = {}
    seed, direct, cold = result.get("keras_predict_per_char"), result.get("keras_direct"), result["cold_start"]
    sizes = result["sizes_bytes"]
    if "decoder_step.int8.tflite" in sizes and "decoder_step.fp32.tflite" in sizes:
        out["int8_tflite_decoder_size_fraction"] = sizes["decoder_step.int8.tflite"] / sizes["decoder_step.fp32.tflite"]
    for backend in ("tflite", "litert"):
        fp32 = _pick(result, backend, "fp32")
        if fp32 is None:
            continue
        at = f"@{backend}"
        if seed:
            out["word_speedup_vs_seed_predict" + at] = seed["word_latency_ms"]["p50"] / fp32["word_latency_ms"]["p50"]
        if direct:
            out["word_speedup_vs_keras_direct" + at] = direct["word_latency_ms"]["p50"] / fp32["word_latency_ms"]["p50"]
        out["loop_step_over_raw_step" + at] = fp32["loop_overhead_ratio"]
        out["fp32_step_us" + at] = fp32["step_us"]
        int8 = _pick(result, backend, "int8")
        if int8:
            out["int8_over_fp32_step" + at] = int8["step_us"] / fp32["step_us"]
        tp = fp32["throughput_seq_per_s"]
        out["throughput_batch64_over_batch1" + at] = tp["64"] / tp["1"]
        if f"runtime_{backend}" in cold and "keras" in cold:
            out["cold_start_speedup" + at] = cold["keras"]["seconds"] / cold[f"runtime_{backend}"]["seconds"]
        floor = result["floors_us"].get(backend)
        if floor:
            out["step_floor_fraction" + at] = floor / fp32["step_us"]
    return out
