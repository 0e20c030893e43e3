"""The Python runtime's text policy on given inputs, for the JavaScript tests to compare with.

Standard input: {"preprocessing": <a manifest's preprocessing section>, "inputs": [...], "skip_unknown": bool}.
Standard output: one {"ids": [...]} or {"error": "<InputTextError or TypeError message>"} per input.
"""

import json
import sys

from seq2seq_edge.preprocessing import Preprocessing

request = json.load(sys.stdin)
prep = Preprocessing.from_dict(request["preprocessing"])
out = []
for text in request["inputs"]:
    try:
        out.append({"ids": prep.encode_input(text, skip_unknown=request.get("skip_unknown", False))})
    except (ValueError, TypeError) as e:
        out.append({"error": str(e)})
json.dump(out, sys.stdout)
