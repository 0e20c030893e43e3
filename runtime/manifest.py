"""The bundle contract: file names, model input/output names, and the typed manifest shared by export and runtime.

Everything a Kotlin, Swift or Python decode loop needs is here, defined once:

* Encoder:       ``input_ids`` int32 [batch, time] (right-padded with id 0)  ->  ``state_h``, ``state_c`` float32 [batch, latent]
* Decoder step:  ``prev_token`` int32 [batch], ``state_h``, ``state_c``  ->  ``probs`` float32 [batch, vocab],
                 ``next_state_h``, ``next_state_c`` float32 [batch, latent]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import text
from .errors import BundleError, InputTextError

# ---- names, defined once --------------------------------------------------------------------------------------
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "seq2seq-edge-bundle"
MANIFEST_VERSION = 1

RUN_CONFIG_FILE = "config.json"
RUN_MODEL_FILE = "model.keras"
RUN_FORMAT = "seq2seq-edge-run"
RUN_VERSION = 1

ENCODER = "encoder"
DECODER_STEP = "decoder_step"
ROLES = (ENCODER, DECODER_STEP)

INPUT_IDS = "input_ids"
PREV_TOKEN = "prev_token"
STATE_H = "state_h"
STATE_C = "state_c"
PROBS = "probs"
NEXT_STATE_H = "next_state_h"
NEXT_STATE_C = "next_state_c"

SIGNATURE_KEY = "serving_default"  # the TFLite signature both models expose

#: role -> (input names, output names), in a documented order (never bind by position: use the names).
MODEL_IO = {
    ENCODER: ((INPUT_IDS,), (STATE_H, STATE_C)),
    DECODER_STEP: ((PREV_TOKEN, STATE_H, STATE_C), (PROBS, NEXT_STATE_H, NEXT_STATE_C)),
}


# ---- preprocessing --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preprocessing:
    """How text becomes token ids and back; identical in training, export and every runtime."""

    #: Unicode normalization applied to input and target text ("NFC").
    normalization: str
    #: Tokenization of the input side: "char" or "space".
    input_tokenization: str
    #: Tokenization of the output side: "char" or "space".
    target_tokenization: str
    #: Input vocabulary; index = token id. Ids 0, 1, 2 are pad, start and end.
    input_vocabulary: tuple[str, ...]
    #: Output vocabulary; index = token id. Ids 0, 1, 2 are pad, start and end.
    target_vocabulary: tuple[str, ...]
    #: The longest input, in tokens, the model was trained on; longer inputs are refused.
    max_input_tokens: int
    #: The longest output, in tokens (end marker excluded), the decoder may emit.
    max_output_tokens: int

    def __post_init__(self):
        object.__setattr__(self, "input_vocab", text.Vocabulary(self.input_vocabulary, self.input_tokenization))
        object.__setattr__(self, "target_vocab", text.Vocabulary(self.target_vocabulary, self.target_tokenization))

    @property
    def special_tokens(self) -> dict[str, dict[str, Any]]:
        return {
            "pad": {"id": text.PAD_ID, "text": text.PAD_TOKEN},
            "start": {"id": text.START_ID, "text": text.START_TOKEN},
            "end": {"id": text.END_ID, "text": text.END_TOKEN},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "normalization": self.normalization,
            "special_tokens": self.special_tokens,
            "padding": {"side": "right", "pad_id": text.PAD_ID, "masked_by_encoder": True},
            "input": {"tokenization": self.input_tokenization, "vocabulary": list(self.input_vocabulary),
                      "max_tokens": self.max_input_tokens},
            "target": {"tokenization": self.target_tokenization, "vocabulary": list(self.target_vocabulary),
                       "max_tokens": self.max_output_tokens},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        problems = validate_preprocessing_dict(d)
        if problems:
            raise BundleError(problems)
        return cls(
            normalization=d["normalization"],
            input_tokenization=d["input"]["tokenization"],
            target_tokenization=d["target"]["tokenization"],
            input_vocabulary=tuple(d["input"]["vocabulary"]),
            target_vocabulary=tuple(d["target"]["vocabulary"]),
            max_input_tokens=int(d["input"]["max_tokens"]),
            max_output_tokens=int(d["target"]["max_tokens"]),
        )

    # -- encoding ---------------------------------------------------------------------------------------------
    def encode_input(self, source: str, *, skip_unknown: bool = False) -> list[int]:
        """Token ids of one input text (normalized), checked against the vocabulary and the length limit."""
        if not isinstance(source, str):
            raise TypeError(f"input must be str, not {type(source).__name__}")
        # Refuse absurd lengths before touching the text (a million characters must fail fast).
        limit_chars = self.max_input_tokens * 64 + 1024
        if len(source) > limit_chars:
            raise InputTextError(
                f"input is {len(source)} characters long; the model takes at most {self.max_input_tokens} tokens")
        ids = self.input_vocab.encode(text.normalize(source), skip_unknown=skip_unknown)
        if len(ids) > self.max_input_tokens:
            raise InputTextError(
                f"input is {len(ids)} tokens long; the model takes at most {self.max_input_tokens}")
        return ids

    def decode_output(self, ids: Sequence[int]) -> str:
        return self.target_vocab.decode(ids)


def pad_batch(sequences: Sequence[Sequence[int]], length: int | None = None) -> np.ndarray:
    """Right-pad id lists with the pad id into an int32 [batch, time] array (time >= 1)."""
    width = max([length or 0, 1] + [len(s) for s in sequences])
    out = np.full((len(sequences), width), text.PAD_ID, dtype=np.int32)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out


def validate_preprocessing_dict(d: Any) -> list[str]:
    """Every problem of a preprocessing section, as readable strings (empty when it is valid)."""
    if not isinstance(d, dict):
        return ["preprocessing must be an object"]
    problems = []
    if d.get("normalization") != text.NORMALIZATION:
        problems.append(f"normalization must be {text.NORMALIZATION!r}, got {d.get('normalization')!r}")
    for side in ("input", "target"):
        s = d.get(side)
        if not isinstance(s, dict):
            problems.append(f"missing section '{side}'")
            continue
        if s.get("tokenization") not in text.TOKENIZATIONS:
            problems.append(f"{side}.tokenization must be one of {list(text.TOKENIZATIONS)}, got {s.get('tokenization')!r}")
        vocab = s.get("vocabulary")
        if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
            problems.append(f"{side}.vocabulary must be a list of strings")
        else:
            if tuple(vocab[: len(text.SPECIAL_TOKENS)]) != text.SPECIAL_TOKENS:
                problems.append(f"{side}.vocabulary must start with the special tokens {list(text.SPECIAL_TOKENS)}")
            dupes = sorted({t for t in vocab if vocab.count(t) > 1}) if len(set(vocab)) != len(vocab) else []
            if dupes:
                problems.append(f"{side}.vocabulary has duplicate entries: {dupes[:5]}")
            if len(vocab) <= len(text.SPECIAL_TOKENS):
                problems.append(f"{side}.vocabulary has no data tokens")
        mt = s.get("max_tokens")
        if not isinstance(mt, int) or isinstance(mt, bool) or mt <= 0:
            problems.append(f"{side}.max_tokens must be a positive integer, got {mt!r}")
    return problems


def read_bytes(path: Path, what: str) -> bytes:
    """The bytes of a bundle file; a missing or unreadable file is a BundleError naming it."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{what} is missing", where=str(path)) from None
    except OSError as e:
        raise BundleError(f"cannot read {what} ({e.strerror})", where=str(path)) from None


