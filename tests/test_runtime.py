"""The runtime on every installed backend: exact golden strings, batching, threads, streaming, limits, errors.

These tests need only numpy and one interpreter (they run in the runtime-only venvs too).
"""

import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import seq2seq_edge
from seq2seq_edge import backends
from seq2seq_edge import manifest as mf
from seq2seq_edge.decoder import ONE_CALL_ATOL
from seq2seq_edge import DecodeOptions, OptionError
from seq2seq_edge.errors import BackendUnavailableError, BundleError, InputTextError

from make_vectors import BUNDLES

INSTALLED = [b for b in backends.AUTO_ORDER if backends.is_installed(b)]
FP32 = [(b, "fp32") for b in INSTALLED]
ALL_VARIANTS = [(b, v) for b in INSTALLED for v in mf.VARIANTS[backends.BACKENDS[b].format]]


def golden(bundle: Path):
    items = json.loads((bundle / "golden.json").read_text(encoding="utf-8"))["items"]
    return [i["input"] for i in items], [i["output"] for i in items]


def test_some_backend_is_installed():
    assert INSTALLED, "no inference backend installed"


@pytest.mark.parametrize("backend,variant", FP32)
@pytest.mark.parametrize("bundle_name", BUNDLES)
def test_fp32_reproduces_keras_golden_strings(fixture_dir, bundle_name, backend, variant):
    bundle = fixture_dir / "bundles" / bundle_name
    inputs, expected = golden(bundle)
    decoder = seq2seq_edge.load(bundle, backend=backend, variant=variant)
    assert decoder.decode_batch(inputs, batch_size=64) == expected
    assert [decoder.decode(s) for s in inputs[:20]] == expected[:20]


