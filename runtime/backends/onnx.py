"""ONNX Runtime adapter. One InferenceSession is shared by all threads (ONNX Runtime allows concurrent ``run``)."""

from __future__ import annotations

import numpy as np

from .. import quiet
from ..errors import BundleError
from ..manifest import TensorSpec
from . import onnx_wire

_ORT_TYPES = {"tensor(int32)": "int32", "tensor(float)": "float32", "tensor(int64)": "int64",
              "tensor(float16)": "float16"}


def _spec(node) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in node.shape)
    return TensorSpec(node.name, _ORT_TYPES.get(node.type, node.type), shape)


class OnnxModel:
    def __init__(self, ort, content: bytes, threads: int):
        # backends.open_model has refused external data, functions and foreign domains; the summary names the
        # versions in an error below.
        summary = onnx_wire.summarize(content)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Errors reach the caller as BundleError; ONNX Runtime's own coloured error lines only under `s2s -v`.
        options.log_severity_level = 4 if quiet.active() else 3
        try:
            self._session = ort.InferenceSession(content, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            first = _first_line(e)
            opset = summary.opsets.get("ai.onnx")
            hint = ""
            if "version" in first.lower() or "opset" in first.lower():
                hint = (f"; the model has IR version {summary.ir_version} and opset {opset}, which needs a newer "
                        f"onnxruntime than the installed {ort.__version__}: pip install -U onnxruntime")
            raise BundleError(f"ONNX Runtime {ort.__version__} refused the model: {first}{hint}") from None
        self.inputs = tuple(_spec(i) for i in self._session.get_inputs())
        self.outputs = tuple(_spec(o) for o in self._session.get_outputs())
        self._output_names = [o.name for o in self.outputs]
        #: Where the model came from, for error messages (set by the loader).
        self.label = "ONNX model"

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self._session.run(self._output_names, feeds)
        except Exception as e:  # a malformed model can load and still fail here (found by the fuzz test)
            raise BundleError(f"the model failed while running: {_first_line(e)}", where=self.label) from None
        return dict(zip(self._output_names, values))


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def open_model(module, content: bytes, threads: int, xnnpack: bool | str = True) -> OnnxModel:  # noqa: ARG001
    return OnnxModel(module, content, threads)