def read_json(path: Path, what: str) -> dict:
    """Load a JSON object from ``path``, turning every failure into a BundleError naming the file."""
    raw = read_bytes(path, what)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"{what} is not valid JSON ({e})", where=str(path)) from None
    if not isinstance(data, dict):
        raise BundleError(f"{what} must hold a JSON object", where=str(path))
    return data


def write_json(path: Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


# ---- the bundle manifest ----------------------------------------------------------------------------------------
FORMATS = ("tflite", "onnx")
VARIANTS = {"tflite": ("fp32", "fp16", "int8"), "onnx": ("fp32", "int8")}
DTYPES = ("int32", "float32")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: its name, dtype, and shape (-1 marks the batch axis, sized at run time)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TensorSpec":
        return cls(d["name"], d["dtype"], tuple(int(x) for x in d["shape"]))


@dataclass(frozen=True)
class ModelFile:
    """One model file of the bundle."""

    #: "encoder" or "decoder_step".
    role: str
    #: "tflite" or "onnx".
    format: str
    #: "fp32", "fp16" (TFLite only) or "int8" (dynamic-range).
    variant: str
    #: File name, relative to the bundle folder.
    path: str
    #: Hex sha256 of the file; checked before the file reaches an interpreter.
    sha256: str
    #: File size in bytes.
    size_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    #: Operator types in the graph (TFLite builtin names or ONNX op types).
    ops: tuple[str, ...] = ()
    #: TFLite signature key the inputs and outputs are bound through (TFLite only).
    signature: str | None = None
    #: ONNX default-domain opset and IR version (ONNX only).
    opset: int | None = None
    ir_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"role": self.role, "format": self.format, "variant": self.variant, "path": self.path,
             "sha256": self.sha256, "size_bytes": self.size_bytes,
             "inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs],
             "ops": list(self.ops)}
        for key in ("signature", "opset", "ir_version"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelFile":
        return cls(role=d["role"], format=d["format"], variant=d["variant"], path=d["path"], sha256=d["sha256"],
                   size_bytes=int(d["size_bytes"]),
                   inputs=tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
                   outputs=tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
                   ops=tuple(d.get("ops", ())), signature=d.get("signature"), opset=d.get("opset"),
                   ir_version=d.get("ir_version"))


def expected_io(role: str, latent_dim: int, encoder_time_steps: int, target_vocab_size: int):
    """The (inputs, outputs) TensorSpecs every model of ``role`` must have, whatever its format."""
    state = (-1, latent_dim)
    if role == ENCODER:
        return ((TensorSpec(INPUT_IDS, "int32", (-1, encoder_time_steps)),),
                (TensorSpec(STATE_H, "float32", state), TensorSpec(STATE_C, "float32", state)))
    return ((TensorSpec(PREV_TOKEN, "int32", (-1,)), TensorSpec(STATE_H, "float32", state),
             TensorSpec(STATE_C, "float32", state)),
            (TensorSpec(PROBS, "float32", (-1, target_vocab_size)), TensorSpec(NEXT_STATE_H, "float32", state),
             TensorSpec(NEXT_STATE_C, "float32", state)))


@dataclass(frozen=True)
class BundleManifest:
    """``manifest.json``: everything needed to run the bundle's models, in any language."""

    preprocessing: Preprocessing
    #: LSTM units: the size of state_h and state_c.
    latent_dim: int
    #: Fixed time axis of the encoder input: inputs are right-padded with id 0 to this length.
    encoder_time_steps: int
    models: tuple[ModelFile, ...]
    #: Versions of the tools that trained and exported the bundle.
    versions: dict[str, str] = field(default_factory=dict)
    #: Oldest interpreter versions the bundle was tested on, per backend.
    runtimes_tested: dict[str, str] = field(default_factory=dict)
    #: Free-form provenance: the run folder, the creation time, the seed.
    provenance: dict[str, Any] = field(default_factory=dict)
    format: str = MANIFEST_FORMAT
    version: int = MANIFEST_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format, "version": self.version,
            "preprocessing": self.preprocessing.to_dict(),
            "model": {"architecture": "lstm-encoder-decoder", "latent_dim": self.latent_dim,
                      "encoder_time_steps": self.encoder_time_steps,
                      "decoding": "greedy: start with prev_token = start id and the encoder's state; feed "
                                  "argmax(probs) and next_state_* back until the end id or max_tokens outputs"},
            "io": {role: {"inputs": list(ins), "outputs": list(outs)} for role, (ins, outs) in MODEL_IO.items()},
            "models": [m.to_dict() for m in self.models],
            "versions": dict(self.versions), "runtimes_tested": dict(self.runtimes_tested),
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, d: Any) -> "BundleManifest":
        """Parse and validate; raises BundleError listing every problem at once."""
        problems = validate_manifest_dict(d)
        if problems:
            raise BundleError(problems)
        return cls(
            preprocessing=Preprocessing.from_dict(d["preprocessing"]),
            latent_dim=int(d["model"]["latent_dim"]),
            encoder_time_steps=int(d["model"]["encoder_time_steps"]),
            models=tuple(ModelFile.from_dict(m) for m in d["models"]),
            versions=dict(d.get("versions", {})), runtimes_tested=dict(d.get("runtimes_tested", {})),
            provenance=dict(d.get("provenance", {})), format=d["format"], version=d["version"])

    @classmethod
    def load(cls, bundle_dir: str | Path) -> "BundleManifest":
        path = Path(bundle_dir) / MANIFEST_FILE
        d = read_json(path, "manifest")
        try:
            return cls.from_dict(d)
        except BundleError as e:
            raise BundleError(e.problems, where=str(path)) from None

    def save(self, bundle_dir: str | Path) -> None:
        write_json(Path(bundle_dir) / MANIFEST_FILE, self.to_dict())

    def find(self, role: str, fmt: str, variant: str) -> ModelFile | None:
        for m in self.models:
            if (m.role, m.format, m.variant) == (role, fmt, variant):
                return m
        return None

    def variants(self, fmt: str) -> list[str]:
        """Variants of ``fmt`` for which the bundle holds both the encoder and the decoder step."""
        return [v for v in VARIANTS.get(fmt, ()) if self.find(ENCODER, fmt, v) and self.find(DECODER_STEP, fmt, v)]


