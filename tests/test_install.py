"""The newcomer's path: the README's (and docs/') install lines and commands work as written, the quickstart runs
in a clean clone, and the test suite's first run says what it is doing.

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
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import requires_train
from support import s2s_as_user as s2s

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
#: The README and the pages it links to: their commands are held to the same checks.
DOC_PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
#: Lines that are not ours: the libraries' logs that issue 14 keeps off the default output.
NOISE = re.compile(r"oneDNN|DT_BOOL|absl|XNNPACK|NodeDef|^[IWE]\d{4} |MLIR|SavedModel|pre-processing before "
                   r"quantization|onnxruntime:|Traceback", re.M)


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








# ---- Command line ------------------------------------------------------------------------------------------------




















# ---- Small API gaps ----------------------------------------------------------------------------------------------






# ---- Progress and pictures ---------------------------------------------------------------------------------------




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


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_every_link_between_the_docs_resolves():
    """Relative links and #anchors of the README, docs/ and the libraries' READMEs point at files and headings
    that exist (the README was split into docs/: a moved page must not leave a dead link)."""
    pages = DOC_PAGES + [REPO / "c" / "README.md", REPO / "kotlin" / "README.md"]
    dead = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                dead.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md":
                headings = re.findall(r"(?m)^#+ (.+)$", re.sub(r"```.*?```", "", dest.read_text(encoding="utf-8"), flags=re.S))
                if anchor not in {_slug(h) for h in headings}:
                    dead.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not dead, dead

