"""The s2s command as a user runs it: outputs, exit statuses, one-line errors and no tracebacks."""

import json
import subprocess
import sys

import pytest

from conftest import requires_train
from support import one_error_line, s2s





@pytest.mark.parametrize("args, message", [
    (["run", "b", "--one-call", "--step-loop", "7"], "s2s run: error: argument --step-loop: not allowed with argument "
                                                      "--one-call (s2s run --help lists the options)"),
    (["frobnicate"], "s2s: error: argument COMMAND: invalid choice: 'frobnicate' (choose from 'train', 'export', "
                     "'verify', 'run', 'eval', 'info', 'bench') (s2s --help lists the options)"),
    (["run", "b", "--variant", "fp64"], "s2s run: error: argument --variant: invalid choice: 'fp64' (choose from "
                                        "'fp32', 'fp16', 'int8') (s2s run --help lists the options)"),
    (["run", "b", "--varient", "int8"], "s2s run: error: unrecognized arguments: --varient int8; did you mean "
                                        "--variant? (s2s run --help lists the options)"),
    (["export", "r", "--out", "b", "--quantise", "int8"], "s2s export: error: unrecognized arguments: --quantise "
                                                          "int8; did you mean --quantize? (s2s export --help lists "
                                                          "the options)"),
    (["info", "b", "--frobnicate"], "s2s info: error: unrecognized arguments: --frobnicate (s2s info --help lists "
                                    "the options)"),
])
def test_a_bad_option_is_one_line_without_the_usage(args, message):
    rc, out, err = s2s(*args)
    assert (rc, out, err) == (2, "", message + "\n")


def test_help_lists_the_subcommands():
    rc, out, _ = s2s("--help")
    assert rc == 0
    for cmd in ("train", "export", "verify", "run"):
        assert cmd in out


def test_run_arguments_and_stdin(digits_bundle):
    rc, out, _ = s2s("run", digits_bundle, "3", "8", "")
    assert (rc, out) == (0, "three\neight\n\n")
    rc, out, _ = s2s("run", digits_bundle, "--batch-size", "2", stdin=b"1\r\n2\n\n9\n")
    assert (rc, out) == (0, "one\ntwo\n\nnine\n")
    rc, out, _ = s2s("run", digits_bundle, "--json", "5")
    record = json.loads(out)
    assert record["input"] == "5" and record["output"] == "five" and record["variant"] == "fp32"
    assert record["score"] < 0 and record["backend"] in ("tflite", "litert", "onnx")
    assert record["batch_items"] == 1 and record["batch_ms_per_item"] > 0  # the batch's time per input


def test_run_answers_every_line_before_a_bad_one(digits_bundle):
    rc, out, err = s2s("run", digits_bundle, "--batch-size", "8", stdin=b"1\n2\nz\n4\n")
    assert rc == 2 and out == "one\ntwo\n"
    assert one_error_line(err) == "s2s run: error: stdin:3: input has 1 symbol(s) the model never saw: 'z'"
    rc, out, err = s2s("run", digits_bundle, stdin=b"6\n\xff\xfe\n")
    assert rc == 2 and out == "six\n"
    assert one_error_line(err) == "s2s run: error: stdin:2: not valid UTF-8 (byte 0xff at column 1)"
    rc, out, err = s2s("run", digits_bundle, "12")
    assert rc == 2 and "argument 1: input is 2 tokens long; the model takes at most 1" in one_error_line(err)


def test_run_bad_bundle_and_options(digits_bundle, tmp_path):
    rc, _, err = s2s("run", tmp_path / "missing", "1")
    assert rc == 2 and one_error_line(err).endswith("missing: no such bundle folder")
    rc, _, err = s2s("run", digits_bundle, "--max-output-len", "99", "1")
    assert rc == 2 and "between 1 and the trained maximum 5, got 99" in one_error_line(err)
    rc, _, err = s2s("run", digits_bundle, "--backend", "nope", "1")
    assert rc == 2 and "invalid choice: 'nope'" in err