def validate_manifest_dict(d: Any) -> list[str]:
    """Every problem of a manifest dict (empty list when valid)."""
    if not isinstance(d, dict):
        return ["manifest must be a JSON object"]
    problems = []
    if d.get("format") != MANIFEST_FORMAT:
        problems.append(f"format must be {MANIFEST_FORMAT!r}, got {d.get('format')!r}")
    if "version" not in d:
        problems.append("missing format version ('version')")
    elif d.get("version") != MANIFEST_VERSION:
        problems.append(f"manifest format version {d.get('version')!r} is not supported by this runtime "
                        f"(it reads version {MANIFEST_VERSION}); upgrade seq2seq-edge or re-export the bundle")
    if "preprocessing" not in d:
        problems.append("missing key 'preprocessing'")
    else:
        problems += validate_preprocessing_dict(d["preprocessing"])
    model = d.get("model")
    latent = steps = None
    if not isinstance(model, dict):
        problems.append("missing key 'model'")
    else:
        for key in ("latent_dim", "encoder_time_steps"):
            v = model.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                problems.append(f"model.{key} must be a positive integer, got {v!r}")
        latent, steps = model.get("latent_dim"), model.get("encoder_time_steps")
    models = d.get("models")
    if not isinstance(models, list) or not models:
        problems.append("missing key 'models' (a non-empty list)")
        return problems
    prep = d.get("preprocessing") if isinstance(d.get("preprocessing"), dict) else {}
    target_vocab = (prep.get("target") or {}).get("vocabulary") if isinstance(prep.get("target"), dict) else None
    in_max = (prep.get("input") or {}).get("max_tokens") if isinstance(prep.get("input"), dict) else None
    if isinstance(steps, int) and isinstance(in_max, int) and steps < in_max:
        problems.append(f"model.encoder_time_steps ({steps}) is below input.max_tokens ({in_max})")
    seen = set()
    for i, m in enumerate(models):
        where = f"models[{i}]"
        if not isinstance(m, dict):
            problems.append(f"{where} must be an object")
            continue
        missing = [k for k in ("role", "format", "variant", "path", "sha256", "size_bytes", "inputs", "outputs")
                   if k not in m]
        if missing:
            problems.append(f"{where} is missing {', '.join(missing)}")
            continue
        where = f"{where} ({m.get('path')!r})"
        if m["role"] not in ROLES:
            problems.append(f"{where}: role must be one of {list(ROLES)}, got {m['role']!r}")
        if m["format"] not in FORMATS:
            problems.append(f"{where}: format must be one of {list(FORMATS)}, got {m['format']!r}")
        elif m["variant"] not in VARIANTS[m["format"]]:
            problems.append(f"{where}: variant must be one of {list(VARIANTS[m['format']])}, got {m['variant']!r}")
        p = m["path"]
        if not isinstance(p, str) or not p or "/" in p or "\\" in p or p in (".", ".."):
            problems.append(f"{where}: path must be a plain file name inside the bundle")
        if not (isinstance(m["sha256"], str) and len(m["sha256"]) == 64):
            problems.append(f"{where}: sha256 must be 64 hex digits")
        key = (m["role"], m["format"], m["variant"])
        if key in seen:
            problems.append(f"{where}: a second {'/'.join(map(str, key))} model")
        seen.add(key)
        try:
            ins = tuple(TensorSpec.from_dict(t) for t in m["inputs"])
            outs = tuple(TensorSpec.from_dict(t) for t in m["outputs"])
        except (KeyError, TypeError, ValueError):
            problems.append(f"{where}: inputs and outputs must be lists of {{name, dtype, shape}}")
            continue
        if m["role"] in ROLES and isinstance(latent, int) and isinstance(steps, int) and isinstance(target_vocab, list):
            want_in, want_out = expected_io(m["role"], latent, steps, len(target_vocab))
            for kind, got, want in (("inputs", ins, want_in), ("outputs", outs, want_out)):
                if sorted(got, key=lambda t: t.name) != sorted(want, key=lambda t: t.name):
                    problems.append(f"{where}: {kind} {_fmt_specs(got)} contradict the contract {_fmt_specs(want)}")
    return problems


def _fmt_specs(specs) -> str:
    return "[" + ", ".join(f"{t.name}:{t.dtype}{list(t.shape)}" for t in sorted(specs, key=lambda t: t.name)) + "]"
