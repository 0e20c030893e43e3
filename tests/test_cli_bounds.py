"""`s2s run` does not trust its flags or its input: bounded flags, bounded lines, bounded memory, answers as it goes.

Each case runs the CLI in a child process under an address-space limit and a timeout, and checks the one-line
error, exit status 2, no traceback, and the answers to every input before the bad one.
"""

import json
import os
import pty
import re
import resource
import select
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import seq2seq_edge
from seq2seq_edge import backends, text
from seq2seq_edge.errors import InputTextError
from seq2seq_edge.answer import MAX_BATCH_SIZE

#: A normal run peaks near 210 MB of address space (onnxruntime; LiteRT 175 MB): leave ample headroom.
ADDRESS_SPACE_LIMIT = 1024 * 2**20
#: A normal run's peak resident memory is 45-70 MB; buffering a 50 MB line whole took 147 MB.
PEAK_RSS_LIMIT_MB = 100
WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


#: Runs the command in argv[2:] under an address-space limit and writes its own peak resident memory (KB) to the
#: file argv[1]. A middle process is needed: a child forked straight from pytest would report pytest's resident
#: memory at the fork (Linux counts the forked copy's high-water mark) once a test has loaded TensorFlow.
MEASURE = """
import os, resource, subprocess, sys
resource.setrlimit(resource.RLIMIT_AS, (%d, %d))
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
""" % (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT)


def run(bundle, *args, stdin=None, timeout=60):
    """Run `s2s run BUNDLE ARGS` in a memory-limited child. ``stdin``: bytes (piped in by a thread), an open file
    or None (empty). Returns (exit code, stdout bytes, stderr text, peak resident MB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as peak:
        piped = isinstance(stdin, bytes)
        proc = subprocess.Popen([sys.executable, "-c", MEASURE, peak.name,
                                 sys.executable, "-m", "seq2seq_edge.cli", "run", str(bundle), *args],
                                stdin=subprocess.PIPE if piped else (stdin or subprocess.DEVNULL), stdout=out,
                                stderr=err)
        if piped:
            def feed():
                try:
                    proc.stdin.write(stdin)
                    proc.stdin.close()
                except BrokenPipeError:  # the child stopped reading: expected after an error
                    pass
            threading.Thread(target=feed, daemon=True).start()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"s2s run {' '.join(map(str, args))} did not finish in {timeout} s")
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read().decode("utf-8", "replace"), int(peak.read() or 0) / 1024


def assert_one_error(err: str, pattern: str) -> None:
    """Exactly one `s2s run: error: ...` line, matching ``pattern`` in full, and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("s2s ")]
    assert len(lines) == 1, err
    assert re.fullmatch(pattern, lines[0]), lines[0]


def test_threads_beyond_the_machine_are_refused_before_loading(digits_bundle):
    cpus = os.cpu_count()
    for backend, threads in (("onnx", cpus + 1), ("onnx", 500), ("auto", cpus + 1)):
        rc, out, err, _ = run(digits_bundle, "--backend", backend, "--threads", str(threads), "1", timeout=30)
        assert (rc, out) == (2, b"")
        assert_one_error(err, rf"s2s run: error: --threads must be between 1 and this machine's CPU count {cpus}, "
                              rf"got {threads}")
    rc, out, err, _ = run(digits_bundle, "--threads", "0", "1")
    assert rc == 2 and out == b"" and "got 0" in err
    backend = "onnx" if backends.is_installed("onnx") else "auto"
    rc, out, _, _ = run(digits_bundle, "--backend", backend, "--threads", str(cpus), "1", "2")
    assert (rc, out) == (0, b"one\ntwo\n")


@pytest.mark.parametrize("size", ["0", str(MAX_BATCH_SIZE + 1), "1000000000"])
def test_batch_size_out_of_bounds_is_refused(digits_bundle, size):
    rc, out, err, _ = run(digits_bundle, "--batch-size", size, stdin=b"1\n", timeout=30)
    assert (rc, out) == (2, b"")
    assert_one_error(err, rf"s2s run: error: --batch-size must be between 1 and {MAX_BATCH_SIZE}, got {size}")


def test_max_output_len_below_one_is_refused(digits_bundle):
    rc, out, err, _ = run(digits_bundle, "--max-output-len", "0", "1")
    assert (rc, out) == (2, b"")
    assert_one_error(err, r"s2s run: error: --max-output-len must be at least 1, got 0")


