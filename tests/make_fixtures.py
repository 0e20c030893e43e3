"""Train and export the small deterministic models the tests use (needs the [train] extra).

    python tests/make_fixtures.py OUT_DIR

writes OUT_DIR/runs/{digits,numbers,attention,embeddings}, OUT_DIR/bundles/{the same and ensemble} and
OUT_DIR/vectors.json (tests/make_vectors.py: the test vectors the Python, JavaScript, C and Kotlin tests share).
``digits`` is the seed task with its defaults (9/9 exact); ``numbers`` is a small, quick model of 0-999 with word
targets, whose inputs have mixed lengths (1-3 characters) and whose outputs need not be right: the tests compare
against Keras' own strings. ``attention`` and ``embeddings`` are the attention decoder over a bidirectional encoder
on the same task (``attention``'s LSTMs stacked two deep on both sides, with input feeding: its decoder's states
and the fed attention output packed side by side in the contract's state); ``embeddings`` is the architecture
``s2s train --data`` trains by default: learned input embeddings, which the attention also reads (a wider
attention memory), trained with dropout. ``ensemble`` is those two exported as one bundle (``s2s export
--ensemble``). Everything is seeded, so the same command gives the same files.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path

FIXTURES = {
    "digits": dict(task="digits"),
    "numbers": dict(task="numbers", max_number=999, latent_dim=24, epochs=12, batch_size=32,
                    learning_rate=5e-3, patience=0),
    # The attention decoder over a bidirectional encoder, on the same small task; two stacked LSTM layers on each
    # side (--encoder-layers 2 --decoder-layers 2) and input feeding, whose state (two layers' and the fed
    # attention output, 96 wide) every runtime carries without knowing it.
    "attention": dict(task="numbers", max_number=999, latent_dim=16, epochs=24, batch_size=32,
                      learning_rate=5e-3, patience=0, decoder="attention", bidirectional=True, encoder_layers=2,
                      decoder_layers=2, input_feeding=True),
    # What `s2s train --data` trains by default, small: learned embeddings the attention reads beside the encoder's
    # outputs (the encoder/step contract is the same, its attention memory wider), dropout while training; another
    # state width than attention's (24 against 96), with which it decodes as an ensemble in tests/test_ensemble.py.
    "embeddings": dict(task="numbers", max_number=999, latent_dim=12, embedding_dim=8, epochs=12, batch_size=32,
                       learning_rate=5e-3, patience=0, decoder="attention", bidirectional=True,
                       attend_embeddings=True, dropout=0.2),
}
#: Bundles exported from several fixture runs as one (``s2s export --ensemble``): name -> the runs, in order.
#: ``ensemble``: attention's and embeddings' models decoding together, their states (96 and 24 wide) and attention
#: memories side by side, so every runtime decodes an ensemble bundle against the shared golden vectors.
ENSEMBLES = {"ensemble": ("attention", "embeddings")}
#: Every fixture bundle, in the order the runtimes' tests list them (tests/make_vectors.py BUNDLES).
ALL = (*FIXTURES, *ENSEMBLES)


def _settings_file(out_dir: Path, name: str) -> Path:
    """Beside a fixture bundle: the FIXTURES settings it was made from."""
    return out_dir / "bundles" / f"{name}.fixture.json"


def _settings(name: str) -> str:
    if name in ENSEMBLES:
        return json.dumps({"ensemble": {m: FIXTURES[m] for m in ENSEMBLES[name]}}, sort_keys=True)
    return json.dumps(FIXTURES[name], sort_keys=True)


def stale(out_dir: Path) -> list[str]:
    """The fixtures ``out_dir`` lacks, or holds as made from other settings than FIXTURES gives now (a folder
    kept with S2S_FIXTURES across a change of a fixture)."""
    def current(name: str) -> bool:
        settings = _settings_file(out_dir, name)
        return ((out_dir / "bundles" / name / "manifest.json").is_file() and settings.is_file()
                and settings.read_text(encoding="utf-8") == _settings(name))
    return [name for name in ALL if not current(name)]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make(out_dir: Path, names=ALL, say=_stderr) -> dict[str, Path]:
    """Train and export the fixtures that ``out_dir`` does not hold yet; ``say`` gets one line per step."""
    from seq2seq_edge.export import export_bundle
    from seq2seq_edge.train import trainer

    bundles = {}
    names = tuple(names)
    for name in [n for n in names if n in ENSEMBLES]:  # an ensemble needs its runs
        names = (*[m for m in ENSEMBLES[name] if m not in names], *names)
    remake = set(stale(out_dir)) & set(names)
    remake |= {n for n in ENSEMBLES if n in names and remake & set(ENSEMBLES[n])}  # remade with its runs
    if remake:  # what is made from the fixtures' models is made again with them
        shutil.rmtree(out_dir / "extra", ignore_errors=True)
        shutil.rmtree(out_dir / "crafted", ignore_errors=True)
        (out_dir / "vectors.json").unlink(missing_ok=True)
    for name in sorted(names, key=lambda n: n in ENSEMBLES):  # the runs first
        bundle_dir = out_dir / "bundles" / name
        if name in ENSEMBLES:
            if name in remake:
                runs = [out_dir / "runs" / m for m in ENSEMBLES[name]]
                say(f"test fixture {name!r}: exporting {bundle_dir} from {', '.join(map(str, runs))} ...")
                export_bundle(runs[0], bundle_dir, force=True, ensemble=runs[1:])
                _settings_file(out_dir, name).write_text(_settings(name), encoding="utf-8")
            bundles[name] = bundle_dir
            continue
        spec = dict(FIXTURES[name])
        run_dir = out_dir / "runs" / name
        if name in remake:
            started = time.perf_counter()
            say(f"test fixture {name!r}: training {run_dir} ...")
            cfg = trainer.task_defaults(spec.pop("task"), **spec)
            trainer.train(cfg, run_dir, force=True, quiet=True)
            say(f"test fixture {name!r}: exporting {bundle_dir} ...")
            export_bundle(run_dir, bundle_dir, force=True)
            _settings_file(out_dir, name).write_text(_settings(name), encoding="utf-8")
            say(f"test fixture {name!r}: done in {time.perf_counter() - started:.0f} s")
        bundles[name] = bundle_dir
    extra = out_dir / "extra" / "per_channel_int8.tflite"
    if not extra.is_file():
        extra.parent.mkdir(parents=True, exist_ok=True)
        extra.write_bytes(per_channel_int8(out_dir / "runs" / "numbers"))
    if set(names) == set(ALL):  # the shared test vectors every runtime reads (tests/make_vectors.py)
        import make_vectors

        make_vectors.make(out_dir)
    return bundles


def per_channel_int8(run_dir: Path) -> bytes:
    """The numbers decoder step with per-channel int8 dense weights: FULLY_CONNECTED version 12, newer than
    tflite-runtime 2.14 can run (the runtime must say so, not crash)."""
    import tensorflow as tf

    from seq2seq_edge.export import graphs
    from seq2seq_edge.train.run_folder import RunFolder

    from seq2seq_edge import manifest as mf

    run = RunFolder.open(run_dir)
    weights = graphs.extract_weights(run.load_keras_model())
    prep = run.read_config().preprocessing
    step = graphs.build_modules(weights, prep.max_input_tokens, prep.max_output_tokens)[mf.DECODER_STEP]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([step.serve.get_concrete_function()], step)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


if __name__ == "__main__":
    from seq2seq_edge import quiet

    # As quiet as the s2s command: TensorFlow's, the converters' and the interpreters' own log lines are held
    # back (shown only if a step fails unexpectedly); our progress lines stay.
    quiet.configure()
    logging.basicConfig(level=logging.WARNING)
    quiet.quiet_library_loggers()
    with quiet.native_logs_caught():
        made = make(Path(sys.argv[1]))
    for name, path in made.items():
        print(f"{name}: {path}")
