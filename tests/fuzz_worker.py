"""Child process of test_fuzz.py: loads corrupted bundles one after another and reports each outcome.

    python fuzz_worker.py BUNDLE CASES.json START

Prints one JSON line per case as soon as it is done. If the interpreter crashes the process, the parent sees the
signal and knows the case from the last "start" line.
"""

import hashlib
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

import seq2seq_edge
from seq2seq_edge import backends
from seq2seq_edge import manifest as mf
from seq2seq_edge.errors import BundleError, Seq2SeqEdgeError


def corrupt(data: bytes, other: bytes, strategy: str, rng: random.Random) -> bytes:
    if strategy == "zero-byte":
        return b""
    if strategy == "truncated":
        return data[: rng.randrange(1, len(data))]
    if strategy == "random-bytes":
        return rng.randbytes(len(data))
    if strategy == "flipped-bytes":
        out = bytearray(data)
        for _ in range(rng.choice((1, 2, 8, 64))):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        return bytes(out)
    if strategy == "wrong-magic":
        out = bytearray(data)
        out[: 8] = rng.randbytes(8)
        return bytes(out)
    if strategy == "other-format":  # a .onnx where a .tflite belongs, and the other way round
        return other
    if strategy == "header-kept-tail-random":
        cut = rng.randrange(8, max(9, len(data) // 4))
        return data[:cut] + rng.randbytes(len(data) - cut)
    raise ValueError(strategy)


def main() -> int:
    bundle, cases, start = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), int(sys.argv[3])
    manifest = json.loads((bundle / mf.MANIFEST_FILE).read_text())
    golden = json.loads((bundle / "golden.json").read_text())["items"]
    inputs, expected = [g["input"] for g in golden], [g["output"] for g in golden]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "bundle"
        shutil.copytree(bundle, work)
        for index in range(start, len(cases)):
            case = cases[index]
            print(json.dumps({"start": index}), flush=True)
            rng = random.Random(case["seed"])
            entry = next(m for m in manifest["models"] if m["path"] == case["file"])
            other_fmt = "onnx" if entry["format"] == "tflite" else "tflite"
            # the same role in the other format (its fp32 file where that format has no such variant)
            same = bundle / entry["path"].replace(entry["format"], other_fmt).replace(".fp16.", ".fp32.")
            if not same.is_file():
                same = bundle / f"{entry['role']}.fp32.{other_fmt}"
            other = same.read_bytes()
            data = corrupt((bundle / entry["path"]).read_bytes(), other, case["strategy"], rng)
            (work / entry["path"]).write_bytes(data)
            m2 = json.loads(json.dumps(manifest))
            if case["resigned"]:  # the manifest is made to match, so only the interpreter's own checks remain
                for m in m2["models"]:
                    if m["path"] == entry["path"]:
                        m["sha256"], m["size_bytes"] = hashlib.sha256(data).hexdigest(), len(data)
            (work / mf.MANIFEST_FILE).write_text(json.dumps(m2))
            opened = []
            real_open = backends.open_model
            backends.open_model = lambda *a, **k: (opened.append(1), real_open(*a, **k))[1]
            try:
                # a greedy model is read only when it decodes: ask for it (ONNX does not use it by default)
                decoder = seq2seq_edge.load(work, backend=case["backend"], variant=entry["variant"],
                                            one_call=True if entry["role"] == "greedy" else None)
                got = decoder.decode_batch(inputs)
                outcome = "loaded, decodes golden" if got == expected else "loaded, decodes differently"
                message = ""
            except BundleError as e:
                outcome, message = "clear error", str(e)
            except Seq2SeqEdgeError as e:
                outcome, message = "clear error", str(e)
            except Exception as e:  # noqa: BLE001 - anything else is an unclear error, reported as such
                outcome, message = "unclear error", f"{type(e).__name__}: {e}"
            finally:
                backends.open_model = real_open
                (work / entry["path"]).write_bytes((bundle / entry["path"]).read_bytes())
            print(json.dumps({"index": index, "outcome": outcome, "message": message[:300],
                              "interpreter_saw_it": bool(opened)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
