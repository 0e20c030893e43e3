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

from ..errors import BackendUnavailableError


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


BACKENDS = {
    "tflite": BackendInfo("tflite", "tflite", "tflite_runtime.interpreter",
                          "pip install 'seq2seq-edge[tflite]' (tflite-runtime 2.14 needs Python <= 3.11 and numpy<2; "
                          "on newer Pythons use --backend litert)", "tflite"),
    "litert": BackendInfo("litert", "tflite", "ai_edge_litert.interpreter", "pip install 'seq2seq-edge[litert]'",
                          "tflite"),
    "onnx": BackendInfo("onnx", "onnx", "onnxruntime", "pip install 'seq2seq-edge[onnx]'", "onnx"),
}
#: The order ``backend="auto"`` tries.
AUTO_ORDER = ("tflite", "litert", "onnx")


def is_installed(backend: str) -> bool:
    """Whether the backend's interpreter can be imported (without importing it)."""
    top = BACKENDS[backend].module.split(".")[0]
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


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


def open_model(backend: str, content: bytes, threads: int = 1, *, xnnpack: bool | str = True):
    """Create the backend's adapter for one model, from the model file's bytes (already checksummed).

    ``xnnpack=False`` asks TFLite backends not to apply their default XNNPACK delegate, ``"batched"`` to apply it
    only for batches larger than 1 (ignored by ONNX).
    """
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    adapter = importlib.import_module(f"{__name__}.{BACKENDS[backend].adapter}")
    return adapter.open_model(import_interpreter_module(backend), content, threads, xnnpack)
