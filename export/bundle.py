"""``s2s export`` and ``s2s verify``: write a bundle from a run folder, and check it against Keras.

Bundle layout::

    manifest.json                          the contract (seq2seq_edge.manifest.BundleManifest)
    encoder.<variant>.tflite / .onnx       input_ids -> state_h, state_c
    decoder_step.<variant>.tflite / .onnx  prev_token, state_h, state_c -> probs, next_state_h, next_state_c
    parity.json, parity.md                 the gate's figures per variant
    golden.json                            test inputs with Keras' strings, for runtime tests without TensorFlow
    report.md                              sizes, op lists, opsets and versions
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from seq2seq_edge import manifest as mf
from seq2seq_edge.errors import ExportError, RunFolderError
from seq2seq_edge.train.trainer import SPLIT_FILES, load_run

from . import convert, parity

log = logging.getLogger(__name__)

DEFAULT_FORMATS = mf.FORMATS
DEFAULT_QUANTIZE = ("fp32", "fp16", "int8")
LEGACY_SUFFIXES = (".h5", ".hdf5", ".pb", ".tf", ".keras2")
#: The gate looks at the whole test split, topped up from the validation and training splits to this many inputs.
MIN_GATE_INPUTS = 200
#: Oldest interpreter versions the light-install CI job runs bundles on (tests/test_light_install.py).
OLDEST_RUNTIMES_TESTED = {"tflite-runtime": "2.14.0"}


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def model_path(run_dir: Path) -> Path:
    """The run's .keras file; legacy formats are refused with the way out."""
    run_dir = Path(run_dir)
    if run_dir.suffix.lower() in LEGACY_SUFFIXES:
        raise RunFolderError(f"{run_dir}: legacy Keras format ({run_dir.suffix}) is not supported; "
                             "re-save the model as .keras with Keras 3, or retrain with s2s train")
    if run_dir.is_file():
        raise RunFolderError(f"{run_dir}: expected a run folder written by s2s train")
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such run folder")
    path = run_dir / mf.RUN_MODEL_FILE
    if not path.is_file():
        legacy = [p.name for p in run_dir.glob("*") if p.suffix.lower() in LEGACY_SUFFIXES]
        if legacy:
            raise RunFolderError(f"{run_dir}: holds {legacy[0]}, a legacy Keras format that is not supported; "
                                 "re-save it as model.keras with Keras 3, or retrain with s2s train")
        raise RunFolderError(f"{run_dir}: no {mf.RUN_MODEL_FILE} (is this a run folder written by s2s train?)")
    return path


def load_keras_model(run_dir: Path):
    """Load the run's model with Keras' safe mode (no arbitrary code from the file)."""
    import keras

    path = model_path(run_dir)
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:
        raise RunFolderError(f"{path}: Keras could not load it in safe mode: {e}") from None


def gate_pairs(run_dir: Path) -> list[tuple[str, str]]:
    """The run's test split, topped up to MIN_GATE_INPUTS from validation and training pairs where it is smaller."""
    pairs, seen = [], set()
    for part in ("test", "validation", "train"):
        path = Path(run_dir) / SPLIT_FILES[part]
        if not path.is_file():
            raise RunFolderError(f"{path}: missing (re-run s2s train)")
        for line in path.read_text(encoding="utf-8").splitlines():
            source, target = line.split("\t", 1)
            if (source, target) not in seen and (part == "test" or len(pairs) < MIN_GATE_INPUTS):
                seen.add((source, target))
                pairs.append((source, target))
    return pairs


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _keras_decoder(model, prep):
    from seq2seq_edge.train.reference import KerasDecoder

    return KerasDecoder.from_training_model(model, prep.max_output_tokens)


