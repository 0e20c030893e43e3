"""The benchmark: ``s2s bench`` on whatever backends this environment has (CI runs this file in the runtime-only
tflite and onnx venvs too), its results' structure, the floor models, and ``s2s bench --compare``: merging two
result files, and refusing results of different bundles or settings. No time is ever asserted."""

import copy
import importlib.util
import json
import os
import re
from pathlib import Path

import pytest
from conftest import HAS_TRAIN, requires_train

#: Settings small enough for a test: every figure is computed, none means anything.
TINY = dict(model_call_repeats=5, word_sample=6, word_warmup=1, throughput_batches=1, throughput_min_inputs=4,
            cold_start_repeats=1)


def s2s_in_process(capsys, *args):
    from seq2seq_edge import cli

    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _here():
    from seq2seq_edge import backends

    found = []
    for b in ("tflite", "litert", "onnx"):
        try:
            backends.import_interpreter_module(b)
            found.append(b)
        except Exception:  # noqa: BLE001 - not installed, or not importable beside this numpy
            pass
    return found


@pytest.fixture(scope="module")
def cli_run(digits_bundle, tmp_path_factory):
    """`s2s bench BUNDLE --quick --threads 1`, run from an empty folder (so the default --out is used); with
    TensorFlow installed, --no-keras (the Keras contenders have their own test)."""
    from seq2seq_edge import cli

    cwd = tmp_path_factory.mktemp("bench-cwd")
    old = os.getcwd()
    os.chdir(cwd)
    try:
        keras = ["--no-keras"] if HAS_TRAIN else []
        assert cli.main(["bench", str(digits_bundle), "--quick", "--threads", "1", "--quiet", *keras]) == 0
    finally:
        os.chdir(old)
    (folder,) = (cwd / "bench-results").iterdir()
    return folder


def test_bench_cli_writes_json_markdown_and_chart_in_a_folder_named_after_bundle_and_machine(cli_run, digits_bundle):
    from seq2seq_edge import manifest as mf
    from seq2seq_edge.bench import harness

    slug = harness.machine()["slug"]
    assert cli_run.name == f"digits-on-{slug}"
    summary = json.loads((cli_run / "results.json").read_text())
    assert summary["schema"] == "seq2seq-edge-bench" and summary["schema_version"] == 1
    (r,) = summary["results"]
    assert r["schema_version"] == 1 and r["created"]
    # the bundle, identified by its files' sha256s
    manifest = mf.BundleManifest.load(digits_bundle)
    assert set(r["bundle"]["models"]) == {m.path for m in manifest.models}
    assert all(r["bundle"]["models"][m.path]["sha256"] == m.sha256 for m in manifest.models)
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["bundle"][k]) for k in ("models_sha256", "golden_sha256", "manifest_sha256"))
    # the settings of the run
    s = r["settings"]
    assert s["mode"] == "quick" and s["threads"] == ["1"] and s["batch_sizes"] == [1, 8, 64, 256]
    assert {"model_call_repeats", "model_call_warmup", "word_sample", "word_warmup", "cold_start_repeats"} <= set(s)
    # the machine
    m = r["machine"]
    assert {"label", "slug", "arch", "cpu", "cores", "isa_flags", "os", "python", "emulated"} <= set(m)
    assert m["emulated"] is False and m["cores"] >= 1 and isinstance(m["isa_flags"], list)
    # every backend of this environment, every variant of its format, at 1 thread
    here = _here()
    assert here and {x["backend"] for x in r["runtime"]} == set(here)
    for b in here:
        fmt = {"tflite": "tflite", "litert": "tflite", "onnx": "onnx"}[b]
        assert {x["variant"] for x in r["runtime"] if x["backend"] == b} == set(manifest.variants(fmt))
        assert r["floors_us"][b] > 0
        assert r["cold_start"][f"runtime_{b}"]["output"] == "one" and r["cold_start"][f"runtime_{b}"]["peak_rss_mb"] > 0
    for x in r["runtime"]:
        assert x["threads"] == 1 and x["threads_setting"] == "1" and x["interpreter"]
        w = x["word_latency_ms"]
        assert 0 < w["p50"] <= w["p95"] <= w["p99"]
        assert x["encoder_us"] > 0 and x["step_us"] > 0 and x["steps_per_word"] > 0
        assert set(x["throughput_seq_per_s"]) == {"1", "8", "64", "256"}
        # the path s2s run takes (the one-call model on TFLite, the step loop on ONNX), the other beside it, and
        # the raw-invoke floor (ONNX int8 has no greedy model)
        one_call = (x["backend"], x["variant"]) != ("onnx", "int8")
        assert x["decode_path"] == ("step-loop" if x["backend"] == "onnx" else "one-call")
        assert x["raw_invoke_ms"] > 0 and list(x["encoder_us_by_length"]) == ["1"]
        other = "one_call" if x["backend"] == "onnx" else "step_loop"
        assert (f"{other}_word_latency_ms" in x) == one_call == ("one_call_invoke_ms" in x)
        if one_call:
            assert set(x[f"{other}_throughput_seq_per_s"]) == {"1", "8", "64", "256"}
    for b in here:
        assert r["ratios"][f"one_call_over_raw_invoke@{b}"] > 0 and r["ratios"][f"step_loop_over_one_call@{b}"] > 0
    assert "keras_direct" not in r and "keras" in r["skipped"] and not r["failed"]
    if not HAS_TRAIN:
        assert r["skipped"]["keras"] == "TensorFlow is not installed"
    md = (cli_run / "results.md").read_text()
    assert f"| {here[0]} fp32 | 1 |" in md and "Floor" in md and "EMULATED" not in md
    assert ("| contender | threads | one-call decode | step-loop decode | step loop / one-call | one-call model call "
            "| raw-invoke floor | call / floor | encoder µs, 1 tok |") in md
    assert (cli_run / "chart.svg").read_text().startswith("<svg")


