"""``s2s info``: what a bundle holds, read from its manifest and parity report without loading a model.

A bundle is untrusted data: the manifest is validated as the loader validates it, ``parity.json`` is read with
the same size limit and only the fields of the expected types are shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import files
from .. import manifest as mf

#: parity.json is a few KB per variant; a larger one is not one s2s export wrote.
MAX_PARITY_BYTES = 4 * 2**20
#: The training settings worth showing (the manifest's provenance.training holds them all).
TRAINING_KEYS = ("task", "lang", "max_number", "decoder", "bidirectional", "attend_embeddings", "latent_dim",
                 "encoder_layers", "decoder_layers", "input_feeding",
                 "embedding_dim", "epochs", "epochs_run", "batch_size", "learning_rate", "patience",
                 "average_checkpoints", "seed")


def bundle_info(bundle_dir: str | Path) -> dict[str, Any]:
    """Everything ``s2s info`` shows, as a JSON-ready dict."""
    from ..loader import check_bundle_folder

    bundle_dir = Path(bundle_dir)
    check_bundle_folder(bundle_dir)
    m = mf.BundleManifest.load(bundle_dir)
    prep = m.preprocessing
    training = m.provenance.get("training")
    training = training if isinstance(training, dict) else {}
    variants = []
    for fmt in mf.FORMATS:
        for variant in m.variants(fmt):
            entries = {role: e for role in mf.ALL_ROLES if (e := m.find(role, fmt, variant))}
            variants.append({"format": fmt, "variant": variant,
                             "files": {role: {"path": e.path, "size_bytes": e.size_bytes} for role, e in entries.items()},
                             "size_bytes": sum(e.size_bytes for e in entries.values())})
    return {
        "bundle": str(bundle_dir),
        "format_version": m.version,
        "architecture": m.architecture,
        "task": task if isinstance(task := training.get("task"), str) and _plain(task) else None,
        "training": _training(training),
        "input": {"tokenization": prep.input_tokenization, "vocabulary_size": len(prep.input_vocabulary),
                  "max_tokens": prep.max_input_tokens, "max_characters": prep.max_input_chars,
                  "unknown_token": prep.unknown_token},
        "output": {"tokenization": prep.target_tokenization, "vocabulary_size": len(prep.target_vocabulary),
                   "max_tokens": prep.max_output_tokens},
        "latent_dim": m.latent_dim,
        "encoder_time_steps": m.encoder_time_steps,
        "variants": variants,
        "parity": _parity(bundle_dir),
        "versions": {k: v for k, v in m.versions.items() if _plain(v)},
        "runtimes_tested": {k: v for k, v in m.runtimes_tested.items() if _plain(v)},
        "created": m.provenance.get("created") if _plain(m.provenance.get("created")) else None,
        "run": m.provenance.get("run_dir") if _plain(m.provenance.get("run_dir")) else None,
        "left_out": _left_out(m.provenance.get("left_out")),
        "ensemble": [{"run": e["run_dir"] if _plain(e["run_dir"]) else None,
                      "training": _training(e["training"])}
                     for e in m.ensemble_members()],
    }


def _left_out(value) -> list[dict[str, str]]:
    """The variants ``s2s export --leave-out-failed`` left out, as the manifest records them (strings only)."""
    rows = value if isinstance(value, list) else []
    return [{k: r[k] for k in ("format", "variant", "reason")
             if isinstance(r.get(k), str) and len(r[k]) <= 2000 and r[k].isprintable()}
            for r in rows[:16] if isinstance(r, dict)]


def _training(training: dict[str, Any]) -> dict[str, Any]:
    """The ``TRAINING_KEYS`` of a model's training settings that are plain values, and how many runs it was
    distilled from (``s2s train --distill-from``), if any."""
    out = {k: training[k] for k in TRAINING_KEYS if _plain(training.get(k))}
    if isinstance(training.get("distill_from"), list) and training["distill_from"]:
        out["distilled_from_runs"] = len(training["distill_from"])
    return out


def _plain(v) -> bool:
    """A number, or a short string of printable text (a manifest's free-form values print on their own lines)."""
    return isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 200 and v.isprintable())


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _parity(bundle_dir: Path) -> dict[str, Any] | None:
    """The gate's summary from parity.json, or None when the bundle has none."""
    path = bundle_dir / mf.PARITY_FILE
    if not path.exists():
        return None
    d = files.read_json_object(path, "parity report", max_bytes=MAX_PARITY_BYTES)
    keras = d.get("keras") if isinstance(d.get("keras"), dict) else {}
    rows = []
    for v in d.get("variants", []) if isinstance(d.get("variants"), list) else []:
        if not isinstance(v, dict):
            continue
        rows.append({k: v[k] for k in ("format", "variant", "backend") if isinstance(v.get(k), str) and _plain(v[k])}
                    | {k: _number(v.get(k)) for k in ("agreement", "exact_match", "character_error_rate")}
                    | {"passed": v.get("passed") is True})
    return {"passed": d.get("passed") is True, "inputs": _number(d.get("inputs")),
            "keras_exact_match": _number(keras.get("exact_match")), "variants": rows}


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KB"


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{x:.2%}"


