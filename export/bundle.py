"""``s2s export`` and ``s2s verify``: write a bundle from a run folder, and check a bundle against Keras.

Bundle layout::

    manifest.json                          the contract (seq2seq_edge.manifest.BundleManifest)
    encoder.<variant>.tflite / .onnx       input_ids -> state_h, state_c                    (model_files.py)
    decoder_step.<variant>.tflite / .onnx  prev_token, state_h, state_c -> probs, next_state_h, next_state_c
    greedy.<variant>.tflite / .onnx        input_ids -> output_ids, output_probs (the whole greedy decode, one call)
    parity.json, parity.md                 the gate's figures per variant                   (parity.py, reports.py)
    golden.json                            test inputs with Keras' strings, for runtime tests without TensorFlow
    report.md                              sizes, op lists, opsets and versions             (reports.py)

The run folder is read through ``seq2seq_edge.train.run_folder.RunFolder``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from seq2seq_edge import manifest as mf
from seq2seq_edge import quiet
from seq2seq_edge.ensemble import MAX_MEMBERS, SAME_TOKENS, first_difference, held_out_split
from seq2seq_edge.errors import ExportError, RunFolderError
from seq2seq_edge.train.reference import KerasDecoder
from seq2seq_edge.train.run_folder import RunConfig, RunFolder
from seq2seq_edge.train.staging import staged_folder
from seq2seq_edge.versions import package_version

from . import parity, reports
from .model_files import write_model_files

log = logging.getLogger(__name__)

DEFAULT_FORMATS = mf.FORMATS
DEFAULT_QUANTIZE = ("fp32", "fp16", "int8")
#: The package of each gate backend: the manifest's runtimes_tested names what the gate ran the bundle on.
GATE_BACKEND_PACKAGE = {"litert": "ai-edge-litert", "onnx": "onnxruntime"}


def export_bundle(run_dir: str | Path, out_dir: str | Path, *, formats=DEFAULT_FORMATS,
                  quantize=DEFAULT_QUANTIZE, force: bool = False, leave_out_failed: bool = False,
                  ensemble: Sequence[str | Path] = ()) -> dict:
    """Convert, check and gate; the bundle appears at ``out_dir`` only if everything passed. Returns the gate's
    figures (``parity.json``).

    ``ensemble``: more run folders trained on the same data with the same tokenization; the bundle's models then
    compute them all with ``run_dir``'s as one (``graphs.EnsembleWeights``): a bundle every runtime decodes as
    any other, gated against the runs' Keras models together, on ``run_dir``'s test split.

    When the gate fails, nothing is written at ``out_dir``; its report is written beside it
    (``reports.failed_report_paths``) and the error names it. With ``leave_out_failed`` the variants that passed
    are written and the failed ones left out, recorded in the manifest (``provenance.left_out``); an fp32 variant
    whose strings differ from Keras' still fails the export."""
    out_dir = Path(out_dir)
    formats, quantize = _check_choices(formats, quantize)
    if out_dir.exists() and not force:
        raise ExportError(f"{out_dir} already exists; pass --force to overwrite it")
    run = RunFolder.open(run_dir)
    config = run.read_config()
    members = [RunFolder.open(r) for r in ensemble]
    _check_ensemble(run, config, members)
    pairs = parity.gate_pairs(run)  # before TensorFlow loads: a broken run folder fails fast
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.perf_counter()
    # TensorFlow, the converters and the interpreters log from C++ with no switch (see seq2seq_edge.quiet).
    with quiet.native_logs_caught():
        from . import graphs

        models = [r.load_keras_model() for r in (run, *members)]
        steps = config.preprocessing.max_input_tokens
        max_out = config.preprocessing.max_output_tokens
        extracted = [graphs.extract_weights(m) for m in models]
        for r, w in zip(members, extracted[1:]):
            if w.attention != extracted[0].attention:
                raise ExportError(f"{r.path}: its model {'has' if w.attention else 'has no'} attention and "
                                  f"{run.path}'s {'has' if extracted[0].attention else 'has no'}: an ensemble's models "
                                  "all have attention or none has")
        weights = graphs.EnsembleWeights(tuple(extracted)) if members else extracted[0]
        modules = graphs.build_modules(weights, steps, max_out)
        with staged_folder(out_dir) as staging:
            entries = write_model_files(staging, modules, formats, quantize, weights, steps, max_out)
            if not entries:  # _check_choices refuses this; an empty bundle must never be written
                raise ExportError("no model files were written (no bundle written)")
            manifest = _manifest(run, config, weights, steps, entries, out_dir, members)
            manifest.save(staging)
            gate = parity.check_parity(staging, _reference(models, config), manifest, pairs)
            if not gate.passed:
                if not leave_out_failed:
                    _refuse(gate, out_dir)
                gate, manifest = _leave_out_failed(staging, gate, manifest, out_dir)
            reports.write_reports(staging, manifest, gate)
    reports.remove_failed_report(out_dir)
    log.info("exported %d model files in %.1f s", len(entries), time.perf_counter() - started)
    return gate.to_dict()