def test_bench_refuses_to_overwrite_and_bad_options(cli_run, digits_bundle, capsys, tmp_path):
    code, _, err = s2s_in_process(capsys, "bench", digits_bundle, "--out", cli_run)
    assert code == 2 and "exists; --force overwrites it" in err
    code, _, err = s2s_in_process(capsys, "bench", digits_bundle, "--threads", "1,zero", "--out", tmp_path / "x")
    assert code == 2 and "--threads" in err
    code, _, err = s2s_in_process(capsys, "bench", tmp_path, "--out", tmp_path / "x")
    assert code == 2 and "not a bundle folder" in err


def test_bench_of_any_bundle_prints_its_figures_not_goals(digits_bundle, capsys, tmp_path):
    keras = ["--no-keras"] if HAS_TRAIN else []
    code, out, _ = s2s_in_process(capsys, "bench", digits_bundle, "--quick", "--threads", "1", *keras, "--out", tmp_path / "b")
    assert code == 0 and "target" not in out and "missed" not in out
    assert "throughput batch 64 / batch 1" in out
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert results["targets"] == []
    for row in results["results"][0]["runtime"]:  # the headline decodes as s2s run does by default
        assert row["decode_path"] == ("step-loop" if row["backend"] == "onnx" else "one-call"), row
        other = "one_call" if row["backend"] == "onnx" else "step_loop"
        if row["variant"] != "int8" or row["backend"] != "onnx":
            assert row[f"{other}_word_latency_ms"]["p50"] > 0, row
    code, _, err = s2s_in_process(capsys, "bench")
    assert code == 2 and "BUNDLE is missing" in err
    if not HAS_TRAIN:
        code, _, err = s2s_in_process(capsys, "bench", digits_bundle, "--run", tmp_path, "--out", tmp_path / "x")
        assert code == 2 and "need TensorFlow" in err