def test_a_line_over_the_limit_is_refused_without_buffering_it(digits_bundle):
    started = time.monotonic()
    rc, out, err, peak = run(digits_bundle, stdin=b"1\n2\n" + b"7" * 50_000_000)
    assert (rc, out) == (2, b"one\ntwo\n")
    assert_one_error(err, r"s2s run: error: stdin:3: line is longer than the model's limit of \d+ bytes")
    assert peak < PEAK_RSS_LIMIT_MB and time.monotonic() - started < 30, (peak, time.monotonic() - started)


def test_dev_zero_on_stdin_is_one_quick_error(digits_bundle):
    with open("/dev/zero", "rb") as zero:
        rc, out, err, peak = run(digits_bundle, stdin=zero, timeout=20)
    assert (rc, out) == (2, b"")
    assert_one_error(err, r"s2s run: error: stdin:1: line is longer than the model's limit of \d+ bytes")
    assert peak < PEAK_RSS_LIMIT_MB


def test_a_line_at_the_limit_is_read_and_refused_by_the_model(digits_bundle):
    # 1088 characters is what the digits model (1 token) accepts: the line is read, then refused by its length.
    rc, out, err, _ = run(digits_bundle, stdin=b"4\n" + "\u00e9".encode() * 1089 + b"\n5\n")
    assert (rc, out) == (2, b"four\n")
    assert_one_error(err, r"s2s run: error: stdin:2: input is 1089 characters long\b.*")


def test_byte_order_mark_at_the_start_of_stdin_is_dropped(digits_bundle):
    rc, out, err, _ = run(digits_bundle, stdin=b"\xef\xbb\xbf1\r\n2\r\n3")
    assert (rc, out) == (0, b"one\ntwo\nthree\n"), err
    rc, out, err, _ = run(digits_bundle, stdin=b"\xef\xbb\xbf")
    assert (rc, out) == (0, b"\n"), err
    # Only at the very start: a later one is a symbol the model never saw.
    rc, out, err, _ = run(digits_bundle, stdin=b"1\n\xef\xbb\xbf2\n")
    assert (rc, out) == (2, b"one\n")
    assert_one_error(err, r"s2s run: error: stdin:2: input has 1 symbol\(s\) the model never saw: U\+FEFF")


def test_invalid_utf8_argument_is_named_after_answering_the_ones_before(digits_bundle):
    rc, out, err, _ = run(digits_bundle, "1", "2", b"3\xff", "4")
    assert (rc, out) == (2, b"one\ntwo\n")
    assert_one_error(err, r"s2s run: error: argument 3: not valid UTF-8 \(byte 0xff at column 2\)")
    rc, out, err, _ = run(digits_bundle, "--json", "5", b"\xed\xb3\xbf")  # U+DCFF encoded: not UTF-8 either
    assert rc == 2 and [json_output(line) for line in out.splitlines()] == ["five"]
    assert_one_error(err, r"s2s run: error: argument 2: not valid UTF-8 \(byte 0xed at column 1\)")


def json_output(line: bytes) -> str:
    return json.loads(line.decode("utf-8"))["output"]


def test_invalid_utf8_on_stdin_is_named_after_answering_the_lines_before(digits_bundle):
    rc, out, err, _ = run(digits_bundle, "--json", "--batch-size", "64", stdin=b"8\n9\n1\xe2\x82\n2\n")
    assert rc == 2 and [json_output(line) for line in out.splitlines()] == ["eight", "nine"]
    assert_one_error(err, r"s2s run: error: stdin:3: not valid UTF-8 \(byte 0xe2 at column 2\)")


def test_many_lines_across_read_chunks_are_all_answered(digits_bundle):
    # CRLF and lines straddle the 64 KiB read chunks; the largest batch holds 4096 lines.
    lines = [str(i % 9 + 1) for i in range(30_000)]
    rc, out, err, _ = run(digits_bundle, "--batch-size", str(MAX_BATCH_SIZE), stdin="\r\n".join(lines).encode())
    assert rc == 0, err
    assert out.decode().splitlines() == [WORDS[int(d) - 1] for d in lines]


def _read_line(stream, timeout: float = 30) -> bytes:
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "no answer while the producer is still writing"
    return stream.readline()


