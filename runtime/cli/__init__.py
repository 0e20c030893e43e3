"""The ``s2s`` command: ``train``, ``export``, ``verify``, ``run``, ``eval`` and ``bench``.

Heavy modules (TensorFlow, Keras, converters) are imported only inside the subcommands that need them, so
``s2s run`` and ``s2s eval`` work in a runtime-only install. User errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import sys

from .. import quiet
from ..errors import Seq2SeqEdgeError

log = logging.getLogger("seq2seq_edge")

EXIT_USER_ERROR = 2
#: Modules that only the [train] extra installs; a command that misses one says so in one line.
TRAIN_EXTRA_MODULES = {"tensorflow", "keras", "tf2onnx", "onnx", "num2words", "matplotlib"}


class HelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" to an option's help where the default means something: not for None or False, not
    when the help already gives it, and lists as the comma-separated text the option takes."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (not action.option_strings or action.required or default is None or default is False
                or default == argparse.SUPPRESS
                or "default" in text or isinstance(action, argparse._VersionAction)):
            return text
        if isinstance(default, (list, tuple)):
            default = ",".join(map(str, default))
        return f"{text} (default: {str(default).replace('%', '%%')})"


BACKEND_HELP = ("interpreter: litert (ai-edge-litert), tflite (tflite-runtime), onnx (onnxruntime), or auto: the "
                "first of those installed whose format the bundle holds")
VARIANT_HELP = "model variant: fp32, fp16 (TFLite only) or int8 (see s2s info BUNDLE for what a bundle holds)"


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train the LSTM encoder-decoder and write a training run folder",
        description="Train the seed's LSTM encoder-decoder on the digits, generated number words or your own "
                    "TSV pairs, and write a run folder (model.keras, config.json, history, curves, metrics).",
        formatter_class=HelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--task", choices=["digits", "numbers"], default=None,
                     help="built-in data: the seed's nine digit->word pairs, or integers->words via num2words "
                          "(default: digits)")
    src.add_argument("--data", metavar="FILE.tsv", help="your pairs: input<TAB>target per line, UTF-8")
    p.add_argument("--out", metavar="DIR", help="training run folder to write (default: runs/<task>)")
    p.add_argument("--force", action="store_true", help="overwrite an existing training run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress lines; only the result")
    _add_train_data_options(p.add_argument_group("data options"))
    _add_train_model_options(p.add_argument_group("model and optimisation (defaults depend on the task; see "
                                                  "docs/cli.md)"))
    p.set_defaults(func=_cmd_train)


def _add_train_data_options(g) -> None:
    g.add_argument("--lang", default="en", help="numbers task: num2words language code (en, de, fr, ...)")
    g.add_argument("--max", dest="max_number", type=int, default=9999, help="numbers task: largest integer")
    g.add_argument("--skip-header", action="store_true", help="--data: the first non-blank line is a header")
    g.add_argument("--input-tokens", dest="input_tokenization", choices=["char", "space"],
                   help="input tokenization (task default)")
    g.add_argument("--target-tokens", dest="target_tokenization", choices=["char", "space"],
                   help="target tokenization (task default: char; numbers: space)")
    g.add_argument("--val-fraction", dest="validation_fraction", type=float, default=0.1,
                   help="share of the inputs held out for validation (numbers and --data)")
    g.add_argument("--test-fraction", type=float, default=0.1,
                   help="share of the inputs held out for the test split (numbers and --data)")


def _add_train_model_options(m) -> None:
    m.add_argument("--latent", dest="latent_dim", type=int,
                   help="LSTM units, per direction (digits: 32, numbers: 256, --data: 128)")
    m.add_argument("--embedding-dim", type=int, help="0 = one-hot inputs as in the seed; N = learned embedding "
                                                     "(default: one-hot up to 512 tokens, else 256)")
    m.add_argument("--epochs", type=int, help="passes over the training split, at most (digits: 100, numbers: 40, "
                                              "--data: 100; early stopping may end sooner)")
    m.add_argument("--batch-size", type=int, help="pairs per training step (digits: 3, otherwise 64)")
    m.add_argument("--lr", dest="learning_rate", type=float, help="Adam learning rate (digits: 1e-2, otherwise 1e-3)")
    m.add_argument("--clipnorm", type=float, help="gradient clipping by norm, 0 disables (digits: 0, otherwise 1.0)")
    m.add_argument("--patience", type=int, help="early stopping: stop after this many epochs without a better "
                                                "validation loss, or with the validation sample decoded without "
                                                "an error, restoring the best weights; 0 disables (digits: 0, "
                                                "otherwise 5)")
    m.add_argument("--time-budget", metavar="DURATION",
                   help="stop before an epoch that would end past this much training (90s, 45m, 2h, 1h30m), keeping "
                        "the best weights so far: the best model that fits your time")
    m.add_argument("--lr-schedule", choices=["constant", "plateau"],
                   help="plateau: halve the learning rate after 2 epochs without a better validation loss "
                        "(--data: plateau; the tasks: constant)")
    m.add_argument("--min-improvement", type=float, metavar="F",
                   help="early stopping: an epoch is better only if it lowers the best validation loss (or error, "
                        "with --monitor accuracy) by at least this share of it (default: 0.001)")
    m.add_argument("--monitor", choices=["loss", "accuracy"],
                   help="the validation figure early stopping, --lr-schedule plateau and the kept weights follow: "
                        "the loss, or the token accuracy under teacher forcing (default: loss)")
    m.add_argument("--average-checkpoints", type=int, metavar="K",
                   help="average the weights of the K best epochs (by the --monitor figure) and keep the average "
                        "if it decodes more validation pairs exactly; 0 disables (--data: 5; the tasks: 0)")
    m.add_argument("--decoder", choices=["seed", "attention"],
                   help="seed: the tutorial's decoder (sees the encoder's final state); attention: also attends "
                        "over every input position (Luong) (--data: attention; the tasks: seed)")
    m.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                   help="with --decoder attention: a bidirectional encoder (--data: on, unless --decoder seed)")
    m.add_argument("--attend-embeddings", action=argparse.BooleanOptionalAction, default=None,
                   help="with --decoder attention: the attention reads each input position's embedding beside the "
                        "encoder's output there (--data: on, unless --decoder seed; the tasks: off)")
    m.add_argument("--encoder-layers", type=int, metavar="N",
                   help="stacked LSTM layers in the encoder (1 to 4), each reading the outputs of the one below "
                        "(default: 1)")
    m.add_argument("--decoder-layers", type=int, metavar="N",
                   help="stacked LSTM layers in the decoder (1 to 4); the top ones start from the encoder's top "
                        "layers (default: 1)")
    m.add_argument("--input-feeding", action=argparse.BooleanOptionalAction, default=None,
                   help="with --decoder attention: the attention's output at each step is part of the decoder's "
                        "input at the next (Luong et al. 2015); the state carries it (default: off)")
    m.add_argument("--dropout", type=float,
                   help="dropout on the LSTMs' inputs while training (--data: 0.2; the tasks: 0)")
    m.add_argument("--recurrent-dropout", type=float, metavar="P",
                   help="dropout on the LSTMs' recurrent state while training (default: 0)")
    m.add_argument("--attention-dropout", type=float, metavar="P",
                   help="with --decoder attention: dropout on the embeddings the attention reads and on its output "
                        "while training (default: 0)")
    m.add_argument("--min-symbol-count", type=int, metavar="N",
                   help="input symbols seen fewer than N times in the training split are replaced by an unknown "
                        "token, which any unseen input symbol then maps to at run time (default: 1, none)")
    m.add_argument("--symbol-dropout", type=float, metavar="ALPHA",
                   help="while training, each input symbol becomes an unknown token with probability ALPHA / "
                        "(ALPHA + its count in the training split): rare symbols often, frequent ones almost never; "
                        "the bundle then maps unseen input symbols to that token; needs length buckets, not "
                        "--distribute (default: 0, off)")
    m.add_argument("--distill-from", action="append", metavar="RUN",
                   help="learn each training target from the reference mixed with the distribution of these "
                        "trained runs (repeat for several: an ensemble's): one model that decodes at one model's "
                        "cost; each run must hold out the same pairs (same data and --split-seed) (default: none)")
    m.add_argument("--distill-weight", type=float, metavar="W",
                   help="with --distill-from: the teachers' share of each training target; the reference has the "
                        "rest (default: 0.5)")
    m.add_argument("--label-smoothing", type=float, metavar="E",
                   help="share of each target token's probability spread over the target vocabulary "
                        "(--data: 0.1; the tasks: 0)")
    m.add_argument("--r-drop", type=float, metavar="ALPHA",
                   help="R-Drop: each training pair passes twice with other dropout masks and each token's loss "
                        "adds ALPHA/2 times KL(its pass || the other pass); an epoch takes longer (about 1.5 times "
                        "on the pinyin set) (default: 0, off)")
    m.add_argument("--weight-decay", type=float, metavar="W",
                   help="decoupled weight decay: AdamW instead of Adam (default: 0)")
    m.add_argument("--length-buckets", action=argparse.BooleanOptionalAction, default=None,
                   help="batches of similar lengths, padded per batch: faster on long, mixed-length data "
                        "(default: on for --data, off for the built-in tasks)")
    m.add_argument("--seed", type=int, default=0, help="seeds every random source; same seed, same weights")
    m.add_argument("--split-seed", type=int, metavar="SEED",
                   help="the held-out split's own seed (default: --seed): runs with other --seed values and the same "
                        "--split-seed hold out the same pairs and share vocabularies, so they can decode as one "
                        "ensemble (s2s run --ensemble)")
    m.add_argument("--distribute", choices=["mirrored", "multiworker"],
                   help="data-parallel training with tf.distribute: mirrored (this machine's devices) or "
                        "multiworker (the machines in TF_CONFIG; worker 0 writes the run folder); --batch-size "
                        "is per replica (see docs/scale.md)")


def _require_train_extra() -> None:
    """Raise the ModuleNotFoundError ``main`` turns into the install line before anything is read or printed, when
    the [train] extra's heavy modules are missing (a runtime-only venv)."""
    import importlib.util

    for name in ("keras", "tensorflow"):
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def _cmd_train(args) -> int:
    _require_train_extra()
    from ..train import trainer  # the train/ folder, installed as seq2seq_edge.train (pyproject.toml)

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
        clipnorm=args.clipnorm, patience=args.patience, seed=args.seed, split_seed=args.split_seed,
        decoder=args.decoder, bidirectional=args.bidirectional, attend_embeddings=args.attend_embeddings,
        dropout=args.dropout, recurrent_dropout=args.recurrent_dropout, attention_dropout=args.attention_dropout,
        encoder_layers=args.encoder_layers, decoder_layers=args.decoder_layers, input_feeding=args.input_feeding,
        min_symbol_count=args.min_symbol_count, symbol_dropout=args.symbol_dropout,
        label_smoothing=args.label_smoothing, r_drop=args.r_drop,
        weight_decay=args.weight_decay, length_buckets=args.length_buckets, min_improvement=args.min_improvement,
        time_budget_s=_duration(args.time_budget), lr_schedule=args.lr_schedule, monitor=args.monitor,
        average_checkpoints=args.average_checkpoints,
        distill_from=tuple(args.distill_from) if args.distill_from else None, distill_weight=args.distill_weight,
        validation_fraction=args.validation_fraction, test_fraction=args.test_fraction)
    out = args.out or f"runs/{task if task != 'data' else _stem(args.data)}"
    result = trainer.train(cfg, out, force=args.force, quiet=args.quiet, distribute=args.distribute)
    wer = f", WER {result['word_error_rate']:.4f}" if "word_error_rate" in result else ""
    print(f"{out}: exact match {result['exact_match']:.2%}, CER {result['character_error_rate']:.4f}{wer} "
          f"on {result['test_pairs']} test pairs; {result['epochs_run']} epochs in {result['train_seconds']:.0f} s"
          + (" (stopped by --time-budget)" if result.get("stopped_by_time_budget") else ""))
    return 0


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    from ..train.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as e:
        raise Seq2SeqEdgeError(f"--time-budget: {e}") from None