@pytest.mark.skipif(importlib.util.find_spec("g2p_en") is None, reason="needs the [peers] extra")
def test_g2p_en_peer_decodes_offline_and_is_timed():
    """The peer's own neural decode runs with its nltk data stubbed (nothing downloads) and is timed."""
    from seq2seq_edge.bench import peers, runtime_bench

    predict = peers.g2p_en_predictor()
    assert predict("speech") == ["S", "P", "IY1", "CH"]
    s = runtime_bench.settings(quick=True, threads=("1",), **TINY)
    m = peers.measure("g2p_en", ["speech", "zebra", "7"], s)
    assert m["words"] == 4  # six of the words cycled, the two "7"s left out: the peer takes letters only
    assert 0 < m["word_latency_ms"]["p50"] <= m["word_latency_ms"]["p99"]


def test_attention_bundle_and_tiny_settings_in_process(attention_bundle):
    """The step's extra inputs (encoder outputs and mask) reach the step and the floor alike."""
    from seq2seq_edge.bench import harness, runtime_bench

    backend = _here()[-1]
    s = runtime_bench.settings(quick=True, threads=("1",), **TINY)
    r = harness.bench(attention_bundle, settings=s, only_backends=[backend], variants=["fp32"], keras=False)
    assert r["settings"] == s and r["bundle"]["architecture"] == "lstm-attention"
    assert [(x["backend"], x["variant"]) for x in r["runtime"]] == [(backend, "fp32")]
    assert r["floors_us"][backend] > 0 and r["runtime"][0]["step_us"] > 0


CRASHING_PYTHON = """#!/bin/sh
# runtime_bench, with the interpreter "crashing" (SIGSEGV) whenever it measures int8
exec "{python}" -c '
import os, signal, sys
from seq2seq_edge.bench import runtime_bench as rb
measure = rb.measure
def crashing(bundle, backend, variant, threads, s):
    if variant == "int8":
        os.kill(os.getpid(), signal.SIGSEGV)
    return measure(bundle, backend, variant, threads, s)
rb.measure = crashing
sys.exit(rb.main(sys.argv[3:]))' "$@"
"""


def test_a_crashing_interpreter_costs_one_variant_and_is_recorded(digits_bundle, tmp_path):
    import sys

    from seq2seq_edge import manifest as mf
    from seq2seq_edge.bench import harness, runtime_bench

    fake = tmp_path / "python"
    fake.write_text(CRASHING_PYTHON.format(python=sys.executable))
    fake.chmod(0o755)
    backend = _here()[-1]
    s = runtime_bench.settings(quick=True, threads=("1",), **TINY)
    todo = runtime_bench.items(mf.BundleManifest.load(digits_bundle), backend, s, ["fp32", "int8"])
    assert todo == [["fp32", "1"], ["int8", "1"], ["floor", None]]
    result = {"runtime": [], "floors_us": {}, "failed": [], "versions": {}}
    seen = []
    harness.measure_backend(result, digits_bundle, backend, str(fake), s, todo, seen.append)
    assert [x["variant"] for x in result["runtime"]] == ["fp32"] and result["floors_us"][backend] > 0
    assert result["failed"] == [{"backend": backend, "variant": "int8", "threads_setting": "1",
                                 "error": "the interpreter's process crashed (SIGSEGV)"}]
    assert len(seen) == 3  # progress: fp32, int8, then the floor in a new process
    from seq2seq_edge.bench import report

    result.update(bundle={"name": "digits", "latent_dim": 32, "target_vocab": 17, "models_sha256": "0" * 64,
                          "golden_sha256": "0" * 64, "models": {}}, settings=s, cold_start={},
                  machine=harness.machine(), ratios={})
    assert f"**Failed**: {backend} int8 (1 thread): the interpreter's process crashed (SIGSEGV)" in \
        report.markdown([result])