def test_what_was_given_instead_of_a_bundle_or_a_run_is_named(fixture_dir, tmp_path):
    run, bundle = fixture_dir / "runs" / "digits", fixture_dir / "bundles" / "digits"
    (tmp_path / "empty").mkdir()
    hint = f"this is a training run folder, not a bundle: export it first, e.g. s2s export {run} --out bundles/digits"
    for command in (["run"], ["info"], ["eval"], ["bench", "--quick"]):
        extra = {"run": ["1"], "eval": [run / "test.tsv"]}.get(command[0], [])
        for given, message in [(run, hint), (run / "test.tsv", "this is a file; a bundle is the folder s2s export "
                                                                 "wrote"),
                               (bundle / "manifest.json", f"this is the bundle's manifest; give the folder that "
                                                          f"holds it: {bundle}"),
                               (tmp_path / "empty", "not a bundle folder (no manifest.json)")]:
            rc, _, err = s2s(command[0], given, *extra, *command[1:])
            assert (rc, one_error_line(err)) == (2, f"s2s {command[0]}: error: {given}: {message}")


@requires_train
def test_export_of_a_bundle_says_it_is_one(digits_bundle, tmp_path):
    rc, _, err = s2s("export", digits_bundle, "--out", tmp_path / "b")
    assert (rc, one_error_line(err)) == (2, f"s2s export: error: {digits_bundle}: this is a bundle written by s2s "
                                            "export, not a run folder; s2s export reads the run folder s2s train "
                                            "wrote (s2s info BUNDLE names it)")


def test_whitespace_around_an_input_is_named(digits_bundle):
    rc, out, err = s2s("run", digits_bundle, " 7\t")
    assert (rc, out, one_error_line(err)) == (2, "", "s2s run: error: argument 1: input has 2 symbol(s) the model "
                                                     "never saw: ' ', U+0009; it is whitespace around the text, which "
                                                     "the model's inputs never had: strip it")


def test_run_stops_quietly_on_a_closed_pipe(digits_bundle):
    proc = subprocess.Popen(f"{sys.executable} -m seq2seq_edge.cli run {digits_bundle} --batch-size 1 "
                            f"| head -n 1", shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, err = proc.communicate(b"1\n" * 20000)
    assert out == b"one\n" and b"Traceback" not in err


@pytest.mark.parametrize("content, message", [
    (b"1\tone\n2 two\n", ":2: no TAB between input and target"),
    (b"1\tone\n\xff\tx\n", ":2: not valid UTF-8 (byte 0xff at column 1)"),
    (b"", ": no pairs found (the file is empty)"),
])
def test_train_bad_data_is_one_line_and_status_2(tmp_path, content, message):
    data = tmp_path / "pairs.tsv"
    data.write_bytes(content)
    rc, _, err = s2s("train", "--data", data, "--out", tmp_path / "run", "--quiet")
    assert rc == 2
    assert one_error_line(err) == f"s2s train: error: {data}{message}"
    assert not (tmp_path / "run").exists()


def test_train_refuses_to_overwrite_without_force(tmp_path):
    (tmp_path / "run").mkdir()
    rc, _, err = s2s("train", "--task", "digits", "--out", tmp_path / "run")
    assert rc == 2
    assert one_error_line(err) == f"s2s train: error: {tmp_path / 'run'} already exists; pass --force to overwrite it"


@requires_train
def test_export_refuses_existing_bundle_and_legacy_models(fixture_dir, tmp_path):
    rc, _, err = s2s("export", fixture_dir / "runs" / "digits", "--out", fixture_dir / "bundles" / "digits")
    assert rc == 2 and "already exists; pass --force" in one_error_line(err)
    legacy = tmp_path / "model.h5"
    legacy.write_bytes(b"\x89HDF\r\n")
    rc, _, err = s2s("export", legacy, "--out", tmp_path / "b")
    assert rc == 2 and "legacy Keras format (.h5) is not supported" in one_error_line(err)
    rc, _, err = s2s("export", tmp_path / "nothing", "--out", tmp_path / "b")
    assert rc == 2 and "no such run folder" in one_error_line(err)
    assert not (tmp_path / "b").exists()


def test_train_without_the_train_extra_says_so_before_anything_else(tmp_path, monkeypatch, capsys):
    import importlib.util

    from seq2seq_edge import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "keras" else real(name, *a))
    data = tmp_path / "pairs.tsv"
    data.write_text("".join(f"{i}\tx{i}\n" for i in range(50)))
    assert cli.main(["train", "--data", str(data), "--out", str(tmp_path / "run")]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "s2s train: error: this command needs keras, which is not installed: in a clone of "
                              "seq2seq-edge, pip install '.[train]'\n")
    assert not (tmp_path / "run").exists()
