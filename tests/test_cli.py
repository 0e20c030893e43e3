"""The s2s command as a user runs it: outputs, exit statuses, one-line errors and no tracebacks."""

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import requires_train
from support import one_error_line, s2s, s2s_as_user

#: Lines that are not ours: the libraries' logs that the CLI keeps off its default output.
NOISE = re.compile(r"oneDNN|DT_BOOL|absl|XNNPACK|NodeDef|^[IWE]\d{4} |MLIR|SavedModel|pre-processing before "
                   r"quantization|onnxruntime:|Traceback", re.M)





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


# ---- what a user sees: only our lines, help, --keep-going, info -------------------------------------------------
@pytest.mark.parametrize("backend", ["litert", "onnx"])
def test_run_prints_nothing_but_outputs(digits_bundle, backend):
    rc, out, err = s2s_as_user("run", digits_bundle, "--backend", backend, "1", "7")
    assert (rc, out, err) == (0, "one\nseven\n", "")
    rc, out, err = s2s_as_user("run", digits_bundle, "--backend", backend, "--quiet", "1")
    assert (rc, out, err) == (0, "one\n", "")
    rc, out, err = s2s_as_user("run", digits_bundle, "--backend", backend, "1", "-v")
    assert rc == 0 and out == "one\n" and f"fp32 on {backend}" in err  # -v: our debug lines too


