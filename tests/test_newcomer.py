"""The newcomer's path (issue 14): the README's install lines and commands work as written, the tools print their
own lines only, every option has help and a true default, one bad input need not stop a run, and the small API
gaps are closed.

How the README's install lines are checked: ``test_readme_install_lines_are_the_ones_ci_runs`` reads every
``pip install`` line of the README and holds it against what ``.ci/run`` installs from nothing (stage 1:
``-e '.[all]'``, which covers ``[train]`` and ``[litert]``; stage 2: ``.[tflite]`` and ``.[onnx]`` in fresh
runtime-only venvs) and against this environment; ``test_readme_wheel_line_builds_the_wheel_it_names`` really
runs the wheel line in a clean copy of the clone. ``test_readme_install_lines_run_in_fresh_venvs`` runs every
line literally in fresh venvs: minutes (TensorFlow is a 700 MB download), so it runs only when asked for, with
``pytest -m install``; CI does not, since stages 1 and 2 install the same lines from nothing.
"""

from __future__ import annotations

import json
import math
import os
import pty
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import seq2seq_edge
from conftest import requires_train
from support import s2s as run_s2s
from seq2seq_edge.errors import InputTextError

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
#: The README and the pages it links to: their commands are held to the same checks.
DOC_PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
#: Lines that are not ours: the libraries' logs that issue 14 keeps off the default output.
NOISE = re.compile(r"oneDNN|DT_BOOL|absl|XNNPACK|NodeDef|^[IWE]\d{4} |MLIR|SavedModel|pre-processing before "
                   r"quantization|onnxruntime:|Traceback", re.M)


def s2s(*args, stdin: bytes | None = None, cwd=None, env=None):
    """The s2s command as a user runs it: no TF_CPP_MIN_LOG_LEVEL from the test session."""
    return run_s2s(*args, stdin=stdin, cwd=cwd, env=env, as_user=True)


def clean_clone(dest: Path) -> Path:
    """What a fresh clone of this tree holds (tracked and new files, nothing ignored: no venv, runs, build)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def readme_commands() -> list[str]:
    """Every command line of the bash blocks of the README and docs/, comments stripped, `&&` chains split."""
    blocks = [block for page in DOC_PAGES
              for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.S)]
    commands = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            commands += [c.strip() for c in line.split("&&") if c.strip()]
    return commands


def pip_installs() -> list[list[str]]:
    """The arguments after `pip install` of every README install command."""
    out = []
    for c in readme_commands():
        words = shlex.split(c)
        for i in range(len(words) - 1):
            if words[i].endswith("pip") and words[i + 1] == "install":
                out.append(words[i + 2:])
    return out


def pyproject_extras() -> dict[str, list[str]]:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def wheel_name() -> str:
    import tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return f"seq2seq_edge-{version}-py3-none-any.whl"


# ---- Install and README ------------------------------------------------------------------------------------------
def test_readme_never_installs_from_an_index():
    installs = pip_installs()
    assert installs, "the README has install lines"
    for args in installs:
        target = args[-1]
        assert not target.startswith("seq2seq-edge"), f"pip install {' '.join(args)}: the package is on no index"
        assert target.startswith((".[", "./")) or target.endswith(".whl") or ".whl[" in target, args


def test_readme_install_lines_are_the_ones_ci_runs():
    """Each README install names an extra of pyproject.toml and is one that .ci/run installs from nothing (or,
    for the wheel, one that test_readme_wheel_line_builds_the_wheel_it_names builds)."""
    extras = pyproject_extras()
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install -q -e '.[all]'" in ci                      # stage 1: [train], [litert], [onnx], [dev]
    ci_runtime = set(re.search(r"for extra in ([\w ]+); do", ci).group(1).split())
    assert '"$venv/bin/pip" install -q ".[$extra]"' in ci           # stage 2: fresh runtime-only venvs
    covered_by_all = set()
    for name in extras["all"][0].split("[")[1].rstrip("]").split(","):
        covered_by_all.add(name)
    seen = set()
    for args in pip_installs():
        target = args[-1]
        extra = re.search(r"\[(\w+)\]$", target)
        assert extra, f"pip install {' '.join(args)}: name an extra"
        extra = extra.group(1)
        assert extra in extras, f"pip install {' '.join(args)}: no extra {extra!r} in pyproject.toml"
        assert extra in ci_runtime | covered_by_all | {"all"}, f"{extra}: not installed by .ci/run"
        seen.add(extra)
    assert {"train", "litert", "onnx", "tflite"} <= seen


@requires_train
def test_readme_train_extra_is_what_this_environment_holds():
    """The [train] and [litert] lines install what this venv (made by `pip install -e '.[all]'`) holds."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    for extra in ("train", "litert", "onnx"):
        for spec in pyproject_extras()[extra]:
            req = Requirement(spec)
            if req.marker and not req.marker.evaluate():
                continue
            try:
                assert req.specifier.contains(version(req.name), prereleases=True), spec
            except PackageNotFoundError:
                pytest.fail(f"[{extra}] needs {spec}, which this environment lacks")