def _check_ensemble(run: RunFolder, config: RunConfig, members: list[RunFolder]) -> None:
    """ExportError unless every member run reads and writes exactly ``run``'s tokens (and at most ``MAX_MEMBERS``
    models in all, as a decode-time ensemble); a warning if one held out other pairs."""
    if not members:
        return
    if len(members) + 1 > MAX_MEMBERS:
        raise ExportError(f"an ensemble has 2 to {MAX_MEMBERS} models, not {len(members) + 1}")
    want, held_out = config.preprocessing.to_dict(), held_out_split(config.training)
    for m in members:
        other = m.read_config()
        got = other.preprocessing.to_dict()
        if got != want:
            raise ExportError(f"{m.path}: its preprocessing differs from {run.path}'s ({first_difference(want, got)}): "
                              f"{SAME_TOKENS}")
        if held_out_split(other.training) != held_out:
            log.warning("%s held out other pairs than %s: the gate's test pairs (%s's) may be ones it was trained "
                        "on, and so may any held-out scores of the ensemble", m.path, run.path, run.path)


def _refuse(gate: parity.GateResult, out_dir: Path) -> None:
    """Write the failed gate's report beside ``out_dir`` and raise the ExportError that names it."""
    md = reports.write_failed_report(out_dir, gate)
    hint = ("; to write the variants that passed without the others, add --leave-out-failed"
            if not gate.fatal_failures() and any(v.passed for v in gate.variants) else "")
    gate.raise_if_failed(f" (no bundle written; the gate's report: {md}{hint})")


def _leave_out_failed(staging: Path, gate: parity.GateResult, manifest: mf.BundleManifest, out_dir: Path):
    """Remove the failed variants' files from ``staging`` and the manifest; record them in its provenance."""
    try:
        gate = gate.leaving_out_failed()
    except ExportError as e:
        md = reports.write_failed_report(out_dir, gate)
        raise ExportError(f"{e} (no bundle written; the gate's report: {md})") from None
    dropped = {(v.format, v.variant) for v in gate.left_out}
    for m in manifest.models:
        if (m.format, m.variant) in dropped:
            (staging / m.path).unlink()
    left_out = [{"format": v.format, "variant": v.variant, "reason": v.reason} for v in gate.left_out]
    manifest = replace(manifest, models=tuple(m for m in manifest.models if (m.format, m.variant) not in dropped),
                       provenance={**manifest.provenance, "left_out": left_out})
    manifest.save(staging)
    for v in left_out:
        log.warning("left out %s %s: %s", v["format"], v["variant"], v["reason"])
    return gate, manifest


