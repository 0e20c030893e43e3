"""The bundle contract: file names, model input/output names, and the typed manifest shared by export and runtime.

Everything a Kotlin, Swift or Python decode loop needs is here, defined once:

* Encoder:       ``input_ids`` int32 [batch, time] (right-padded with id 0)  ->  ``state_h``, ``state_c`` float32 [batch, latent]
* Decoder step:  ``prev_token`` int32 [batch], ``state_h``, ``state_c``  ->  ``probs`` float32 [batch, vocab],
                 ``next_state_h``, ``next_state_c`` float32 [batch, latent]
* Greedy (optional, one call):  ``input_ids``  ->  ``output_ids`` int32 [batch, max_tokens + 1] (the id chosen at
                 each step, the end id included, pad ids after it), ``output_probs`` float32 [batch, max_tokens + 1]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import files
from .errors import BundleError
from .preprocessing import MAX_SEQUENCE_TOKENS, Preprocessing, is_count, short_repr, validate_preprocessing_dict

# ---- names, defined once --------------------------------------------------------------------------------------
MANIFEST_FILE = "manifest.json"
#: The bundle's files beside the manifest and the models, written by ``s2s export`` (export/reports.py): the
#: parity gate's figures, as data and as a table; the test inputs with Keras' strings; the export report.
PARITY_FILE = "parity.json"
PARITY_MD = "parity.md"
GOLDEN_FILE = "golden.json"
REPORT_MD = "report.md"
MANIFEST_FORMAT = "seq2seq-edge-bundle"
MANIFEST_VERSION = 1

ENCODER = "encoder"
DECODER_STEP = "decoder_step"
#: Optional: the encoder and the whole greedy loop in one model (``input_ids`` -> ``output_ids``, ``output_probs``).
GREEDY = "greedy"
#: Roles every bundle has, for each format and variant it holds.
ROLES = (ENCODER, DECODER_STEP)
#: Every role a model file may have.
ALL_ROLES = (ENCODER, DECODER_STEP, GREEDY)

INPUT_IDS = "input_ids"
PREV_TOKEN = "prev_token"
STATE_H = "state_h"
STATE_C = "state_c"
PROBS = "probs"
NEXT_STATE_H = "next_state_h"
NEXT_STATE_C = "next_state_c"
#: Attention bundles: the encoder's output at every input position [batch, T, encoder_output_dim], and 1.0 where
#: the input has a token, 0.0 where it is padding [batch, T]; both fed unchanged to every decoder step.
ENCODER_OUTPUTS = "encoder_outputs"
ENCODER_MASK = "encoder_mask"
#: The greedy model's outputs: the id chosen at each step [batch, max_output_tokens + 1] (the end id included,
#: pad ids after it) and that id's probability (0 after the end).
OUTPUT_IDS = "output_ids"
OUTPUT_PROBS = "output_probs"

#: The seed's encoder-decoder: the decoder sees the encoder only through its final state.
SEED_ARCHITECTURE = "lstm-encoder-decoder"
#: The decoder also attends over the encoder's outputs at every step (Luong's "general" score).
ATTENTION_ARCHITECTURE = "lstm-attention"
ARCHITECTURES = (SEED_ARCHITECTURE, ATTENTION_ARCHITECTURE)

#: Step outputs fed back as the next step's inputs (output name -> input name): the decoder's recurrent state.
RECURRENT = ((NEXT_STATE_H, STATE_H), (NEXT_STATE_C, STATE_C))

SIGNATURE_KEY = "serving_default"

#: Operators each role may hold, per format: what the exporter writes, and their close kin. No custom operators,
#: nothing outside ONNX's default domain, and no control flow but the bounded loops the exporter writes, in the
#: encoder (over the input's real length) and the greedy model: a WHILE / Loop in the main graph whose trip count
#: the runtime proves bounded (``backends.inspect_model``) by the role's limit (``BundleManifest.loop_limit``); no
#: IF, Scan, nested loops or calls anywhere, and none of it in the decoder step. Export refuses a model outside
#: this list, and the runtime refuses it before an interpreter sees it.
_TFLITE_COMMON = frozenset({
    "ADD", "SUB", "MUL", "FULLY_CONNECTED", "BATCH_MATMUL", "GATHER", "LOGISTIC", "TANH", "SPLIT", "SPLIT_V",
    "DEQUANTIZE", "QUANTIZE", "RESHAPE", "CONCATENATION", "STRIDED_SLICE", "SLICE", "CAST", "SQUEEZE",
    "EXPAND_DIMS", "PACK", "UNPACK", "TRANSPOSE"})
_ONNX_COMMON = frozenset({
    "Add", "Sub", "Mul", "MatMul", "Gemm", "Gather", "Sigmoid", "Tanh", "Split", "Cast", "DequantizeLinear",
    "QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "Reshape", "Concat", "Slice", "Squeeze",
    "Unsqueeze", "Transpose", "Identity"})
_TFLITE_ENCODER = _TFLITE_COMMON | {
    "NOT_EQUAL", "EQUAL", "SELECT", "SELECT_V2", "ZEROS_LIKE", "SHAPE", "FILL", "SUM", "REDUCE_MAX", "LESS",
    "LOGICAL_AND", "WHILE"}
_ONNX_ENCODER = _ONNX_COMMON | {
    "Shape", "ConstantOfShape", "Equal", "Not", "Where", "Expand", "ReduceSum", "ReduceMax", "Less", "And", "Loop"}
ALLOWED_OPS = {
    "tflite": {ENCODER: _TFLITE_ENCODER, DECODER_STEP: _TFLITE_COMMON | {"SOFTMAX"},
               GREEDY: _TFLITE_ENCODER | {"SOFTMAX", "ARG_MAX", "GREATER", "LOGICAL_NOT", "LOGICAL_OR",
                                          "REDUCE_ALL", "REDUCE_ANY"}},
    "onnx": {ENCODER: _ONNX_ENCODER, DECODER_STEP: _ONNX_COMMON | {"Softmax"},
             GREEDY: _ONNX_ENCODER | {"Softmax", "ArgMax", "Greater", "Or"}},
}

# ---- bounds on what a bundle may declare ------------------------------------------------------------------------
# A bundle is untrusted data. These are far above any model this toolkit trains, and low enough that a crafted
# manifest cannot make the runtime read, parse or allocate without bound (each is documented in docs/trust.md).
#: manifest.json is read only up to this size (a 262k-token vocabulary is about 4 MB).
MAX_MANIFEST_BYTES = 16 * 2**20
#: A model file larger than this is refused before it is read (TFLite flatbuffers stop at 2 GiB).
MAX_MODEL_BYTES = 2**30
#: The decoder state's width (LSTM units, times the layers of a stacked decoder, plus one slot with input feeding).
MAX_LATENT_DIM = 16_384
#: Model entries in one manifest, and operator names per model entry.
MAX_MODELS = 64
MAX_OPS = 256
#: The most models an ensemble holds: bundles decoded together (``load_ensemble``) or exported as one.
MAX_ENSEMBLE_MODELS = 8

_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_file_name(name: str) -> bool:
    """Whether ``name`` is a file name a bundle may hold: a plain name, no folder, not hidden, at most 128 bytes."""
    return isinstance(name, str) and _FILE_NAME.fullmatch(name) is not None



# ---- the bundle manifest ----------------------------------------------------------------------------------------
FORMATS = ("tflite", "onnx")
VARIANTS = {"tflite": ("fp32", "fp16", "int8"), "onnx": ("fp32", "int8")}


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

    #: "encoder", "decoder_step" or "greedy".
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


def expected_io(role: str, latent_dim: int, encoder_time_steps: int, target_vocab_size: int,
                encoder_output_dim: int | None = None, max_output_tokens: int = 1):
    """The (inputs, outputs) TensorSpecs every model of ``role`` must have, whatever its format. With
    ``encoder_output_dim`` (attention bundles) the encoder also returns its outputs and padding mask, and the step
    takes them. The greedy model's outputs have ``max_output_tokens`` + 1 steps."""
    state = (-1, latent_dim)
    if role == GREEDY:
        steps = (-1, max_output_tokens + 1)
        return ((TensorSpec(INPUT_IDS, "int32", (-1, encoder_time_steps)),),
                (TensorSpec(OUTPUT_IDS, "int32", steps), TensorSpec(OUTPUT_PROBS, "float32", steps)))
    attention = () if encoder_output_dim is None else (
        TensorSpec(ENCODER_OUTPUTS, "float32", (-1, encoder_time_steps, encoder_output_dim)),
        TensorSpec(ENCODER_MASK, "float32", (-1, encoder_time_steps)))
    if role == ENCODER:
        return ((TensorSpec(INPUT_IDS, "int32", (-1, encoder_time_steps)),),
                (TensorSpec(STATE_H, "float32", state), TensorSpec(STATE_C, "float32", state)) + attention)
    return ((TensorSpec(PREV_TOKEN, "int32", (-1,)), TensorSpec(STATE_H, "float32", state),
             TensorSpec(STATE_C, "float32", state)) + attention,
            (TensorSpec(PROBS, "float32", (-1, target_vocab_size)), TensorSpec(NEXT_STATE_H, "float32", state),
             TensorSpec(NEXT_STATE_C, "float32", state)))


