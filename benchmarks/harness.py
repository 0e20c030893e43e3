"""The benchmark harness behind ``s2s bench``: every contender on the same inputs, in one run, on this machine.

Contenders: the runtime on every backend installed here (tflite-runtime, ai-edge-litert, onnxruntime) for every
variant the bundle holds, tflite-runtime in another venv when asked (``tflite_python``), each backend's floor
(``floor.py``); and, when TensorFlow is installed and the run folder is at hand, the seed's way (Keras ``predict``
once per output character) and Keras models called directly. Figures are medians or percentiles; the report gives
ratios between contenders measured in this run, with the machine described. Nothing here asserts a time.

Needs only numpy and one backend: it runs in a runtime-only install, on the device.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import platform
import re
import shutil
import signal
import statistics
import struct
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
from seq2seq_edge import preprocessing as pp
from seq2seq_edge import probe, text
from seq2seq_edge.errors import BackendUnavailableError, Seq2SeqEdgeError
from seq2seq_edge.versions import package_version

from . import peers as peer_mod
from . import report
from . import runtime_bench
from .runtime_bench import SCHEMA, SCHEMA_VERSION

log = logging.getLogger("seq2seq_edge.bench")

# Peak memory is the process's VmHWM: ru_maxrss would include what the forked child inherited from this process.
PEAK_RSS_KB = ("int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) "
               "if sys.platform.startswith('linux') else "
               "__import__('resource').getrusage(0).ru_maxrss // (1024 if sys.platform == 'darwin' else 1)")
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
VERSIONS_OF = ("seq2seq-edge", "numpy", "tflite-runtime", "ai-edge-litert", "onnxruntime", "tensorflow-cpu",
               "tensorflow", "keras")
#: The order backends are measured in.
BACKEND_ORDER = ("tflite", "litert", "onnx")
#: Set to describe the emulation when this process runs under an emulator (the Pi stand-in sets it).
EMULATED_ENV = "S2S_BENCH_EMULATED"

# ---- the machine ----------------------------------------------------------------------------------------------
_X86_FLAGS = {"sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16",
              "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16"}
_ARM_FLAGS = {"fp", "asimd", "fphp", "asimdhp", "asimddp", "asimdfhm", "sve", "sve2", "i8mm", "bf16", "sme"}
#: arm64 AT_HWCAP and AT_HWCAP2 bits (linux/arch/arm64/include/uapi/asm/hwcap.h) of the flags above.
_ARM_HWCAP = {0: "fp", 1: "asimd", 9: "fphp", 10: "asimdhp", 20: "asimddp", 22: "sve", 23: "asimdfhm"}
_ARM_HWCAP2 = {1: "sve2", 13: "i8mm", 14: "bf16", 23: "sme"}
#: CPU part numbers of ARM Ltd. cores (implementer 0x41), as /proc/cpuinfo gives them.
_ARM_PARTS = {0xd03: "Cortex-A53", 0xd04: "Cortex-A35", 0xd05: "Cortex-A55", 0xd07: "Cortex-A57",
              0xd08: "Cortex-A72", 0xd09: "Cortex-A73", 0xd0a: "Cortex-A75", 0xd0b: "Cortex-A76",
              0xd0c: "Neoverse-N1", 0xd0d: "Cortex-A77", 0xd40: "Neoverse-V1", 0xd41: "Cortex-A78",
              0xd44: "Cortex-X1", 0xd46: "Cortex-A510", 0xd47: "Cortex-A710", 0xd48: "Cortex-X2",
              0xd49: "Neoverse-N2", 0xd4f: "Neoverse-V2", 0xd80: "Cortex-A520", 0xd81: "Cortex-A720"}


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpuinfo() -> dict[str, str]:
    """The first value of each key of /proc/cpuinfo (Linux), lower-case keys."""
    out: dict[str, str] = {}
    for line in _read("/proc/cpuinfo").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip().lower(), value.strip())
    return out


def _hwcaps() -> tuple[int, int] | None:
    """AT_HWCAP and AT_HWCAP2 of this process (what the CPU, or an emulator, offers it), from /proc/self/auxv."""
    try:
        raw = Path("/proc/self/auxv").read_bytes()
    except OSError:
        return None
    size = struct.calcsize("P")
    pairs = dict(struct.iter_unpack(f"<{'Q' if size == 8 else 'I'}{'Q' if size == 8 else 'I'}",
                                    raw[:len(raw) // (2 * size) * 2 * size]))
    return pairs.get(16, 0), pairs.get(26, 0)


def _os_name() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return f"{platform.system()} {platform.release()}".strip()


def _slug(text_: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text_.lower()).strip("-.")[:80] or "machine"


def machine(label: str | None = None) -> dict:
    """What the figures were measured on: CPU, cores, ISA flags, OS, Python, and whether it was emulated."""
    arch = platform.machine().lower()
    info = _cpuinfo()
    host_is_x86 = "vendor_id" in info or "flags" in info
    host_is_arm = "cpu implementer" in info
    is_arm = arch in ("aarch64", "arm64") or arch.startswith("arm")
    is_x86 = arch in ("x86_64", "amd64", "i686", "i386")
    emulation = os.environ.get(EMULATED_ENV, "").strip() or None
    if emulation is None and ((is_arm and host_is_x86) or (is_x86 and host_is_arm)):
        host = info.get("model name") or ("an x86 CPU" if host_is_x86 else "an ARM CPU")
        emulation = f"{arch} emulated by qemu-user on {host}"
    board = None
    if is_arm and not host_is_x86:
        board = _read("/proc/device-tree/model").strip("\x00\n ") or info.get("model") or None  # a Raspberry Pi's
        part = int(info.get("cpu part", "0"), 16) if info.get("cpu part", "").startswith("0x") else 0
        core = _ARM_PARTS.get(part) if info.get("cpu implementer") == "0x41" else None
        cpu = ", ".join(x for x in (board, core) if x) or info.get("model name") or arch
    elif is_arm:
        cpu = f"emulated {arch} (host: {info.get('model name') or 'x86'})"
    else:
        cpu = info.get("model name") or platform.processor() or arch
    if is_arm:
        caps = _hwcaps()
        if caps and (caps[0] or caps[1]):
            flags = {n for bit, n in _ARM_HWCAP.items() if caps[0] >> bit & 1}
            flags |= {n for bit, n in _ARM_HWCAP2.items() if caps[1] >> bit & 1}
        else:
            flags = set(info.get("features", "").split()) & _ARM_FLAGS
    else:
        flags = set(info.get("flags", "").split()) & _X86_FLAGS
    cores = os.cpu_count() or 1
    auto_label = f"{cpu}, {cores} cores" + ("" if arch in cpu else f", {arch}")
    label = (label or "").strip() or auto_label
    if label != auto_label:
        slug = _slug(label)
    elif emulation:
        slug = _slug(f"{arch}-emulated-on-{info.get('model name') or 'host'}-{cores}c")
    else:
        slug = _slug(f"{cpu}-{arch}-{cores}c")
    return {"label": label, "slug": slug, "arch": arch, "cpu": cpu, "board": board, "cores": cores,
            "isa_flags": sorted(flags), "os": _os_name(), "platform": platform.platform(),
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "emulated": emulation is not None, "emulation": emulation}


# ---- the bundle -------------------------------------------------------------------------------------------------
def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bundle_identity(bundle: Path, manifest: mf.BundleManifest) -> dict:
    """What makes two runs' bundles the same: the model files' sha256s (as the manifest lists them; loading checks
    each file against them) and the golden inputs'; plus the manifest's own sha256, for the record."""
    models = {m.path: {"sha256": m.sha256, "size_bytes": m.size_bytes, "format": m.format, "variant": m.variant,
                       "role": m.role} for m in manifest.models}
    digest = hashlib.sha256("".join(f"{p}\0{m['sha256']}\n" for p, m in sorted(models.items())).encode())
    return {"name": bundle.resolve().name, "path": str(bundle),
            "architecture": manifest.architecture,
            "latent_dim": manifest.latent_dim, "target_vocab": len(manifest.preprocessing.target_vocabulary),
            "models_sha256": digest.hexdigest(), "golden_sha256": _sha256_file(bundle / mf.GOLDEN_FILE),
            "manifest_sha256": _sha256_file(bundle / mf.MANIFEST_FILE), "models": models}


def _du_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return round(total / 2**20, 1)


# ---- progress -----------------------------------------------------------------------------------------------------
class Progress:
    """``[i/n] what`` lines on stderr (the CLI's logger), with the seconds since the start."""

    def __init__(self, total: int):
        self.total, self.done, self.t0 = total, 0, time.monotonic()

    def __call__(self, msg: str) -> None:
        self.done += 1
        log.info("[%d/%d] %s  (%.0f s)", self.done, max(self.total, self.done), msg, time.monotonic() - self.t0)


# ---- Keras contenders ---------------------------------------------------------------------------------------
def tensorflow_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "keras"))


