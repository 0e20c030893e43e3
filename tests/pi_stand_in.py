"""Raspberry Pi stand-in: install the runtime in an emulated arm64 Debian bookworm and decode golden outputs.

    sudo python tests/pi_stand_in.py BUNDLE [BUNDLE ...]

Raspberry Pi OS Bookworm 64-bit is Debian bookworm on arm64 with Python 3.11. This script

1. builds an arm64 bookworm root file system with mmdebstrap (qemu-user-static runs its binaries), or reuses
   the one it cached in $S2S_PI_CACHE (default /var/cache/seq2seq-edge/pi-rootfs-bookworm-arm64);
2. inside it, as docs/raspberry-pi.md says, creates one venv with `pip install
   './seq2seq_edge-0.1.0-py3-none-any.whl[tflite]'` (the wheel `pip wheel --no-deps` builds from this tree; pip
   fetches numpy<2 and the tflite-runtime 2.14 aarch64 wheel) and one with `...whl[onnx]'`; no TensorFlow;
3. decodes every golden input of each BUNDLE with each venv, through the one-call greedy model (where the bundle
   has one) and through the step loop, and compares the strings with the exporter's;
4. prints per-word latency, labelled as emulated: it says nothing about a real Pi's speed;
5. runs `s2s bench --quick --threads 1` on the first BUNDLE in the [onnx] venv, with tflite-runtime from the
   [tflite] venv, as a device's user would, qemu emulating a Raspberry Pi 4's core (Cortex-A72); the results say
   machine.emulated = true (and EMULATED in the Markdown), and with --bench-out DIR they are copied out as
   DIR/<bundle>-on-<machine>.json and .md (about a minute);
6. with --vectors FILE (the shared test vectors, tests/make_vectors.py; give every fixture bundle it was made
   from: digits, numbers, attention, embeddings and ensemble): builds the C library (c/) inside the root with its
   own gcc and CMake against ONNX Runtime's linux-aarch64 library, and runs its tests there: every vector decoded
   as the Python runtime on x86-64 decoded it, and the command-line tests;
7. unmounts what it mounted and removes what it copied in, also when it fails.

Needs root, and on a non-arm64 host: qemu-user-static, binfmt-support and mmdebstrap (Debian packages).
Exit status 0 when every string matches on both backends.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from make_vectors import BUNDLES

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("S2S_PI_CACHE", "/var/cache/seq2seq-edge/pi-rootfs-bookworm-arm64"))
PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
#: What the C library builds with (Debian's; installed into a cached root that lacks them).
C_PACKAGES = ("gcc", "libc6-dev", "make", "cmake", "pkg-config", "libcjson-dev", "libutf8proc-dev", "libssl-dev")
WORK = "/opt/s2s-pi-check"  # inside the root file system
EXTRAS = ("tflite", "onnx")
HOST_CA = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"

CHECK = r'''
import json, statistics, sys, time, platform
import numpy, seq2seq_edge
backend, bundles = sys.argv[1], sys.argv[2:]
report = {"backend": backend, "machine": platform.machine(), "python": platform.python_version(),
          "numpy": numpy.__version__, "bundles": []}
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "onnx", "tf2onnx"})
for path in bundles:
    items = json.load(open(path + "/golden.json", encoding="utf-8"))["items"]
    try:  # the one-call greedy model where the bundle has one (ONNX too, which does not use it by default)
        decoder = seq2seq_edge.load(path, backend=backend, one_call=True)
    except seq2seq_edge.BundleError:
        decoder = seq2seq_edge.load(path, backend=backend)
    inputs = [i["input"] for i in items]
    # both paths: the one-call greedy model (when the bundle has one) and the step loop
    got = decoder.decode_batch(inputs, batch_size=64)
    by_steps = decoder.internals.with_step_loop().decode_batch(inputs, batch_size=64)
    wrong = [(decoder.decode_path, i["input"], i["output"], g) for i, g in zip(items, got) if g != i["output"]]
    wrong += [("step-loop", i["input"], i["output"], g) for i, g in zip(items, by_steps) if g != i["output"]]
    times = []
    for text in inputs[:100]:
        t = time.perf_counter()
        decoder.decode(text)
        times.append((time.perf_counter() - t) * 1000)
    report["bundles"].append({"bundle": path, "inputs": len(items), "mismatches": wrong[:5], "path": decoder.decode_path,
                              "n_mismatches": len(wrong), "ms_per_word_p50": statistics.median(times)})
report["heavy_modules"] = heavy
print(json.dumps(report))
'''


def log(msg: str) -> None:
    print(f"[pi] {msg}", flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_emulation() -> None:
    if platform.machine() in ("aarch64", "arm64"):
        return
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "status").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)])
    if not (binfmt / "qemu-aarch64").exists():
        run(["update-binfmts", "--enable", "qemu-aarch64"])
    if not (binfmt / "qemu-aarch64").exists():
        sys.exit("[pi] qemu-aarch64 is not registered with binfmt_misc: apt-get install qemu-user-static binfmt-support")


def ensure_rootfs() -> Path:
    if (CACHE / "usr/bin/python3").exists():
        log(f"reusing the cached root file system {CACHE}")
        return CACHE
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    tmp = CACHE.with_name(CACHE.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    log("building an arm64 Debian bookworm root file system with mmdebstrap (a few minutes, once)")
    t = time.time()
    run(["mmdebstrap", "--arch=arm64", "--variant=apt", f"--include={PACKAGES},{','.join(C_PACKAGES)}", "bookworm",
         str(tmp)],
        stdout=subprocess.DEVNULL)
    tmp.rename(CACHE)
    log(f"root file system ready in {time.time() - t:.0f} s")
    return CACHE


def build_wheel(dest: Path) -> Path:
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest), str(REPO)],
        stdout=subprocess.DEVNULL)
    return next(dest.glob("seq2seq_edge-*.whl"))


class Mounted:
    """/proc and /dev inside the root file system, and the work folder; all undone on exit."""

    def __init__(self, root: Path):
        self.root, self.mounts = root, []

    def __enter__(self):
        # Not /sys: with the host's sysfs there, onnxruntime (its cpuinfo reads the x86 host's topology) crashes
        # under qemu; without it, it only warns that it cannot read the CPU list.
        for src, dst, args in (("proc", "proc", ["-t", "proc"]), ("/dev", "dev", ["--bind"])):
            target = self.root / dst
            run(["mount", *args, src, str(target)])
            self.mounts.append(target)
        shutil.copy("/etc/resolv.conf", self.root / "etc/resolv.conf")
        return self

    def __exit__(self, *exc):
        for target in reversed(self.mounts):
            if subprocess.run(["umount", str(target)]).returncode != 0:
                subprocess.run(["umount", "-l", str(target)])
        shutil.rmtree(self.root / WORK.lstrip("/"), ignore_errors=True)
        return False


def chroot(root: Path, script: str, capture=False, timeout=None, env=None):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_PROGRESS_BAR": "off", "PIP_CERT": f"{WORK}/ca.crt", **(env or {})}
    chroot_bin = shutil.which("chroot") or "/usr/sbin/chroot"
    return subprocess.run([chroot_bin, str(root), "/bin/sh", "-ec", script], env=env, check=True,
                          capture_output=capture, text=True, timeout=timeout)


#: The CPU qemu emulates for the benchmark: a Raspberry Pi 4's core (qemu's default, "max", has every extension;
#: under it tflite-runtime 2.14's int8 step crashes at batch sizes that are multiples of 4, in its dot-product
#: kernels, which a Pi 4 does not have).
BENCH_QEMU_CPU = "cortex-a72"
BENCH_TIMEOUT_S = 900


def emulation() -> str:
    """What runs the arm64 binaries here, for the benchmark's results ("" on a real arm64 machine)."""
    if platform.machine() in ("aarch64", "arm64"):
        return ""
    qemu = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True).stdout
    host = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), platform.machine())
    return (f"the Raspberry Pi stand-in: arm64 Debian bookworm under {' '.join(qemu.split()[:3]) or 'qemu-user'} "
            f"emulating a {BENCH_QEMU_CPU} (a Raspberry Pi 4's core) on an {platform.machine()} host ({host})")