def _stem(path: str) -> str:
    from pathlib import Path

    return Path(path).stem or "data"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _peers(value: str | None) -> tuple[str, ...]:
    from ..bench.peers import PEERS

    names = tuple(_csv(value or ""))
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise Seq2SeqEdgeError(f"--peer {','.join(unknown)}: choose from {', '.join(PEERS)}")
    return names


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export", help="export a run to TFLite and ONNX, gated on parity with Keras",
        description="Export the encoder and the single-step decoder of a run folder to TFLite and ONNX, write "
                    "manifest.json, and fail unless every variant matches Keras on the run's test split.",
        formatter_class=HelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="training run folder written by s2s train")
    p.add_argument("--out", metavar="BUNDLE_DIR", required=True, help="bundle folder to write")
    p.add_argument("--format", type=_csv, default=["tflite", "onnx"], help="comma-separated formats: tflite,onnx")
    p.add_argument("--quantize", type=_csv, default=["fp32", "fp16", "int8"],
                   help="comma-separated variants: fp32,fp16,int8 (fp16 is TFLite only)")
    p.add_argument("--force", action="store_true", help="overwrite an existing bundle")
    p.add_argument("--leave-out-failed", action="store_true",
                   help="write the variants that pass the gate and leave out those that fail (recorded in the "
                        "manifest, shown by s2s info); an fp32 variant whose strings differ from Keras' still "
                        "fails the export")
    p.add_argument("--ensemble", metavar="RUN_DIR", action="append", default=[],
                   help="another run trained on the same data with the same tokenization (repeat for more, up to 8 "
                        "models in all): the bundle decodes with every run's model at once, each step the "
                        "normalized geometric mean of their distributions, in every runtime")
    p.add_argument("--quiet", action="store_true", help="only the result and errors")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    _require_train_extra()
    from ..export import export_bundle  # the export/ folder, installed as seq2seq_edge.export (pyproject.toml)

    result = export_bundle(args.run_dir, args.out, formats=args.format, quantize=args.quantize, force=args.force,
                           leave_out_failed=args.leave_out_failed, ensemble=args.ensemble)
    _print_gate(args.out, result)
    return 0