def keras_contenders(run_dir: Path, words: list[str], s: dict) -> dict:
    """The seed's way (Keras ``predict`` once per step, as the tutorial's decode_sequence) and the Keras models
    called directly: per-word latency, and the direct models' encoder and step times."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from seq2seq_edge.train.reference import decode_texts, load_reference

    kd, prep = load_reference(run_dir)
    seed_way = replace(kd, use_predict=True)

    def per_word(decoder, n):
        return runtime_bench.per_call_ms(lambda w: decode_texts(decoder, prep, [w]), runtime_bench.cycle(words, n),
                                         warmup=1)[0]

    ids = pp.pad_batch([prep.encode_input(words[0])], prep.max_input_tokens)
    st = kd.encode(ids)
    attended = {k: st[k] for k in (mf.ENCODER_OUTPUTS, mf.ENCODER_MASK) if k in st}
    step_args = (np.full(1, text.START_ID, np.int32), st[mf.STATE_H], st[mf.STATE_C], attended)
    n = min(s["model_call_repeats"], 300)  # a Keras call costs milliseconds
    return {
        "keras_predict_per_char": {"word_latency_ms": per_word(seed_way, s["keras_predict_words"])},
        "keras_direct": {
            "word_latency_ms": per_word(kd, s["keras_direct_words"]),
            "step_us": runtime_bench._median_us(lambda: kd.step_once(*step_args), n),
            "encoder_us": runtime_bench._median_us(lambda: kd.encode(ids), n),
        },
    }


# ---- cold start -----------------------------------------------------------------------------------------------
def cold_start(bundle: Path, backend: str, python: str, word: str, repeats: int) -> dict:
    """A fresh process per run: import, load ``bundle`` on ``backend`` and decode ``word``. Probed backends are
    also timed with the first-load probe of the model files included (an empty cache each time)."""
    cmd = [python, "-c", COLD_RUNTIME, str(bundle), backend, word]
    out = {}
    if backend in probe.PROBED_BACKENDS:
        out[f"runtime_{backend}_first_load"] = _cold(cmd, repeats, fresh_cache=True)
    _cold(cmd, 1)  # the files are probed once, then remembered
    out[f"runtime_{backend}"] = _cold(cmd, repeats)
    return out


def _cold(cmd: list[str], repeats: int, fresh_cache: bool = False) -> dict:
    """Median wall time and peak RSS of ``cmd`` in fresh processes. ``fresh_cache``: an empty $XDG_CACHE_HOME
    each time, so the first-load probe of the model files is included."""
    times, rss = [], []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for _ in range(repeats):
        cache = tempfile.mkdtemp(prefix="s2s-cold-") if fresh_cache else None
        if cache:
            env["XDG_CACHE_HOME"] = cache
        try:
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            times.append(time.perf_counter() - t)
        finally:
            if cache:
                shutil.rmtree(cache, ignore_errors=True)
        if proc.returncode != 0:
            raise Seq2SeqEdgeError(f"cold-start run failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
        lines = proc.stdout.strip().splitlines()
        rss.append(int(lines[-1]) / 1024)
    return {"seconds": statistics.median(times), "peak_rss_mb": round(max(rss), 1), "output": lines[-2]}


# ---- the whole benchmark of one bundle --------------------------------------------------------------------
def backends_here(manifest: mf.BundleManifest, only=None) -> tuple[list[str], dict[str, str]]:
    """Backends installed in this environment whose format the bundle holds, and why the others are left out.
    (Whether one imports is found out by its measuring process: this one imports no interpreter.)"""
    here, skipped = [], {}
    for b in BACKEND_ORDER:
        if only is not None and b not in only:
            continue
        if not manifest.variants(backends.BACKENDS[b].format):
            skipped[b] = f"the bundle has no {backends.BACKENDS[b].format} models"
        elif not backends.is_installed(b):
            skipped[b] = "not installed"
        else:
            here.append(b)
    return here, skipped


def _measure_others(result: dict, keras_run, keras: bool, peers, words: list[str], s: dict, progress) -> None:
    """The contenders outside the runtime: the Keras models (with TensorFlow and a run folder) and the peers."""
    if keras_run:
        progress("Keras contenders")
        result.update(keras_contenders(keras_run, words, s))
        progress("cold start Keras")
        result["cold_start"]["keras"] = _cold([sys.executable, "-c", COLD_KERAS, str(keras_run), words[0]],
                                              s["cold_start_repeats"])
    else:
        result["skipped"]["keras"] = ("TensorFlow is not installed" if not tensorflow_installed() else
                                      "left out (--no-keras)" if not keras else "no run folder (--run)")
    result["peers"] = {}
    for name in peers:
        if not peer_mod.available(name):
            result["skipped"][name] = f"not installed (pip install {name})"
            continue
        progress(f"peer {name}")
        try:
            result["peers"][name] = peer_mod.measure(name, words, s)
        except ValueError as e:
            result["skipped"][name] = str(e)


def bench(bundle: str | Path, *, run_dir: str | Path | None = None, quick: bool = False,
          tflite_python: str | None = None, venvs: dict[str, str] | None = None, threads=None,
          label: str | None = None, only_backends=None, variants=None, settings: dict | None = None,
          keras: bool = True, peers: tuple[str, ...] = ()) -> dict:
    """Benchmark one bundle; returns the results dict (schema: report.py's docstring).

    ``run_dir``: the run folder, for the Keras contenders (default: the manifest's, when TensorFlow is installed;
    given without TensorFlow it is an error). ``tflite_python``: the python of a venv with seq2seq-edge[tflite], to
    include tflite-runtime when this process cannot import it. ``threads``: thread settings ("1", numbers, "max").
    ``only_backends``/``variants``: measure only these. ``settings``: every count (default: ``quick`` or full).
    ``keras=False``: leave the Keras contenders out even when TensorFlow is installed. ``peers``: decoders outside
    this project to time on the same words (``peers.py``: "g2p_en").
    """
    bundle = Path(bundle)
    manifest = mf.BundleManifest.load(bundle)
    s = settings or runtime_bench.settings(quick, threads or runtime_bench.DEFAULT_THREADS)
    for t in s["threads"]:
        runtime_bench.resolve_threads(t)  # a count above this machine's cores fails here, before anything runs
    words = runtime_bench.golden_inputs(bundle)
    if not words:
        raise Seq2SeqEdgeError(f"{bundle}/golden.json has no non-empty input to time")
    here, skipped = backends_here(manifest, only_backends)
    if tflite_python and "tflite" in here:
        log.info("tflite-runtime is installed here: --tflite-python %s is not needed", tflite_python)
        tflite_python = None
    if tflite_python:
        skipped.pop("tflite", None)
    keras_run = _keras_run_dir(run_dir, bundle, manifest) if keras else None
    if not here and not tflite_python:
        raise Seq2SeqEdgeError("no backend installed here can run this bundle ("
                               + "; ".join(f"{b}: {why}" for b, why in skipped.items())
                               + "): pip install 'seq2seq-edge[tflite]', '[litert]' or '[onnx]'")
    result = describe(bundle, manifest, s, label)
    result["skipped"] = skipped
    pythons = [(b, sys.executable) for b in here] + ([("tflite", tflite_python)] if tflite_python else [])
    plans = {b: runtime_bench.items(manifest, b, s, variants) for b, _ in pythons}
    progress = Progress(sum(map(len, plans.values())) + len(pythons) + 2 * bool(keras_run))
    for backend, python in list(pythons):
        try:
            measure_backend(result, bundle, backend, python, s, plans[backend], progress)
        except BackendUnavailableError as e:
            if python != sys.executable:
                raise
            skipped[backend] = str(e)  # installed, but it does not import here (tflite-runtime beside numpy 2)
            pythons.remove((backend, python))
            progress.total -= len(plans[backend]) + 1
    if not pythons:
        raise Seq2SeqEdgeError("no backend installed here can run this bundle ("
                               + "; ".join(f"{b}: {why}" for b, why in skipped.items()) + ")")
    for backend, python in pythons:
        progress(f"cold start {backend}")
        try:
            result["cold_start"].update(cold_start(bundle, backend, python, words[0], s["cold_start_repeats"]))
        except Seq2SeqEdgeError as e:
            _failed(result, backend, "cold start", None, str(e))
    _measure_others(result, keras_run, keras, peers, words, s, progress)
    result["venv_mb"] = {name: _du_mb(Path(p)) for name, p in (venvs or {}).items() if Path(p).is_dir()}
    result["ratios"] = ratios(result)
    return result


def _keras_run_dir(run_dir, bundle: Path, manifest: mf.BundleManifest) -> Path | None:
    """The run folder for the Keras contenders: ``run_dir`` (an error without TensorFlow), else the one the
    manifest names, found as ``s2s verify`` finds it, when TensorFlow is installed; or None to leave them out."""
    if run_dir is not None:
        if not tensorflow_installed():
            raise Seq2SeqEdgeError("--run: the Keras contenders need TensorFlow, which is not installed (in a clone "
                                   "of seq2seq-edge, pip install '.[train]'); without --run the runtime is measured "
                                   "alone")
        if not Path(run_dir).is_dir():
            raise Seq2SeqEdgeError(f"--run {run_dir}: no such run folder")
        return Path(run_dir)
    if not tensorflow_installed():
        return None
    try:
        from seq2seq_edge.export.bundle import find_run_dir

        return find_run_dir(bundle, manifest)
    except (Seq2SeqEdgeError, ImportError):
        return None


def describe(bundle: Path, manifest: mf.BundleManifest, s: dict, label: str | None = None) -> dict:
    """The results' header: schema, bundle, settings, machine, versions; empty measurements."""
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "bundle": bundle_identity(bundle, manifest), "settings": s, "machine": machine(label),
            "versions": {d: v for d in VERSIONS_OF if (v := package_version(d))},
            "runtime": [], "floors_us": {}, "cold_start": {}, "failed": []}


