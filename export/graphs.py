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

    encoder_table: np.ndarray      # [input vocab, 4 * units]
    encoder_recurrent: np.ndarray  # [units, 4 * units]
    decoder_table: np.ndarray      # [target vocab, 4 * latent]
    decoder_recurrent: np.ndarray  # [latent, 4 * latent]
    dense_kernel: np.ndarray       # [latent, target vocab]
    dense_bias: np.ndarray         # [target vocab]
    #: Attention models: the backward direction of a bidirectional encoder (None when it is one-directional).
    encoder_backward_table: np.ndarray | None = None
    encoder_backward_recurrent: np.ndarray | None = None
    #: Attention models: the query projection [latent, E] and the combination [E + latent, latent] + [latent].
    attention_query: np.ndarray | None = None
    attention_combine_kernel: np.ndarray | None = None
    attention_combine_bias: np.ndarray | None = None

    @property
    def latent_dim(self) -> int:
        """The decoder's state width (the manifest's latent_dim)."""
        return self.decoder_recurrent.shape[0]

    @property
    def target_vocab_size(self) -> int:
        return self.dense_bias.shape[0]

    @property
    def attention(self) -> bool:
        return self.attention_query is not None

    @property
    def encoder_output_dim(self) -> int | None:
        """Width of the encoder's per-position outputs (attention models), else None."""
        return self.attention_query.shape[1] if self.attention else None


def _check_lstm(layer) -> None:
    cfg = layer.get_config()
    wanted = {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True}
    wrong = {k: cfg.get(k) for k, v in wanted.items() if cfg.get(k) != v}
    if wrong:
        raise ExportError(f"layer {layer.name!r} has {wrong}; the exporter supports {wanted}")


def _folded(embedding_layer, lstm) -> tuple[np.ndarray, np.ndarray]:
    """(embedding @ kernel + bias, recurrent kernel) of one LSTM (direction), computed in float64."""
    _check_lstm(lstm)
    (embedding,) = [np.asarray(w, np.float64) for w in embedding_layer.get_weights()]
    kernel, recurrent, bias = [np.asarray(w, np.float64) for w in lstm.get_weights()]
    return (embedding @ kernel + bias).astype(np.float32), recurrent.astype(np.float32)