@dataclass(frozen=True)
class BundleManifest:
    """``manifest.json``: everything needed to run the bundle's models, in any language."""

    preprocessing: Preprocessing
    #: The size of state_h and state_c: the decoder LSTM's units (times its layers when they are stacked,
    #: their states side by side; plus one slot with input feeding).
    latent_dim: int
    #: Fixed time axis of the encoder input: inputs are right-padded with id 0 to this length.
    encoder_time_steps: int
    models: tuple[ModelFile, ...]
    #: SEED_ARCHITECTURE or ATTENTION_ARCHITECTURE (bundles without the key are the seed's).
    architecture: str = SEED_ARCHITECTURE
    #: Attention bundles: the width of ``encoder_outputs`` (twice the encoder's units when it is bidirectional).
    encoder_output_dim: int | None = None
    #: Versions of the tools that trained and exported the bundle.
    versions: dict[str, str] = field(default_factory=dict)
    #: The interpreter packages (and versions) the export's parity gate ran the bundle on.
    runtimes_tested: dict[str, str] = field(default_factory=dict)
    #: Free-form provenance: the run folder, the creation time, the seed.
    provenance: dict[str, Any] = field(default_factory=dict)
    format: str = MANIFEST_FORMAT
    version: int = MANIFEST_VERSION

    def io(self, role: str):
        """The (inputs, outputs) TensorSpecs of ``role`` in this bundle."""
        return expected_io(role, self.latent_dim, self.encoder_time_steps, len(self.preprocessing.target_vocabulary),
                           self.encoder_output_dim, self.preprocessing.max_output_tokens)

    def loop_limit(self, role: str) -> int:
        """The most times any one loop of a ``role`` model may run: the encoder's loops run over input positions,
        the greedy model's decode loop over output steps (max_tokens + 1); the decoder step has no loop."""
        if role == ENCODER:
            return self.encoder_time_steps
        if role == GREEDY:
            return max(self.encoder_time_steps, self.preprocessing.max_output_tokens + 1)
        return 0

    def row_limit(self) -> int:
        """The most elements any tensor of this bundle's models may hold per batch row (the shape proof's bound,
        ``backends.prove_shapes``): four times the longest sequence (input or output) times the widest vector
        (state, encoder output, either vocabulary). The exporter's largest, the encoder's gates over every input
        position (positions x 4 x units), stays within it."""
        pre = self.preprocessing
        longest = max(self.encoder_time_steps, pre.max_output_tokens + 1)
        widest = max(self.latent_dim, self.encoder_output_dim or 0, len(pre.target_vocabulary),
                     len(pre.input_vocabulary))
        return 4 * longest * widest

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles this bundle has models for (``ROLES``, and ``GREEDY`` when it holds one)."""
        return tuple(r for r in ALL_ROLES if any(m.role == r for m in self.models))

    def to_dict(self) -> dict[str, Any]:
        model = {"architecture": self.architecture, "latent_dim": self.latent_dim,
                 "encoder_time_steps": self.encoder_time_steps,
                 "decoding": "greedy: start with prev_token = start id and the encoder's state; feed "
                             "argmax(probs) and next_state_* back until the end id or max_tokens outputs"}
        if self.encoder_output_dim is not None:
            model["encoder_output_dim"] = self.encoder_output_dim
            model["decoding"] += "; encoder_outputs and encoder_mask go unchanged to every step"
        if GREEDY in self.roles:
            model["one_call"] = ("greedy model: input_ids -> output_ids, output_probs [batch, max_tokens + 1]: the id "
                                 "chosen at each step and its probability; a row ends at its first end id (pad ids "
                                 "and probability 0 after it); without an end id it was cut at max_tokens")
        return {
            "format": self.format, "version": self.version,
            "preprocessing": self.preprocessing.to_dict(),
            "model": model,
            "io": {role: {"inputs": [t.name for t in self.io(role)[0]], "outputs": [t.name for t in self.io(role)[1]]}
                   for role in self.roles},
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
            architecture=d["model"].get("architecture", SEED_ARCHITECTURE),
            encoder_output_dim=d["model"].get("encoder_output_dim"),
            versions=dict(d.get("versions", {})), runtimes_tested=dict(d.get("runtimes_tested", {})),
            provenance=dict(d.get("provenance", {})), format=d["format"], version=d["version"])

    @classmethod
    def load(cls, bundle_dir: str | Path) -> "BundleManifest":
        path = Path(bundle_dir) / MANIFEST_FILE
        d = files.read_json_object(path, "manifest", max_bytes=MAX_MANIFEST_BYTES)
        try:
            return cls.from_dict(d)
        except BundleError as e:
            raise BundleError(e.problems, where=str(path)) from None

    def save(self, bundle_dir: str | Path) -> None:
        files.write_json(Path(bundle_dir) / MANIFEST_FILE, self.to_dict())

    def find(self, role: str, fmt: str, variant: str) -> ModelFile | None:
        for m in self.models:
            if (m.role, m.format, m.variant) == (role, fmt, variant):
                return m
        return None

    def variants(self, fmt: str) -> list[str]:
        """Variants of ``fmt`` for which the bundle holds both the encoder and the decoder step."""
        return [v for v in VARIANTS.get(fmt, ()) if self.find(ENCODER, fmt, v) and self.find(DECODER_STEP, fmt, v)]

    def ensemble_members(self) -> list[dict[str, Any]]:
        """The models an ensemble bundle records (``s2s export --ensemble``, ``provenance.ensemble``), in order:
        ``{"run_dir": str, "training": dict}`` each; empty for a bundle of one model. The provenance is free-form
        and unchecked by ``load``: anything but a list of 2 to ``MAX_ENSEMBLE_MODELS`` such records, with run
        names of printable text, is a BundleError."""
        members = self.provenance.get("ensemble")
        if members is None:
            return []
        if not isinstance(members, list) or not 2 <= len(members) <= MAX_ENSEMBLE_MODELS:
            count = f"{len(members)} entries" if isinstance(members, list) else f"a {type(members).__name__}"
            raise BundleError(f"provenance.ensemble holds {count}; an ensemble bundle records 2 to "
                              f"{MAX_ENSEMBLE_MODELS} models")
        for i, m in enumerate(members, 1):
            run = m.get("run_dir") if isinstance(m, dict) else None
            if not (isinstance(run, str) and 0 < len(run) <= 1000 and run.isprintable()
                    and isinstance(m.get("training", {}), dict)):
                raise BundleError(f"provenance.ensemble: model {i} is not a run name of printable text with its "
                                  "training settings")
        return [{"run_dir": m["run_dir"], "training": m.get("training", {})} for m in members]


def _model_section_problems(model: Any) -> list[str]:
    """The problems of the manifest's ``model`` object (its sizes and architecture)."""
    if not isinstance(model, dict):
        return ["missing key 'model'"]
    problems = []
    architecture = model.get("architecture", SEED_ARCHITECTURE)
    checks = [("latent_dim", MAX_LATENT_DIM), ("encoder_time_steps", MAX_SEQUENCE_TOKENS)]
    if architecture == ATTENTION_ARCHITECTURE:
        checks.append(("encoder_output_dim", MAX_LATENT_DIM))
    elif "encoder_output_dim" in model:
        problems.append(f"model.encoder_output_dim belongs to {ATTENTION_ARCHITECTURE!r} bundles only")
    for key, limit in checks:
        if not is_count(model.get(key), limit):
            problems.append(f"model.{key} must be an integer from 1 to {limit}, got {short_repr(model.get(key))}")
    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        problems.append(f"model.architecture must be one of {list(ARCHITECTURES)}, got {short_repr(architecture)}"
                        "; a newer seq2seq-edge may read it")
    return problems