def _failed(result: dict, backend: str, variant: str, threads: str | None, error: str) -> None:
    where = f"{backend} {variant}" + (f", {threads} thread{'s' if threads != '1' else ''}" if threads else "")
    log.warning("FAILED: %s: %s", where, error)
    result["failed"].append({"backend": backend, "variant": variant, "threads_setting": threads, "error": error})


def measure_backend(result: dict, bundle: Path, backend: str, python: str, s: dict, todo: list, progress) -> None:
    """Measure ``todo`` (runtime_bench.items) on ``backend`` in a child process of ``python`` (this one, or
    another venv's), reading its figures as they come. If the interpreter crashes, the item it was on is recorded
    in ``result["failed"]`` and a new child goes on with the rest. The child's stderr (the interpreters' own log
    lines) is kept off the terminal: its last line goes into an error, all of it into the debug log (``s2s -v``)."""
    todo = [list(i) for i in todo]
    while todo:
        cmd = [python, "-m", "seq2seq_edge.bench.runtime_bench", str(bundle), "--backend", backend,
               "--settings", json.dumps(s), "--items", json.dumps(todo)]
        current, hello = None, False
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err, subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}) as proc:
            for line in proc.stdout:
                try:
                    msg = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a library printing to stdout
                if "hello" in msg:
                    hello = True
                    if msg["hello"] != SCHEMA_VERSION:
                        proc.kill()
                        raise Seq2SeqEdgeError(f"{python} has a seq2seq-edge whose results are schema version "
                                               f"{msg['hello']}, this one's {SCHEMA_VERSION}: install the same version")
                    if msg.get("interpreter_version"):
                        result["versions"].setdefault(backends.BACKENDS[backend].dist, msg["interpreter_version"])
                elif "start" in msg:
                    current = msg["start"]
                    todo.remove(current)
                    variant, threads = current
                    progress(f"{backend} floor" if variant == runtime_bench.FLOOR else
                             f"{backend} {variant}, {threads} thread{'s' if threads != '1' else ''}")
                elif "row" in msg:
                    result["runtime"].append(msg["row"])
                    current = None
                elif "floor_us" in msg:
                    result["floors_us"][backend] = msg["floor_us"]
                    current = None
                elif "error" in msg:
                    _failed(result, backend, *current, msg["error"])
                    current = None
            proc.wait()
            err.seek(0)
            stderr = err.read()
        _child_ended(result, backend, python, proc.returncode, stderr, hello, current, todo)


