"""The ``s2s`` command: ``train``, ``export``, ``verify``, ``run`` and ``bench``.

Heavy modules (TensorFlow, Keras, converters) are imported only inside the subcommands that need them, so
``s2s run`` works in a runtime-only install. User errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import Seq2SeqEdgeError

log = logging.getLogger("seq2seq_edge")

EXIT_USER_ERROR = 2
#: Modules that only the [train] extra installs; a command that misses one says so in one line.
TRAIN_EXTRA_MODULES = {"tensorflow", "keras", "tf2onnx", "onnx", "num2words", "matplotlib"}


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train the LSTM encoder-decoder and write a run folder",
        description="Train the seed's LSTM encoder-decoder on the digits, generated number words or your own "
                    "TSV pairs, and write a run folder (model.keras, config.json, history, curves, metrics).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--task", choices=["digits", "numbers"], default=None,
                     help="built-in data: the seed's nine digit->word pairs, or integers->words via num2words "
                          "(default: digits)")
    src.add_argument("--data", metavar="FILE.tsv", help="your pairs: input<TAB>target per line, UTF-8")
    p.add_argument("--out", metavar="DIR", help="run folder to write (default: runs/<task>)")
    p.add_argument("--force", action="store_true", help="overwrite an existing run folder")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    g = p.add_argument_group("data options")
    g.add_argument("--lang", default="en", help="numbers task: num2words language code (en, de, fr, ...)")
    g.add_argument("--max", dest="max_number", type=int, default=9999, help="numbers task: largest integer")
    g.add_argument("--skip-header", action="store_true", help="--data: the first non-blank line is a header")
    g.add_argument("--input-tokens", dest="input_tokenization", choices=["char", "space"],
                   help="input tokenization (task default)")
    g.add_argument("--target-tokens", dest="target_tokenization", choices=["char", "space"],
                   help="target tokenization (task default: char; numbers: space)")
    g.add_argument("--val-fraction", dest="validation_fraction", type=float, default=0.1)
    g.add_argument("--test-fraction", type=float, default=0.1)
    m = p.add_argument_group("model and optimisation (defaults depend on the task; see the README)")
    m.add_argument("--latent", dest="latent_dim", type=int, help="LSTM units")
    m.add_argument("--embedding-dim", type=int, help="0 = one-hot inputs as in the seed; N = learned embedding "
                                                     "(default: one-hot up to 512 tokens, else 256)")
    m.add_argument("--epochs", type=int)
    m.add_argument("--batch-size", type=int)
    m.add_argument("--lr", dest="learning_rate", type=float, help="Adam learning rate")
    m.add_argument("--clipnorm", type=float, help="gradient clipping by norm (0 disables)")
    m.add_argument("--patience", type=int, help="early stopping on validation loss, restoring the best "
                                                "weights (0 disables)")
    m.add_argument("--seed", type=int, default=0, help="seeds every random source; same seed, same weights")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from .train import trainer  # the train/ folder, installed as seq2seq_edge.train (pyproject.toml)

    task = "data" if args.data else (args.task or "digits")
    for name in ("latent_dim", "epochs", "batch_size", "learning_rate"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            raise Seq2SeqEdgeError(f"--{name.replace('_', '-')} must be positive, got {v}")
    cfg = trainer.task_defaults(
        task, data_file=args.data, skip_header=args.skip_header, lang=args.lang, max_number=args.max_number,
        input_tokenization=args.input_tokenization, target_tokenization=args.target_tokenization,
        latent_dim=args.latent_dim, embedding_dim=args.embedding_dim, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate,
        clipnorm=args.clipnorm, patience=args.patience, seed=args.seed,
        validation_fraction=args.validation_fraction, test_fraction=args.test_fraction)
    out = args.out or f"runs/{task if task != 'data' else _stem(args.data)}"
    result = trainer.train(cfg, out, force=args.force, quiet=args.quiet)
    print(f"{out}: exact match {result['exact_match']:.2%}, CER {result['character_error_rate']:.4f} "
          f"on {result['test_pairs']} test pairs; {result['epochs_run']} epochs in {result['train_seconds']:.0f} s")
    return 0


def _stem(path: str) -> str:
    from pathlib import Path

    return Path(path).stem or "data"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export", help="export a run to TFLite and ONNX, gated on parity with Keras",
        description="Export the encoder and the single-step decoder of a run folder to TFLite and ONNX, write "
                    "manifest.json, and fail unless every variant matches Keras on the run's test split.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by s2s train")
    p.add_argument("--out", metavar="BUNDLE_DIR", required=True, help="bundle folder to write")
    p.add_argument("--format", type=_csv, default=["tflite", "onnx"], help="comma-separated: tflite,onnx")
    p.add_argument("--quantize", type=_csv, default=["fp32", "fp16", "int8"],
                   help="comma-separated variants: fp32,fp16,int8 (fp16 is TFLite only)")
    p.add_argument("--force", action="store_true", help="overwrite an existing bundle")
    p.add_argument("--quiet", action="store_true", help="only errors")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from .export import export_bundle  # the export/ folder, installed as seq2seq_edge.export (pyproject.toml)

    result = export_bundle(args.run_dir, args.out, formats=args.format, quantize=args.quantize, force=args.force)
    _print_gate(args.out, result)
    return 0


def _print_gate(bundle: str, result: dict) -> None:
    print(f"{bundle}: parity gate passed on {result['inputs']} inputs "
          f"(Keras exact match {result['keras']['exact_match']:.2%})")
    for v in result["variants"]:
        worst = max((x for x in v["max_abs_diff"].values() if isinstance(x, float)), default=None)
        diff = f", max abs diff {worst:.1e}" if worst is not None else ""
        print(f"  {v['format']:6} {v['variant']:4}  agreement {v['agreement']:.2%}  exact match "
              f"{v['exact_match']:.2%}  CER {v['character_error_rate']:.4f}{diff}")


def _add_verify(sub) -> None:
    p = sub.add_parser("verify", help="re-run the parity gate of a bundle against its Keras model",
                       description="Re-run the export's parity gate: every variant of BUNDLE against the Keras "
                                   "model of its run folder. Exit status 1 if the gate fails.")
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("--run", metavar="RUN_DIR", help="run folder (default: the one recorded in the manifest)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_verify)


def _cmd_verify(args) -> int:
    from .export import verify_bundle  # the export/ folder, installed as seq2seq_edge.export (pyproject.toml)

    _print_gate(args.bundle, verify_bundle(args.bundle, args.run))
    return 0


def _add_run(sub) -> None:
    from .run import MAX_BATCH_SIZE

    p = sub.add_parser(
        "run", help="decode texts with a bundle (no TensorFlow needed)",
        description="Decode TEXT arguments, or else the lines of standard input, one output per line.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("texts", metavar="TEXT", nargs="*")
    p.add_argument("--backend", default="auto", choices=["auto", "tflite", "litert", "onnx"])
    p.add_argument("--variant", default="fp32", choices=["fp32", "fp16", "int8"])
    p.add_argument("--batch-size", type=int, default=32,
                   help=f"inputs per model call, 1 to {MAX_BATCH_SIZE}; stdin lines are answered when a batch is "
                        "full or the input pauses")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads, 1 to the machine's CPU count")
    p.add_argument("--max-output-len", type=int, help="stop outputs at this many tokens (1 to the trained maximum)")
    p.add_argument("--skip-unknown", action="store_true", help="drop symbols the model never saw instead of failing")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line: input, output, score, backend, variant, ms")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args) -> int:
    from .run import run_command

    return run_command(args)


def _add_bench(sub) -> None:
    p = sub.add_parser(
        "bench", help="benchmark a bundle against Keras and across runtimes",
        description="Measure encoder and step latency, the decode loop, per-word percentiles, throughput at "
                    "batch 1/8/64/256, cold start and peak memory of BUNDLE on every installed backend, beside "
                    "Keras (predict per character, and direct calls). Writes results.json, results.md and "
                    "chart.png. Needs the [train] extra for the Keras contenders and the floor models.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE")
    p.add_argument("--run", metavar="RUN_DIR", help="run folder for the Keras contenders (default: the manifest's)")
    p.add_argument("--out", metavar="DIR", help="where to write the results (default: bench-results/<bundle name>)")
    p.add_argument("--tflite-python", metavar="PYTHON",
                   help="python of a venv with seq2seq-edge[tflite] (numpy<2), to include tflite-runtime")
    p.add_argument("--quick", action="store_true", help="few repetitions: checks the harness, rough figures")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args) -> int:
    from pathlib import Path

    from .bench import harness, report  # the benchmarks/ folder, as seq2seq_edge.bench (pyproject.toml)

    bundle = Path(args.bundle)
    result = harness.bench(bundle, run_dir=args.run, quick=args.quick, tflite_python=args.tflite_python)
    out = Path(args.out or Path("bench-results") / bundle.resolve().name)
    report.write([result], out)
    print(f"{out}/results.md")
    for row in report.target_rows(result):
        print(f"  {row['measure']}: {row['value']:.2f} (target {row['target']}: {'met' if row['met'] else 'missed'})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2s", description="seq2seq-edge: train, export and run LSTM encoder-decoders "
                                             "on edge devices.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    _add_export(sub)
    _add_verify(sub)
    _add_run(sub)
    _add_bench(sub)
    return parser


def _version() -> str:
    from .versions import package_version

    return package_version("seq2seq-edge") or "unknown"


def _configure_logging(quiet: bool) -> None:
    """Our progress lines at INFO on stderr; other libraries' loggers stay at WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    log.setLevel(logging.WARNING if quiet else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `s2s run B --json 5`: argparse stops filling TEXT at the first option; texts after options land here.
    if extra and args.command == "run" and not any(e.startswith("-") for e in extra):
        args.texts = list(args.texts) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _configure_logging(quiet=getattr(args, "quiet", False))
    try:
        return args.func(args)
    except Seq2SeqEdgeError as e:
        print(f"s2s {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in TRAIN_EXTRA_MODULES:
            print(f"s2s {args.command}: error: this command needs {e.name}, which is not installed: "
                  "pip install 'seq2seq-edge[train]'", file=sys.stderr)
            return EXIT_USER_ERROR
        raise
    except KeyboardInterrupt:
        print(f"s2s {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
