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


def test_decoder_hooks_the_harness_and_the_gate_use(digits_bundle):
    """decode_ids on a decoder built around wrapped models (the harness times them) and steps() (each step of
    the loop, observed) give what decode gives."""
    import seq2seq_edge
    from seq2seq_edge.decoder import Seq2SeqDecoder, padded_batches

    decoder = seq2seq_edge.load(digits_bundle)
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

    wrapped = Seq2SeqDecoder(decoder.manifest, Counted(decoder.encoder), Counted(decoder.decoder_step),
                             backend=decoder.backend, variant=decoder.variant)
    assert wrapped.decode_ids(ids + [[]]) == expected + [decoder.decode_result("")] and calls
    (batch,) = padded_batches(ids, 32, decoder.manifest.encoder_time_steps)
    steps = list(decoder.steps(batch))
    assert len(steps) == len(calls) - 1  # the encoder, then one step model call per observed step
    vocab = decoder.preprocessing.target_vocabulary
    for row, result in enumerate(expected):
        assert tuple(vocab[chosen[row]] for chosen, _, _, _ in steps[:len(result.tokens)]) == result.tokens
        assert [float(probs[row, chosen[row]]) for chosen, probs, _, _ in steps[:len(result.token_probs)]] == \
            list(result.token_probs)