def validate_manifest_dict(d: Any) -> list[str]:
    """Every problem of a manifest dict (empty list when valid). Never raises, whatever ``d`` holds."""
    if not isinstance(d, dict):
        return ["manifest must be a JSON object"]
    problems = []
    if d.get("format") != MANIFEST_FORMAT:
        problems.append(f"format must be {MANIFEST_FORMAT!r}, got {short_repr(d.get('format'))}")
    if "version" not in d:
        problems.append("missing format version ('version')")
    elif type(d["version"]) is not int or d["version"] != MANIFEST_VERSION:
        problems.append(f"manifest format version {short_repr(d['version'])} is not supported by this runtime "
                        f"(it reads version {MANIFEST_VERSION}); upgrade seq2seq-edge or re-export the bundle")
    prep = d.get("preprocessing")
    problems += validate_preprocessing_dict(prep) if "preprocessing" in d else ["missing key 'preprocessing'"]
    model = d.get("model")
    problems += _model_section_problems(model)
    latent = steps = attention_dim = None
    attention = False
    if isinstance(model, dict):
        latent, steps = model.get("latent_dim"), model.get("encoder_time_steps")
        attention = model.get("architecture", SEED_ARCHITECTURE) == ATTENTION_ARCHITECTURE
        attention_dim = model.get("encoder_output_dim") if attention else None
    for key in ("versions", "runtimes_tested"):
        v = d.get(key, {})
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            problems.append(f"{key} must be an object of strings")
    if not isinstance(d.get("provenance", {}), dict):
        problems.append("provenance must be an object")
    models = d.get("models")
    if not isinstance(models, list) or not models:
        problems.append("missing key 'models' (a non-empty list)")
        return problems
    if len(models) > MAX_MODELS:
        problems.append(f"'models' lists {len(models)} files, more than the {MAX_MODELS} allowed")
        return problems
    sides = prep if isinstance(prep, dict) else {}
    target = sides.get("target") if isinstance(sides.get("target"), dict) else {}
    source = sides.get("input") if isinstance(sides.get("input"), dict) else {}
    target_vocab, in_max, out_max = target.get("vocabulary"), source.get("max_tokens"), target.get("max_tokens")
    if is_count(steps, MAX_SEQUENCE_TOKENS) and is_count(in_max, MAX_SEQUENCE_TOKENS) and steps < in_max:
        problems.append(f"model.encoder_time_steps ({steps}) is below input.max_tokens ({in_max})")
    contract = None
    if (is_count(latent, MAX_LATENT_DIM) and is_count(steps, MAX_SEQUENCE_TOKENS) and isinstance(target_vocab, list)
            and is_count(out_max, MAX_SEQUENCE_TOKENS)
            and (not attention or is_count(attention_dim, MAX_LATENT_DIM))):
        contract = {role: expected_io(role, latent, steps, len(target_vocab), attention_dim if attention else None,
                                      out_max)
                    for role in ALL_ROLES}
    seen = set()
    for i, m in enumerate(models):
        problems += _model_entry_problems(i, m, contract, seen)
    return problems


