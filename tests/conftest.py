"""Shared fixtures. The small models are trained and exported once per session by tests/make_fixtures.py.

Set S2S_FIXTURES=DIR to reuse (or, in a runtime-only venv without TensorFlow, to provide) the fixture folder.
"""

import importlib.util
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).parent))
from make_vectors import BUNDLES  # noqa: E402 (the fixture bundles; make_vectors imports nothing third-party)
# The runtime remembers probed model files in $XDG_CACHE_HOME; keep the tests' entries out of the user's cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="s2s-test-cache-")

HAS_TRAIN = all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "keras", "tf2onnx"))
requires_train = pytest.mark.skipif(not HAS_TRAIN, reason="needs the [train] extra")


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory, pytestconfig) -> Path:
    env = os.environ.get("S2S_FIXTURES")
    out = Path(env) if env else tmp_path_factory.mktemp("fixtures")
    import make_fixtures  # imports nothing third-party until it trains

    missing = make_fixtures.stale(out)
    if missing:
        if not HAS_TRAIN:
            pytest.fail(f"fixture bundles missing or made from other settings in {out} ({', '.join(missing)}) and "
                        "no TensorFlow to make them: run `python tests/make_fixtures.py DIR` in a training env and "
                        "set S2S_FIXTURES=DIR")
        say = _say(pytestconfig)
        say(f"\nbuilding the test fixtures in {out}: training and exporting {len(missing)} small models (one to a few "
            "minutes on 2 cores; S2S_FIXTURES=DIR keeps them for the next run)")
        make_fixtures.make(out, say=say)
    if not (out / "vectors.json").is_file() and importlib.util.find_spec("onnxruntime") is not None:
        import make_vectors  # fixtures made before the shared vectors existed

        make_vectors.make(out)
    crafted = out / "crafted" / "crafted.json"
    if crafted.is_file() and not all(f'"{name}-' in crafted.read_text(encoding="utf-8") for name in BUNDLES):
        shutil.rmtree(out / "crafted")  # made before a fixture bundle was added: its models must be judged too
    if not crafted.is_file() and HAS_TRAIN:
        import make_crafted  # the crafted model files every byte-reading runtime must judge alike

        make_crafted.make(out)
    return out


def _say(config):
    """A line on the terminal while pytest captures output (a session fixture's setup is captured too)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")

    def say(message: str) -> None:
        if capture is None or reporter is None:
            print(message, file=sys.stderr, flush=True)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(message)
    return say


@pytest.fixture(scope="session")
def digits_bundle(fixture_dir) -> Path:
    return fixture_dir / "bundles" / "digits"


@pytest.fixture(scope="session")
def numbers_bundle(fixture_dir) -> Path:
    return fixture_dir / "bundles" / "numbers"


@pytest.fixture(scope="session")
def attention_bundle(fixture_dir) -> Path:
    return fixture_dir / "bundles" / "attention"


def default_signals() -> None:
    """``preexec_fn`` for a child process a test signals: SIGINT and SIGTERM act as a terminal delivers them, whatever
    this process inherited (a job started in the background ignores SIGINT, and its children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def bytes_read(pid: int) -> int:
    """Bytes process ``pid`` has read through read() so far (/proc/PID/io ``rchar``)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError(f"no rchar in /proc/{pid}/io")