def verify_bundle(bundle_dir: str | Path, run_dir: str | Path | Sequence[str | Path] | None = None) -> dict:
    """Re-run the parity gate of an existing bundle against its run's Keras model. Returns the gate's figures.
    ``run_dir``: the run folder (of an ensemble bundle, one for each model, in order); by default the ones the
    manifest names (``find_run_dir``)."""
    from . import graphs

    bundle_dir = Path(bundle_dir)
    manifest = mf.BundleManifest.load(bundle_dir)
    recorded = manifest.ensemble_members()
    if run_dir is None:
        run_dirs = ([find_run_dir(bundle_dir, manifest, m["run_dir"], model=i) for i, m in enumerate(recorded, 1)]
                    or [find_run_dir(bundle_dir, manifest)])
    else:
        run_dirs = [run_dir] if isinstance(run_dir, (str, Path)) else list(run_dir)
    if len(run_dirs) != max(len(recorded), 1):
        raise ExportError(f"the bundle holds {max(len(recorded), 1)} model(s) and {len(run_dirs)} run folders were "
                          "given: pass --run once for each model, in the order of the export")
    runs = [RunFolder.open(r) for r in run_dirs]
    configs = [r.read_config() for r in runs]
    for i, (r, c) in enumerate(zip(runs, configs)):
        if c.preprocessing != manifest.preprocessing:
            raise ExportError(f"{r.path} is not the run this bundle was exported from (preprocessing differs)")
        if recorded and not _same_training(c.training, recorded[i]["training"]):
            raise ExportError(f"{r.path} is not model {i + 1} of this ensemble (its training settings differ from "
                              "the ones the manifest records for it): pass --run once for each model, in the order "
                              "of the export")
    with quiet.native_logs_caught():
        models = [r.load_keras_model() for r in runs]
        extracted = [graphs.extract_weights(m) for m in models]
        widths = (sum(w.latent_dim for w in extracted),
                  sum(w.encoder_output_dim for w in extracted) if all(w.attention for w in extracted) else None)
        if widths != (manifest.latent_dim, manifest.encoder_output_dim):
            raise ExportError(f"the runs' models make a state {widths[0]} wide (attention memory {widths[1]}) and the "
                              f"bundle's is {manifest.latent_dim} (memory {manifest.encoder_output_dim}): they are not "
                              "the runs it was exported from")
        gate = parity.check_parity(bundle_dir, _reference(models, configs[0]), manifest, parity.gate_pairs(runs[0]))
    gate.raise_if_failed()
    return gate.to_dict()


#: The training settings that tell an ensemble's models apart, compared by ``s2s verify`` where recorded.
IDENTIFYING_SETTINGS = ("seed", "decoder", "latent_dim", "bidirectional", "encoder_layers", "decoder_layers",
                        "embedding_dim", "attend_embeddings", "input_feeding", "dropout", "label_smoothing")


def _same_training(training: dict, recorded: dict) -> bool:
    """Whether a run's ``training`` settings have the identifying values an ensemble bundle records for one model
    (those it records; nothing recorded: the gate decides)."""
    training = _portable_training(training)
    return all(training.get(k) == recorded[k] for k in IDENTIFYING_SETTINGS if k in recorded)


def find_run_dir(bundle_dir: str | Path, manifest: mf.BundleManifest | None = None,
                 recorded: str | None = None, model: int | None = None) -> Path:
    """The run folder a bundle was exported from, found from the name its manifest records (``run_dir``: the
    run's path relative to where ``s2s export`` ran, or just its folder name; older bundles: an absolute path), or
    from ``recorded``: the name an ensemble bundle records for its ``model``-th model.

    Looked for, in order, from the current folder, from the bundle's parent folder and from the folder above
    that (``bundles/digits`` beside ``runs/digits``), as recorded and under ``runs/``; the first that holds a
    Keras model wins. Raises RunFolderError saying where it looked, and to pass --run."""
    bundle_dir = Path(bundle_dir)
    manifest = manifest or mf.BundleManifest.load(bundle_dir)
    if recorded is None:
        recorded = manifest.provenance.get("run_dir")
    if not isinstance(recorded, str) or not recorded.strip():
        raise RunFolderError("the bundle does not name its run folder; pass --run RUN_DIR")
    rel = Path(recorded)
    if rel.is_absolute():
        candidates = [rel]
    else:
        here = bundle_dir.resolve()
        bases = [Path("."), here.parent, here.parent.parent]
        names = [rel] + ([Path("runs") / rel.name] if rel != Path("runs") / rel.name else [])
        candidates = [base / name for base in bases for name in names]
    seen: list[Path] = []
    for c in candidates:
        if c.resolve() in {s.resolve() for s in seen}:
            continue
        seen.append(c)
        if RunFolder(c).model_file.is_file():
            return c
    whose = f"model {model}'s run folder" if model else "the bundle's run folder"
    hint = "pass --run once for each model, in the order of the export" if model else "pass --run RUN_DIR"
    raise RunFolderError(f"{whose} {recorded!r} is not at {', '.join(map(str, seen[:6]))}; {hint}")


#: A recorded run path has at most this many parts (``runs/digits``); a deeper one is recorded by its name only.
MAX_RECORDED_RUN_PARTS = 3