def test_readme_wheel_line_builds_the_wheel_it_names(tmp_path):
    """The wheel line of Install, run as written in a clean copy of the clone; the file the README (and its
    Raspberry Pi section) names is what it writes, and it declares every extra."""
    lines = [c for c in readme_commands() if c.startswith("pip wheel")]
    assert lines and all(c == lines[0] for c in lines), lines
    clone = clean_clone(tmp_path / "clone")
    words = shlex.split(lines[0])
    proc = subprocess.run([sys.executable, "-m", *words], cwd=clone, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = clone / "dist" / wheel_name()
    assert wheel.is_file(), sorted(p.name for p in (clone / "dist").iterdir())
    readme = README.read_text(encoding="utf-8")
    named = set(re.findall(r"seq2seq_edge-[\w.]+-py3-none-any\.whl", readme))
    assert named == {wheel.name}
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        metadata = z.read(f"seq2seq_edge-{wheel.name.split('-')[1]}.dist-info/METADATA").decode()
    assert set(re.findall(r"^Provides-Extra: (\w+)$", metadata, re.M)) >= {"train", "litert", "onnx", "tflite"}


@pytest.mark.install
def test_readme_install_lines_run_in_fresh_venvs(tmp_path, pytestconfig, digits_bundle):
    """Every README install line, as written, in a fresh venv made from a clean copy of the clone; then the
    installed s2s decodes. Minutes and a few GB: only with `pytest -m install`."""
    if "install" not in (pytestconfig.getoption("markexpr") or "") or "not install" in pytestconfig.getoption("markexpr"):
        pytest.skip("creates venvs and downloads TensorFlow: run with pytest -m install")
    clone = clean_clone(tmp_path / "clone")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", "dist", "."], cwd=clone, check=True,
                   capture_output=True)
    for n, args in enumerate(pip_installs()):
        extra = re.search(r"\[(\w+)\]$", args[-1]).group(1)
        if extra == "tflite" and sys.version_info >= (3, 12):
            continue  # tflite-runtime has no wheels past 3.11 (the README says so)
        venv = tmp_path / f"venv{n}"
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        target = args[-1].replace("./seq2seq_edge-", "./dist/seq2seq_edge-")  # the Pi's copy sits in ~
        proc = subprocess.run([venv / "bin" / "pip", "install", "-q", *args[:-1], target], cwd=clone,
                              capture_output=True, text=True)
        assert proc.returncode == 0, (args, proc.stderr[-3000:])
        if extra in ("litert", "onnx", "tflite"):
            out = subprocess.run([venv / "bin" / "s2s", "run", digits_bundle, "7"], capture_output=True, text=True)
            assert out.stdout == "seven\n", (args, out.stderr)


