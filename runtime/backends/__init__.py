"""Inference backends: one small adapter per interpreter, behind one interface.

Each adapter is imported only when its backend is asked for, so the runtime needs numpy plus the one
interpreter that is installed. A model adapter has:

* ``inputs`` / ``outputs``: the model's real TensorSpecs (name, dtype, shape with -1 for dynamic axes);
* ``run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]``, bound by name, never by position.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from ..errors import BackendUnavailableError, BundleError
from ..versions import package_version


@dataclass(frozen=True)
class BackendInfo:
    name: str
    #: Model file format the backend runs.
    format: str
    #: Python module that provides the interpreter.
    module: str
    #: What to pip install when it is missing.
    install: str
    #: The adapter module under seq2seq_edge.backends and its opener function.
    adapter: str
    #: The distribution that provides the interpreter (for its version).
    dist: str


BACKENDS = {
    "tflite": BackendInfo("tflite", "tflite", "tflite_runtime.interpreter",
                          "in a clone of seq2seq-edge: pip install '.[tflite]' (tflite-runtime 2.14 needs Python "
                          "<= 3.11 and numpy<2; on newer Pythons use --backend litert)", "tflite", "tflite-runtime"),
    "litert": BackendInfo("litert", "tflite", "ai_edge_litert.interpreter",
                          "in a clone of seq2seq-edge: pip install '.[litert]'", "tflite", "ai-edge-litert"),
    "onnx": BackendInfo("onnx", "onnx", "onnxruntime", "in a clone of seq2seq-edge: pip install '.[onnx]'", "onnx",
                        "onnxruntime"),
}
#: The order ``backend="auto"`` tries: LiteRT first, because its interpreter verifies a flatbuffer before using it;
#: tflite-runtime 2.14 does not (the runtime probes every file in a child process first, see probe.py).
AUTO_ORDER = ("litert", "tflite", "onnx")


def is_installed(backend: str) -> bool:
    """Whether the backend's interpreter can be imported (without importing it)."""
    top = BACKENDS[backend].module.split(".")[0]
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def interpreter_version(backend: str) -> str | None:
    """The installed version of the backend's interpreter package, or None."""
    return package_version(BACKENDS[backend].dist)


def import_interpreter_module(backend: str):
    """Import the backend's interpreter module, or raise BackendUnavailableError saying what to install."""
    info = BACKENDS[backend]
    try:
        return importlib.import_module(info.module)
    except ImportError as e:
        raise BackendUnavailableError(f"backend {backend!r} is not installed ({e}): {info.install}") from None
    except Exception as e:  # e.g. tflite-runtime 2.14 under numpy 2 fails while importing
        raise BackendUnavailableError(f"backend {backend!r} failed to import ({type(e).__name__}: {e}): "
                                      f"{info.install}") from None


def zero_feeds(model, batch: int = 1) -> dict:
    """Zeros of every input of ``model`` at ``batch`` (padding ids, zero states): a harmless test run."""
    import numpy as np

    return {t.name: np.zeros([batch if d == -1 else d for d in t.shape], dtype=t.dtype) for t in model.inputs}


def model_ops(fmt: str, content: bytes) -> set[str]:
    """The operator names of a model file, read without an interpreter (``inspect_model``)."""
    return inspect_model(fmt, content)[0]


def inspect_model(fmt: str, content: bytes) -> tuple[set[str], list[int]]:
    """(operator names, each loop's proven maximum trip count) of a model file, read without an interpreter;
    BundleError for anything a bundle model may never be: malformed, external data, model-local functions,
    training graphs, operators outside the default domain, custom operators, and any control flow but loops in
    the main graph whose trip count the reader can bound (no nested loops, no conditionals)."""
    if fmt == "onnx":
        from . import onnx_wire

        try:
            s = onnx_wire.summarize(content)
        except onnx_wire.WireError as e:
            raise BundleError(f"not a valid ONNX model ({e})") from None
        problems = []
        if s.external_tensors:
            problems.append(f"refers to external data for {s.external_tensors[:3]}; bundle models must embed their "
                            "weights (external data is refused)")
        if s.functions:
            problems.append(f"defines model-local functions {s.functions[:3]} (refused: the contract has none)")
        if s.training_info:
            problems.append("holds training graphs (training_info is refused)")
        bounds = []
        try:
            bounds = onnx_wire.loop_bounds(s)
        except onnx_wire.WireError as e:
            problems.append(str(e))
        problems += onnx_wire.value_sized_problems(s)
        foreign = sorted(f"{d}:{o}" for d, o in s.ops if d)
        if foreign:
            problems.append(f"uses operators outside the default ONNX domain: {foreign[:5]}")
        if problems:
            raise BundleError(problems)
        return {o for _, o in s.ops}, bounds
    if fmt == "tflite":
        from . import tflite_wire

        try:
            s = tflite_wire.summarize(content)
        except tflite_wire.WireError as e:
            raise BundleError(f"not a valid TFLite model ({e})") from None
        custom = sorted(op for op in s.op_codes if op.startswith("CUSTOM"))
        if custom:
            raise BundleError(f"uses custom operators {custom[:5]} (refused: bundle models use builtins only)")
        return s.ops, s.loop_bounds
    raise BundleError(f"unknown model format {fmt!r}")


def prove_shapes(fmt: str, content: bytes, inputs: dict[str, tuple[int, ...]], row_limit: int) -> None:
    """BundleError unless every tensor's shape of the model (read after ``inspect_model`` accepted it) is proved
    from its contract ``inputs`` (name -> shape, -1 the batch; a TFLite model's bound through the signature the
    interpreter runs, ``manifest.SIGNATURE_KEY``)
    within ``row_limit`` elements per batch row and linear in the batch, and no loop changes the shape of what it
    carries (``onnx_shapes``, ``tflite_shapes``; docs/trust.md)."""
    if fmt == "onnx":
        from . import onnx_shapes, onnx_wire

        try:
            problems = onnx_shapes.prove(onnx_wire.graph_tree(content), inputs, row_limit)
        except onnx_wire.WireError as e:
            raise BundleError(f"not a valid ONNX model ({e})") from None
    elif fmt == "tflite":
        from . import tflite_shapes
        from ..manifest import SIGNATURE_KEY

        problems = tflite_shapes.prove(content, inputs, SIGNATURE_KEY, row_limit)
    else:
        raise BundleError(f"unknown model format {fmt!r}")
    if problems:
        raise BundleError(problems)


def open_model(backend: str, content: bytes, threads: int = 1, *, xnnpack: bool = True):
    """Create the backend's adapter for one model, from the model file's bytes (already checksummed).

    ``xnnpack=False`` asks TFLite backends not to apply their default XNNPACK delegate (ignored by ONNX).
    """
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    model_ops(BACKENDS[backend].format, content)  # whoever opens a model, these refusals come first
    adapter = importlib.import_module(f"{__name__}.{BACKENDS[backend].adapter}")
    return adapter.open_model(import_interpreter_module(backend), content, threads, xnnpack)
