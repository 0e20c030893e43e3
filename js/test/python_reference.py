"""The Python runtime's outputs for a bundle's golden inputs, as JSON, for the JavaScript tests to compare with.

python js/test/python_reference.py BUNDLE BACKEND VARIANT  ->  {"batch": [...], "single": [...], "near_ties": [...]}
``batch``: decode_batch (batch_size 32, as the JS decodeBatch default); ``single``: one decode per input. Dynamic
int8 quantization depends on the batch's values, so both are given. ``near_ties``: for each input, the runner-up
of a beam search of 2 when its log-probability is within ``NEAR_TIE`` of the best one's (else null): an output
that another interpreter's kernels (fp16, int8) may choose instead, their arithmetic differing by about 1e-3.
"""

import json
import sys
from pathlib import Path

import seq2seq_edge

bundle, backend, variant = sys.argv[1:4]
inputs = [item["input"] for item in json.loads((Path(bundle) / "golden.json").read_text())["items"]]
decoder = seq2seq_edge.load(bundle, backend=backend, variant=variant)
NEAR_TIE = 0.01
beams = decoder.decode_batch_results(inputs, beam_size=2, n_best=2, batch_size=32)
near_ties = [r.alternatives[0].text if r.alternatives and r.score - r.alternatives[0].score < NEAR_TIE else None
             for r in beams]
json.dump({"batch": decoder.decode_batch(inputs, batch_size=32), "single": [decoder.decode(x) for x in inputs],
           "near_ties": near_ties}, sys.stdout)
