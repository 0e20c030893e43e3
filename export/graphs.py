"""The two inference graphs as TensorFlow functions with constant weights, ready for the converters.

The weights come from the trained Keras layers, found by name. The graphs compute exactly what the Keras
encoder and step models compute (the parity gate checks it), in the form that converts best:

* the input projection and the bias are folded into one gather table per LSTM (``embedding @ kernel + bias``),
  so a step is one gather and one matmul;
* the encoder is unrolled over ``max_input_tokens`` fixed time steps, and a padded step (the pad id) keeps the
  state, which is Keras' masking: no WHILE/Loop in either graph, and every weight is reachable by quantization.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seq2seq_edge import manifest as mf
from seq2seq_edge import text
from seq2seq_edge.errors import ExportError
from seq2seq_edge.train import model as model_mod


@dataclass
class Seq2SeqWeights:
    """Float32 arrays of the trained model, in the folded form the graphs use."""

    encoder_table: np.ndarray      # [input vocab, 4 * latent]
    encoder_recurrent: np.ndarray  # [latent, 4 * latent]
    decoder_table: np.ndarray      # [target vocab, 4 * latent]
    decoder_recurrent: np.ndarray  # [latent, 4 * latent]
    dense_kernel: np.ndarray       # [latent, target vocab]
    dense_bias: np.ndarray         # [target vocab]

    @property
    def latent_dim(self) -> int:
        return self.encoder_recurrent.shape[0]

    @property
    def target_vocab_size(self) -> int:
        return self.dense_bias.shape[0]


def _check_lstm(layer) -> None:
    cfg = layer.get_config()
    wanted = {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True}
    wrong = {k: cfg.get(k) for k, v in wanted.items() if cfg.get(k) != v}
    if wrong:
        raise ExportError(f"layer {layer.name!r} has {wrong}; the exporter supports {wanted}")


def extract_weights(model) -> Seq2SeqWeights:
    """Read the trained weights from the layers named in ``train.model``."""
    tables = []
    for emb_name, lstm_name in ((model_mod.ENCODER_EMBEDDING, model_mod.ENCODER_LSTM),
                                (model_mod.DECODER_EMBEDDING, model_mod.DECODER_LSTM)):
        lstm = model.get_layer(lstm_name)
        _check_lstm(lstm)
        (embedding,) = [np.asarray(w, np.float64) for w in model.get_layer(emb_name).get_weights()]
        kernel, recurrent, bias = [np.asarray(w, np.float64) for w in lstm.get_weights()]
        tables.append(((embedding @ kernel + bias).astype(np.float32), recurrent.astype(np.float32)))
    dense = model.get_layer(model_mod.DECODER_OUTPUT)
    if dense.get_config().get("activation") != "softmax":
        raise ExportError(f"layer {dense.name!r} must end in a softmax")
    kernel, bias = dense.get_weights()
    return Seq2SeqWeights(tables[0][0], tables[0][1], tables[1][0], tables[1][1],
                          np.asarray(kernel, np.float32), np.asarray(bias, np.float32))


def build_modules(weights: Seq2SeqWeights, max_input_tokens: int):
    """(encoder module, decoder-step module): ``tf.Module`` objects with a ``serve`` tf.function each.

    Weights are created as constants inside the functions, so they are embedded in both converted graphs
    (captured tensors would become extra inputs in tf2onnx and variables in TFLite).
    """
    import tensorflow as tf

    latent = weights.latent_dim

    def cell(gates, h, c):
        i, f, g, o = tf.split(gates, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    class Encoder(tf.Module):
        def __init__(self):
            super().__init__(name=mf.ENCODER)

        @tf.function(input_signature=[tf.TensorSpec([None, max_input_tokens], tf.int32, name=mf.INPUT_IDS)])
        def serve(self, input_ids):
            recurrent = tf.constant(weights.encoder_recurrent)
            gates = tf.gather(tf.constant(weights.encoder_table), input_ids)  # [batch, time, 4 * latent]
            keep = tf.not_equal(input_ids, text.PAD_ID)[:, :, None]  # padding keeps the state (Keras masking)
            h = c = None
            for t in range(max_input_tokens):
                if h is None:  # zero initial state: the recurrent term vanishes
                    zero = tf.zeros_like(gates[:, 0, :latent])
                    h2, c2 = cell(gates[:, 0], zero, zero)
                    h, c = tf.where(keep[:, 0], h2, zero), tf.where(keep[:, 0], c2, zero)
                    continue
                h2, c2 = cell(gates[:, t] + tf.matmul(h, recurrent), h, c)
                h, c = tf.where(keep[:, t], h2, h), tf.where(keep[:, t], c2, c)
            return {mf.STATE_H: h, mf.STATE_C: c}

    class DecoderStep(tf.Module):
        def __init__(self):
            super().__init__(name=mf.DECODER_STEP)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name=mf.PREV_TOKEN),
                                      tf.TensorSpec([None, latent], tf.float32, name=mf.STATE_H),
                                      tf.TensorSpec([None, latent], tf.float32, name=mf.STATE_C)])
        def serve(self, prev_token, state_h, state_c):
            gates = (tf.gather(tf.constant(weights.decoder_table), prev_token)
                     + tf.matmul(state_h, tf.constant(weights.decoder_recurrent)))
            h, c = cell(gates, state_h, state_c)
            probs = tf.nn.softmax(tf.matmul(h, tf.constant(weights.dense_kernel)) + tf.constant(weights.dense_bias))
            return {mf.PROBS: probs, mf.NEXT_STATE_H: h, mf.NEXT_STATE_C: c}

    return Encoder(), DecoderStep()
