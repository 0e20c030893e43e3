"""Reproduce the benchmark table of docs/benchmarks.md from a fresh clone (needs the [train] extra):

    python benchmarks/run_all.py            # full: trains the two reference models, then measures
    python benchmarks/run_all.py --quick    # the harness end to end on small models; figures are rough

1. trains and exports the three reference models into benchmarks/models/: the seed's digits model (latent 32),
   the numbers model (latent 256, English 0-9999), both with their task defaults, and a model with long inputs:
   CMUdict grapheme-to-phoneme (words of up to 28 letters; attention over a bi-LSTM of 128 units, the quality
   benchmark's recipe, at most 30 epochs), timed beside the ``g2p_en`` package's decoder when it is installed;
2. builds the runtime-only venvs it compares (benchmarks/.venvs/tflite: numpy<2 + tflite-runtime 2.14;
   benchmarks/.venvs/onnx: onnxruntime) unless they exist;
3. runs the harness on both bundles and writes benchmarks/results/{results.json, results.md, chart.svg,
   chart.png}
   and the table in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import venv
from pathlib import Path

from seq2seq_edge import manifest as mf

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

REFERENCE_MODELS = {
    "digits": {"task": "digits"},
    "numbers": {"task": "numbers"},
    "cmudict": {"task": "data", "target_tokenization": "space", "decoder": "attention", "bidirectional": True,
                "latent_dim": 128, "epochs": 30, "patience": 3},
}
QUICK_OVERRIDES = {"numbers": {"max_number": 999, "epochs": 3, "patience": 0},
                   "cmudict": {"epochs": 1, "patience": 0}}
#: Peers (benchmarks/peers.py) timed beside a reference model.
PEERS = {"cmudict": ("g2p_en",)}


def prepare_models(models_dir: Path, quick: bool) -> dict[str, tuple[Path, Path]]:
    from seq2seq_edge.export import export_bundle
    from seq2seq_edge.train import trainer

    out = {}
    for name, spec in REFERENCE_MODELS.items():
        spec = {**spec, **(QUICK_OVERRIDES.get(name, {}) if quick else {})}
        tag = f"{name}-quick" if quick else name
        run_dir, bundle = models_dir / "runs" / tag, models_dir / "bundles" / tag
        if name == "cmudict":
            from .quality import cmudict_tsv

            (models_dir / "data").mkdir(parents=True, exist_ok=True)
            spec["data_file"] = str(cmudict_tsv(models_dir / "data")[0])
        if not (bundle / mf.MANIFEST_FILE).is_file():
            logging.info("training and exporting %s", tag)
            trainer.train(trainer.task_defaults(spec.pop("task"), **spec), run_dir, force=True, quiet=True)
            export_bundle(run_dir, bundle, force=True)
        out[name] = (run_dir, bundle)
    return out


def ensure_venv(path: Path, extra: str) -> Path:
    """A runtime-only venv with this checkout's seq2seq-edge[extra] (reinstalled each run, so it measures the
    current code)."""
    python = path / "bin" / "python"
    if not python.exists():
        logging.info("creating %s (.[%s])", path, extra)
        venv.create(path, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"{REPO}[{extra}]"], check=True)
    else:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", str(REPO)],
                       check=True)
    return python


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small models and few repetitions: checks the harness")
    p.add_argument("--models", type=Path, default=HERE / "models")
    p.add_argument("--venvs", type=Path, default=HERE / ".venvs")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--no-docs", action="store_true", help="do not rewrite the table in docs/benchmarks.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from . import harness, report

    models = prepare_models(args.models, args.quick)
    tflite_python = ensure_venv(args.venvs / "tflite", "tflite")
    ensure_venv(args.venvs / "onnx", "onnx")
    venvs = {"runtime tflite": args.venvs / "tflite", "runtime onnx": args.venvs / "onnx", "training": Path(sys.prefix)}
    results = [harness.bench(bundle, run_dir=run_dir, quick=args.quick, tflite_python=str(tflite_python),
                             venvs=venvs, peers=PEERS.get(name, ())) for name, (run_dir, bundle) in models.items()]
    page = None if args.no_docs or args.quick else report.DOCS / "benchmarks.md"
    summary = report.write(results, args.out, page, png=True, targets=True)
    for row in summary["targets"]:
        print(f"{row['bundle']:10} {row['measure']:55} {row['value']:>12.2f}  {row['target']:>8}  "
              f"{'met' if row['met'] else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    from seq2seq_edge.bench import run_all as _self  # run as the package module so relative imports work

    sys.exit(_self.main())