_MODEL_KEYS = ("role", "format", "variant", "path", "sha256", "size_bytes", "inputs", "outputs")


def _model_entry_problems(i: int, m: Any, contract: dict | None, seen: set) -> list[str]:
    where = f"models[{i}]"
    if not isinstance(m, dict):
        return [f"{where} must be an object"]
    missing = [k for k in _MODEL_KEYS if k not in m]
    if missing:
        return [f"{where} is missing {', '.join(missing)}"]
    path = m["path"]
    if not isinstance(path, str) or not _FILE_NAME.fullmatch(path):
        return [f"{where}: path {short_repr(path)} must be a plain file name inside the bundle (letters, digits, "
                "'.', '_', '-'; at most 128 characters)"]
    where = f"{where} ({path!r})"
    problems = []
    role, fmt, variant = m["role"], m["format"], m["variant"]
    if not isinstance(role, str) or role not in ALL_ROLES:
        problems.append(f"{where}: role must be one of {list(ALL_ROLES)}, got {short_repr(role)}")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        problems.append(f"{where}: format must be one of {list(FORMATS)}, got {short_repr(fmt)}")
    elif not isinstance(variant, str) or variant not in VARIANTS[fmt]:
        problems.append(f"{where}: variant must be one of {list(VARIANTS[fmt])}, got {short_repr(variant)}")
    if not isinstance(m["sha256"], str) or not _SHA256.fullmatch(m["sha256"]):
        problems.append(f"{where}: sha256 must be 64 lowercase hex digits")
    if not is_count(m["size_bytes"], MAX_MODEL_BYTES):
        problems.append(f"{where}: size_bytes must be an integer from 1 to {MAX_MODEL_BYTES}, "
                        f"got {short_repr(m['size_bytes'])}")
    ops = m.get("ops", [])
    if not isinstance(ops, list) or len(ops) > MAX_OPS or not all(isinstance(o, str) and 0 < len(o) <= 64
                                                                   for o in ops):
        problems.append(f"{where}: ops must be a list of at most {MAX_OPS} operator names")
    for key in ("opset", "ir_version"):
        if m.get(key) is not None and not is_count(m[key], 10_000):
            problems.append(f"{where}: {key} must be a positive integer, got {short_repr(m[key])}")
    if m.get("signature") is not None and not isinstance(m["signature"], str):
        problems.append(f"{where}: signature must be a string")
    if problems:
        return problems
    if (role, fmt, variant) in seen:
        problems.append(f"{where}: a second {role}/{fmt}/{variant} model")
    seen.add((role, fmt, variant))
    specs = {kind: _tensor_specs(m[kind]) for kind in ("inputs", "outputs")}
    if None in specs.values():
        return problems + [f"{where}: inputs and outputs must be lists of {{name, dtype, shape}} (at most "
                           f"{_MAX_RANK} dimensions, each -1 or a positive integer)"]
    if contract is not None:
        for kind, want in zip(("inputs", "outputs"), contract[role]):
            got = specs[kind]
            if sorted(got, key=lambda t: t.name) != sorted(want, key=lambda t: t.name):
                problems.append(f"{where}: {kind} {_fmt_specs(got)} contradict the contract {_fmt_specs(want)}")
    return problems


_MAX_RANK = 8


def _tensor_specs(value: Any) -> tuple[TensorSpec, ...] | None:
    """TensorSpecs of a manifest's inputs or outputs list, or None when it is not of that form."""
    if not isinstance(value, list) or len(value) > 16:
        return None
    specs = []
    for t in value:
        if not (isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("dtype"), str)
                and isinstance(t.get("shape"), list) and len(t["shape"]) <= _MAX_RANK
                and all(isinstance(x, int) and not isinstance(x, bool) and (x == -1 or 0 < x <= 1 << 31)
                        for x in t["shape"])):
            return None
        specs.append(TensorSpec(t["name"], t["dtype"], tuple(t["shape"])))
    return tuple(specs)


def _fmt_specs(specs) -> str:
    return "[" + ", ".join(f"{t.name}:{t.dtype}{list(t.shape)}" for t in sorted(specs, key=lambda t: t.name)) + "]"