def test_a_slow_producer_gets_answers_before_it_closes_stdin(digits_bundle):
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq_edge.cli", "run", str(digits_bundle), "--batch-size",
                             "1000"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_limit_memory)
    try:
        for digit, word in (("1", b"one"), ("2", b"two")):
            proc.stdin.write(digit.encode() + b"\n")
            proc.stdin.flush()
            assert _read_line(proc.stdout) == word + b"\n"
        proc.stdin.write(b"3\n4\n")
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, out) == (0, b"three\nfour\n"), err


def test_a_terminal_gets_each_line_answered_at_once(digits_bundle):
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq_edge.cli", "run", str(digits_bundle), "--batch-size",
                             "1000"], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_limit_memory)
    os.close(slave)
    try:
        os.write(master, b"6\n")
        assert _read_line(proc.stdout) == b"six\n"
        os.write(master, b"7\n\x04")  # Ctrl-D: end of input
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        os.close(master)
    assert (proc.returncode, out) == (0, b"seven\n"), err


def test_decode_refuses_text_that_is_not_unicode(digits_bundle):
    decoder = seq2seq_edge.load(digits_bundle)
    for skip in (False, True):  # never dropped as an unknown symbol
        with pytest.raises(InputTextError, match=r"^not valid Unicode: lone surrogate U\+DCFF at column 1$"):
            decoder.decode("\udcff", skip_unknown=skip)
    with pytest.raises(InputTextError, match=r"^item 2 of 2 \('1\\ud800'\): not valid Unicode: lone surrogate U\+D800 at "
                                             r"column 2$"):  # decode_batch names the item
        decoder.decode_batch(["1", "1\ud800"])
    with pytest.raises(InputTextError, match=r"lone surrogate U\+DC80"):
        text.normalize("caf\udc80")
    assert decoder.decode("7") == "seven"


# ---- --output: only a regular file, written whole lines at a time -------------------------------------------------
def test_output_that_is_a_link_or_not_a_regular_file_is_refused(digits_bundle, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("1\n2\n")
    target = tmp_path / "elsewhere.txt"
    (tmp_path / "dangling.txt").symlink_to(target)
    os.mkfifo(tmp_path / "fifo.txt")
    for name, message in (("dangling.txt", "is a symbolic link: give the path of the file itself"),
                          ("fifo.txt", "is not a regular file")):
        for extra in ([], ["--resume"], ["--force"]):
            out = tmp_path / name
            rc, stdout, err, _ = run(digits_bundle, "--input", src, "--output", out, *extra, timeout=30)
            assert (rc, stdout) == (2, b"")
            assert_one_error(err, rf"s2s run: error: --output {re.escape(str(out))} {message}")
    assert not target.exists()


def test_a_full_disk_is_one_line_and_keeps_whole_lines(digits_bundle, tmp_path):
    """A file-size limit stands in for a full disk: the write fails (EFBIG, as ENOSPC would) mid-run."""
    src = tmp_path / "in.txt"
    src.write_text("7\n" * 50_000)
    out = tmp_path / "out.txt"

    def small_files():
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))

    # no bytecode written under the limit: a .pyc cut short would break later imports
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "seq2seq_edge.cli", "run", str(digits_bundle), "--input", str(src),
                           "--output", str(out)], capture_output=True, text=True, timeout=120, preexec_fn=small_files,
                          env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert_one_error(proc.stderr, rf"s2s run: error: --output {re.escape(str(out))}: cannot write \(File too large\); "
                                  r"the lines already written are complete, and --resume continues from them once "
                                  r"there is room")
    assert set(out.read_bytes().split(b"\n")[:-1]) <= {b"seven"}


def test_resume_refuses_a_last_line_no_run_wrote(digits_bundle, tmp_path):
    from seq2seq_edge.scale.batch_files import MAX_RESUMED_LINE_BYTES

    src = tmp_path / "in.txt"
    src.write_text("1\n2\n")
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:  # sparse: a line longer than any output, without writing it
        f.write(b"one\n")
        f.seek(MAX_RESUMED_LINE_BYTES + 10)
        f.write(b"\n")
    rc, stdout, err, peak = run(digits_bundle, "--input", src, "--output", out, "--resume", timeout=60)
    assert (rc, stdout) == (2, b"")
    assert_one_error(err, rf"s2s run: error: --resume: the last line of {re.escape(str(out))} is longer than "
                          rf"{MAX_RESUMED_LINE_BYTES} bytes: not a line s2s run wrote \(--force starts over\)")
    assert peak < PEAK_RSS_LIMIT_MB