def _print_gate(bundle: str, result: dict) -> None:
    print(f"{bundle}: parity gate passed on {result['inputs']} inputs "
          f"(Keras exact match {result['keras']['exact_match']:.2%})")
    for v in result["variants"]:
        used = [float(t["tolerance_used"]) for t in v.get("stepwise", {}).values()]
        diff = f", {max(used):.0%} of the fp32 limit used" if used else ""
        print(f"  {v['format']:6} {v['variant']:4}  agreement {v['agreement']:.2%}  exact match "
              f"{v['exact_match']:.2%}  CER {v['character_error_rate']:.4f}{diff}")
    for v in result.get("left_out", []):
        print(f"  {v['format']:6} {v['variant']:4}  LEFT OUT: {v['reason']}")


def _add_verify(sub) -> None:
    p = sub.add_parser("verify", help="re-run the parity gate of a bundle against its Keras model",
                       description="Re-run the export's parity gate: every variant of BUNDLE against the Keras "
                                   "model of its run folder. Exit status 1 if the gate fails.",
                       formatter_class=HelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder written by s2s export")
    p.add_argument("--run", metavar="RUN_DIR", action="append",
                   help="training run folder (default: the one the manifest names, looked for from here, beside the "
                        "bundle's folder and in runs/ there); an ensemble bundle's: once for each model, in order")
    p.add_argument("--quiet", action="store_true", help="only the result and errors")
    p.set_defaults(func=_cmd_verify)


def _cmd_verify(args) -> int:
    from ..export import verify_bundle  # the export/ folder, installed as seq2seq_edge.export (pyproject.toml)

    _print_gate(args.bundle, verify_bundle(args.bundle, args.run))
    return 0


def _add_run(sub) -> None:
    from ..options import MAX_BEAM_SIZE, MAX_LENGTH_PENALTY
    from ..answer import MAX_BATCH_SIZE

    p = sub.add_parser(
        "run", help="decode texts with a bundle (no TensorFlow needed)",
        description="Decode TEXT arguments, or else the lines of standard input, one output per line.",
        formatter_class=HelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder written by s2s export")
    p.add_argument("texts", metavar="TEXT", nargs="*", help="inputs to decode (none: read standard input)")
    p.add_argument("--backend", default="auto", choices=["auto", "tflite", "litert", "onnx"], help=BACKEND_HELP)
    p.add_argument("--variant", default="fp32", choices=["fp32", "fp16", "int8"], help=VARIANT_HELP)
    p.add_argument("--batch-size", type=int, default=32,
                   help=f"inputs per model call, 1 to {MAX_BATCH_SIZE}; stdin lines are answered when a batch is "
                        "full or the input pauses")
    p.add_argument("--threads", type=int, default=1, help="interpreter threads, 1 to the machine's CPU count")
    p.add_argument("--max-output-len", type=int,
                   help="stop outputs at this many tokens, 1 to the trained maximum (default: the trained maximum)")
    p.add_argument("--skip-unknown", action="store_true", help="drop symbols the model never saw instead of failing")
    p.add_argument("--ensemble", metavar="OTHER", action="append", default=[],
                   help="decode with BUNDLE and OTHER together (repeat for more, 8 bundles in all): at each step the "
                        "mean of their log-probabilities; bundles trained on the same data with the same "
                        "tokenization (docs/quality.md: what it buys, per millisecond). Step loop only")
    loop = p.add_mutually_exclusive_group()
    loop.add_argument("--one-call", dest="one_call", action="store_const", const=True,
                      help="greedy decodes with the bundle's one-call greedy model, an error if it has none "
                           "(default on TFLite backends when the bundle has it; ONNX Runtime decodes with the step "
                           "loop by default, measured faster there)")
    loop.add_argument("--step-loop", dest="one_call", action="store_const", const=False,
                      help="greedy decodes with the encoder and a decoder-step call per token, in Python")
    p.add_argument("--beam", type=int, metavar="N",
                   help=f"beam search with N hypotheses per input, 1 to {MAX_BEAM_SIZE} (default: --n-best, i.e. 1: "
                        "greedy decoding)")
    p.add_argument("--n-best", type=int, default=1, metavar="K",
                   help="print the K best outputs of each input (1 to --beam): TAB-separated on its line, or with "
                        "--json as \"n_best\": [{output, score, finished}, ...]")
    p.add_argument("--length-penalty", type=float, default=0.0, metavar="A",
                   help=f"beam search: rank by score / ((5 + length) / 6) ** A, 0 to {MAX_LENGTH_PENALTY:g} "
                        "(length: tokens + the end marker; 0: by log-probability)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line: input, output, score, finished, backend, variant, path (one-call "
                        "or step-loop), batch_items, batch_ms_per_item (and error, with --keep-going)")
    p.add_argument("--keep-going", action="store_true",
                   help="an input that cannot be decoded gets its error (on stderr; on stdout an empty line, or "
                        "with --json an object with an error field) and the others are answered; exit status 1 "
                        "if any failed (without it: stop at the first, exit status 2)")
    f = p.add_argument_group("files (see docs/scale.md)")
    f.add_argument("--input", metavar="FILE", help="decode the lines of FILE (- for standard input), in worker "
                   "processes: .jsonl: each object's \"input\"; .tsv: the first column; otherwise the whole line")
    f.add_argument("--output", metavar="FILE", help="write to FILE (default: standard output): .txt outputs, .tsv "
                   "input<TAB>output, .jsonl the --json objects; one line per input line, in order")
    f.add_argument("--workers", type=int, metavar="N",
                   help="processes decoding --input, each with its own interpreters, 1 to the CPU count "
                        "(default: the CPU count)")
    f.add_argument("--resume", action="store_true",
                   help="continue an --output a stopped run left (a partial last line is dropped): no line lost "
                        "or doubled")
    f.add_argument("--force", action="store_true", help="overwrite an existing --output")
    p.add_argument("--quiet", action="store_true", help="no hint when standard input is a terminal, no progress bar")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args) -> int:
    from .run import run_command

    return run_command(args)


def _add_eval(sub) -> None:
    from ..answer import MAX_BATCH_SIZE

    p = sub.add_parser(
        "eval", help="score a bundle on a TSV of pairs (no TensorFlow needed)",
        description="Decode the inputs of FILE.tsv (input<TAB>target per line, read as s2s train --data reads it) "
                    "with BUNDLE and report exact match, CER and, for space-tokenized targets, WER: overall, "
                    "against any listed reference, by input length and by output length, with the worst "
                    "buckets and their errors. Inputs the model cannot encode are scored as errors.",
        formatter_class=HelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder written by s2s export")
    p.add_argument("file", metavar="FILE.tsv", help="input<TAB>reference per line, UTF-8")
    p.add_argument("--backend", default="auto", choices=["auto", "tflite", "litert", "onnx"], help=BACKEND_HELP)
    p.add_argument("--variant", default="fp32", choices=["fp32", "fp16", "int8"], help=VARIANT_HELP)
    p.add_argument("--beam", type=int, default=1, metavar="N", help="beam size; 1 is greedy decoding")
    p.add_argument("--ensemble", metavar="OTHER", action="append", default=[],
                   help="score BUNDLE and OTHER decoding together (repeat for more, 8 bundles in all): see s2s run")
    p.add_argument("--batch-size", type=int, default=32, help=f"inputs per model call, 1 to {MAX_BATCH_SIZE}")
    p.add_argument("--skip-header", action="store_true", help="the first non-blank line is a header")
    p.add_argument("--json", action="store_true", help="one JSON object with every figure, instead of the report")
    p.add_argument("--max-errors", type=int, default=5, metavar="K",
                   help="errors listed overall and per worst bucket (and undecodable inputs)")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args) -> int:
    import json
    from pathlib import Path

    from ..answer import RunOptions
    from ..evaluation.evaluate import evaluate, format_text, read_pairs

    opts = RunOptions.from_args(args)
    if args.max_errors < 0:
        raise Seq2SeqEdgeError(f"--max-errors must be 0 or more, got {args.max_errors}")
    pairs = read_pairs(args.file, skip_header=args.skip_header)
    decoder = opts.load(args.bundle, args.ensemble)
    result = evaluate(decoder, pairs, options=opts.decode, max_errors=args.max_errors)
    if args.json:
        ensemble = {"ensemble": [str(Path(b)) for b in args.ensemble]} if args.ensemble else {}
        out = json.dumps({"bundle": str(Path(args.bundle)), **ensemble, "file": str(Path(args.file)), **result},
                         ensure_ascii=False, indent=2) + "\n"
    else:
        out = format_text(result, bundle=" + ".join([args.bundle, *args.ensemble]), file=args.file)
    try:
        sys.stdout.buffer.write(out.encode("utf-8", "backslashreplace"))
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as s2s run does
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser(
        "bench", help="benchmark a bundle on this machine's runtimes, or compare runs from several machines",
        description="Measure BUNDLE on every installed backend and variant (no TensorFlow needed): encoder and "
                    "decoder-step latency, the decode loop, per-word p50/p95/p99 on the bundle's golden inputs, "
                    "throughput at batch 1/8/64/256, cold start and peak memory, each backend's floor, and the "
                    "machine. With TensorFlow and the run folder, Keras (predict per character, and direct calls) "
                    "is measured beside them. Writes results.json, results.md and chart.svg into a folder named "
                    "after the bundle and the machine. --compare merges results.json files from several machines "
                    "into one table and chart; it refuses runs of different bundles or settings.",
        formatter_class=HelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE", nargs="?", help="bundle folder to measure (none with --compare)")
    p.add_argument("--compare", metavar="RESULTS_JSON", nargs="+",
                   help="merge these results.json files (from s2s bench on several machines) instead of measuring")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="--compare: merge runs of different bundles or settings anyway, with a warning")
    p.add_argument("--out", metavar="DIR",
                   help="where to write (default: bench-results/<bundle>-on-<machine>, or "
                        "bench-results/compare-<bundle> with --compare)")
    p.add_argument("--force", action="store_true", help="overwrite results already in --out")
    p.add_argument("--quick", action="store_true",
                   help="fewer repetitions (a minute or two): rough figures; compares only with other --quick runs")
    p.add_argument("--threads", default="1,max",
                   help="interpreter thread counts: 1 for every variant, the others (numbers, or max = all "
                        "cores) for fp32")
    p.add_argument("--backend", metavar="LIST", help="only these backends, comma-separated: tflite,litert,onnx "
                                                    "(default: every one installed)")
    p.add_argument("--label", help="this machine's name in comparisons (default: CPU, cores and architecture)")
    p.add_argument("--run", metavar="RUN_DIR",
                   help="training run folder for the Keras contenders; needs TensorFlow (default: the manifest's, if "
                        "TensorFlow is installed and the folder exists)")
    p.add_argument("--no-keras", action="store_true", help="leave the Keras contenders out")
    p.add_argument("--peer", metavar="NAME", help="also time a decoder outside this project on the same words: "
                   "g2p_en (its numpy GRU, for a CMUdict bundle; pip install g2p_en)")
    p.add_argument("--tflite-python", metavar="PYTHON",
                   help="python of another venv with seq2seq-edge[tflite] (numpy<2), to include tflite-runtime "
                        "when this one cannot import it")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args) -> int:
    from pathlib import Path

    from ..bench import compare, harness, report  # the benchmarks/ folder, as seq2seq_edge.bench (pyproject.toml)

    def writable(out: Path, name: str) -> None:
        if (out / name).exists() and not args.force:
            raise Seq2SeqEdgeError(f"{out / name} exists; --force overwrites it, or choose another --out")

    if args.compare:
        if args.bundle:
            raise Seq2SeqEdgeError("give BUNDLE to measure, or --compare FILE FILE ... to merge runs, not both")
        merged = compare.merge(args.compare, allow_mismatch=args.allow_mismatch)
        for warning in merged["mismatches"]:
            print(f"s2s bench: warning: comparing anyway: {warning}", file=sys.stderr)
        out = Path(args.out or Path("bench-results") / f"compare-{merged['bundle']['name']}")
        writable(out, "compare.md")
        compare.write(merged, [r for f in args.compare for r in compare.load(f)], out)
        sys.stdout.write(compare.markdown(merged))
        print(f"\n{out}/compare.md")
        return 0
    if not args.bundle:
        raise Seq2SeqEdgeError("BUNDLE is missing (or --compare RESULTS_JSON RESULTS_JSON ... to merge runs)")
    only = _csv(args.backend) if args.backend else None
    if only:
        from ..backends import BACKENDS

        unknown = [b for b in only if b not in BACKENDS]
        if unknown:
            raise Seq2SeqEdgeError(f"--backend {','.join(unknown)}: choose from {', '.join(BACKENDS)}")
    from ..loader import check_bundle_folder

    bundle = Path(args.bundle)
    check_bundle_folder(bundle)
    slug = harness.machine(args.label)["slug"]
    out = Path(args.out or Path("bench-results") / f"{bundle.resolve().name}-on-{slug}")
    writable(out, report.RESULTS_JSON)
    with quiet.native_logs_caught():  # TensorFlow's C++ lines in the Keras contenders (seq2seq_edge.quiet)
        result = harness.bench(bundle, run_dir=args.run, quick=args.quick,
                               tflite_python=args.tflite_python, threads=_csv(args.threads), label=args.label,
                               only_backends=only, keras=not args.no_keras, peers=_peers(args.peer))
    report.write([result], out)
    floors = result["floors_us"]
    for x in result["runtime"]:
        if x["variant"] == "fp32" and x["threads"] == 1:
            floor = f", floor {floors[x['backend']]:.1f} µs" if x["backend"] in floors else ""
            print(f"  {x['backend']:6} fp32: {x['word_latency_ms']['p50']:.3f} ms per word (p50, {x['decode_path']}), "
                  f"step {x['step_us']:.1f} µs{floor}")
    for label, value in report.headline_ratios(result):
        print(f"  {label}: {value:.2f}")
    for x in result["failed"]:
        print(f"  FAILED {x['backend']} {x['variant']}: {x['error']}")
    if result["machine"]["emulated"]:
        print(f"  EMULATED: {result['machine']['emulation']}")
    print(f"{out}/{report.RESULTS_MD}")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse, with a user error as one line naming the problem (and where the options are), not the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the options)\n")