def _portable_run_dir(run_dir: Path, out_dir: Path) -> str:
    """What the manifest records of the run folder, with no path of this machine: the run's short path relative
    to the folder above the bundle's (``runs/digits`` for ``bundles/digits``), to the bundle's parent, or to the
    current folder; else just its folder name."""
    run_dir, out_dir = run_dir.resolve(), out_dir.resolve()
    for base in (out_dir.parent.parent, out_dir.parent, Path.cwd()):
        try:
            rel = run_dir.relative_to(base)
        except ValueError:
            continue
        if 0 < len(rel.parts) <= MAX_RECORDED_RUN_PARTS:
            return rel.as_posix()
    return run_dir.name


def _check_choices(formats, quantize) -> tuple[tuple[str, ...], tuple[str, ...]]:
    formats, quantize = tuple(formats), tuple(quantize)
    for f in formats:
        if f not in mf.FORMATS:
            raise ExportError(f"unknown format {f!r}; choose from {', '.join(mf.FORMATS)}")
    for q in quantize:
        if q not in DEFAULT_QUANTIZE:
            raise ExportError(f"unknown variant {q!r}; choose from {', '.join(DEFAULT_QUANTIZE)}")
    if not any(q in mf.VARIANTS[f] for f in formats for q in quantize):
        held = "; ".join(f"{f}: {', '.join(mf.VARIANTS[f])}" for f in mf.FORMATS)
        raise ExportError(f"--format {','.join(formats) or '(none)'} with --quantize {','.join(quantize) or '(none)'} "
                          f"makes no model ({held})")
    return formats, quantize


def _reference(models: list, config: RunConfig) -> KerasDecoder:
    """The gate's Keras reference of a bundle of one training model, or of an ensemble's (in order)."""
    max_out = config.preprocessing.max_output_tokens
    if len(models) > 1:
        return KerasDecoder.ensemble(models, max_out)
    return KerasDecoder.from_training_model(models[0], max_out)


def _manifest(run: RunFolder, config: RunConfig, weights, steps: int, entries, out_dir: Path,
              members: Sequence[RunFolder] = ()) -> mf.BundleManifest:
    import keras
    import tensorflow as tf

    def installed(*dists):
        return {d: v for d in dists if (v := package_version(d))}

    ensemble = {}
    if members:  # every model's run and training, the first's also as run_dir and training
        ensemble = {"ensemble": [{"run_dir": _portable_run_dir(r.path, out_dir),
                                  "training": {**_portable_training(r.read_config().training), **_epochs_run(r)}}
                                 for r in (run, *members)]}
    return mf.BundleManifest(
        preprocessing=config.preprocessing, latent_dim=weights.latent_dim, encoder_time_steps=steps,
        models=tuple(entries), encoder_output_dim=weights.encoder_output_dim,
        architecture=mf.ATTENTION_ARCHITECTURE if weights.attention else mf.SEED_ARCHITECTURE,
        versions={**installed("seq2seq-edge"), "tensorflow": tf.__version__, "keras": keras.__version__,
                  **installed("tf2onnx", "onnx")},
        runtimes_tested=installed(*sorted({GATE_BACKEND_PACKAGE[parity.GATE_BACKEND[e.format]] for e in entries})),
        provenance={"run_dir": _portable_run_dir(run.path, out_dir),
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "training": {**_portable_training(config.training), **_epochs_run(run)}, **ensemble})


def _epochs_run(run: RunFolder) -> dict:
    """The epochs training really ran (early stopping ends a run before its ``epochs``), from metrics.json."""
    try:
        epochs_run = json.loads(run.metrics_file.read_text(encoding="utf-8")).get("epochs_run")
    except (OSError, ValueError):
        return {}
    return {"epochs_run": epochs_run} if isinstance(epochs_run, int) and not isinstance(epochs_run, bool) else {}


def _portable_training(training: dict) -> dict:
    """The training settings with the data file and the runs it was distilled from (``--distill-from``) reduced to
    their names: a bundle carries no path of this machine."""
    training = dict(training)
    if isinstance(training.get("data_file"), str):
        training["data_file"] = Path(training["data_file"]).name
    if isinstance(training.get("distill_from"), list):
        training["distill_from"] = [Path(p).name if isinstance(p, str) else p for p in training["distill_from"]]
    return training