def test_quiet_does_nothing_outside_the_cli(digits_bundle):
    """A program that imports seq2seq_edge (a fresh interpreter: the CLI's tests configure this one) keeps its
    stderr and its loggers as they are."""
    code = ("import os, sys, seq2seq_edge\n"
            "from seq2seq_edge import quiet\n"
            "assert not quiet.active()\n"
            f"seq2seq_edge.load({str(digits_bundle)!r}).decode('7')\n"
            "with quiet.native_logs_caught():\n"
            "    os.write(2, b'a C++ line\\n')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "a C++ line\n" in proc.stderr


def test_native_logs_are_caught_and_shown_on_failure(tmp_path):
    code = ("import os, sys\n"
            "from seq2seq_edge import quiet\n"
            "quiet.configure(False)\n"
            "with quiet.native_logs_caught():\n"
            "    os.write(2, b'I0000 noise\\n'); print('ours', file=sys.stderr)\n"
            "try:\n"
            "    with quiet.native_logs_caught():\n"
            "        os.write(2, b'F0000 the reason it died\\n'); raise RuntimeError('boom')\n"
            "except RuntimeError:\n"
            "    print('caught', file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "noise" not in proc.stderr
    assert proc.stderr.startswith("ours\n") and "F0000 the reason it died" in proc.stderr
    assert proc.stderr.rstrip().endswith("caught")


@requires_train
@pytest.mark.slow
def test_train_default_stderr_is_ours(tmp_path):
    rc, out, err = s2s_as_user("train", "--task", "digits", "--epochs", "3", "--out", tmp_path / "run")
    assert rc == 0, err
    assert not NOISE.search(err), err
    lines = err.splitlines()
    assert "epoch 1/3: loss" in err and "epoch 3/3: loss" in err and len(lines) < 12, err
    assert out.startswith(f"{tmp_path / 'run'}: exact match")


def test_every_option_has_one_line_of_help_and_a_true_default():
    import argparse

    from seq2seq_edge.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in [("s2s", parser), *sub.choices.items()]:
        text = " ".join(p.format_help().split())
        for bad in ("(default: None)", "(default: False)", "(default: ['", "(default: ("):
            assert bad not in text, f"s2s {name} --help: {bad}"
        formatter = p._get_formatter()
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            where = f"s2s {name} {'/'.join(action.option_strings) or action.metavar or action.dest}"
            assert action.help and action.help.strip(), f"{where}: no help"
            meaningful = action.default is not None and action.default is not False and action.default != "==SUPPRESS=="
            if action.option_strings and meaningful and not isinstance(action, argparse._VersionAction):
                assert "default" in formatter._get_help_string(action), f"{where}: its default is not shown"
    def flat(name):
        return " ".join(sub.choices[name].format_help().split())

    assert "(default: digits)" in flat("train") and "(default: digits) (default" not in flat("train")
    assert "(default: tflite,onnx)" in flat("export") and "(default: fp32,fp16,int8)" in flat("export")


def test_verbose_is_global_before_or_after_the_command(digits_bundle):
    for args in (["-v", "run", digits_bundle, "1"], ["run", "-v", digits_bundle, "1"], ["run", digits_bundle, "1", "-v"]):
        rc, out, err = s2s_as_user(*args)
        assert rc == 0 and out == "one\n" and "loaded" in err, (args, err)


def test_keep_going_answers_every_good_input(digits_bundle):
    rc, out, err = s2s_as_user("run", digits_bundle, "12", "abc", "19", "1")
    assert rc == 2 and out == ""  # the default: stop at the first bad input
    rc, out, err = s2s_as_user("run", digits_bundle, "--keep-going", "12", "abc", "9", "1")
    assert rc == 1 and out == "\n\nnine\none\n", err
    errors = err.splitlines()
    assert errors == ["s2s run: error: argument 1: input is 2 tokens long; the model takes at most 1",
                      "s2s run: error: argument 2: input has 3 symbol(s) the model never saw: 'a', 'b', 'c'",
                      "s2s run: 2 of 4 inputs failed"]


def test_keep_going_on_stdin_with_json(digits_bundle):
    long_line = b"7" * 200_000
    rc, out, err = s2s_as_user("run", digits_bundle, "--keep-going", "--json", "--batch-size", "2",
                       stdin=b"1\nz\n\xff\n" + long_line + b"\n9\n")
    assert rc == 1, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r.get("output") for r in records] == ["one", None, None, None, "nine"]
    assert records[1] == {"input": "z", "error": "stdin:2: input has 1 symbol(s) the model never saw: 'z'"}
    assert records[2] == {"input": None, "error": "stdin:3: not valid UTF-8 (byte 0xff at column 1)"}
    assert records[3]["error"].startswith("stdin:4: line is longer than the model's limit")
    assert records[0]["batch_items"] >= 1 and records[0]["batch_ms_per_item"] > 0 and "ms" not in records[0]
    assert err.splitlines()[-1] == "s2s run: 3 of 5 inputs failed"
    # without --keep-going the long line stops the run, after the lines before it
    rc, out, err = s2s_as_user("run", digits_bundle, stdin=b"1\n" + long_line + b"\n9\n")
    assert rc == 2 and out == "one\n" and "stdin:2: line is longer" in err


def test_run_on_a_run_folder_says_how_to_export_it(fixture_dir):
    run = fixture_dir / "runs" / "digits"
    rc, out, err = s2s_as_user("run", run, "1")
    assert rc == 2
    assert err.strip() == (f"s2s run: error: {run}: this is a training run folder, not a bundle: export it first, "
                           f"e.g. s2s export {run} --out bundles/digits")


def test_an_interactive_run_says_how_to_type_and_end(digits_bundle):
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.Popen([sys.executable, "-m", "seq2seq_edge.cli", "run", str(digits_bundle)], stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    try:
        os.write(master, b"7\n\x04")
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        os.close(master)
    assert out == b"seven\n"
    assert b"type one input per line" in err and b"Ctrl-D" in err


def test_info_shows_what_a_bundle_holds(digits_bundle):
    rc, out, err = s2s_as_user("info", digits_bundle)
    assert rc == 0 and err == "", err
    for expected in ("task:      digits", "input:     char tokens, vocabulary of 12", "at most 1 tokens",
                     "output:    char tokens, vocabulary of 17", "tflite fp32", "onnx   int8", "parity:    passed",
                     "made with: ", "gate ran on: ai-edge-litert ", ", onnxruntime ", "100 epochs"):
        assert expected in out, (expected, out)
    rc, out, _ = s2s_as_user("info", digits_bundle, "--json")
    info = json.loads(out)
    assert info["task"] == "digits" and info["input"]["max_tokens"] == 1 and info["output"]["vocabulary_size"] == 17
    assert {(v["format"], v["variant"]) for v in info["variants"]} == {
        ("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")}
    assert all(v["size_bytes"] > 0 for v in info["variants"]) and info["parity"]["passed"]


@pytest.mark.parametrize("distill_from, shown", [
    (["a", "b"], "distilled from 2 runs"), (["a"], "distilled from 1 run,"), ([], None), ("a", None),
    (["a"] * 100_000, "distilled from 100000 runs"),
])
def test_info_says_what_a_model_was_distilled_from(digits_bundle, tmp_path, distill_from, shown):
    """provenance.training.distill_from (s2s train --distill-from) is counted, not printed: a list of names of
    runs on the machine that trained it; anything else there is not shown."""
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(digits_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["provenance"]["training"]["distill_from"] = distill_from
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    rc, out, err = s2s_as_user("info", bundle)
    assert rc == 0 and err == "", err
    assert (shown in out) if shown else ("distilled" not in out), out
    rc, out, _ = s2s_as_user("info", bundle, "--json")
    runs = json.loads(out)["training"].get("distilled_from_runs")
    assert runs == (len(distill_from) if shown else None)


def test_info_on_a_run_folder_or_nothing(fixture_dir, tmp_path):
    rc, _, err = s2s_as_user("info", fixture_dir / "runs" / "digits")
    assert rc == 2 and "training run folder, not a bundle" in err
    rc, _, err = s2s_as_user("info", tmp_path)
    assert rc == 2 and "manifest" in err


def test_export_that_makes_no_model_is_an_error(tmp_path):
    rc, out, err = s2s_as_user("export", tmp_path / "run", "--out", tmp_path / "b", "--format", "onnx", "--quantize", "fp16")
    assert rc == 2 and not (tmp_path / "b").exists()
    assert err.strip() == ("s2s export: error: --format onnx with --quantize fp16 makes no model "
                           "(tflite: fp32, fp16, int8; onnx: fp32, int8)")


def test_a_bundle_records_its_run_without_a_path_of_this_machine(tmp_path, monkeypatch):
    from seq2seq_edge.errors import RunFolderError
    from seq2seq_edge.export.bundle import _portable_run_dir, _portable_training, find_run_dir

    (tmp_path / "proj" / "runs" / "digits").mkdir(parents=True)
    (tmp_path / "proj" / "runs" / "digits" / "model.keras").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    run, bundle = tmp_path / "proj" / "runs" / "digits", tmp_path / "proj" / "bundles" / "digits"
    assert _portable_run_dir(run, bundle) == "runs/digits"
    assert _portable_run_dir(run, tmp_path / "elsewhere" / "deep" / "b") == "proj/runs/digits"
    assert _portable_run_dir(run, Path("/nonexistent/x/y")) in ("digits", "proj/runs/digits")
    assert _portable_training({"data_file": "/home/someone/pairs.tsv", "seed": 0})["data_file"] == "pairs.tsv"
    assert _portable_training({"distill_from": ["/home/someone/runs/a", "runs/b/"]})["distill_from"] == ["a", "b"]

    class Manifest:
        provenance = {"run_dir": "runs/digits"}

    for cwd in (tmp_path, tmp_path / "proj", run):  # found from the bundle's place wherever we are
        monkeypatch.chdir(cwd)
        assert find_run_dir(bundle, Manifest()).resolve() == run
    Manifest.provenance = {"run_dir": "digits"}
    assert find_run_dir(bundle, Manifest()).resolve() == run
    Manifest.provenance = {"run_dir": "gone"}
    with pytest.raises(RunFolderError, match="pass --run RUN_DIR"):
        find_run_dir(bundle, Manifest())