def extract_weights(model) -> Seq2SeqWeights:
    """Read the trained weights from the layers named in ``train.model``."""
    import keras

    enc_emb = model.get_layer(model_mod.ENCODER_EMBEDDING)
    enc = model.get_layer(model_mod.ENCODER_LSTM)
    backward = (None, None)
    if isinstance(enc, keras.layers.Bidirectional):
        backward = _folded(enc_emb, enc.backward_layer)
        enc = enc.forward_layer
    enc_table, enc_recurrent = _folded(enc_emb, enc)
    dec_table, dec_recurrent = _folded(model.get_layer(model_mod.DECODER_EMBEDDING),
                                       model.get_layer(model_mod.DECODER_LSTM))
    dense = model.get_layer(model_mod.DECODER_OUTPUT)
    if dense.get_config().get("activation") != "softmax":
        raise ExportError(f"layer {dense.name!r} must end in a softmax")
    kernel, bias = dense.get_weights()
    attention = {}
    if model_mod.has_attention(model):
        (query,) = model.get_layer(model_mod.ATTENTION_QUERY).get_weights()
        combine_kernel, combine_bias = model.get_layer(model_mod.ATTENTION_COMBINE).get_weights()
        attention = dict(attention_query=np.asarray(query, np.float32),
                         attention_combine_kernel=np.asarray(combine_kernel, np.float32),
                         attention_combine_bias=np.asarray(combine_bias, np.float32))
    return Seq2SeqWeights(enc_table, enc_recurrent, dec_table, dec_recurrent, np.asarray(kernel, np.float32),
                          np.asarray(bias, np.float32), backward[0], backward[1], **attention)


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

    def run_lstm(table, recurrent_kernel, input_ids, keep, order):
        """One LSTM direction unrolled over ``order`` (time indices); a padded step keeps the state (Keras
        masking). Returns the final (h, c) and the output at each position, in position order."""
        recurrent = tf.constant(recurrent_kernel)
        gates = tf.gather(tf.constant(table), input_ids)  # [batch, time, 4 * units]
        units = recurrent_kernel.shape[0]
        h = c = None
        outputs = {}
        for t in order:
            if h is None:  # zero initial state: the recurrent term vanishes
                zero = tf.zeros_like(gates[:, 0, :units])
                h2, c2 = cell(gates[:, t], zero, zero)
                h, c = tf.where(keep[:, t], h2, zero), tf.where(keep[:, t], c2, zero)
            else:
                h2, c2 = cell(gates[:, t] + tf.matmul(h, recurrent), h, c)
                h, c = tf.where(keep[:, t], h2, h), tf.where(keep[:, t], c2, c)
            outputs[t] = h
        return h, c, [outputs[t] for t in range(max_input_tokens)]

    class Encoder(tf.Module):
        def __init__(self):
            super().__init__(name=mf.ENCODER)

        @tf.function(input_signature=[tf.TensorSpec([None, max_input_tokens], tf.int32, name=mf.INPUT_IDS)])
        def serve(self, input_ids):
            keep = tf.not_equal(input_ids, text.PAD_ID)[:, :, None]  # padding keeps the state (Keras masking)
            forward = range(max_input_tokens)
            h, c, outputs = run_lstm(weights.encoder_table, weights.encoder_recurrent, input_ids, keep, forward)
            if not weights.attention:
                return {mf.STATE_H: h, mf.STATE_C: c}
            if weights.encoder_backward_table is not None:
                h_b, c_b, outputs_b = run_lstm(weights.encoder_backward_table, weights.encoder_backward_recurrent,
                                               input_ids, keep, reversed(forward))
                h, c = tf.concat([h, h_b], -1), tf.concat([c, c_b], -1)
                outputs = [tf.concat([f, b], -1) for f, b in zip(outputs, outputs_b)]
            return {mf.STATE_H: h, mf.STATE_C: c, mf.ENCODER_OUTPUTS: tf.stack(outputs, axis=1),
                    mf.ENCODER_MASK: tf.cast(keep[:, :, 0], tf.float32)}

    def step(prev_token, state_h, state_c):
        gates = (tf.gather(tf.constant(weights.decoder_table), prev_token)
                 + tf.matmul(state_h, tf.constant(weights.decoder_recurrent)))
        return cell(gates, state_h, state_c)

    def output(h):
        return tf.nn.softmax(tf.matmul(h, tf.constant(weights.dense_kernel)) + tf.constant(weights.dense_bias))

    state_specs = [tf.TensorSpec([None], tf.int32, name=mf.PREV_TOKEN),
                   tf.TensorSpec([None, latent], tf.float32, name=mf.STATE_H),
                   tf.TensorSpec([None, latent], tf.float32, name=mf.STATE_C)]

    class DecoderStep(tf.Module):
        def __init__(self):
            super().__init__(name=mf.DECODER_STEP)

        @tf.function(input_signature=state_specs)
        def serve(self, prev_token, state_h, state_c):
            h, c = step(prev_token, state_h, state_c)
            return {mf.PROBS: output(h), mf.NEXT_STATE_H: h, mf.NEXT_STATE_C: c}

    class AttentionDecoderStep(tf.Module):
        def __init__(self):
            super().__init__(name=mf.DECODER_STEP)

        width = weights.encoder_output_dim

        @tf.function(input_signature=state_specs + [
            tf.TensorSpec([None, max_input_tokens, width], tf.float32, name=mf.ENCODER_OUTPUTS),
            tf.TensorSpec([None, max_input_tokens], tf.float32, name=mf.ENCODER_MASK)])
        def serve(self, prev_token, state_h, state_c, encoder_outputs, encoder_mask):
            h, c = step(prev_token, state_h, state_c)
            query = tf.matmul(h, tf.constant(weights.attention_query))                     # [batch, E]
            scores = tf.matmul(encoder_outputs, query[:, :, None])[:, :, 0]                 # [batch, T]
            # Keras' attention: padding at -1e9 before the softmax, so its weight is exactly 0.
            scores = scores - 1e9 * (1.0 - encoder_mask)
            weights_t = tf.nn.softmax(scores)
            context = tf.matmul(weights_t[:, None, :], encoder_outputs)[:, 0, :]           # [batch, E]
            combined = tf.tanh(tf.matmul(tf.concat([context, h], -1), tf.constant(weights.attention_combine_kernel))
                               + tf.constant(weights.attention_combine_bias))
            return {mf.PROBS: output(combined), mf.NEXT_STATE_H: h, mf.NEXT_STATE_C: c}

    return Encoder(), (AttentionDecoderStep() if weights.attention else DecoderStep())
