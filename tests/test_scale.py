"""s2s run on files (runtime/batch_files.py): formats, order, worker processes, --resume after a killed run,
bad lines, one-line errors, and the Python API. Runtime only: no TensorFlow needed."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import default_signals
from seq2seq_edge import InputTextError, load
from seq2seq_edge.scale.batch_files import decode_file, iter_decode_file, resume_point

from support import s2s

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def s2s_lines(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("s2s ")]


def numbers(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(rng.randrange(1000)) for _ in range(n)]


@pytest.fixture(scope="module")
def reference(numbers_bundle):
    """The single-process runtime's results for 0..999: what every file decode must reproduce."""
    decoder = load(numbers_bundle)
    inputs = [str(i) for i in range(1000)]
    return dict(zip(inputs, decoder.decode_batch_results(inputs)))


def test_every_output_format_matches_the_runtime(numbers_bundle, reference, tmp_path):
    inputs = numbers(3000, seed=1)
    src = tmp_path / "in.txt"
    src.write_text("".join(x + "\n" for x in inputs))
    for name in ("out.txt", "out.tsv", "out.jsonl"):
        rc, out, err = s2s("run", numbers_bundle, "--input", src, "--output", tmp_path / name, "--workers", "2")
        assert (rc, out, s2s_lines(err)) == (0, "", [])
    assert (tmp_path / "out.txt").read_text().splitlines() == [reference[x].text for x in inputs]
    assert (tmp_path / "out.tsv").read_text().splitlines() == [f"{x}\t{reference[x].text}" for x in inputs]
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["input"], r["output"], r["finished"]) for r in records] == [
        (x, reference[x].text, reference[x].finished) for x in inputs]
    # Scores are sums of float32 logs: another batch (other neighbours, another size) may sum them in another
    # order (tflite-runtime 2.14 runs the one-call model's loop on kernels that do), so they agree to 1e-5.
    assert max(abs(r["score"] - reference[x].score) for r, x in zip(records, inputs)) <= 1e-5
    assert {r["variant"] for r in records} == {"fp32"} and all(1 <= r["batch_items"] <= 32 for r in records)
    rc, out, _ = s2s("run", numbers_bundle, "--json", inputs[0])  # the same fields as s2s run --json, in order
    single = json.loads(out)
    assert rc == 0 and list(records[0]) == list(single)
    assert {k: v for k, v in records[0].items() if not k.startswith("batch_") and k != "score"} == {
        k: v for k, v in single.items() if not k.startswith("batch_") and k != "score"}
    assert abs(records[0]["score"] - single["score"]) <= 1e-5
    # A .jsonl output is an input too (its "input" fields), and a .tsv's first column.
    for name in ("out.jsonl", "out.tsv"):
        rc, out, _ = s2s("run", numbers_bundle, "--input", tmp_path / name, "--workers", "1")
        assert rc == 0 and out.splitlines() == [reference[x].text for x in inputs]


def test_two_workers_equal_one_and_keep_the_order(numbers_bundle, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("".join(x + "\n" for x in numbers(20000, seed=2)))
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.txt"
        rc, _, err = s2s("run", numbers_bundle, "--input", src, "--output", out, "--workers", workers,
                         "--batch-size", "7")  # batches that do not divide the tasks
        assert rc == 0, err
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") == 20000
    # n-best on every line, TAB-separated, as s2s run prints it
    rc, out, _ = s2s("run", numbers_bundle, "--input", "-", "--workers", "2", "--beam", "3", "--n-best", "2",
                     stdin=b"7\n15\n")
    rc2, expected, _ = s2s("run", numbers_bundle, "--beam", "3", "--n-best", "2", "7", "15")
    assert rc == rc2 == 0 and out == expected and out.count("\t") == 2


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


@pytest.fixture(scope="module")
def big_input(numbers_bundle, tmp_path_factory):
    """150,000 inputs and their clean, uninterrupted .tsv output."""
    tmp = tmp_path_factory.mktemp("big")
    inputs = numbers(150000, seed=3)
    src = tmp / "in.txt"
    src.write_text("".join(x + "\n" for x in inputs))
    clean = tmp / "clean.tsv"
    assert decode_file(numbers_bundle, str(src), str(clean), workers=1).done == len(inputs)
    return inputs, src, clean


def _start_and_wait_for_output(numbers_bundle, src, out):
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq_edge.cli", "run", str(numbers_bundle), "--input",
                             str(src), "--output", str(out), "--workers", "2"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=default_signals)
    deadline = time.monotonic() + 60
    while not (out.exists() and out.stat().st_size > 20000) and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc to find the workers")