def test_a_backend_that_does_not_import_is_left_out_saying_why(digits_bundle, tmp_path, monkeypatch):
    """Installed but not importable here (tflite-runtime beside numpy 2): its measuring process says so."""
    import sys

    from seq2seq_edge.bench import harness, runtime_bench
    from seq2seq_edge.errors import Seq2SeqEdgeError

    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "runtime_bench: error: backend failed to import (test)" >&2\nexit 3\n')
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    backend = _here()[-1]
    s = runtime_bench.settings(quick=True, threads=("1",), **TINY)
    with pytest.raises(Seq2SeqEdgeError, match=f"no backend installed here can run this bundle .*{backend}: backend "
                                              r"failed to import \(test\)"):
        harness.bench(digits_bundle, settings=s, only_backends=[backend], keras=False)


def test_floor_models_pass_the_runtimes_checks(digits_bundle, attention_bundle):
    """Made without TensorFlow, for any bundle; operators a decoder step may hold; the step's inputs and outputs."""
    import numpy as np

    from seq2seq_edge import backends
    from seq2seq_edge import manifest as mf
    from seq2seq_edge.bench import floor

    for bundle in (digits_bundle, attention_bundle):
        manifest = mf.BundleManifest.load(bundle)
        inputs, outputs = floor.step_io(manifest)
        files = floor.floor_models(manifest)
        for fmt, content in files.items():
            assert backends.model_ops(fmt, content) <= mf.ALLOWED_OPS[fmt][mf.DECODER_STEP]
        for backend in _here():
            model = backends.open_model(backend, files[backends.BACKENDS[backend].format], 1)
            assert {(t.name, t.dtype, tuple(t.shape)) for t in model.inputs} == \
                {(t.name, t.dtype, tuple(t.shape)) for t in inputs}
            feeds = backends.zero_feeds(model, 3)
            feeds[mf.PREV_TOKEN] = np.array([1, 2, 3], np.int32)
            out = model.run(feeds)
            assert {k: v.shape for k, v in out.items()} == {t.name: (3, *t.shape[1:]) for t in outputs}
            assert out[mf.PROBS][:, 0].tolist() == [1.0, 2.0, 3.0] and (out[mf.NEXT_STATE_H] == 1).all()
    if HAS_TRAIN:
        import onnx

        onnx.checker.check_model(onnx.load_from_string(files["onnx"]), full_check=True)


