"""seq2seq-edge runtime: greedy decoding of exported LSTM encoder-decoder bundles with numpy and one interpreter.

    import seq2seq_edge
    decoder = seq2seq_edge.load("bundles/digits")      # backend="auto", variant="fp32", threads=1
    decoder.decode("7")                                 # 'seven'

Importing this package loads numpy only; TensorFlow, Keras and ONNX are never imported here.
"""

from .decoder import DecodeResult, Seq2SeqDecoder
from .options import DecodeOptions, OptionError
from .loader import load
from .ensemble import EnsembleDecoder, load_ensemble
from .errors import BackendUnavailableError, BundleError, DataFileError, InputTextError, Seq2SeqEdgeError

# The runtime's own errors; training's and export's (TrainOptionError, RunFolderError, ExportError) are in
# seq2seq_edge.errors beside them.
__all__ = ["load", "load_ensemble", "Seq2SeqDecoder", "EnsembleDecoder", "DecodeOptions", "DecodeResult",
           "Seq2SeqEdgeError", "InputTextError", "OptionError", "BundleError", "BackendUnavailableError", "DataFileError"]