def bench(root: Path, bundle: str, out: Path | None) -> int:
    """`s2s bench --quick` inside the root file system, as a device's user would run it; 1 if it failed.
    One thread (several emulated threads only measure qemu)."""
    t = time.time()
    results = f"{WORK}/bench"
    env = {"XDG_CACHE_HOME": f"{WORK}/cache", "S2S_BENCH_EMULATED": emulation()}
    if platform.machine() not in ("aarch64", "arm64"):
        env["QEMU_CPU"] = BENCH_QEMU_CPU
    cmd = (f"{WORK}/venv-onnx/bin/s2s bench {bundle} --quick --threads 1 --tflite-python {WORK}/venv-tflite/bin/python "
           f"--label {shlex.quote('Pi stand-in: arm64 bookworm under qemu')} --out {results}")
    try:
        chroot(root, cmd, timeout=BENCH_TIMEOUT_S, env=env)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        log(f"FAIL: s2s bench inside the emulated system: {e}")
        return 1
    inside = root / results.lstrip("/")
    summary = json.loads((inside / "results.json").read_text(encoding="utf-8"))
    (result,) = summary["results"]
    m = result["machine"]
    if platform.machine() not in ("aarch64", "arm64") and not m["emulated"]:
        log("FAIL: the emulated benchmark's results do not say machine.emulated = true")
        return 1
    if result["failed"]:
        log(f"FAIL: s2s bench: {result['failed']}")
        return 1
    for x in result["runtime"]:
        if x["threads"] == 1:
            log(f"bench {x['backend']:6} {x['variant']}: {x['word_latency_ms']['p50']:.2f} ms/word p50, step "
                f"{x['step_us']:.0f} us (EMULATED)")
    log(f"s2s bench (quick, {', '.join(sorted(result['floors_us']))}) in {time.time() - t:.0f} s: "
        f"{m['label']}, {m['arch']}, {m['python']}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stem = f"{result['bundle']['name']}-on-{m['slug']}"
        shutil.copy(inside / "results.json", out / f"{stem}.json")
        shutil.copy(inside / "results.md", out / f"{stem}.md")
        log(f"benchmark results: {out / stem}.json, .md")
    return 0


def c_library(root: Path, work: Path, vectors: Path) -> int:
    """Build c/ inside the root and run its tests against the shared vectors; 1 if anything failed."""
    t = time.time()
    missing = chroot(root, "for p in " + " ".join(C_PACKAGES) + "; do dpkg -s $p >/dev/null 2>&1 || echo $p; done",
                     capture=True).stdout.split()
    if missing:
        log(f"installing {' '.join(missing)} in the root file system (once)")
        chroot(root, "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                     f"{' '.join(missing)} >/dev/null")
    c_dir = REPO / "c"
    run(["bash", str(c_dir / "fetch_onnxruntime.sh")], stdout=subprocess.DEVNULL)
    shutil.copytree(c_dir, work / "c", ignore=shutil.ignore_patterns("build", "build-*", "linux-x64"))
    shutil.copy(vectors, work / "vectors.json")
    shutil.copytree(vectors.parent / "crafted", work / "crafted")  # the crafted model files the C tests judge
    (work / "js" / "src").mkdir(parents=True, exist_ok=True)  # the schema the C tests compare their operator lists with
    shutil.copy(REPO / "js" / "src" / "manifest.schema.json", work / "js" / "src" / "manifest.schema.json")
    (work / "tests").mkdir(exist_ok=True)
    shutil.copy(REPO / "tests" / "make_vectors.py", work / "tests" / "make_vectors.py")  # the CLI tests' --lines
    # Without /sys (see Mounted) ONNX Runtime's cpuinfo says on stderr that it cannot read the CPU lists, and
    # something it runs asks for blkid: the CLI tests ignore exactly those lines here, nowhere else.
    env = {"S2S_FIXTURES": WORK, "PYTHON": "python3",
           "S2S_CLI_STDERR_NOISE": "^(Error in cpuinfo: |onnxruntime cpuid_info warning: |sh: 1: blkid: not found$)"}
    try:
        chroot(root, f"cd {WORK}/c && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null "
                     "&& cmake --build build -j2 >/dev/null", env=env, timeout=BENCH_TIMEOUT_S)
        log(f"C library built inside with {chroot(root, 'gcc --version', capture=True).stdout.splitlines()[0]} "
            f"in {time.time() - t:.0f} s")
        out = chroot(root, f"cd {WORK}/c && build/test_vectors && bash tests/test_cli.sh build/s2s-run",
                     env=env, capture=True, timeout=BENCH_TIMEOUT_S).stdout
    except subprocess.CalledProcessError as e:
        log(f"FAIL: the C library inside the emulated system:\n{e.stdout or ''}{e.stderr or ''}")
        return 1
    except subprocess.TimeoutExpired:
        log("FAIL: the C library's tests timed out inside the emulated system")
        return 1
    lines = out.strip().splitlines()
    log(f"C library on arm64: {lines[-2] if len(lines) > 1 else ''}; {lines[-1]} ({time.time() - t:.0f} s)")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundles", nargs="+", type=Path)
    p.add_argument("--bench-out", type=Path, metavar="DIR",
                   help="copy the emulated benchmark's results here, as <bundle>-on-<machine>.json and .md")
    p.add_argument("--no-bench", action="store_true", help="skip s2s bench inside the emulated system")
    p.add_argument("--vectors", type=Path, metavar="FILE",
                   help="the shared test vectors (tests/make_vectors.py): build and test the C library inside too")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("[pi] needs root (chroot and mounts)")
    started = time.time()
    ensure_emulation()
    root = ensure_rootfs()
    failures = 0
    with Mounted(root), tempfile.TemporaryDirectory() as tmp:
        work = root / WORK.lstrip("/")
        shutil.rmtree(work, ignore_errors=True)
        (work / "bundles").mkdir(parents=True)
        wheel = build_wheel(Path(tmp))
        shutil.copy(wheel, work / wheel.name)
        inside = []
        for b in args.bundles:
            shutil.copytree(b, work / "bundles" / b.name)
            inside.append(f"{WORK}/bundles/{b.name}")
        (work / "check.py").write_text(CHECK, encoding="utf-8")
        # The host's CA bundle, so pip inside trusts what the host's pip trusts (a proxy's CA included).
        shutil.copy(HOST_CA, work / "ca.crt")
        py = chroot(root, "python3 --version; uname -m", capture=True).stdout.split()
        log(f"inside: {' '.join(py)} (emulated by qemu-aarch64)")
        for extra in EXTRAS:
            venv = f"{WORK}/venv-{extra}"
            t = time.time()
            chroot(root, f"python3 -m venv {venv} && {venv}/bin/pip install -q '{WORK}/{wheel.name}[{extra}]'")
            pkgs = chroot(root, f"{venv}/bin/pip list 2>/dev/null | grep -iE '^(numpy|tflite-runtime|onnxruntime) '",
                          capture=True).stdout.split("\n")
            log(f"venv [{extra}] installed in {time.time() - t:.0f} s: " + ", ".join(" ".join(l.split()) for l in pkgs if l))
            backend = "tflite" if extra == "tflite" else "onnx"
            out = chroot(root, f"{venv}/bin/python {WORK}/check.py {backend} {' '.join(inside)}", capture=True).stdout
            report = json.loads(out.strip().splitlines()[-1])
            if report["heavy_modules"]:
                failures += 1
                log(f"FAIL: the runtime imported {report['heavy_modules']}")
            for b in report["bundles"]:
                status = "all match" if b["n_mismatches"] == 0 else f"FAIL: {b['n_mismatches']} mismatches {b['mismatches']}"
                failures += b["n_mismatches"] > 0
                log(f"{backend:6} {Path(b['bundle']).name:10} {b['inputs']:4} golden inputs, {b['path']} and step-loop: "
                    f"{status}; "
                    f"{b['ms_per_word_p50']:.2f} ms/word (EMULATED on {platform.machine()} via qemu, "
                    f"not a Raspberry Pi's speed), {report['machine']}, Python {report['python']}, "
                    f"numpy {report['numpy']}")
        if args.vectors:
            names = {b.name for b in args.bundles}
            if not set(BUNDLES) <= names:
                sys.exit(f"[pi] --vectors needs the {', '.join(BUNDLES)} bundles it was made from")
            failures += c_library(root, work, args.vectors)
        if not args.no_bench:
            failures += bench(root, inside[0], args.bench_out)
    log(f"{'PASSED' if not failures else 'FAILED'} in {time.time() - started:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