def _unrecognized(command: argparse.ArgumentParser, extra: list[str]) -> None:
    """The error for arguments ``command`` does not take, with the closest option it does take."""
    options = [o for action in command._actions for o in action.option_strings]
    first = next((e for e in extra if e.startswith("-")), extra[0]).split("=", 1)[0]
    close = difflib.get_close_matches(first, options, n=1, cutoff=0.6)
    command.error(f"unrecognized arguments: {' '.join(extra)}" + (f"; did you mean {close[0]}?" if close else ""))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="s2s", description="seq2seq-edge: train, export and run LSTM encoder-decoders "
                                            "on edge devices.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    _add_export(sub)
    _add_verify(sub)
    _add_run(sub)
    _add_eval(sub)
    _add_info(sub)
    _add_bench(sub)
    parser.commands = sub.choices  # name -> the command's parser, for errors in its own words
    for p in sub.choices.values():  # -v after the command too; SUPPRESS keeps the value given before it
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


VERBOSE_HELP = ("also show the libraries' own log lines (TensorFlow, LiteRT, ONNX Runtime, converters) and "
                "s2s's debug lines")


def _add_info(sub) -> None:
    p = sub.add_parser(
        "info", help="what a bundle holds: task, vocabularies, limits, variants, parity, versions",
        description="Show what BUNDLE holds, from its manifest and parity report, without loading a model: the "
                    "task and training settings, the vocabularies' sizes and length limits, each variant with "
                    "its file sizes, the parity gate's results, and the versions it was made and tested with.",
        formatter_class=HelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder written by s2s export")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the text report")
    p.set_defaults(func=_cmd_info)