def export_bundle(run_dir: str | Path, out_dir: str | Path, *, formats=DEFAULT_FORMATS,
                  quantize=DEFAULT_QUANTIZE, force: bool = False) -> dict:
    """Convert, check and gate; the bundle appears at ``out_dir`` only if everything passed."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    formats, quantize = tuple(formats), tuple(quantize)
    for f in formats:
        if f not in mf.FORMATS:
            raise ExportError(f"unknown format {f!r}; choose from {', '.join(mf.FORMATS)}")
    for q in quantize:
        if q not in DEFAULT_QUANTIZE:
            raise ExportError(f"unknown variant {q!r}; choose from {', '.join(DEFAULT_QUANTIZE)}")
    if out_dir.exists() and not force:
        raise ExportError(f"{out_dir} already exists; pass --force to overwrite it")
    model_path(run_dir)
    prep, run_cfg = load_run(run_dir)
    pairs = gate_pairs(run_dir)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from . import graphs

    started = time.perf_counter()
    model = load_keras_model(run_dir)
    weights = graphs.extract_weights(model)
    steps = prep.max_input_tokens
    modules = dict(zip(mf.ROLES, graphs.build_modules(weights, steps)))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o755)
    try:
        entries = []
        for fmt in formats:
            for variant in quantize:
                if variant not in mf.VARIANTS[fmt]:
                    continue
                for role, module in modules.items():
                    entries.append(_write_model(tmp, role, module, fmt, variant, weights, steps, prep))
        import keras
        import tensorflow as tf

        manifest = mf.BundleManifest(
            preprocessing=prep, latent_dim=weights.latent_dim, encoder_time_steps=steps, models=tuple(entries),
            versions={k: v for k, v in {"seq2seq-edge": _version("seq2seq-edge"), "tensorflow": tf.__version__,
                                        "keras": keras.__version__, "tf2onnx": _version("tf2onnx"),
                                        "onnx": _version("onnx")}.items() if v},
            runtimes_tested={**OLDEST_RUNTIMES_TESTED,
                             **{k: v for k, v in {"ai-edge-litert": _version("ai-edge-litert"),
                                                  "onnxruntime": _version("onnxruntime")}.items() if v}},
            provenance={"run_dir": str(run_dir.resolve()), "created": datetime.now(timezone.utc).isoformat(
                timespec="seconds"), "training": run_cfg.get("training", {})})
        manifest.save(tmp)
        result = parity.run_gate(tmp, _keras_decoder(model, prep), manifest, pairs)
        _write_reports(tmp, manifest, result)
        bad = parity.failures(result)
        if bad:
            raise ExportError("parity gate failed: " + "; ".join(bad) + " (no bundle written)")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %d model files in %.1f s", len(entries), time.perf_counter() - started)
    return result


def _write_model(bundle: Path, role: str, module, fmt: str, variant: str, weights, steps: int,
                 prep: mf.Preprocessing) -> mf.ModelFile:
    name = f"{role}.{variant}.{fmt}"
    extra = {}
    if fmt == "tflite":
        content = convert.to_tflite(module, variant)
        ops = convert.tflite_ops(content)
        extra["signature"] = mf.SIGNATURE_KEY
    else:
        proto = convert.to_onnx(module)
        content = proto.SerializeToString()
        if variant == "int8":
            content = convert.quantize_onnx_int8(content)
        info = convert.check_onnx(content, name)
        ops = info["ops"]
        extra.update(opset=info["opset"], ir_version=info["ir_version"])
    convert.check_ops(name, ops, forbid_control_flow=role == mf.DECODER_STEP)
    (bundle / name).write_bytes(content)
    ins, outs = mf.expected_io(role, weights.latent_dim, steps, weights.target_vocab_size)
    log.info("wrote %s (%d bytes)", name, len(content))
    return mf.ModelFile(role=role, format=fmt, variant=variant, path=name, sha256=_sha256(content),
                        size_bytes=len(content), inputs=ins, outputs=outs, ops=tuple(ops), **extra)


def _write_reports(bundle: Path, manifest: mf.BundleManifest, result: dict) -> None:
    golden = result.pop("golden")
    mf.write_json(bundle / "golden.json", {"description": "Test inputs with the strings Keras decodes for them "
                                                          "(greedy); every fp32 export must reproduce them.",
                                           "items": golden})
    mf.write_json(bundle / "parity.json", result)
    (bundle / "parity.md").write_text(parity.parity_markdown(result), encoding="utf-8")
    lines = ["# Export report", "", "| file | role | format | variant | bytes | ops |", "|---|---|---|---|---|---|"]
    for m in manifest.models:
        lines.append(f"| {m.path} | {m.role} | {m.format} | {m.variant} | {m.size_bytes} | {', '.join(m.ops)} |")
    onnx_models = [m for m in manifest.models if m.format == "onnx"]
    if onnx_models:
        lines += ["", f"ONNX opset {onnx_models[0].opset}, IR version {onnx_models[0].ir_version}; weights embedded."]
    lines += ["", "No Flex/Select-TF ops; no control flow in the decoder step (checked at export).", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in manifest.versions.items())]
    (bundle / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def verify_bundle(bundle_dir: str | Path, run_dir: str | Path | None = None) -> dict:
    """Re-run the parity gate of an existing bundle against its run's Keras model."""
    bundle_dir = Path(bundle_dir)
    manifest = mf.BundleManifest.load(bundle_dir)
    run_dir = Path(run_dir or manifest.provenance.get("run_dir", ""))
    if not str(run_dir) or not run_dir.is_dir():
        raise RunFolderError(f"the bundle's run folder {str(run_dir)!r} is not here; pass --run RUN_DIR")
    prep, _ = load_run(run_dir)
    if prep != manifest.preprocessing:
        raise ExportError(f"{run_dir} is not the run this bundle was exported from (preprocessing differs)")
    model = load_keras_model(run_dir)
    result = parity.run_gate(bundle_dir, _keras_decoder(model, prep), manifest, gate_pairs(run_dir))
    result.pop("golden")
    bad = parity.failures(result)
    if bad:
        raise ExportError("parity gate failed: " + "; ".join(bad))
    return result