@requires_train
@pytest.mark.slow
def test_quickstart_runs_in_a_clean_clone_and_prints_only_our_lines(tmp_path):
    """The Quickstart's s2s commands, as written, in a clean copy of the clone (its venv and pip install are
    what .ci/run's stage 1 runs); their standard error holds s2s's own lines only, and the bundle no path."""
    block = re.search(r"## Quickstart.*?```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S).group(1)
    steps = [c.strip() for c in block.split("&&")]
    assert steps[:3] == ["python3 -m venv .venv", ". .venv/bin/activate", "pip install -e '.[train]'"]
    clone = clean_clone(tmp_path / "clone")
    outputs = {}
    for step in steps[3:]:
        words = shlex.split(step)
        assert words[0] == "s2s", step
        rc, out, err = s2s(*words[1:], cwd=clone)
        assert rc == 0, (step, err)
        assert not NOISE.search(err), f"{step}: library lines on stderr:\n{err}"
        outputs[words[1]] = (out, err)
    assert outputs["run"] == ("one\nseven\nnine\n", "")
    assert "epoch 100/100: loss" in outputs["train"][1]
    manifest = (clone / "bundles" / "digits" / "manifest.json").read_text()
    assert str(tmp_path) not in manifest and str(Path.home()) not in manifest
    assert json.loads(manifest)["provenance"]["run_dir"] == "runs/digits"
    # verify finds the run from the recorded relative name, also from another folder
    rc, out, err = s2s("verify", clone / "bundles" / "digits", "--quiet", cwd=tmp_path)
    assert rc == 0 and "parity gate passed" in out, err
    assert (clone / "runs" / "digits" / "curves.png").stat().st_size > 0
    history = (clone / "runs" / "digits" / "history.csv").read_text().splitlines()
    assert "val_sample_exact_match" in history[0] and history[-1].split(",")[-1] == "1.0"


# ---- Noise -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["litert", "onnx"])
def test_run_prints_nothing_but_outputs(digits_bundle, backend):
    rc, out, err = s2s("run", digits_bundle, "--backend", backend, "1", "7")
    assert (rc, out, err) == (0, "one\nseven\n", "")
    rc, out, err = s2s("run", digits_bundle, "--backend", backend, "--quiet", "1")
    assert (rc, out, err) == (0, "one\n", "")
    rc, out, err = s2s("run", digits_bundle, "--backend", backend, "1", "-v")
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
    rc, out, err = s2s("train", "--task", "digits", "--epochs", "3", "--out", tmp_path / "run")
    assert rc == 0, err
    assert not NOISE.search(err), err
    lines = err.splitlines()
    assert "epoch 1/3: loss" in err and "epoch 3/3: loss" in err and len(lines) < 12, err
    assert out.startswith(f"{tmp_path / 'run'}: exact match")


# ---- Command line ------------------------------------------------------------------------------------------------
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
        rc, out, err = s2s(*args)
        assert rc == 0 and out == "one\n" and "loaded" in err, (args, err)


def test_keep_going_answers_every_good_input(digits_bundle):
    rc, out, err = s2s("run", digits_bundle, "12", "abc", "19", "1")
    assert rc == 2 and out == ""  # the default: stop at the first bad input
    rc, out, err = s2s("run", digits_bundle, "--keep-going", "12", "abc", "9", "1")
    assert rc == 1 and out == "\n\nnine\none\n", err
    errors = err.splitlines()
    assert errors == ["s2s run: error: argument 1: input is 2 tokens long; the model takes at most 1",
                      "s2s run: error: argument 2: input has 3 symbol(s) the model never saw: 'a', 'b', 'c'",
                      "s2s run: 2 of 4 inputs failed"]


def test_keep_going_on_stdin_with_json(digits_bundle):
    long_line = b"7" * 200_000
    rc, out, err = s2s("run", digits_bundle, "--keep-going", "--json", "--batch-size", "2",
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
    rc, out, err = s2s("run", digits_bundle, stdin=b"1\n" + long_line + b"\n9\n")
    assert rc == 2 and out == "one\n" and "stdin:2: line is longer" in err


def test_run_on_a_run_folder_says_how_to_export_it(fixture_dir):
    run = fixture_dir / "runs" / "digits"
    rc, out, err = s2s("run", run, "1")
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
    rc, out, err = s2s("info", digits_bundle)
    assert rc == 0 and err == "", err
    for expected in ("task:      digits", "input:     char tokens, vocabulary of 12", "at most 1 tokens",
                     "output:    char tokens, vocabulary of 17", "tflite fp32", "onnx   int8", "parity:    passed",
                     "made with: ", "gate ran on: ai-edge-litert ", ", onnxruntime ", "100 epochs"):
        assert expected in out, (expected, out)
    rc, out, _ = s2s("info", digits_bundle, "--json")
    info = json.loads(out)
    assert info["task"] == "digits" and info["input"]["max_tokens"] == 1 and info["output"]["vocabulary_size"] == 17
    assert {(v["format"], v["variant"]) for v in info["variants"]} == {
        ("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")}
    assert all(v["size_bytes"] > 0 for v in info["variants"]) and info["parity"]["passed"]


def test_info_on_a_run_folder_or_nothing(fixture_dir, tmp_path):
    rc, _, err = s2s("info", fixture_dir / "runs" / "digits")
    assert rc == 2 and "training run folder, not a bundle" in err
    rc, _, err = s2s("info", tmp_path)
    assert rc == 2 and "manifest" in err


def test_export_that_makes_no_model_is_an_error(tmp_path):
    rc, out, err = s2s("export", tmp_path / "run", "--out", tmp_path / "b", "--format", "onnx", "--quantize", "fp16")
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


# ---- Small API gaps ----------------------------------------------------------------------------------------------
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


def test_reprs_say_what_matters(digits_bundle):
    decoder = seq2seq_edge.load(digits_bundle, backend="onnx")
    assert repr(decoder) == (f"Seq2SeqDecoder(bundle={str(digits_bundle)!r}, backend='onnx', variant='fp32', "
                             "path='step-loop', input=char up to 1 tokens, output=char up to 5 tokens)")
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


# ---- Progress and pictures ---------------------------------------------------------------------------------------
@requires_train
def test_progress_lines_without_a_terminal(tmp_path):
    import io

    from seq2seq_edge.train import progress

    def run(epochs, every_s, stop_after=None):
        out = io.StringIO()
        p = progress.TrainingProgress(epochs, stream=out, every_s=every_s)
        p.set_params({"epochs": epochs, "steps": 3})
        p.on_train_begin()
        for e in range(stop_after or epochs):
            p.on_epoch_begin(e)
            for b in range(3):
                p.on_train_batch_end(b, {"loss": 1.0})
            p.on_epoch_end(e, {"loss": 1.0 / (e + 1), "val_loss": 2.0, progress.SAMPLE_KEY: math.nan})
        p.on_train_end()
        return out.getvalue().splitlines()

    lines = run(200, every_s=3600)  # a quick run: the first and the last epoch, not 200 lines
    assert len(lines) == 2 and lines[0].startswith("epoch 1/200: loss 1.0000, val_loss 2.0000 (")
    assert lines[1].startswith("epoch 200/200: loss 0.0050")
    every = run(5, every_s=0)  # each epoch, and inside each, each batch (a "long" epoch)
    assert [line.split(":")[0] for line in every if ": loss" in line] == [f"epoch {e}/5" for e in range(1, 6)]
    assert "epoch 1/5: batch 1/3, loss 1.0000" in every
    stopped = run(50, every_s=3600, stop_after=7)  # early stopping between two lines: its last epoch is shown
    assert stopped[-2].startswith("epoch 7/50:") and stopped[-1] == "early stopping after epoch 7 of 50"


@requires_train
def test_curves_mark_the_best_epoch_and_say_when_validation_is_training(tmp_path):
    from seq2seq_edge.train.run_folder import _plot_curves

    history = {"loss": [2.0, 1.0, 0.5], "val_loss": [2.1, 0.9, 1.2], "accuracy": [0.1, 0.5, 0.9],
               "val_accuracy": [0.1, 0.6, 0.8], "val_sample_exact_match": [0.0, math.nan, 1.0]}
    _plot_curves(history, tmp_path / "curves.png", validation_is_train=True)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fixture_builder_messages_reach_the_terminal_through_output_capture():
    """The fixture builder's lines ("building the test fixtures in ...") go to pytest's terminal with capture
    suspended, so a user waiting on the first run sees why; with no terminal reporter, to stderr."""
    import contextlib

    import conftest

    events = []

    class Capture:
        @contextlib.contextmanager
        def global_and_fixture_disabled(self):
            events.append("capture off")
            yield
            events.append("capture on")

    class Reporter:
        def write_line(self, message):
            events.append(message)

    class Config:
        def __init__(self, plugins):
            self.pluginmanager = type("PM", (), {"getplugin": staticmethod(plugins.get)})()

    conftest._say(Config({"capturemanager": Capture(), "terminalreporter": Reporter()}))("building")
    assert events == ["capture off", "building", "capture on"]
