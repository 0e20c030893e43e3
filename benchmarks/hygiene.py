"""The training-hygiene benchmark: what each generalisation control of ``s2s train`` does on a real data set with a
large input alphabet, against a per-symbol lookup baseline on the same split.

    python -m seq2seq_edge.bench.hygiene [--epochs N] [--latent N] [--only none,dropout,...] [--work DIR]

* **Data**: the phrase dictionary of the ``pypinyin`` package (``pip install pypinyin``; no download at run time):
  Chinese phrases and their pinyin with tone marks, kept where every character has exactly one syllable (so the
  lookup baseline is well defined); about 47k pairs over more than 5,000 distinct characters. Input: characters;
  target: space-separated syllables.
* **Variants**: ``s2s train --data`` with the same seed, model and epoch budget and no control, then each control
  alone (``VARIANTS``). Each is trained through the real CLI and scored on the held-out test split by the run's
  ``metrics.json`` (the figures ``s2s eval`` gives: exact match, syllable error rate as WER, CER).
* **Baseline**: for each character, its most frequent syllable in the training split the runs used (its
  ``train.tsv``); a character never seen in training gets no syllable (an error). Scored by the same
  ``seq2seq_edge.evaluation.metrics.score``.

Writes ``benchmarks/results/hygiene.json`` and ``hygiene.md``; nobody types a figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

from seq2seq_edge.evaluation import metrics
from seq2seq_edge.evaluation.pairs import Pair, read_tsv

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SEED = 0

#: The model every variant shares (small enough for the budget of a shared 2-core machine).
COMMON = ["--input-tokens", "char", "--target-tokens", "space", "--decoder", "attention", "--embedding-dim", "128",
          "--patience", "3"]
#: name -> (what it is, the extra ``s2s train`` arguments).
VARIANTS = {
    "none": ("no controls", []),
    "dropout": ("dropout 0.3 on the LSTMs' inputs", ["--dropout", "0.3"]),
    "recurrent_dropout": ("recurrent dropout 0.2", ["--recurrent-dropout", "0.2"]),
    "min_symbol_count": ("characters seen once in training -> unknown token", ["--min-symbol-count", "2"]),
    "label_smoothing": ("label smoothing 0.1", ["--label-smoothing", "0.1"]),
    "weight_decay": ("AdamW, weight decay 0.05", ["--weight-decay", "0.05"]),
}

log = logging.getLogger("hygiene")


# ---- the data set ---------------------------------------------------------------------------------------------------
def is_han(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("CJK")


def pinyin_pairs() -> list[Pair]:
    """(phrase, "syl syl ...") for every phrase of pypinyin's dictionary whose characters are all Han, each with
    exactly one syllable, NFC-normalized and sorted (the file is then the same on every machine)."""
    from pypinyin.phrases_dict import phrases_dict

    pairs = []
    for phrase, readings in phrases_dict.items():
        if len(readings) != len(phrase) or not all(len(r) == 1 for r in readings) or not all(map(is_han, phrase)):
            continue
        pairs.append(Pair(unicodedata.normalize("NFC", phrase),
                          unicodedata.normalize("NFC", " ".join(r[0] for r in readings))))
    return sorted(pairs, key=lambda p: (p.source, p.target))


def write_tsv(pairs: list[Pair], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{p.source}\t{p.target}\n" for p in pairs), encoding="utf-8")


def describe(pairs: list[Pair]) -> dict:
    chars = Counter(ch for p in pairs for ch in p.source)
    syllables = Counter(s for p in pairs for s in p.target.split())
    return {"pairs": len(pairs), "distinct_input_symbols": len(chars), "distinct_syllables": len(syllables),
            "characters_seen_once": sum(1 for n in chars.values() if n == 1),
            "phrase_lengths": dict(sorted(Counter(len(p.source) for p in pairs).items()))}


# ---- the baseline ---------------------------------------------------------------------------------------------------
def lookup_table(train: list[Pair]) -> dict[str, str]:
    """Each character's most frequent syllable in ``train`` (ties: the smallest syllable)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for p in train:
        for ch, syl in zip(p.source, p.target.split()):
            counts[ch][syl] += 1
    return {ch: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for ch, c in counts.items()}