def _child_ended(result: dict, backend: str, python: str, code: int, stderr: str, hello: bool, current, todo: list):
    """After a measuring child exits: an error if it never started, else the item it died on (or, if it died
    between items, the next one) recorded as failed, so a new child goes on with the rest."""
    if stderr.strip():
        log.debug("%s", stderr.rstrip())
    last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "no output")
    if not hello and code == runtime_bench.EXIT_UNAVAILABLE:
        raise BackendUnavailableError(last.removeprefix("runtime_bench: error: "))
    if not hello:
        raise Seq2SeqEdgeError(f"the {backend} measurement in {python} could not start (exit status {code}: "
                               f"{last}); that python needs this version of seq2seq-edge with the {backend} extra")
    if current is not None or (code != 0 and todo):
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else f"signal {-code}"
            why = f"the interpreter's process crashed ({name})"
        else:
            why = f"the measuring process stopped (exit status {code}: {last})"
        if current is None:  # died between items: count it against the next one
            current = todo.pop(0)
        _failed(result, backend, *current, why)


def _pick(result: dict, backend: str, variant: str, threads: int = 1) -> dict | None:
    return next((r for r in result["runtime"] if (r["backend"], r["variant"], r["threads"]) ==
                 (backend, variant, threads)), None)


def ratios(result: dict) -> dict:
    """The comparisons the project's targets are stated in, each from this run's own figures.

    Keys end in ``@tflite``, ``@litert`` or ``@onnx``: each interpreter measured in the run gets its own ratios.
    """
    out = {}
    seed, direct, cold = result.get("keras_predict_per_char"), result.get("keras_direct"), result["cold_start"]
    sizes = {p: m["size_bytes"] for p, m in result["bundle"]["models"].items()}
    if "decoder_step.int8.tflite" in sizes and "decoder_step.fp32.tflite" in sizes:
        out["int8_tflite_decoder_size_fraction"] = sizes["decoder_step.int8.tflite"] / sizes["decoder_step.fp32.tflite"]
    for backend in BACKEND_ORDER:
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
        if "64" in tp and "1" in tp:
            out["throughput_batch64_over_batch1" + at] = tp["64"] / tp["1"]
        if f"runtime_{backend}" in cold and "keras" in cold:
            out["cold_start_speedup" + at] = cold["keras"]["seconds"] / cold[f"runtime_{backend}"]["seconds"]
        floor = result["floors_us"].get(backend)
        if floor:
            out["step_floor_fraction" + at] = floor / fp32["step_us"]
        one_call, step_loop = report.path_latencies(fp32)
        if fp32.get("one_call_invoke_ms") and fp32.get("raw_invoke_ms"):
            out["one_call_over_raw_invoke" + at] = fp32["one_call_invoke_ms"] / fp32["raw_invoke_ms"]
        if one_call and step_loop:
            out["step_loop_over_one_call" + at] = step_loop / one_call
        g2p = result.get("peers", {}).get("g2p_en")
        if g2p:
            out["speedup_vs_g2p_en" + at] = g2p["word_latency_ms"]["p50"] / fp32["word_latency_ms"]["p50"]
            if int8:
                out["int8_speedup_vs_g2p_en" + at] = g2p["word_latency_ms"]["p50"] / int8["word_latency_ms"]["p50"]
    return out