@pytest.mark.parametrize("backend,variant", ALL_VARIANTS)
@pytest.mark.parametrize("bundle_name", BUNDLES)
def test_one_call_and_step_loop_decode_alike(fixture_dir, bundle_name, backend, variant):
    """The one-call greedy model and the step loop give the same results (texts, finished, probabilities) on
    every golden input, one by one and in batches; fp32 gives the exporter's strings through both."""
    bundle = fixture_dir / "bundles" / bundle_name
    inputs, expected = golden(bundle)
    fmt = backends.BACKENDS[backend].format
    default = seq2seq_edge.load(bundle, backend=backend, variant=variant)
    if (fmt, variant) == ("onnx", "int8"):  # export writes none: see export/model_files.NO_GREEDY
        assert default.decode_path == "step-loop" and default.internals.greedy_model is None
        with pytest.raises(BundleError, match=r"the bundle has no one-call greedy onnx int8 model"):
            seq2seq_edge.load(bundle, backend=backend, variant=variant, one_call=True)
        return
    # TFLite decodes with the greedy model by default, ONNX with the step loop (loader.ONE_CALL_BY_DEFAULT)
    assert default.decode_path == ("one-call" if fmt == "tflite" else "step-loop")
    decoder = seq2seq_edge.load(bundle, backend=backend, variant=variant, one_call=True)
    assert decoder.decode_path == "one-call"
    step_loop = seq2seq_edge.load(bundle, backend=backend, variant=variant, one_call=False)
    assert step_loop.decode_path == "step-loop"
    for batch_size in (64, 5, 1):
        one = decoder.decode_batch_results(inputs, batch_size=batch_size)
        steps = step_loop.decode_batch_results(inputs, batch_size=batch_size)
        assert [(r.tokens, r.finished) for r in one] == [(r.tokens, r.finished) for r in steps]
        assert np.allclose([p for r in one for p in r.token_probs], [p for r in steps for p in r.token_probs],
                           atol=ONE_CALL_ATOL[variant], rtol=0)
    if variant == "fp32":
        assert [r.text for r in one] == expected
    # A shorter limit cuts the one-call output exactly where the step loop stops.
    limit = max(1, decoder.max_output_len // 2)
    one = decoder.decode_batch_results(inputs, max_output_len=limit)
    steps = step_loop.decode_batch_results(inputs, max_output_len=limit)
    assert [(r.tokens, r.finished, len(r.token_probs)) for r in one] == [
        (r.tokens, r.finished, len(r.token_probs)) for r in steps]
    assert any(not r.finished for r in one) or all(len(r.tokens) < limit for r in one)


@pytest.mark.parametrize("backend,variant", FP32)
def test_digits_decode_the_seed_words(digits_bundle, backend, variant):
    decoder = seq2seq_edge.load(digits_bundle, backend=backend)
    assert decoder.decode_batch([str(d) for d in range(1, 10)]) == [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.mark.parametrize("backend,variant", ALL_VARIANTS)
@pytest.mark.parametrize("bundle_name", ["numbers", "attention"])
def test_every_variant_loads_and_decodes(fixture_dir, bundle_name, backend, variant):
    bundle = fixture_dir / "bundles" / bundle_name
    decoder = seq2seq_edge.load(bundle, backend=backend, variant=variant)
    inputs, expected = golden(bundle)
    got = decoder.decode_batch(inputs)
    agreement = sum(g == e for g, e in zip(got, expected)) / len(expected)
    assert agreement >= 0.9, (backend, variant, agreement)
    # The same strings whatever batch sizes came before (tflite-runtime 2.14 once broke after a resize).
    # ONNX Runtime's dynamic int8 quantizes activations with one scale per tensor, so there a row can depend on
    # the other rows of its batch (documented); TFLite's hybrid int8 scales each row and stays exact.
    rebatched = decoder.decode_batch(inputs, batch_size=7) + [decoder.decode(s) for s in inputs[:20]]
    reference = got + got[:20]
    if (backend, variant) == ("onnx", "int8"):
        assert sum(a == b for a, b in zip(rebatched, reference)) >= 0.97 * len(reference)
    else:
        assert rebatched == reference
        assert decoder.decode_batch(inputs, batch_size=64) == got


@pytest.mark.parametrize("backend,variant", FP32)
@pytest.mark.parametrize("bundle_name", ["numbers", "attention"])
def test_batch_equals_single_for_mixed_lengths(fixture_dir, bundle_name, backend, variant):
    decoder = seq2seq_edge.load(fixture_dir / "bundles" / bundle_name, backend=backend)
    texts = ["7", "512", "40", "999", "3", "", "18", "100", "61"]
    singles = [decoder.decode(t) for t in texts]
    for batch_size in (1, 2, 4, 64):
        assert decoder.decode_batch(texts, batch_size=batch_size) == singles
    assert decoder.decode_batch([]) == []


@pytest.mark.parametrize("backend,variant", FP32)
def test_scores_probabilities_and_streaming(numbers_bundle, backend, variant):
    decoder = seq2seq_edge.load(numbers_bundle, backend=backend)
    result = decoder.decode_result("512")
    assert result.text == decoder.decode("512")
    assert result.finished and len(result.token_probs) == len(result.tokens) + 1
    assert all(0.0 < p <= 1.0 for p in result.token_probs)
    assert result.score == pytest.approx(float(np.sum(np.log(result.token_probs))))
    assert "".join(decoder.stream("512")) == result.text  # words come with the space before them
    assert list(decoder.stream("")) == []


@pytest.mark.parametrize("backend,variant", FP32)
def test_max_output_len_caps_the_output(numbers_bundle, backend, variant):
    decoder = seq2seq_edge.load(numbers_bundle, backend=backend)
    full = decoder.decode_result("777")
    capped = decoder.decode_result("777", max_output_len=2)
    assert capped.tokens == full.tokens[:2] and not capped.finished
    assert [p.strip() for p in decoder.stream("777", max_output_len=2)] == list(full.tokens[:2])
    with pytest.raises(ValueError, match="max_output_len must be at least 1, got 0"):
        decoder.decode("777", max_output_len=0)
    with pytest.raises(ValueError, match="got 99"):
        decoder.decode("777", max_output_len=99)


def test_one_options_object_for_every_decode_method(numbers_bundle):
    decoder = seq2seq_edge.load(numbers_bundle)
    opts = DecodeOptions(beam_size=3, n_best=2, max_output_len=3)
    inputs = ["12", "777", "4", "909"]
    results = decoder.decode_batch_results(inputs, opts)
    assert all(len(r.alternatives) == 1 and len(r.tokens) <= 3 for r in results)

    def outputs(rs):  # probabilities differ in the last bits between batch sizes on some interpreters
        return [(r.text, r.tokens, r.finished, [a.text for a in r.alternatives]) for r in rs]
    assert outputs(results) == outputs([decoder.decode_result(x, opts) for x in inputs])
    assert decoder.decode_batch(inputs, opts) == [r.text for r in results] == [decoder.decode(x, opts) for x in inputs]
    assert outputs(decoder.decode_ids([decoder.preprocessing.encode_input(x) for x in inputs], opts)) == outputs(results)
    assert ["".join(decoder.stream(x, opts)) for x in inputs] == [r.text for r in results]  # beam search streamed
    # keyword arguments replace the object's fields; the object itself is unchanged
    greedy = decoder.decode_batch_results(inputs, opts, beam_size=None, n_best=1)
    assert outputs(greedy) == outputs(decoder.decode_batch_results(inputs, max_output_len=3)) and opts.beam == 3
    assert [r.tokens for r in greedy] == [r.tokens[:3] for r in decoder.decode_batch_results(inputs)]
    with pytest.raises(TypeError, match="unknown decode option 'beam' "):
        decoder.decode("1", beam=3)
    with pytest.raises(TypeError, match="options must be a DecodeOptions, not dict"):
        decoder.decode("1", {"beam_size": 2})
    with pytest.raises(OptionError, match=r"^n_best \(3\) cannot exceed beam_size \(2\)$"):
        DecodeOptions(beam_size=2, n_best=3)
    with pytest.raises(OptionError, match="^batch_size must be between 1 and 4096, got 0$"):
        decoder.decode_batch(inputs, opts, batch_size=0)
    with pytest.raises(TypeError, match="^skip_unknown must be True or False, not str$"):
        DecodeOptions(skip_unknown="yes")
    with pytest.warns(DeprecationWarning, match="batch_size=N"):  # the positional batch size of 0.3
        assert decoder.decode_batch(inputs, 2) == decoder.decode_batch(inputs)


def test_the_0_4_option_names_still_work(numbers_bundle, tmp_path):
    from seq2seq_edge import answer, beam
    from seq2seq_edge.scale.batch_files import iter_decode_file

    with pytest.warns(DeprecationWarning, match="answer.RunOptions"):
        legacy = answer.DecodeOptions(batch_size=8, keep_going=True)
    assert legacy == answer.RunOptions(decode=DecodeOptions(batch_size=8), keep_going=True)
    assert beam.MAX_BEAM_SIZE == 64
    decoder = seq2seq_edge.load(numbers_bundle)
    inputs = tmp_path / "in.txt"
    inputs.write_text("12\n7\n", encoding="utf-8")
    got = list(iter_decode_file(decoder, str(inputs), options=DecodeOptions(beam_size=2)))  # the decode options alone
    assert [r.text for _, r in got] == decoder.decode_batch(["12", "7"], beam_size=2)
    with pytest.raises(TypeError, match="not both"):
        list(iter_decode_file(decoder, str(inputs), options=DecodeOptions(), batch_size=2))
    with pytest.warns(DeprecationWarning) as caught:
        decoder.decode_batch(["12"], 2)
    assert caught[0].filename == __file__  # the warning names the caller's line, where Python's filters show it


@pytest.mark.parametrize("backend,variant", FP32)
def test_many_threads_give_the_sequential_results(numbers_bundle, backend, variant):
    decoder = seq2seq_edge.load(numbers_bundle, backend=backend)
    texts = [str(n) for n in range(0, 1000, 7)]
    sequential = [decoder.decode(t) for t in texts]
    barrier = threading.Barrier(32)

    def work(offset):
        barrier.wait()
        order = texts[offset:] + texts[:offset]
        return dict(zip(order, (decoder.decode(t) for t in order)))

    with ThreadPoolExecutor(32) as pool:
        for result in pool.map(work, range(0, 320, 10)):
            assert [result[t] for t in texts] == sequential
        batched = list(pool.map(lambda chunk: decoder.decode_batch(chunk, batch_size=8),
                                [texts[i:i + 20] for i in range(0, len(texts), 20)]))
    assert sum(batched, []) == sequential


def test_bad_inputs_raise_clear_errors(digits_bundle):
    decoder = seq2seq_edge.load(digits_bundle)
    assert decoder.decode("") == ""
    with pytest.raises(InputTextError, match="never saw: 'x', U\\+0000"):
        decoder.decode("x\x00")
    assert decoder.decode("x7", skip_unknown=True) == "seven"
    with pytest.raises(InputTextError, match="input is 2 tokens long; the model takes at most 1"):
        decoder.decode("77")
    with pytest.raises(InputTextError, match="1000000 characters long"):
        decoder.decode("7" * 1_000_000)
    with pytest.raises(TypeError, match="input must be str, not int"):
        decoder.decode(7)
    with pytest.raises(TypeError, match="not one string"):
        decoder.decode_batch("77")


def _copy(bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(bundle, dst)
    return dst


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_tampered_truncated_and_missing_model_files_are_named(digits_bundle, tmp_path, fmt):
    backend = next((b for b in INSTALLED if backends.BACKENDS[b].format == fmt), None)
    if backend is None:
        pytest.skip(f"no {fmt} backend installed")
    bundle = _copy(digits_bundle, tmp_path)
    target = bundle / f"decoder_step.fp32.{fmt}"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"decoder_step.fp32.{fmt}: model file's sha256 does not match"):
        seq2seq_edge.load(bundle, backend=backend)
    target.write_bytes(bytes(data[:100]))
    with pytest.raises(BundleError, match=r"is 100 bytes, the manifest says \d+ \(truncated or replaced\)"):
        seq2seq_edge.load(bundle, backend=backend)
    target.unlink()
    with pytest.raises(BundleError, match=f"decoder_step.fp32.{fmt}: model file is missing"):
        seq2seq_edge.load(bundle, backend=backend)


def test_manifest_that_contradicts_the_models_is_refused(digits_bundle, tmp_path):
    bundle = _copy(digits_bundle, tmp_path)
    path = bundle / "manifest.json"
    d = json.loads(path.read_text())
    d["model"]["latent_dim"] = 33
    path.write_text(json.dumps(d))
    with pytest.raises(BundleError) as err:
        seq2seq_edge.load(bundle)
    # every model entry is reported in one error: encoder outputs, decoder inputs and outputs, per variant
    assert len(err.value.problems) == 3 * sum(len(v) for v in mf.VARIANTS.values())
    assert "contradict the contract" in str(err.value)
    d["model"]["latent_dim"] = 32
    for m in d["models"]:
        for t in m["outputs"]:
            if t["name"] == "probs":
                t["name"] = "logits"
    d["version"] = 99
    path.write_text(json.dumps(d))
    with pytest.raises(BundleError, match="manifest format version 99 is not supported") as err:
        seq2seq_edge.load(bundle)
    assert any("logits:float32" in p for p in err.value.problems)


def test_manifest_not_json_or_missing(digits_bundle, tmp_path):
    bundle = _copy(digits_bundle, tmp_path)
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="manifest.json: manifest is not valid JSON"):
        seq2seq_edge.load(bundle)
    (bundle / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest.json: manifest is missing"):
        seq2seq_edge.load(bundle)
    with pytest.raises(BundleError, match="no such bundle folder"):
        seq2seq_edge.load(tmp_path / "nowhere")


def test_missing_backend_says_what_to_install(digits_bundle, monkeypatch):
    missing = [b for b in backends.BACKENDS if b not in INSTALLED]
    if not missing:
        pytest.skip("every backend is installed")
    hint = r"in a clone of seq2seq-edge: pip install '\.\[" + missing[0] + r"\]'"
    with pytest.raises(BackendUnavailableError, match=hint):
        seq2seq_edge.load(digits_bundle, backend=missing[0])
    with pytest.raises(BackendUnavailableError, match="unknown backend 'tensorflow'"):
        seq2seq_edge.load(digits_bundle, backend="tensorflow")


def test_unknown_variant_lists_what_the_bundle_holds(digits_bundle):
    with pytest.raises(BundleError, match="the bundle has no 'int4' variant"):
        seq2seq_edge.load(digits_bundle, variant="int4")


def test_manifest_faults_are_reported_together(digits_bundle, tmp_path):
    bundle = _copy(digits_bundle, tmp_path)
    path = bundle / "manifest.json"
    d = json.loads(path.read_text())
    del d["version"]
    del d["model"]["latent_dim"]
    d["preprocessing"]["input"]["vocabulary"] = ["1", "1", "2"]
    d["preprocessing"]["target"]["max_tokens"] = -3
    path.write_text(json.dumps(d))
    with pytest.raises(BundleError) as err:
        seq2seq_edge.load(bundle)
    problems = err.value.problems
    assert "missing format version ('version')" in problems
    assert "model.latent_dim must be an integer from 1 to 16384, got None" in problems
    assert "input.vocabulary must start with the special tokens ['<s2s pad>', '<s2s start>', '<s2s end>']" in problems
    assert "input.vocabulary has duplicate entries: '1'" in problems
    assert "target.max_tokens must be an integer from 1 to 4096, got -3" in problems
    assert str(err.value).startswith(f"{path}: {len(problems)} problems: ")


def test_whitespace_only_and_control_characters(numbers_bundle):
    decoder = seq2seq_edge.load(numbers_bundle)
    assert decoder.decode("") == ""
    with pytest.raises(InputTextError, match=r"U\+0007"):
        decoder.decode("1\a2")
    with pytest.raises(InputTextError, match="' '"):
        decoder.decode("1 2")


def test_too_new_tflite_op_names_the_interpreter(fixture_dir):
    model = fixture_dir / "extra" / "per_channel_int8.tflite"
    if not backends.is_installed("tflite"):
        pytest.skip("tflite-runtime is not installed")
    with pytest.raises(BundleError, match=r"FULLY_CONNECTED' version '12'.*the installed tflite-runtime 2\.14\.0 "
                                          r"is too old for this model"):
        backends.open_model("tflite", model.read_bytes())


def test_attention_bundle_declares_its_contract(attention_bundle):
    manifest = mf.BundleManifest.load(attention_bundle)
    assert manifest.architecture == mf.ATTENTION_ARCHITECTURE
    T, E = manifest.encoder_time_steps, manifest.encoder_output_dim
    # bidirectional: a decoder layer has the encoder's two directions' units; its two stacked layers' states, then
    # the fed attention output (input feeding), are side by side in state_h and state_c
    assert 3 * E == manifest.latent_dim
    enc_in, enc_out = manifest.io(mf.ENCODER)
    step_in, _ = manifest.io(mf.DECODER_STEP)
    assert {t.name: t.shape for t in enc_out}[mf.ENCODER_OUTPUTS] == (-1, T, E)
    assert {t.name: t.shape for t in step_in}[mf.ENCODER_MASK] == (-1, T)
    raw = json.loads((attention_bundle / "manifest.json").read_text())
    assert raw["io"]["decoder_step"]["inputs"] == ["prev_token", "state_h", "state_c", "encoder_outputs",
                                                   "encoder_mask"]


@pytest.mark.parametrize("backend,variant", FP32)
def test_attention_feeds_follow_each_row(attention_bundle, backend, variant):
    """The encoder's outputs and mask go with their row through batches: mixed lengths give the single results."""
    decoder = seq2seq_edge.load(attention_bundle, backend=backend)
    texts = ["7", "512", "40", "999", "3", "18", "100"]
    feeds = decoder.internals.first_feeds(seq2seq_edge.decoder.padded_batches(
        [decoder.preprocessing.encode_input(t) for t in texts], 8, decoder.manifest.encoder_time_steps).__next__())
    assert set(feeds) == {mf.PREV_TOKEN, mf.STATE_H, mf.STATE_C, mf.ENCODER_OUTPUTS, mf.ENCODER_MASK}
    assert feeds[mf.ENCODER_MASK].sum(axis=1).tolist() == [1, 3, 2, 3, 1, 2, 3]
    assert decoder.decode_batch(texts, batch_size=4) == [decoder.decode(t) for t in texts]


def test_the_python_api_is_as_quiet_as_the_cli(numbers_bundle):
    """A program that loads and decodes sees no library log line on its stderr, and keeps its own lines."""
    code = ("import sys, seq2seq_edge\n"
            f"for backend in {INSTALLED!r}:\n"
            f"    d = seq2seq_edge.load({str(numbers_bundle)!r}, backend=backend)\n"
            "    d.decode('12')\n"
            "print('mine', file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert (proc.returncode, proc.stderr) == (0, "mine\n")


# ---- small API forms: batch errors, reprs, streaming ---------------------------------------------------------------
def test_decode_batch_names_the_item_that_failed(digits_bundle):
    decoder = seq2seq_edge.load(digits_bundle)
    with pytest.raises(InputTextError, match=r"^item 3 of 4 \('z'\): input has 1 symbol\(s\) the model never saw: 'z'$"):
        decoder.decode_batch(["1", "2", "z", "4"])
    with pytest.raises(TypeError, match=r"^item 2 of 2 \(int\): input must be str"):
        decoder.decode_batch(["1", 5])
    with pytest.raises(InputTextError, match=r"^item 1 of 1 \('" + "9" * 40 + r"'\.\.\. \(41 characters\)\)"):
        decoder.decode_batch(["9" * 41])
    with pytest.raises(InputTextError, match=r"^input has 1 symbol"):  # one input: nothing to name
        decoder.decode("z")


@pytest.mark.parametrize("backend, path", [(b, p) for b, p in (("onnx", "step-loop"), ("litert", "one-call"),
                                                                 ("tflite", "one-call")) if backends.is_installed(b)])
def test_reprs_say_what_matters(digits_bundle, backend, path):
    decoder = seq2seq_edge.load(digits_bundle, backend=backend)
    assert repr(decoder) == (f"Seq2SeqDecoder(bundle={str(digits_bundle)!r}, backend={backend!r}, variant='fp32', "
                             f"path={path!r}, input=char up to 1 tokens, output=char up to 5 tokens)")
    result = decoder.decode_result("7")
    text = repr(result)
    assert text.startswith(f"DecodeResult(text='seven', score={result.score:.4f}, finished=True, tokens=(")
    assert len(result.token_probs) == len(result.tokens) + 1  # the end marker's, as the docs say
    assert "end marker" in seq2seq_edge.DecodeResult.__doc__ and "len(tokens) + 1" in seq2seq_edge.DecodeResult.__doc__


def test_stream_yields_text_pieces_with_their_separators(numbers_bundle, digits_bundle):
    words = seq2seq_edge.load(numbers_bundle)
    for source in ("512", "40", "7", ""):
        pieces = list(words.stream(source))
        assert "".join(pieces) == words.decode(source)
        assert all(p.startswith(" ") for p in pieces[1:]) and not (pieces and pieces[0].startswith(" "))
    chars = seq2seq_edge.load(digits_bundle)
    assert list(chars.stream("7")) == list("seven")