def test_resume_after_the_process_is_killed(numbers_bundle, big_input, tmp_path):
    inputs, src, clean = big_input
    out = tmp_path / "out.tsv"
    proc = _start_and_wait_for_output(numbers_bundle, src, out)
    workers = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)  # no handler, no cleanup: the worst stop
    proc.wait()
    killed_at = out.read_bytes()
    assert 0 < killed_at.count(b"\n") < len(inputs), "the run was not stopped mid-file"
    # The workers notice their parent is gone and exit by themselves.
    deadline = time.monotonic() + 60  # a safety net: the loop ends when the workers do
    while any(Path(f"/proc/{w}").exists() and b"zombie" not in Path(f"/proc/{w}/status").read_bytes().lower()
              for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [w for w in workers if Path(f"/proc/{w}/cmdline").exists() and Path(f"/proc/{w}/cmdline").read_bytes()]
    assert len(workers) >= 2 and not alive
    # A kill inside a write leaves part of a line: resume drops it.
    with open(out, "ab") as f:
        f.write("123\tone hundred".encode())
    rc, stdout, err = s2s("run", numbers_bundle, "--input", src, "--output", out, "--workers", "2", "--resume")
    assert (rc, stdout) == (0, ""), err
    assert out.read_bytes().splitlines() == clean.read_bytes().splitlines()
    # Resuming a finished output changes nothing; resuming another input's output is refused.
    rc, _, err = s2s("run", numbers_bundle, "--input", src, "--output", out, "--workers", "1", "--resume")
    assert rc == 0 and out.read_bytes() == clean.read_bytes()
    other = tmp_path / "other.txt"
    other.write_text("".join(x + "\n" for x in reversed(inputs)))
    rc, _, err = s2s("run", numbers_bundle, "--input", other, "--output", out, "--resume")
    assert rc == 2 and s2s_lines(err) == [
        f"s2s run: error: --resume: line {len(inputs)} of {out} is for input {inputs[-1]!r} but "
        f"{other}:{len(inputs)} is {inputs[0]!r}: not this input's output (--force starts over)"]


def test_ctrl_c_then_resume(numbers_bundle, big_input, tmp_path):
    inputs, src, clean = big_input
    out = tmp_path / "out.tsv"
    proc = _start_and_wait_for_output(numbers_bundle, src, out)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert (proc.returncode, s2s_lines(err.decode())) == (130, ["s2s run: interrupted"])
    assert 0 < out.read_bytes().count(b"\n") < len(inputs), "the run was not stopped mid-file"
    rc, _, err = s2s("run", numbers_bundle, "--input", src, "--output", out, "--workers", "2", "--resume")
    assert rc == 0, err
    assert out.read_bytes() == clean.read_bytes()


def test_resume_point_truncates_a_partial_line(tmp_path):
    out = tmp_path / "o.txt"
    out.write_bytes(b"one\ntwo\nthr")
    assert resume_point(str(out)) == (2, b"two") and out.read_bytes() == b"one\ntwo\n"
    out.write_bytes(b"partial")
    assert resume_point(str(out)) == (0, None) and out.read_bytes() == b""
    out.write_bytes(b"x" * 200000 + b"\n" + b"y" * 70000)  # lines longer than a backward read block
    assert resume_point(str(out)) == (1, b"x" * 200000)


def test_bad_lines_stop_the_run_or_are_kept_going(digits_bundle, tmp_path):
    src = tmp_path / "in.txt"
    src.write_bytes(b"1\n2\nz\n\xff\n3\n")
    rc, out, err = s2s("run", digits_bundle, "--input", src, "--workers", "2")
    assert (rc, out) == (2, "one\ntwo\n")
    assert s2s_lines(err) == [f"s2s run: error: {src}:3: input has 1 symbol(s) the model never saw: 'z'"]
    rc, _, err = s2s("run", digits_bundle, "--input", src, "--output", tmp_path / "o.jsonl", "--workers", "2",
                     "--keep-going")
    assert rc == 1 and s2s_lines(err) == [
        f"s2s run: error: {src}:3: input has 1 symbol(s) the model never saw: 'z'",
        f"s2s run: error: {src}:4: not valid UTF-8 (byte 0xff at column 1)",
        "s2s run: 2 of 5 inputs failed"]
    records = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r.get("output", r.get("error")) for r in records] == [
        "one", "two", f"{src}:3: input has 1 symbol(s) the model never saw: 'z'",
        f"{src}:4: not valid UTF-8 (byte 0xff at column 1)", "three"]
    assert [r["input"] for r in records] == ["1", "2", "z", None, "3"]
    rc, out, _ = s2s("run", digits_bundle, "--input", src, "--workers", "1", "--keep-going")
    assert rc == 1 and out == "one\ntwo\n\n\nthree\n"
    bad_json = tmp_path / "in.jsonl"
    bad_json.write_text('{"input": "4"}\n[1]\n')
    rc, out, err = s2s("run", digits_bundle, "--input", bad_json, "--workers", "1")
    assert (rc, out) == (2, "four\n")
    assert s2s_lines(err) == [f's2s run: error: {bad_json}:2: not a JSON object with a string "input"']