def _settings(t: dict[str, Any]) -> str:
    """A model's training settings in a few words (``TRAINING_KEYS``)."""
    settings = ", ".join(f"{k.replace('_', ' ')} {t[k]}" for k in ("decoder", "latent_dim", "seed") if k in t)
    layers = [f"{t[k]} {k.split('_')[0]} layers" for k in ("encoder_layers", "decoder_layers")
              if isinstance(t.get(k), int) and t[k] > 1]
    extras = layers + (["attending to the input embeddings"] if t.get("attend_embeddings") is True else []) + (
        ["input feeding"] if t.get("input_feeding") is True else []) + (
        [f"checkpoint averaging of {t['average_checkpoints']}"] if t.get("average_checkpoints") else []) + (
        [f"distilled from {n} run{'s' if n > 1 else ''}"] if (n := t.get("distilled_from_runs")) else [])
    if "epochs_run" in t:
        extras.append(f"{t['epochs_run']} epochs")
    return ", ".join(([settings] if settings else []) + extras)


def format_info(info: dict[str, Any]) -> str:
    """The text report of ``s2s info``."""
    t = info["training"]
    task = info["task"] or "?"
    if task == "numbers" and "lang" in t:
        task += f" ({t['lang']}, 0-{t.get('max_number', '?')})"
    settings = _settings(t)
    ensemble = info.get("ensemble") or []
    lines = [f"{info['bundle']}: seq2seq-edge bundle (format {info['format_version']}, {info['architecture']})",
             f"task:      {task}" + (f"; trained with {settings}" if settings and not ensemble else "")]
    i, o = info["input"], info["output"]
    unknown = (f"; symbols outside it read as {i['unknown_token']!r}" if i["unknown_token"] is not None
               else "; symbols outside it are refused")
    lines += [f"input:     {i['tokenization']} tokens, vocabulary of {i['vocabulary_size']} (3 reserved), at most "
              f"{i['max_tokens']} tokens{unknown}",
              f"output:    {o['tokenization']} tokens, vocabulary of {o['vocabulary_size']} (3 reserved), at most "
              f"{o['max_tokens']} tokens",
              f"model:     latent {info['latent_dim']}, encoder over {info['encoder_time_steps']} time steps"]
    if ensemble:
        lines.append(f"ensemble:  {len(ensemble)} models, each step the normalized geometric mean of their "
                     "distributions:")
        lines += [f"  {n}. run {e['run'] or '?'}" + (f": {_settings(e['training'])}" if e["training"] else "")
                  for n, e in enumerate(ensemble, 1)]
    lines.append("variants:")
    for v in info["variants"]:
        files_ = ", ".join(f"{role} {_kb(f['size_bytes'])}" for role, f in v["files"].items())
        lines.append(f"  {v['format']:6} {v['variant']:4}  {_kb(v['size_bytes']):>10}  ({files_})")
    for v in info["left_out"]:
        lines.append(f"  {v.get('format', '?'):6} {v.get('variant', '?'):4}  left out at export (failed the parity "
                     f"gate: {v.get('reason', '?')})")
    p = info["parity"]
    if p is None:
        lines.append("parity:    no parity.json in the bundle")
    else:
        inputs = "?" if p["inputs"] is None else f"{p['inputs']:.0f}"
        lines.append(f"parity:    {'passed' if p['passed'] else 'NOT passed'} on {inputs} inputs "
                     f"(Keras exact match {_pct(p['keras_exact_match'])})")
        for r in p["variants"]:
            cer = "?" if r["character_error_rate"] is None else f"{r['character_error_rate']:.4f}"
            lines.append(f"  {r.get('format', '?'):6} {r.get('variant', '?'):4}  on {r.get('backend', '?'):7} "
                         f"agreement {_pct(r['agreement'])}  exact match {_pct(r['exact_match'])}  CER {cer}"
                         + ("" if r["passed"] else "  FAILED"))
    if info["versions"]:
        lines.append("made with: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    if info["runtimes_tested"]:
        lines.append("gate ran on: " + ", ".join(f"{k} {v}" for k, v in info["runtimes_tested"].items()))
    made = [x for x in (info["created"] and f"exported {info['created']}",
                        info["run"] and f"from the run {info['run']}") if x]
    if made:
        lines.append("provenance: " + ", ".join(made))
    return "\n".join(lines) + "\n"
