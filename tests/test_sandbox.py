"""The opt-in sandboxed decoder (seq2seq_edge.sandbox): the same results as load() in a limited child process; a
child that crashes, runs out of memory or time ends in a one-line BundleError, and the next call starts anew."""

from __future__ import annotations

import os
import signal

import pytest

import seq2seq_edge
from seq2seq_edge import InputTextError, BundleError
from seq2seq_edge.sandbox import SandboxedDecoder



@pytest.fixture(scope="module")
def inputs(numbers_bundle):
    import json

    return [i["input"] for i in json.loads((numbers_bundle / "golden.json").read_text())["items"]][:40]


def test_results_equal_load_in_process(numbers_bundle, inputs):
    direct = seq2seq_edge.load(numbers_bundle)
    with SandboxedDecoder(numbers_bundle) as boxed:
        assert boxed.decode_path == direct.decode_path and boxed.max_output_len == direct.max_output_len
        assert boxed.decode_batch_results(inputs, batch_size=8) == direct.decode_batch_results(inputs, batch_size=8)
        assert boxed.decode_result(inputs[0]) == direct.decode_result(inputs[0])
        assert boxed.decode(inputs[1], max_output_len=1) == direct.decode(inputs[1], max_output_len=1)
        beam = boxed.decode_result(inputs[2], beam_size=3, n_best=2)
        assert beam == direct.decode_result(inputs[2], beam_size=3, n_best=2) and len(beam.alternatives) == 1


def test_long_outputs_with_every_hypothesis_fit_the_reply_budget(tmp_path, numbers_bundle, inputs):
    # the longest target tokens (256 characters: 4-byte UTF-8, or U+0001, 6 bytes in JSON) at full length, n-best
    import json
    import shutil

    bundle = tmp_path / "long-tokens"
    shutil.copytree(numbers_bundle, bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    vocab = m["preprocessing"]["target"]["vocabulary"]
    m["preprocessing"]["target"]["vocabulary"] = vocab[:3] + [
        (chr(0x1F600 + i % 64) if i % 2 else "\x01") * 255 + chr(0x4E00 + i) for i in range(3, len(vocab))]
    (bundle / "manifest.json").write_text(json.dumps(m))
    direct = seq2seq_edge.load(bundle)
    with SandboxedDecoder(bundle) as boxed:
        options = dict(beam_size=4, n_best=4)
        assert boxed.decode_batch_results(inputs[:8], **options) == direct.decode_batch_results(inputs[:8], **options)


def test_user_errors_come_back_as_they_are_raised_in_process(numbers_bundle):
    direct = seq2seq_edge.load(numbers_bundle)
    with SandboxedDecoder(numbers_bundle) as boxed:
        for call in (lambda d: d.decode("zz"), lambda d: d.decode_batch(["1", "zz"])):
            with pytest.raises(InputTextError) as want:
                call(direct)
            with pytest.raises(InputTextError) as got:
                call(boxed)
            assert str(got.value) == str(want.value)
        with pytest.raises(ValueError, match="max_output_len must be between 1 and the trained maximum"):
            boxed.decode("1", max_output_len=99)
        with pytest.raises(TypeError, match="not one string"):
            boxed.decode_batch("12")
        assert boxed.decode("1") == direct.decode("1")  # the child is still there after user errors


def test_a_bundle_error_at_start(tmp_path):
    with pytest.raises(BundleError, match="no such bundle folder"):
        SandboxedDecoder(tmp_path / "missing")


def test_a_crash_is_one_error_and_the_next_call_starts_a_new_child(numbers_bundle):
    with SandboxedDecoder(numbers_bundle) as boxed:
        first = boxed.decode("12")
        os.kill(boxed._proc.pid, signal.SIGSEGV)  # what an interpreter bug on a crafted file does
        with pytest.raises(BundleError, match=r"crashed \(SIGSEGV\): the bundle is malformed or hostile"):
            boxed.decode("12")
        assert boxed.decode("12") == first


def test_a_call_past_its_time_is_stopped(numbers_bundle, inputs):
    with SandboxedDecoder(numbers_bundle) as boxed:
        os.kill(boxed._proc.pid, signal.SIGSTOP)  # a child that never answers (a runaway model)
        boxed.timeout_s = 0.5
        with pytest.raises(BundleError, match="took longer than 0.5 s on one call and was stopped"):
            boxed.decode("12")
        boxed.timeout_s = 30
        assert boxed.decode_batch(inputs[:3]) == seq2seq_edge.load(numbers_bundle).decode_batch(inputs[:3])


def test_the_child_runs_under_its_limits(numbers_bundle):
    with SandboxedDecoder(numbers_bundle, memory_mib=512, cpu_seconds=120) as boxed:
        limits = {line[:26].strip(): line[26:].split()[:2]
                  for line in open(f"/proc/{boxed._proc.pid}/limits").read().splitlines()[1:]}
        assert limits["Max address space"] == [str(512 * 2**20)] * 2
        assert limits["Max cpu time"] == ["120", "120"]
        assert limits["Max file size"] == ["0", "0"]
        assert os.readlink(f"/proc/{boxed._proc.pid}/cwd").startswith(("/tmp/s2s-sandbox-", "(unreachable)"))
        assert boxed.decode("12") == seq2seq_edge.load(numbers_bundle).decode("12")


def test_too_little_memory_is_one_error_at_start(numbers_bundle):
    # 64 MiB of address space: too little for numpy and an interpreter, as for a model that needs more
    with pytest.raises(BundleError) as e:
        SandboxedDecoder(numbers_bundle, memory_mib=64)
    assert "\n" not in str(e.value) and ("memory" in str(e.value) or "map segment" in str(e.value))


def test_bad_limits_are_refused(numbers_bundle):
    for kw in ({"memory_mib": 0}, {"cpu_seconds": -1}, {"timeout_s": 0}, {"timeout_s": float("nan")}):
        with pytest.raises(ValueError):
            SandboxedDecoder(numbers_bundle, **kw)
