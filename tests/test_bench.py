"""The benchmark harness runs end to end in quick mode and writes its report. No timing is asserted."""

import json

from conftest import requires_train

pytestmark = requires_train


def test_quick_bench_writes_json_markdown_and_chart(fixture_dir, tmp_path):
    from seq2seq_edge.bench import harness, report

    bundle, run = fixture_dir / "bundles" / "digits", fixture_dir / "runs" / "digits"
    result = harness.bench(bundle, run_dir=run, quick=True)
    summary = report.write([result], tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"][0]["name"] == "digits" and summary["targets"]
    contenders = {(r["backend"], r["variant"], r["threads"]) for r in result["runtime"]}
    assert ("litert", "fp32", 1) in contenders and ("onnx", "int8", 1) in contenders
    for r in result["runtime"]:
        assert set(r["throughput_seq_per_s"]) == {"1", "8", "64", "256"}
        assert r["word_latency_ms"]["p50"] <= r["word_latency_ms"]["p99"]
    assert result["keras_predict_per_char"]["word_latency_ms"]["p50"] > 0
    assert result["cold_start"]["keras"]["output"] == result["cold_start"]["runtime_litert"]["output"] == "one"
    assert set(result["floors_us"]) == {"litert", "onnx"}
    assert {"word_speedup_vs_seed_predict@litert", "cold_start_speedup@litert",
            "loop_step_over_raw_step@litert"} <= set(result["ratios"])
    md = (tmp_path / "results.md").read_text()
    assert "| litert fp32 | 1 |" in md and "### Targets" in md
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