def _cmd_info(args) -> int:
    import json

    from .info import bundle_info, format_info

    info = bundle_info(args.bundle)
    out = json.dumps(info, ensure_ascii=False, indent=2) + "\n" if args.json else format_info(info)
    sys.stdout.buffer.write(out.encode("utf-8", "backslashreplace"))
    sys.stdout.buffer.flush()
    return 0


def _version() -> str:
    from ..versions import package_version

    return package_version("seq2seq-edge") or "unknown"


def _configure_logging(quiet_: bool, verbose: bool = False) -> None:
    """Our lines at INFO on stderr (DEBUG with -v, WARNING with --quiet); the libraries' at ERROR, or as they
    are with -v (``quiet``: their C++ logs too)."""
    quiet.configure(verbose)  # first: it may move sys.stderr, which the handler below writes to
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(message)s", stream=sys.stderr)
    quiet.quiet_library_loggers()
    log.setLevel(logging.WARNING if quiet_ else logging.DEBUG if verbose else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `s2s run B --json 5`: argparse stops filling TEXT at the first option; texts after options land here.
    if extra and args.command == "run" and not any(e.startswith("-") for e in extra):
        args.texts = list(args.texts) + extra
    elif extra:
        _unrecognized(parser.commands[args.command], extra)
    _configure_logging(getattr(args, "quiet", False), getattr(args, "verbose", False))
    try:
        return args.func(args)
    except Seq2SeqEdgeError as e:
        print(f"s2s {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in TRAIN_EXTRA_MODULES:
            print(f"s2s {args.command}: error: this command needs {e.name}, which is not installed: in a clone "
                  "of seq2seq-edge, pip install '.[train]'", file=sys.stderr)
            return EXIT_USER_ERROR
        raise
    except KeyboardInterrupt:
        print(f"s2s {args.command}: interrupted", file=sys.stderr)
        return 130
