"""TFLite adapter, shared by tflite-runtime and ai-edge-litert (LiteRT): both expose the same Interpreter API.

XNNPACK (the default CPU delegate) is used unless the caller turns it off for a model: the float encoders are
unrolled over time and reuse one recurrent weight at every step, and XNNPACK treats a weight shared by several
FULLY_CONNECTED ops as dynamic, re-packing it at each invoke: at batch 1 that made the latent-256 encoder 2.7x
slower (238 vs 89 us), while at batch 8 and 64 XNNPACK's kernels still win (475 vs 725 us, 2.2 vs 4.7 ms).

Inputs and outputs are bound through the model's signature (``serving_default``) by name. A TFLite interpreter
must not be used by two threads at once, so each thread gets its own interpreter, created on first use.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

import numpy as np

from ..errors import BundleError
from ..manifest import SIGNATURE_KEY, TensorSpec

log = logging.getLogger(__name__)


class _Bound:
    """One interpreter with its signature's tensor indices, allocated once for one batch size.

    It is never resized after it has run: tflite-runtime 2.14 computes the DEQUANTIZE of constant fp16/int8 weights
    once, and a resize after an invoke left later batches decoding garbage (fp16 agreement fell from 100% to 45%).
    A new batch size gets its own interpreter instead.
    """

    def __init__(self, module, content: bytes, threads: int, xnnpack: bool, batch: int = 1):
        kwargs = {} if xnnpack else {
            "experimental_op_resolver_type": module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
        self.interpreter = module.Interpreter(model_content=content, num_threads=threads, **kwargs)
        signatures = self.interpreter._get_full_signature_list()
        if SIGNATURE_KEY not in signatures:
            raise BundleError(f"TFLite model has no {SIGNATURE_KEY!r} signature (has {sorted(signatures)})")
        self.input_index = dict(signatures[SIGNATURE_KEY]["inputs"])
        self.output_index = dict(signatures[SIGNATURE_KEY]["outputs"])
        by_index = {d["index"]: d for d in self.interpreter.get_input_details() + self.interpreter.get_output_details()}
        if any(i not in by_index for i in list(self.input_index.values()) + list(self.output_index.values())):
            raise BundleError(f"TFLite signature {SIGNATURE_KEY!r} does not match the model's main graph")
        self.input_details = {n: by_index[i] for n, i in self.input_index.items()}
        self.output_details = {n: by_index[i] for n, i in self.output_index.items()}
        try:
            if batch != 1:
                for name, d in self.input_details.items():
                    shape = [batch if dim == -1 else dim for dim in d.get("shape_signature", d["shape"])]
                    self.interpreter.resize_tensor_input(d["index"], shape, strict=False)
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise BundleError(f"the TFLite interpreter cannot allocate the model: {' '.join(str(e).split())}") from None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        it = self.interpreter
        try:
            for name, value in feeds.items():
                it.set_tensor(self.input_index[name], value)
            it.invoke()
        except (RuntimeError, ValueError) as e:  # a malformed model can load and still fail here
            raise BundleError(f"the model failed while running: {' '.join(str(e).split())}") from None
        return {name: it.get_tensor(index) for name, index in self.output_index.items()}


def _spec(name: str, d: dict) -> TensorSpec:
    shape = d.get("shape_signature", d["shape"])
    return TensorSpec(name, np.dtype(d["dtype"]).name, tuple(int(x) for x in shape))


class TFLiteModel:
    """A TFLite model whose ``run`` may be called from any number of threads.

    ``xnnpack``: whether the default XNNPACK delegate runs it (False: the builtin kernels). Each thread keeps one
    interpreter per batch size it has run (up to MAX_BATCH_SIZES).
    """

    #: Interpreters kept per thread, one per batch size, least recently used dropped first.
    MAX_BATCH_SIZES = 4

    def __init__(self, module, content: bytes, threads: int, xnnpack: bool = True):
        self._make = lambda batch: _Bound(module, content, threads, xnnpack, batch)
        self._local = threading.local()
        first = self._make(1)
        self._local.by_batch = OrderedDict([(1, first)])
        self.inputs = tuple(_spec(n, d) for n, d in first.input_details.items())
        self.outputs = tuple(_spec(n, d) for n, d in first.output_details.items())
        #: Where the model came from, for error messages (set by the loader).
        self.label = "TFLite model"

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return self._run(feeds)
        except BundleError as e:
            raise BundleError(e.problems, where=self.label) from None

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = next(iter(feeds.values())).shape[0]
        cache = getattr(self._local, "by_batch", None)
        if cache is None:
            cache = self._local.by_batch = OrderedDict()
        bound = cache.get(batch)
        if bound is None:
            bound = cache[batch] = self._make(batch)
            while len(cache) > self.MAX_BATCH_SIZES:
                cache.popitem(last=False)
        else:
            cache.move_to_end(batch)
        return bound.run(feeds)


def open_model(module, content: bytes, threads: int, xnnpack: bool = True) -> TFLiteModel:
    """``xnnpack=False`` runs the model on the builtin kernels, without the default XNNPACK delegate."""
    try:
        return TFLiteModel(module, content, threads, xnnpack)
    except BundleError:
        raise
    except (ValueError, RuntimeError) as e:
        first = " ".join(str(e).split())
        if "Didn't find op for builtin opcode" in first:
            first = first.split(" An older version")[0]
            first += (f" (the installed {_interpreter_name(module)} is too old for this model: "
                      "upgrade it, or use the bundle's other variants)")
        raise BundleError(f"the TFLite interpreter refused the model: {first}") from None


def _interpreter_name(module) -> str:
    from . import BACKENDS, interpreter_version

    backend = "tflite" if module.__name__.startswith("tflite_runtime") else "litert"
    version = interpreter_version(backend)
    return f"{BACKENDS[backend].dist} {version}" if version else BACKENDS[backend].dist