def lookup_output(table: dict[str, str], phrase: str) -> str:
    """The lookup's pinyin for ``phrase``: each known character's syllable (an unknown one has none)."""
    return " ".join(table[ch] for ch in phrase if ch in table)


def baseline(train: list[Pair], test: list[Pair]) -> dict:
    table = lookup_table(train)
    triples = [(p.source, p.target, lookup_output(table, p.source)) for p in test]
    return metrics.score(triples, "space", input_tokenization="char", max_errors=5)


def against_lookup(train: list[Pair], test: list[Pair], outputs: list[str]) -> dict:
    """Test phrases as a model (``outputs``, one per phrase; "" where it could not encode one) and the lookup
    read them: right by both, by the model only, by the lookup only, by neither; and ``model_unseen_character``,
    the phrases with a character the training split never shows that the model read right (a model whose
    vocabulary has an unknown token decodes them; one without it cannot)."""
    table = lookup_table(train)
    seen = {ch for p in train for ch in p.source}
    counts = dict.fromkeys(("both", "model_only", "lookup_only", "neither", "model_unseen_character"), 0)
    for p, out in zip(test, outputs, strict=True):
        model, lookup = out == p.target, lookup_output(table, p.source) == p.target
        counts["both" if model and lookup else "model_only" if model else "lookup_only" if lookup else "neither"] += 1
        counts["model_unseen_character"] += model and not seen.issuperset(p.source)
    return counts


def out_of_reach(train: list[Pair], test: list[Pair]) -> dict:
    """Test phrases no model trained on ``train`` can get right: a character the training split never shows, or a
    character read (in that phrase) as the training split never reads it. Their share is the set's error floor."""
    readings: dict[str, set[str]] = {}
    for p in train:
        for ch, syllable in zip(p.source, p.target.split()):
            readings.setdefault(ch, set()).add(syllable)
    unseen = new_reading = 0
    for p in test:
        if any(ch not in readings for ch in p.source):
            unseen += 1
        elif any(s not in readings[ch] for ch, s in zip(p.source, p.target.split())):
            new_reading += 1
    return {"test_phrases": len(test), "unseen_character": unseen, "unseen_reading": new_reading}


# ---- the variants ---------------------------------------------------------------------------------------------------
def s2s_train(data: Path, out: Path, args: list[str]) -> float:
    cmd = [str(Path(sys.executable).with_name("s2s")), "train", "--data", str(data), "--out", str(out), "--force",
           "--quiet", "--seed", str(SEED), *args]
    log.info("$ %s", " ".join(cmd[1:]))
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if proc.returncode != 0:
        raise SystemExit(f"s2s train failed:\n{proc.stderr[-3000:]}")
    log.info("%s", proc.stdout.strip())
    return time.perf_counter() - started


def summary(scores: dict) -> dict:
    """The figures of the comparison from a ``metrics.json`` (or the baseline's scores)."""
    keep = ("exact_match", "word_error_rate", "character_error_rate", "test_pairs", "undecoded", "epochs_run",
            "best_epoch", "train_accuracy", "val_accuracy", "accuracy_gap", "best_val_loss", "train_seconds",
            "held_out_with_unseen_symbols", "unknown_token")
    out = {k: scores[k] for k in keep if k in scores}
    out["sequence_error_rate"] = round(1 - scores["exact_match"], 6)
    return out


def run_variant(name: str, data: Path, work: Path, common: list[str], reuse: bool = False) -> dict:
    """Train one variant (or, with ``reuse``, read the run folder a previous harness run trained with the same
    arguments) and return its figures."""
    what, extra = VARIANTS[name]
    out = work / "runs" / name
    config = out / "config.json"
    if reuse and (out / "metrics.json").is_file() and _trained_with(config, data, common + extra):
        log.info("reusing %s", out)
        wall = None
    else:
        wall = round(s2s_train(data, out, common + extra), 1)
    scores = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return {"variant": name, "what": what, "arguments": common + extra, "wall_seconds": wall, **summary(scores)}


