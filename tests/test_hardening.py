"""Hardening: ONNX external data and version errors, soak memory, Ctrl-C on the CLI."""

import importlib.util
import shutil
import signal
import subprocess
import sys

import pytest

import seq2seq_edge
from conftest import bytes_read, default_signals
from support import resign
from seq2seq_edge import backends
from seq2seq_edge.errors import BundleError

needs_onnx = pytest.mark.skipif(not backends.is_installed("onnx") or importlib.util.find_spec("onnx") is None,
                                reason="needs onnx and onnxruntime")


@needs_onnx
@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd"])
def test_onnx_external_data_is_refused(digits_bundle, tmp_path, location):
    import onnx

    bundle = tmp_path / "bundle"
    shutil.copytree(digits_bundle, bundle)
    (tmp_path / "outside.bin").write_bytes(b"\0" * 100000)
    proto = onnx.load(bundle / "decoder_step.fp32.onnx")
    init = proto.graph.initializer[0]
    init.ClearField("raw_data")
    init.data_location = onnx.TensorProto.EXTERNAL
    entry = init.external_data.add()
    entry.key, entry.value = "location", location
    resign(bundle, "decoder_step.fp32.onnx", proto.SerializeToString())
    with pytest.raises(BundleError, match=r"decoder_step.fp32.onnx: refers to external data for \[.*\]; bundle "
                                          r"models must embed their weights"):
        seq2seq_edge.load(bundle, backend="onnx")


@needs_onnx
def test_onnx_newer_than_the_runtime_says_which_version_is_needed(digits_bundle, tmp_path):
    import onnx

    bundle = tmp_path / "bundle"
    shutil.copytree(digits_bundle, bundle)
    proto = onnx.load(bundle / "encoder.fp32.onnx")
    proto.ir_version = 99
    resign(bundle, "encoder.fp32.onnx", proto.SerializeToString())
    with pytest.raises(BundleError, match=r"encoder.fp32.onnx: ONNX Runtime [\d.]+ refused the model: .*99.*the model "
                                          r"has IR version 99 and opset 17, which needs a newer onnxruntime"):
        seq2seq_edge.load(bundle, backend="onnx")


def test_onnx_garbage_is_refused_before_onnxruntime(digits_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(digits_bundle, bundle)
    resign(bundle, "encoder.fp32.onnx", b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 50)
    if not backends.is_installed("onnx"):
        pytest.skip("onnxruntime is not installed")
    with pytest.raises(BundleError, match=r"encoder.fp32.onnx: not a valid ONNX model \(.*\)"):
        seq2seq_edge.load(bundle, backend="onnx")


def test_soak_memory_stays_flat(numbers_bundle):
    """A short soak: resident memory after warm-up grows by less than 1 MB over 20k decodes."""
    from seq2seq_edge.bench import soak

    result = soak.soak(numbers_bundle, decodes=20_000, warmup=2_000)
    assert result["decodes"] == 20_000
    assert result["rss_growth_mb"] < 1.0, result


def test_ctrl_c_answers_every_line_read(digits_bundle):
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq_edge.cli", "run", str(digits_bundle), "--batch-size", "3"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=default_signals)
    proc.stdin.write(b"1\n2\n3\n")
    proc.stdin.flush()
    # A full batch is answered at once: reading it proves the process is in its read loop.
    assert [proc.stdout.readline() for _ in range(3)] == [b"one\n", b"two\n", b"three\n"]
    before = bytes_read(proc.pid)
    proc.stdin.write(b"4\n5\n")  # half a batch: read, then waiting for more input
    proc.stdin.flush()
    while bytes_read(proc.pid) < before + 4:  # the process has read both lines (an event, not a clock)
        assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert out.decode() == "four\nfive\n"
    assert b"Traceback" not in err and b"s2s run: interrupted" in err


def test_a_run_started_with_sigint_ignored_keeps_ignoring_it(digits_bundle):
    """A job a script starts with & inherits SIGINT ignored: the Ctrl-C meant for the script's foreground
    must not stop it. s2s run answers on and ends when its input does."""
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq_edge.cli", "run", str(digits_bundle)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        proc.stdin.write(b"1\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"one\n"  # in its read loop, SIGINT handling settled
        proc.send_signal(signal.SIGINT)
        proc.stdin.write(b"2\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"two\n"
        out, err = proc.communicate(b"3\n", timeout=30)
        assert (proc.returncode, out, err) == (0, b"three\n", b"")
    finally:
        proc.kill()
        proc.wait()


def test_ctrl_c_while_a_chunk_is_split_into_lines_loses_none(digits_bundle, monkeypatch, capsys):
    """The race the test above can only sometimes hit, made certain: Ctrl-C arrives while the reader is between two
    lines of one chunk. Both are answered, then the command stops with 130 without reading on."""
    import os

    from seq2seq_edge import lines
    from seq2seq_edge.cli import main

    read_on = []

    def one_chunk_then_ctrl_c(fd, limit, name="stdin"):
        yield lines.READ
        yield "stdin:1", "4"
        os.kill(os.getpid(), signal.SIGINT)  # delivered here, inside the reader
        yield "stdin:2", "5"
        yield lines.READ
        read_on.append(True)
        yield "stdin:3", "6"

    r, w = os.pipe()
    monkeypatch.setattr(lines, "fd_lines", one_chunk_then_ctrl_c)
    # As a terminal starts Python, whatever started pytest (a job a script starts with & inherits SIGINT ignored).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with os.fdopen(r) as stdin:
            monkeypatch.setattr(sys, "stdin", stdin)
            assert main(["run", str(digits_bundle), "--batch-size", "3"]) == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # s2s run puts back what it found
    finally:
        signal.signal(signal.SIGINT, inherited)
    os.close(w)
    out, err = capsys.readouterr()
    assert out == "four\nfive\n" and "s2s run: interrupted" in err and not read_on
