"""The runtime path imports numpy and one interpreter, never TensorFlow, Keras, tf2onnx or onnx."""

import json
import subprocess
import sys

HEAVY = ("tensorflow", "keras", "tf_keras", "tf2onnx", "onnx", "jax", "torch")

SCRIPT = """
import json, sys
import seq2seq_edge, seq2seq_edge.cli, seq2seq_edge.cli.run
decoder = seq2seq_edge.load(sys.argv[1])
out = decoder.decode_batch([str(d) for d in range(1, 10)])
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"out": out, "backend": decoder.backend, "heavy": heavy}))
"""


def test_runtime_imports_no_heavy_module(digits_bundle):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(digits_bundle), json.dumps(HEAVY)],
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["out"] == ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    assert result["heavy"] == [], f"runtime on {result['backend']} imported {result['heavy']}"
