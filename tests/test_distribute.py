"""s2s train --distribute (train/distribute.py): two worker processes on 127.0.0.1 train the digits task to the
exact match one process reaches, and write a run folder of the same format. Needs the [train] extra."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import requires_train

pytestmark = [requires_train, pytest.mark.slow]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _train(out, *extra, env=None, wait=True):
    cmd = [sys.executable, "-m", "seq2seq_edge.cli", "train", "--task", "digits", "--out", str(out), "--quiet",
           *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})
    return proc


def _finish(proc, timeout=240):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0 and "Traceback" not in err.decode(), err.decode()[-3000:]
    return out.decode()


def test_two_workers_train_to_the_exact_match_of_one(tmp_path):
    started = time.perf_counter()
    _finish(_train(tmp_path / "one"))
    one_seconds = time.perf_counter() - started
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    started = time.perf_counter()
    procs = [_train(tmp_path / "two", "--distribute", "multiworker", env={"TF_CONFIG": json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})}) for i in range(2)]
    outputs = [_finish(p) for p in procs]
    two_seconds = time.perf_counter() - started
    print(f"\ndigits, 100 epochs: 1 process {one_seconds:.0f} s, 2 workers {two_seconds:.0f} s (wall, start to end)")
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert abs(one["exact_match"] - two["exact_match"]) <= 0.01, (one["exact_match"], two["exact_match"])
    assert two["exact_match"] == 1.0 and all("exact match 100.00%" in o for o in outputs)
    # The same run folder format; the config says what was trained: the global batch and the scaled rate.
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    cfg1 = json.loads((tmp_path / "one" / "config.json").read_text())
    cfg2 = json.loads((tmp_path / "two" / "config.json").read_text())
    assert cfg1.keys() == cfg2.keys()
    assert cfg2["training"]["batch_size"] == 2 * cfg1["training"]["batch_size"]
    assert cfg2["training"]["learning_rate"] == pytest.approx(cfg1["training"]["learning_rate"] * 2 ** 0.5)
    # Only the chief wrote: nothing else beside the run folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]


def test_multiworker_without_tf_config_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    proc = subprocess.run([sys.executable, "-m", "seq2seq_edge.cli", "train", "--task", "digits", "--out",
                           str(tmp_path / "r"), "--distribute", "multiworker"], capture_output=True, env=env)
    err = proc.stderr.decode()
    lines = [line for line in err.splitlines() if line.startswith("s2s ")]
    assert proc.returncode == 2 and "Traceback" not in err
    assert lines == ['s2s train: error: --distribute multiworker needs TF_CONFIG: {"cluster": {"worker": '
                     '["host:port", ...]}, "task": {"type": "worker", "index": N}} (see docs/scale.md)']
    assert not (tmp_path / "r").exists()


def test_mirrored_trains_and_writes_the_run_folder(tmp_path):
    out = _finish(_train(tmp_path / "m", "--distribute", "mirrored", "--epochs", "3"))
    assert "3 epochs in" in out and (tmp_path / "m" / "model.keras").is_file()
    history = (tmp_path / "m" / "history.csv").read_text().splitlines()
    assert history[0] == "epoch,accuracy,loss,val_accuracy,val_loss,val_sample_exact_match" and len(history) == 4


def test_mirrored_training_uses_the_label_smoothing_it_records(tmp_path):
    """The distributed loop computes its own loss: with --label-smoothing it must be the smoothed one, as the
    single-process fit's (the --data default is 0.1). Smoothing E puts a floor of E * log(vocabulary) under every
    token's loss, so with E = 0.9 the validation loss stays far above the unsmoothed run's; if the option were
    ignored the two runs would be the same run."""
    import csv

    losses = {}
    for eps in ("0", "0.9"):
        _finish(_train(tmp_path / eps, "--distribute", "mirrored", "--epochs", "20", "--label-smoothing", eps))
        config = json.loads((tmp_path / eps / "config.json").read_text())
        assert config["training"]["label_smoothing"] == float(eps)
        with open(tmp_path / eps / "history.csv") as f:
            losses[eps] = float(list(csv.DictReader(f))[-1]["val_loss"])
    assert losses["0.9"] > 1.5 * losses["0"], losses