@pytest.mark.parametrize("args, message", [
    (["--workers", "2"], "--workers needs --input FILE (or --input - for standard input)"),
    (["--resume"], "--resume needs --input FILE (or --input - for standard input)"),
    (["--input", "IN", "--workers", "0"], "--workers must be between 1 and this machine's CPU count {cpus}, got 0"),
    (["--input", "IN", "--output", "o.csv"], "--output o.csv: the name must end in .txt, .tsv or .jsonl (the format)"),
    (["--input", "IN", "--output", "o.tsv", "--json"],
     "--json writes .jsonl; --output o.tsv is tsv (name it .jsonl, or drop --json)"),
    (["--input", "IN", "--resume"], "--resume needs --output FILE (standard output cannot be resumed)"),
    (["--input", "IN", "--output", "OUT", "--resume", "--force"],
     "--resume continues the output and --force overwrites it: give one"),
    (["--input", "IN", "--output", "OUT"], "--output OUT exists: --resume continues it, --force overwrites it"),
    (["--input", "IN", "--output", "IN", "--force"], "--output IN is the input file"),
    (["--input", "missing.txt"], "--input missing.txt: no such file"),
    (["--input", "IN", "5"], "give TEXT arguments or --input FILE, not both"),
])
def test_bad_flags_are_one_line_errors(digits_bundle, tmp_path, args, message):
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("1\n")
    out.write_text("one\n")
    names = {"IN": str(src), "OUT": str(out)}
    rc, stdout, err = s2s("run", digits_bundle, *[names.get(a, a) for a in args])
    expected = message.replace("IN", str(src)).replace("OUT", str(out)).format(cpus=os.cpu_count())
    assert (rc, stdout, s2s_lines(err)) == (2, "", [f"s2s run: error: {expected}"])
    assert out.read_text() == "one\n"  # nothing overwritten


def test_python_api(numbers_bundle, reference, tmp_path, capsys):
    inputs = numbers(2500, seed=4)
    src = tmp_path / "in.txt"
    src.write_text("".join(x + "\n" for x in inputs[:-1]) + "abc\n")  # the last is bad
    got = list(iter_decode_file(numbers_bundle, str(src), workers=2, keep_going=True))
    assert [t for t, _ in got] == inputs[:-1] + ["abc"]
    assert [r.text for _, r in got[:-1]] == [reference[x].text for x in inputs[:-1]]
    assert isinstance(got[-1][1], InputTextError) and str(got[-1][1]) == (
        f"{src}:2500: input has 3 symbol(s) the model never saw: 'a', 'b', 'c'")
    with pytest.raises(InputTextError, match=r":2500: input has 3 symbol"):
        for _ in iter_decode_file(numbers_bundle, str(src), workers=2):
            pass
    summary = decode_file(numbers_bundle, str(src), str(tmp_path / "o.txt"), keep_going=True, progress=True,
                          workers=1)
    assert (summary.done, summary.failed, summary.skipped) == (2500, 1, 0)
    assert "2500/2500" in capsys.readouterr().err  # the progress bar, when asked for
    summary = decode_file(numbers_bundle, str(src), str(tmp_path / "o.txt"), resume=True, keep_going=True)
    assert (summary.done, summary.skipped) == (0, 2500)


def test_the_file_api_takes_a_loaded_decoder_and_its_workers_load_the_same(numbers_bundle, tmp_path):
    """A decoder from load() decodes a file as it is (one worker) or through worker processes that load what it
    is: the same backend, variant and path, whatever DecodeOptions would choose by default."""
    from seq2seq_edge import backends

    # TFLite decodes with the one-call model by default: the workers must follow the step loop asked for here.
    backend = next(b for b in ("litert", "tflite", "onnx") if backends.is_installed(b))
    decoder = load(numbers_bundle, backend=backend, one_call=False)
    inputs = numbers(300, seed=5)
    src = tmp_path / "in.txt"
    src.write_text("".join(x + "\n" for x in inputs))
    expected = decoder.decode_batch(inputs)
    for workers in (1, 2):
        out = tmp_path / f"out{workers}.jsonl"
        summary = decode_file(decoder, str(src), str(out), workers=workers)
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert summary.done == 300 and [r["output"] for r in records] == expected
        assert {(r["backend"], r["path"]) for r in records} == {(decoder.backend, "step-loop")}
    assert [r.text for _, r in iter_decode_file(decoder, str(src))] == expected


@pytest.mark.parametrize("old, new", [("batch_files", "scale.batch_files"), ("ray_predictor", "scale.ray_predictor")])
def test_the_module_paths_of_earlier_releases_still_import_with_a_warning(old, new):
    import importlib
    import sys as _sys

    _sys.modules.pop(f"seq2seq_edge.{old}", None)
    with pytest.warns(DeprecationWarning, match=rf"seq2seq_edge\.{old} moved to seq2seq_edge\.{new}"):
        module = importlib.import_module(f"seq2seq_edge.{old}")
    current = importlib.import_module(f"seq2seq_edge.{new}")
    name = "decode_file" if old == "batch_files" else "decode_dataset"
    assert getattr(module, name) is getattr(current, name)
