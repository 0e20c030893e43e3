"""The Python runtime's outputs for a bundle's golden inputs, as JSON, for the JavaScript tests to compare with.

python js/test/python_reference.py BUNDLE BACKEND VARIANT  ->  {"batch": [...], "single": [...]}
``batch``: decode_batch (batch_size 32, as the JS decodeBatch default); ``single``: one decode per input. Dynamic
int8 quantization depends on the batch's values, so both are given.
"""

import json
import sys
from pathlib import Path

import seq2seq_edge

bundle, backend, variant = sys.argv[1:4]
inputs = [item["input"] for item in json.loads((Path(bundle) / "golden.json").read_text())["items"]]
decoder = seq2seq_edge.load(bundle, backend=backend, variant=variant)
json.dump({"batch": decoder.decode_batch(inputs, batch_size=32), "single": [decoder.decode(x) for x in inputs]},
          sys.stdout)
