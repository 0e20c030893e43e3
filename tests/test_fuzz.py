"""Fuzzing the loader: corrupted model files, each loaded in a child process; a crash is a failure.

Half of the cases keep the exporter's manifest: the sha256 check must stop every one before an interpreter sees
it. The other half re-sign the manifest to match the corrupted file, so the interpreter's own parsing is all
that stands between the bytes and the process: each must end in a clear error or a working load, never a signal.
"""

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from seq2seq_edge import backends
from seq2seq_edge import manifest as mf

STRATEGIES = ["zero-byte", "truncated", "random-bytes", "flipped-bytes", "wrong-magic", "other-format",
              "header-kept-tail-random"]
#: Corrupted variants per environment: at least this many, spread over the model files its backends can load.
MIN_CASES = int(os.environ.get("S2S_FUZZ_CASES", "1000"))
WORKER = Path(__file__).with_name("fuzz_worker.py")


def make_cases(bundle: Path) -> list[dict]:
    manifest = mf.BundleManifest.load(bundle)
    installed = [b for b in backends.AUTO_ORDER if backends.is_installed(b)]
    rng = random.Random(1234)
    cases = []
    loadable = [m for m in manifest.models if any(backends.BACKENDS[b].format == m.format for b in installed)]
    step = 2 * len(STRATEGIES)  # every strategy, with the manifest kept and re-signed
    per_file = -(-MIN_CASES // (len(loadable) * step)) * step
    for m in loadable:
        backend = next(b for b in installed if backends.BACKENDS[b].format == m.format)
        for k in range(per_file):
            cases.append({"file": m.path, "backend": backend, "strategy": STRATEGIES[(k // 2) % len(STRATEGIES)],
                          "seed": rng.randrange(2**32), "resigned": k % 2 == 1})
    return cases


def run_cases(bundle: Path, cases: list[dict], tmp_path: Path):
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps(cases))
    results, crashes, start = {}, [], 0
    while start < len(cases):
        proc = subprocess.run([sys.executable, str(WORKER), str(bundle), str(cases_file), str(start)],
                              capture_output=True, text=True, timeout=900)
        current = None
        for line in proc.stdout.splitlines():
            if not line.startswith('{"'):
                continue  # an interpreter's own chatter
            record = json.loads(line)
            if "start" in record:
                current = record["start"]
            else:
                results[record["index"]] = record
                current = None
        if proc.returncode == 0:
            break
        if current is None:
            pytest.fail(f"fuzz worker failed outside a case: {proc.stderr[-2000:]}")
        sig = -proc.returncode if proc.returncode < 0 else None
        crashes.append({**cases[current], "signal": signal.Signals(sig).name if sig else f"exit {proc.returncode}",
                        "stderr": proc.stderr[-300:]})
        start = current + 1
    return results, crashes


def test_corrupted_model_files_never_crash_and_tampering_is_caught_first(digits_bundle, tmp_path):
    cases = make_cases(digits_bundle)
    assert len(cases) >= MIN_CASES
    results, crashes = run_cases(digits_bundle, cases, tmp_path)
    counts = Counter((("re-signed" if cases[i]["resigned"] else "manifest kept"), r["outcome"]) for i, r in results.items())
    print(f"\n{len(cases)} cases: " + ", ".join(f"{k[0]} / {k[1]}: {v}" for k, v in sorted(counts.items())))
    assert not crashes, f"{len(crashes)} crashes, first: {crashes[0]}"
    unclear = [(cases[i], r["message"]) for i, r in results.items() if r["outcome"] == "unclear error"]
    assert not unclear, f"{len(unclear)} unclear errors, first: {unclear[0]}"
    for i, r in results.items():
        if not cases[i]["resigned"]:
            assert r["outcome"] == "clear error" and not r["interpreter_saw_it"], (cases[i], r)
            assert "sha256" in r["message"] or "bytes, the manifest says" in r["message"], r["message"]
    assert len(results) + len(crashes) == len(cases)