def _trained_with(config: Path, data: Path, args: list[str]) -> bool:
    """Whether the run's config.json records the settings ``args`` ask for (the ones this harness varies)."""
    training = json.loads(config.read_text(encoding="utf-8"))["training"]
    flags = dict(zip(args[::2], args[1::2]))
    wanted = {"latent_dim": int(flags["--latent"]), "learning_rate": float(flags["--lr"]),
              "epochs": int(flags["--epochs"]), "seed": SEED, "data_file": str(data),
              "dropout": float(flags.get("--dropout", 0)),
              "recurrent_dropout": float(flags.get("--recurrent-dropout", 0)),
              "min_symbol_count": int(flags.get("--min-symbol-count", 1)),
              "label_smoothing": float(flags.get("--label-smoothing", 0)),
              "weight_decay": float(flags.get("--weight-decay", 0))}
    return all(training.get(k) == v for k, v in wanted.items())


# ---- the report -----------------------------------------------------------------------------------------------------
def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def markdown(result: dict) -> str:
    d = result["data"]
    lines = [
        "# Training hygiene on a large-alphabet data set (Chinese phrases -> pinyin)",
        "",
        f"Written by `python -m seq2seq_edge.bench.hygiene` on {result['machine']['when']} "
        f"({result['machine']['platform']}, {result['machine']['cpus']} CPUs, shared with other jobs; training "
        f"under `nice -n 10`, so training times vary with the other jobs' load).",
        "",
        f"Data: pypinyin {result['pypinyin']} phrase dictionary, {d['pairs']:,} phrases whose characters each have "
        f"one syllable; {d['distinct_input_symbols']:,} distinct characters ({d['characters_seen_once']:,} seen "
        f"once), {d['distinct_syllables']:,} distinct syllables. Split 80/10/10 by `s2s train` (seed {SEED}): "
        f"{result['splits']}.",
        "",
        f"Budget: every variant `s2s train --data pinyin.tsv {' '.join(result['common_arguments'])}`"
        f": one seed, at most {result['epochs']} epochs, early stopping with patience 3 restoring the best "
        f"weights; {result['total_train_minutes']:.1f} minutes of training in all (the fit, as `train time` "
        "below; each `s2s train` also spent up to a minute loading and evaluating the test split). One seed per "
        "variant: small differences may be seed noise.",
        "",
        "Sequence error: phrases with any syllable wrong (1 - exact match). Syllable error: the WER of `s2s eval` "
        "(syllable edit distance over reference syllables). Gap: token accuracy on training minus validation "
        "batches at the best epoch (teacher forcing). Unseen: test phrases with a character the training split "
        "never shows.",
        "",
        "| variant | sequence error | syllable error | CER | best epoch / run | train acc | val acc | gap | "
        "unseen (test) | undecodable | train time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    b = result["baseline"]
    lines.append(f"| per-character lookup (most frequent syllable in training) | {_pct(b['sequence_error_rate'])} | "
                 f"{_pct(b['word_error_rate'])} | {_pct(b['character_error_rate'])} | – | – | – | – | "
                 f"{result['variants'][0]['held_out_with_unseen_symbols']['test'] if result['variants'] else '–'} "
                 f"| – | – |")
    for v in result["variants"]:
        lines.append(
            f"| {v['variant']}: {v['what']} | {_pct(v['sequence_error_rate'])} | {_pct(v['word_error_rate'])} | "
            f"{_pct(v['character_error_rate'])} | {v['best_epoch']} / {v['epochs_run']} | "
            f"{_pct(v.get('train_accuracy'))} | {_pct(v.get('val_accuracy'))} | {_pct(v.get('accuracy_gap'))} | "
            f"{v['held_out_with_unseen_symbols']['test']} | {v.get('undecoded', 0)} | {v['train_seconds']:.0f} s |")
    lines += ["", result["verdict"], ""]
    return "\n".join(lines)


def verdict(result: dict) -> str:
    """Which controls beat no controls on the test split's sequence error, and by how much (from the figures)."""
    variants = {v["variant"]: v for v in result["variants"]}
    if "none" not in variants:
        return ""
    ref = variants["none"]

    def delta(v, key):
        d = 100 * (v[key] - ref[key])
        return f"{'+' if d >= 0 else '−'}{abs(d):.2f}"

    parts = [f"{name} {delta(v, 'sequence_error_rate')} / {delta(v, 'word_error_rate')}"
             for name, v in variants.items() if name != "none"]
    base = result["baseline"]
    best = min(variants.values(), key=lambda v: v["sequence_error_rate"])
    gap = max(variants.values(), key=lambda v: abs(v.get("accuracy_gap") or 0))
    lines = [f"Against no controls (sequence error {_pct(ref['sequence_error_rate'])}, syllable error "
             f"{_pct(ref['word_error_rate'])}), in points of sequence / syllable error (negative is better): "
             + ", ".join(parts) + ".",
             f"Best model: {best['variant']}, sequence error {_pct(best['sequence_error_rate'])}, syllable error "
             f"{_pct(best['word_error_rate'])}; the lookup baseline: {_pct(base['sequence_error_rate'])} and "
             f"{_pct(base['word_error_rate'])}" + (" (the baseline wins)." if base["sequence_error_rate"]
                                                  < best["sequence_error_rate"] else "."),
             f"Largest train - validation token-accuracy gap at a best epoch: {_pct(gap.get('accuracy_gap'))} "
             f"({gap['variant']})."]
    unk = variants.get("min_symbol_count", {}).get("unknown_token")
    if unk:
        lines.append(f"min_symbol_count: {unk['rare_symbols']:,} characters seen once in training "
                     f"({unk['replaced_tokens']:,} of {unk['training_tokens']:,} training characters) became "
                     f"`{unk['token']}`; test phrases with a character training never shows are then decoded "
                     "instead of refused.")
    return "\n\n".join(lines)


# ---- main -----------------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=12, help="at most this many epochs per variant (default: 12)")
    ap.add_argument("--latent", type=int, default=128, help="LSTM units (default: 128)")
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default: 3e-3, to converge within "
                                                         "the epoch budget)")
    ap.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants (default: all)")
    ap.add_argument("--work", type=Path, default=Path("runs/hygiene"), help="data and run folders (default: "
                                                                                 "runs/hygiene)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for hygiene.json and hygiene.md")
    ap.add_argument("--report-only", action="store_true", help="rewrite hygiene.md from hygiene.json; train nothing")
    ap.add_argument("--reuse", action="store_true", help="reuse run folders already trained with the same settings")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.report_only:
        result = json.loads((args.out / "hygiene.json").read_text(encoding="utf-8"))
        result["verdict"] = verdict(result)
        (args.out / "hygiene.md").write_text(markdown(result), encoding="utf-8")
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    import pypinyin

    pairs = pinyin_pairs()
    data = args.work / "pinyin.tsv"
    write_tsv(pairs, data)
    common = COMMON + ["--latent", str(args.latent), "--lr", str(args.lr), "--epochs", str(args.epochs)]
    variants = [run_variant(n, data, args.work, common, args.reuse) for n in names]
    split_from = args.work / "runs" / names[0]
    train = read_tsv(split_from / "train.tsv")
    test = read_tsv(split_from / "test.tsv")
    result = {
        "pypinyin": pypinyin.__version__, "data": describe(pairs), "epochs": args.epochs, "seed": SEED,
        "common_arguments": common,
        "splits": json.loads((split_from / "config.json").read_text(encoding="utf-8"))["splits"],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "when": time.strftime("%Y-%m-%d")},
        "baseline": summary({**baseline(train, test)}),
        "variants": variants,
        # Model.fit's time, as metrics.json records it (a reused run's wall time is not known).
        "total_train_minutes": round(sum(v["train_seconds"] for v in variants) / 60, 1),
    }
    result["verdict"] = verdict(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hygiene.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (args.out / "hygiene.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