def test_machine_says_when_it_is_emulated(monkeypatch):
    from seq2seq_edge.bench import harness

    monkeypatch.setenv(harness.EMULATED_ENV, "arm64 under qemu-user on x86_64")
    m = harness.machine()
    assert m["emulated"] is True and m["emulation"] == "arm64 under qemu-user on x86_64"
    monkeypatch.delenv(harness.EMULATED_ENV)
    # an arm64 process that reads an x86 host's /proc/cpuinfo: qemu-user
    monkeypatch.setattr(harness.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(harness, "_cpuinfo", lambda: {"vendor_id": "AuthenticAMD", "model name": "AMD EPYC",
                                                      "flags": "avx2"})
    m = harness.machine()
    assert m["emulated"] and "AMD EPYC" in m["emulation"] and "emulated" in m["slug"]
    # a Raspberry Pi 4's own /proc/cpuinfo
    monkeypatch.setattr(harness, "_read", lambda path: "")
    monkeypatch.setattr(harness, "_hwcaps", lambda: None)
    monkeypatch.setattr(harness, "_cpuinfo", lambda: {"features": "fp asimd evtstrm crc32 cpuid",
                                                      "cpu implementer": "0x41", "cpu part": "0xd08",
                                                      "model": "Raspberry Pi 4 Model B Rev 1.4"})
    m = harness.machine()
    assert not m["emulated"] and m["cpu"] == "Raspberry Pi 4 Model B Rev 1.4, Cortex-A72"
    assert m["isa_flags"] == ["asimd", "fp"]


# ---- compare ------------------------------------------------------------------------------------------------------
def _variant_of(results_json: Path, out: Path, change) -> Path:
    summary = json.loads(results_json.read_text())
    for r in summary["results"]:
        change(r)
    out.write_text(json.dumps(summary))
    return out


def _other_machine(r):
    r["machine"].update(label="Raspberry Pi 5 (test)", slug="pi5", arch="aarch64", cores=4, emulated=True,
                        emulation="qemu-user (test)")
    for x in r["runtime"]:
        x["word_latency_ms"] = {k: v * 20 for k, v in x["word_latency_ms"].items()}


def test_compare_merges_two_machines_into_one_table_and_chart(cli_run, capsys, tmp_path):
    a = cli_run / "results.json"
    b = _variant_of(a, tmp_path / "pi.json", _other_machine)
    code, out, err = s2s_in_process(capsys, "bench", "--compare", a, b, "--out", tmp_path / "cmp")
    assert code == 0, err
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert out.startswith(md) and "Raspberry Pi 5 (test) **EMULATED**" in md and "qemu-user (test)" in md
    assert "### Per-word latency" in md and "### Floor" in md and "### Cold start" in md and "×20" in md
    merged = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert merged["schema"] == "seq2seq-edge-bench-compare" and not merged["mismatches"]
    assert [m["key"] for m in merged["machines"]] == ["A", "B"]
    assert {row["machine"] for row in merged["rows"]} == {"A", "B"}
    assert (tmp_path / "cmp" / "chart.svg").read_text().startswith("<svg")
    # the emulated run's own report says so, too
    from seq2seq_edge.bench import compare, report

    assert "**EMULATED**" in report.markdown(compare.load(b))


def test_compare_tells_two_runs_of_one_machine_apart(cli_run, capsys, tmp_path):
    for name in ("venv-tflite", "venv-onnx"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_bytes((cli_run / "results.json").read_bytes())
    code, _, err = s2s_in_process(capsys, "bench", "--compare", tmp_path / "venv-tflite" / "results.json",
                       tmp_path / "venv-onnx" / "results.json", "--out", tmp_path / "cmp")
    assert code == 0, err
    label = json.loads((cli_run / "results.json").read_text())["results"][0]["machine"]["label"]
    merged = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [m["label"] for m in merged["machines"]] == [f"{label} (venv-tflite)", f"{label} (venv-onnx)"]


def test_compare_refuses_other_bundles_and_settings_in_one_line(cli_run, capsys, tmp_path):
    a = cli_run / "results.json"

    def other_bundle(r):
        r["bundle"]["models_sha256"] = "0" * 64
        r["bundle"]["models"]["decoder_step.fp32.tflite"]["sha256"] = "0" * 64

    b = _variant_of(a, tmp_path / "other-bundle.json", other_bundle)
    code, out, err = s2s_in_process(capsys, "bench", "--compare", a, b, "--out", tmp_path / "cmp")
    assert code == 2 and not out and len(err.strip().splitlines()) == 1
    assert "different bundles" in err and "decoder_step.fp32.tflite" in err and "--allow-mismatch" in err
    assert not (tmp_path / "cmp").exists()
    code, out, err = s2s_in_process(capsys, "bench", "--compare", a, b, "--out", tmp_path / "cmp", "--allow-mismatch")
    assert code == 0 and "warning" in err and "Forced comparison" in (tmp_path / "cmp" / "compare.md").read_text()

    c = _variant_of(a, tmp_path / "full.json", lambda r: r["settings"].update(mode="full", word_sample=500))
    code, _, err = s2s_in_process(capsys, "bench", "--compare", a, c, "--out", tmp_path / "cmp2")
    assert code == 2 and "different settings (mode quick vs full, word_sample 50 vs 500)" in err
    # the thread list only chooses contenders: rows are matched by their own setting
    d = _variant_of(a, tmp_path / "threads.json", lambda r: r["settings"].update(threads=["1", "max"]))
    assert s2s_in_process(capsys, "bench", "--compare", a, d, "--out", tmp_path / "cmp3")[0] == 0

    bad = tmp_path / "bad.json"
    for content, why in (("{}", "not a results.json of s2s bench"), ("[", "not a JSON results file")):
        bad.write_text(content)
        code, _, err = s2s_in_process(capsys, "bench", "--compare", a, bad, "--out", tmp_path / "cmp4")
        assert code == 2 and why in err and len(err.strip().splitlines()) == 1
    newer = _variant_of(a, tmp_path / "v2.json", lambda r: None)
    data = json.loads(newer.read_text())
    data["schema_version"] = 2
    newer.write_text(json.dumps(data))
    code, _, err = s2s_in_process(capsys, "bench", "--compare", a, newer, "--out", tmp_path / "cmp5")
    assert code == 2 and "schema version 2" in err
    code, _, err = s2s_in_process(capsys, "bench", "--compare", a, "--out", tmp_path / "cmp6")
    assert code == 2 and "at least two" in err


# ---- with TensorFlow: the Keras contenders and the reference report -------------------------------------------------
@requires_train
def test_quick_bench_with_keras_writes_the_reference_report(fixture_dir, tmp_path):
    from seq2seq_edge.bench import harness, report, runtime_bench

    bundle, run = fixture_dir / "bundles" / "digits", fixture_dir / "runs" / "digits"
    s = runtime_bench.settings(quick=True, threads=("1",), **TINY, keras_predict_words=2, keras_direct_words=3)
    result = harness.bench(bundle, run_dir=run, settings=s)
    summary = report.write([result], tmp_path, png=True, targets=True)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"][0]["bundle"]["name"] == "digits" and summary["targets"]
    assert "### Targets" in (tmp_path / "results.md").read_text()
    assert not report.write([result], tmp_path / "user")["targets"]  # a user's bench: figures, no goals
    assert "### Targets" not in (tmp_path / "user" / "results.md").read_text()
    contenders = {(r["backend"], r["variant"], r["threads"]) for r in result["runtime"]}
    assert ("litert", "fp32", 1) in contenders and ("onnx", "int8", 1) in contenders
    assert result["keras_predict_per_char"]["word_latency_ms"]["p50"] > 0
    assert result["cold_start"]["keras"]["output"] == result["cold_start"]["runtime_litert"]["output"] == "one"
    assert set(result["floors_us"]) == {"litert", "onnx"}
    assert {"word_speedup_vs_seed_predict@litert", "cold_start_speedup@litert",
            "loop_step_over_raw_step@litert", "step_floor_fraction@onnx"} <= set(result["ratios"])
    md = (tmp_path / "results.md").read_text()
    assert "| litert fp32 | 1 |" in md and "| keras direct |" in md and "### Targets" in md
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
    other = copy.deepcopy(result)
    other["machine"]["label"] = "another"
    assert "keras direct" in _compare_md([result, other], tmp_path)


def _compare_md(results, tmp_path):
    from seq2seq_edge.bench import compare, report

    paths = []
    for i, r in enumerate(results):
        report.write([r], tmp_path / f"r{i}")
        paths.append(tmp_path / f"r{i}" / "results.json")
    return compare.markdown(compare.merge(paths))


def test_decoder_hooks_the_harness_and_the_gate_use(digits_bundle):
    """decode_ids on a decoder built around wrapped models (the harness times them) and steps() (each step of
    the loop, observed) give what decode gives."""
    import seq2seq_edge
    from seq2seq_edge.decoder import Seq2SeqDecoder, padded_batches

    decoder = seq2seq_edge.load(digits_bundle, one_call=False)  # the step loop is what is observed here
    texts = [str(d) for d in range(1, 10)]
    expected = decoder.decode_batch_results(texts)
    ids = [decoder.preprocessing.encode_input(t) for t in texts]
    calls = []

    class Counted:
        def __init__(self, model):
            self.model = model

        def run(self, feeds):
            calls.append(feeds)
            return self.model.run(feeds)

    wrapped = Seq2SeqDecoder(decoder.manifest, Counted(decoder.internals.encoder),
                             Counted(decoder.internals.decoder_step), backend=decoder.backend, variant=decoder.variant)
    assert wrapped.decode_ids(ids + [[]]) == expected + [decoder.decode_result("")] and calls
    (batch,) = padded_batches(ids, 32, decoder.manifest.encoder_time_steps)
    steps = list(decoder.internals.steps(batch))
    assert len(steps) == len(calls) - 1  # the encoder, then one step model call per observed step
    vocab = decoder.preprocessing.target_vocabulary
    for row, result in enumerate(expected):
        assert tuple(vocab[chosen[row]] for chosen, _, _, _ in steps[:len(result.tokens)]) == result.tokens
        assert [float(probs[row, chosen[row]]) for chosen, probs, _, _ in steps[:len(result.token_probs)]] == \
            list(result.token_probs)


@pytest.mark.parametrize("content, pattern", [
    ("[" * 100_000 + "]" * 100_000, r"not a JSON results file \(nested too deeply\)"),
    ('{"schema": "seq2seq-edge-bench", "schema_version": 1, "results": [{"bundle": 5, "settings": {}, "machine": {}, '
     '"runtime": [], "floors_us": {}, "cold_start": {}}]}', r"not a results file s2s bench wrote \(TypeError"),
    ('{"schema": "seq2seq-edge-bench", "schema_version": 1, "results": NaN}', r"NaN is not a number JSON has"),
    ("{", r"not a JSON results file \(JSONDecodeError"),
])
def test_compare_reads_only_what_bench_wrote_in_one_line(cli_run, capsys, tmp_path, content, pattern):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, out, err = s2s_in_process(capsys, "bench", "--compare", cli_run / "results.json", bad, "--out", tmp_path / "cmp")
    assert code == 2 and not out and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(pattern, err), err


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_compare_and_eval_refuse_what_is_not_a_regular_file(cli_run, digits_bundle, capsys, tmp_path, special):
    path = tmp_path / "fifo" if special == "fifo" else Path(special)
    if special == "fifo":
        os.mkfifo(path)
    code, _, err = s2s_in_process(capsys, "bench", "--compare", cli_run / "results.json", path, "--out", tmp_path / "cmp")
    assert code == 2 and re.search(r"results file is (a character device|a FIFO), not a regular file", err), err
    code, _, err = s2s_in_process(capsys, "eval", digits_bundle, path)
    assert code == 2 and re.search(r"the TSV file is (a character device|a FIFO), not a regular file", err), err


# ---- the hygiene benchmark's lookup baseline -----------------------------------------------------------------------
def test_the_lookup_baseline_of_the_hygiene_benchmark():
    from seq2seq_edge.bench import hygiene
    from seq2seq_edge.evaluation.pairs import Pair

    train = [Pair("行人", "xíng rén"), Pair("银行", "yín háng"), Pair("行走", "xíng zǒu"), Pair("人们", "rén men")]
    assert hygiene.lookup_table(train) == {"行": "xíng", "人": "rén", "银": "yín", "走": "zǒu", "们": "men"}
    scores = hygiene.baseline(train, [Pair("行人", "xíng rén"), Pair("行业", "háng yè")])
    assert scores["exact_match"] == 0.5  # 行 is read xíng (2 of 3); 业 was never seen: no syllable
    assert scores["word_error_rate"] == 0.5  # 2 of 4 reference syllables wrong
    # Phrase by phrase, a model's outputs against the lookup's ("" where the model could not encode the phrase).
    test = [Pair("行人", "xíng rén"), Pair("银行", "yín háng"), Pair("人们", "rén men"), Pair("行业", "háng yè")]
    outputs = ["xíng rén", "yín háng", "rén mén", ""]  # the lookup reads 银行 yín xíng and 行业 xíng
    assert hygiene.against_lookup(train, test, outputs) == {"both": 1, "model_only": 1, "lookup_only": 1,
                                                             "neither": 1, "model_unseen_character": 0}
    # A model with an unknown token may read a phrase with an unseen character (业) right: counted apart.
    outputs[3] = "háng yè"
    assert hygiene.against_lookup(train, test, outputs) == {"both": 1, "model_only": 2, "lookup_only": 1,
                                                             "neither": 0, "model_unseen_character": 1}
    with pytest.raises(ValueError):  # one output per phrase, or the counts would be of the wrong phrases
        hygiene.against_lookup(train, test, outputs[:3])
