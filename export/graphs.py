"""The inference graphs as TensorFlow functions with constant weights, ready for the converters.

The weights come from the trained Keras layers, found by name. The graphs compute exactly what the Keras
encoder and step models compute (the parity gate checks it), in the form that converts best:

* the input projection and the bias are folded into one gather table per LSTM (``embedding @ kernel + bias``),
  so a step is one gather and one matmul;
* the encoder loops over the batch's real length (a bounded ``tf.while_loop``: TFLite WHILE, ONNX Loop), and a
  padded step (the pad id) keeps the state, which is Keras' masking; the decoder step has no loop;
* the greedy model is the encoder and the whole greedy decode in one graph, its loop bounded by the maximum
  output length;
* stacked LSTMs: each upper encoder layer loops over the outputs of the one below; a stacked decoder's state is
  its layers' states side by side (train/model.py), split and rejoined in the step;
* input feeding: the step's attention output is one slot more of the state (train/input_feeding.py), part of the
  first decoder layer's input at the next step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seq2seq_edge import manifest as mf
from seq2seq_edge import text
from seq2seq_edge.errors import ExportError
from seq2seq_edge.train import model as model_mod


@dataclass
class UpperLSTM:
    """A stacked LSTM layer above the first (or one direction of it): it reads float vectors, so its input kernel
    is not folded into a table."""

    kernel: np.ndarray     # [input width, 4 * units]
    recurrent: np.ndarray  # [units, 4 * units]
    bias: np.ndarray       # [4 * units]


@dataclass
class Seq2SeqWeights:
    """Float32 arrays of the trained model, in the folded form the graphs use."""

    encoder_table: np.ndarray      # [input vocab, 4 * units]
    encoder_recurrent: np.ndarray  # [units, 4 * units]
    decoder_table: np.ndarray      # [target vocab, 4 * D], D: the decoder's units (of each layer)
    decoder_recurrent: np.ndarray  # [D, 4 * D]
    dense_kernel: np.ndarray       # [D, target vocab]
    dense_bias: np.ndarray         # [target vocab]
    #: Attention models: the backward direction of a bidirectional encoder (None when it is one-directional).
    encoder_backward_table: np.ndarray | None = None
    encoder_backward_recurrent: np.ndarray | None = None
    #: Attention models: the query projection [D, E] and the combination [E + D, D] + [D].
    attention_query: np.ndarray | None = None
    attention_combine_kernel: np.ndarray | None = None
    attention_combine_bias: np.ndarray | None = None
    #: Attention models that attend to the input embeddings too: the encoder's embedding table [input vocab, D]
    #: (one-hot models: the one-hot table), whose rows follow the LSTM's in the encoder's outputs.
    encoder_embedding: np.ndarray | None = None
    #: Stacked encoder layers above the first: (forward, backward or None) each, bottom first.
    encoder_upper: tuple[tuple[UpperLSTM, UpperLSTM | None], ...] = ()
    #: Stacked decoder layers above the first, bottom first.
    decoder_upper: tuple[UpperLSTM, ...] = ()
    #: Input feeding: the fed attention output's share of the first decoder layer's input kernel [D, 4 * D]
    #: (None without input feeding).
    decoder_feed_kernel: np.ndarray | None = None

    @property
    def decoder_layers(self) -> int:
        """The decoder's stacked LSTM layers (1 unless the model stacks them)."""
        return 1 + len(self.decoder_upper)

    @property
    def input_feeding(self) -> bool:
        return self.decoder_feed_kernel is not None

    @property
    def latent_dim(self) -> int:
        """The decoder's state width (the manifest's latent_dim): its layers' units side by side, then with input
        feeding one slot more, the fed attention output (train/input_feeding.py)."""
        return self.decoder_recurrent.shape[0] * (self.decoder_layers + self.input_feeding)

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


@dataclass(frozen=True)
class EnsembleWeights:
    """Models trained on one data set, exported as one (``s2s export --ensemble``): their states and attention
    memories side by side in member order, and at each step one distribution, the normalized geometric mean of
    theirs (the softmax of the mean of their logits: a member's log-probabilities are its logits less a constant
    per row, which the softmax takes away)."""

    members: tuple[Seq2SeqWeights, ...]

    @property
    def latent_dim(self) -> int:
        return sum(m.latent_dim for m in self.members)

    @property
    def target_vocab_size(self) -> int:
        return self.members[0].target_vocab_size

    @property
    def attention(self) -> bool:
        return self.members[0].attention

    @property
    def encoder_output_dim(self) -> int | None:
        return sum(m.encoder_output_dim for m in self.members) if self.attention else None


def _check_lstm(layer) -> None:
    cfg = layer.get_config()
    wanted = {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True}
    wrong = {k: cfg.get(k) for k, v in wanted.items() if cfg.get(k) != v}
    if wrong:
        raise ExportError(f"layer {layer.name!r} has {wrong}; the exporter supports {wanted}")


def _folded(embedding_layer, lstm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embedding @ kernel + bias, recurrent kernel, the input kernel's rows past the embedding's width) of one
    LSTM (direction), computed in float64. The last are the fed vector's rows with input feeding, else empty."""
    _check_lstm(lstm)
    (embedding,) = [np.asarray(w, np.float64) for w in embedding_layer.get_weights()]
    kernel, recurrent, bias = [np.asarray(w, np.float64) for w in lstm.get_weights()]
    width = embedding.shape[1]
    return ((embedding @ kernel[:width] + bias).astype(np.float32), recurrent.astype(np.float32),
            kernel[width:].astype(np.float32))


def _upper(lstm) -> UpperLSTM:
    _check_lstm(lstm)
    kernel, recurrent, bias = [np.asarray(w, np.float32) for w in lstm.get_weights()]
    return UpperLSTM(kernel, recurrent, bias)


def _directions(layer) -> tuple:
    """(forward, backward or None) LSTMs of an encoder layer."""
    import keras

    if isinstance(layer, keras.layers.Bidirectional):
        return layer.forward_layer, layer.backward_layer
    return layer, None


def _decoder_layers(model) -> tuple[list, object, object]:
    """(the decoder's LSTM layers or cells bottom first, the attention query layer, the attention combination
    layer; both None without attention)."""
    feeding = model_mod.input_feeding_decoder(model)
    if feeding is not None:
        return list(feeding.cells), feeding.query, feeding.combine
    lstms = [model.get_layer(model_mod.layer_name(model_mod.DECODER_LSTM, j))
             for j in range(model_mod.layer_count(model, model_mod.DECODER_LSTM))]
    if not model_mod.has_attention(model):
        return lstms, None, None
    return lstms, model.get_layer(model_mod.ATTENTION_QUERY), model.get_layer(model_mod.ATTENTION_COMBINE)


def extract_weights(model) -> Seq2SeqWeights:
    """Read the trained weights from the layers named in ``train.model``."""
    enc_emb = model.get_layer(model_mod.ENCODER_EMBEDDING)
    enc, backward_lstm = _directions(model.get_layer(model_mod.ENCODER_LSTM))
    backward = _folded(enc_emb, backward_lstm)[:2] if backward_lstm is not None else (None, None)
    enc_table, enc_recurrent, _ = _folded(enc_emb, enc)
    encoder_upper = tuple(
        tuple(None if d is None else _upper(d)
              for d in _directions(model.get_layer(model_mod.layer_name(model_mod.ENCODER_LSTM, i))))
        for i in range(1, model_mod.layer_count(model, model_mod.ENCODER_LSTM)))
    lstms, query_layer, combine_layer = _decoder_layers(model)
    dec_table, dec_recurrent, feed_kernel = _folded(model.get_layer(model_mod.DECODER_EMBEDDING), lstms[0])
    dense = model.get_layer(model_mod.DECODER_OUTPUT)
    if dense.get_config().get("activation") != "softmax":
        raise ExportError(f"layer {dense.name!r} must end in a softmax")
    kernel, bias = dense.get_weights()
    attention = {}
    if query_layer is not None:
        (query,) = query_layer.get_weights()
        combine_kernel, combine_bias = combine_layer.get_weights()
        attention = dict(attention_query=np.asarray(query, np.float32),
                         attention_combine_kernel=np.asarray(combine_kernel, np.float32),
                         attention_combine_bias=np.asarray(combine_bias, np.float32))
        if model_mod.attends_embeddings(model):
            attention["encoder_embedding"] = np.asarray(enc_emb.get_weights()[0], np.float32)
    return Seq2SeqWeights(enc_table, enc_recurrent, dec_table, dec_recurrent, np.asarray(kernel, np.float32),
                          np.asarray(bias, np.float32), backward[0], backward[1], **attention,
                          encoder_upper=encoder_upper, decoder_upper=tuple(_upper(lstm) for lstm in lstms[1:]),
                          decoder_feed_kernel=feed_kernel if feed_kernel.size else None)


def build_modules(weights: Seq2SeqWeights, max_input_tokens: int, max_output_tokens: int):
    """(encoder, decoder step, greedy) modules: ``tf.Module`` objects with a ``serve`` tf.function each.

    Weights are created as constants inside the functions, so they are embedded in the converted graphs
    (captured tensors would become extra inputs in tf2onnx and variables in TFLite).

    The encoder loops over the batch's real length: ``n`` = the longest input of the batch (its count of
    non-pad ids), at most ``max_input_tokens`` (the loop's ``maximum_iterations``), so a batch of short inputs
    costs a few steps whatever the trained maximum. Positions past ``n`` are padding for every row; their
    encoder outputs are zero and the mask gives them no weight.

    The greedy model runs the encoder and the whole greedy decode in one call: a loop of at most
    ``max_output_tokens + 1`` steps (the bound written into the graph, as the loop's maximum_iterations), which
    stops when every row has chosen the end id.
    """
    import tensorflow as tf

    graphs = _EnsembleGraphs if isinstance(weights, EnsembleWeights) else _Graphs
    g = graphs(weights, max_input_tokens, max_output_tokens)
    ids_spec = tf.TensorSpec([None, max_input_tokens], tf.int32, name=mf.INPUT_IDS)
    state_specs = [tf.TensorSpec([None], tf.int32, name=mf.PREV_TOKEN),
                   tf.TensorSpec([None, weights.latent_dim], tf.float32, name=mf.STATE_H),
                   tf.TensorSpec([None, weights.latent_dim], tf.float32, name=mf.STATE_C)]
    if weights.attention:
        state_specs += [tf.TensorSpec([None, max_input_tokens, weights.encoder_output_dim], tf.float32,
                                      name=mf.ENCODER_OUTPUTS),
                        tf.TensorSpec([None, max_input_tokens], tf.float32, name=mf.ENCODER_MASK)]

    def decoder_step(prev_token, state_h, state_c):
        probs, h, c = g.step(prev_token, state_h, state_c)
        return {mf.PROBS: probs, mf.NEXT_STATE_H: h, mf.NEXT_STATE_C: c}

    def attention_decoder_step(prev_token, state_h, state_c, encoder_outputs, encoder_mask):
        probs, h, c = g.step(prev_token, state_h, state_c, encoder_outputs, encoder_mask)
        return {mf.PROBS: probs, mf.NEXT_STATE_H: h, mf.NEXT_STATE_C: c}

    step_fn = attention_decoder_step if weights.attention else decoder_step
    return {mf.ENCODER: _served(mf.ENCODER, g.encode, [ids_spec]),
            mf.DECODER_STEP: _served(mf.DECODER_STEP, step_fn, state_specs),
            mf.GREEDY: _served(mf.GREEDY, g.greedy, [ids_spec])}


def _served(name: str, fn, signature):
    """A ``tf.Module`` named ``name`` whose ``serve`` is ``fn`` traced with ``signature`` (what the converters take)."""
    import tensorflow as tf

    module = tf.Module(name=name)
    module.serve = tf.function(fn, input_signature=signature)
    return module


class _Graphs:
    """The TensorFlow functions the modules serve: the LSTM cell, the encoder, one decoder step and the greedy
    loop, over ``weights`` as constants."""

    def __init__(self, weights: Seq2SeqWeights, max_input_tokens: int, max_output_tokens: int):
        self.w = weights
        self.max_input_tokens = max_input_tokens
        self.steps_out = max_output_tokens + 1  # the step loop's bound: max_output_tokens tokens, then the end

    @staticmethod
    def cell(gates, h, c):
        import tensorflow as tf

        i, f, g, o = tf.split(gates, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    def run_lstm(self, input_gates, recurrent_kernel, batch, keep, length, reverse):
        """One LSTM direction over positions 0..length-1 (reversed: length-1..0) in a bounded loop; a padded
        step keeps the state (Keras masking). ``input_gates(pos)`` is the input's share of the gates at position
        ``pos`` [batch, 4 * units]. Returns the final (h, c) and the outputs [batch, T, units] (the state after each
        position; zero past ``length``)."""
        import tensorflow as tf

        units = recurrent_kernel.shape[0]
        zero = tf.zeros(tf.stack([batch, units]))
        positions = tf.constant(np.eye(self.max_input_tokens, dtype=np.float32))  # row t: one-hot position t

        def body(t, h, c, outputs):
            pos = length - 1 - t if reverse else t
            gates = input_gates(pos) + tf.matmul(h, tf.constant(recurrent_kernel))
            h2, c2 = self.cell(gates, h, c)
            k = tf.gather(keep, pos, axis=1)  # [batch, 1]
            h, c = tf.where(k, h2, h), tf.where(k, c2, c)
            outputs = outputs + tf.gather(positions, pos)[None, :, None] * h[:, None, :]
            return t + 1, h, c, outputs

        outputs = tf.zeros(tf.stack([batch, self.max_input_tokens, units]))
        _, h, c, outputs = tf.while_loop(lambda t, *_: t < length, body, (tf.constant(0), zero, zero, outputs),
                                         maximum_iterations=self.max_input_tokens)
        return h, c, outputs

    def encode(self, input_ids):
        """The encoder's outputs as a dict of the manifest's names."""
        import tensorflow as tf

        w = self.w
        keep = tf.not_equal(input_ids, text.PAD_ID)[:, :, None]  # padding keeps the state (Keras masking)
        length = tf.reduce_max(tf.reduce_sum(tf.cast(keep[:, :, 0], tf.int32), axis=1))
        batch = tf.shape(input_ids)[0]

        def from_table(table):
            gates_all = tf.gather(tf.constant(table), input_ids)  # [batch, T, 4 * units], one gather for all steps
            return lambda pos: tf.gather(gates_all, pos, axis=1)

        def from_outputs(inputs, lstm: UpperLSTM):
            # Per position inside the loop, so the encoder costs the batch's real length (one matmul over all
            # max_input_tokens positions before the loop would cost them all, for every batch).
            return lambda pos: (tf.matmul(tf.gather(inputs, pos, axis=1), tf.constant(lstm.kernel))
                                + tf.constant(lstm.bias))

        first = ((w.encoder_table, w.encoder_recurrent),
                 None if w.encoder_backward_table is None else (w.encoder_backward_table, w.encoder_backward_recurrent))
        finals, outputs = [], None
        for i, directions in enumerate((first, *w.encoder_upper)):
            runs = []
            for reverse, d in enumerate(directions):
                if d is None:
                    continue
                input_gates, recurrent = ((from_table(d[0]), d[1]) if i == 0
                                          else (from_outputs(outputs, d), d.recurrent))
                runs.append(self.run_lstm(input_gates, recurrent, batch, keep, length, bool(reverse)))
            h, c, outputs = (tf.concat(parts, -1) if len(parts) > 1 else parts[0] for parts in zip(*runs))
            finals.append((h, c))
        starts = [finals[model_mod.stacked_source(j, len(finals), w.decoder_layers)] for j in range(w.decoder_layers)]
        if w.input_feeding:  # the fed slot starts at zero (a product, not zeros_like: tf2onnx makes that a
            zero = starts[0][0] * 0.0  # ConstantOfShape, which the runtime refuses; h is finite, an LSTM's output)
            starts.append((zero, zero))
        h, c = (tf.concat([s[k] for s in starts], -1) if len(starts) > 1 else starts[0][k] for k in (0, 1))
        if not w.attention:
            return {mf.STATE_H: h, mf.STATE_C: c}
        if w.encoder_embedding is not None:  # [LSTM outputs; embedding], the embedding zero at padding
            embedded = tf.gather(tf.constant(w.encoder_embedding), input_ids) * tf.cast(keep, tf.float32)
            outputs = tf.concat([outputs, embedded], -1)
        return {mf.STATE_H: h, mf.STATE_C: c, mf.ENCODER_OUTPUTS: outputs,
                mf.ENCODER_MASK: tf.cast(keep[:, :, 0], tf.float32)}

    def step(self, prev_token, state_h, state_c, encoder_outputs=None, encoder_mask=None):
        """One decoder step: (probs, h, c)."""
        import tensorflow as tf

        logits, h, c = self.step_logits(prev_token, state_h, state_c, encoder_outputs, encoder_mask)
        return tf.nn.softmax(logits), h, c

    def step_logits(self, prev_token, state_h, state_c, encoder_outputs=None, encoder_mask=None):
        """One decoder step before the output's softmax: (logits, h, c)."""
        import tensorflow as tf

        w = self.w
        slots = w.decoder_layers + w.input_feeding
        hs, cs = ((tf.split(state, slots, axis=1) if slots > 1 else [state]) for state in (state_h, state_c))
        gates = (tf.gather(tf.constant(w.decoder_table), prev_token)
                 + tf.matmul(hs[0], tf.constant(w.decoder_recurrent)))
        if w.input_feeding:  # the last step's attention output, the first layer's input beside the token
            gates += tf.matmul(hs[-1], tf.constant(w.decoder_feed_kernel))
        h, c = self.cell(gates, hs[0], cs[0])
        next_h, next_c = [h], [c]
        for lstm, h_j, c_j in zip(w.decoder_upper, hs[1:], cs[1:]):
            gates = (tf.matmul(h, tf.constant(lstm.kernel)) + tf.constant(lstm.bias)
                     + tf.matmul(h_j, tf.constant(lstm.recurrent)))
            h, c = self.cell(gates, h_j, c_j)
            next_h.append(h)
            next_c.append(c)
        out = h
        if w.attention:
            query = tf.matmul(h, tf.constant(w.attention_query))                           # [batch, E]
            scores = tf.matmul(encoder_outputs, query[:, :, None])[:, :, 0]                 # [batch, T]
            # Keras' attention: padding at -1e9 before the softmax, so its weight is exactly 0.
            scores = scores - 1e9 * (1.0 - encoder_mask)
            weights_t = tf.nn.softmax(scores)
            context = tf.matmul(weights_t[:, None, :], encoder_outputs)[:, 0, :]           # [batch, E]
            out = tf.tanh(tf.matmul(tf.concat([context, h], -1), tf.constant(w.attention_combine_kernel))
                          + tf.constant(w.attention_combine_bias))
        logits = tf.matmul(out, tf.constant(w.dense_kernel)) + tf.constant(w.dense_bias)
        if w.input_feeding:  # the fed slot: this step's attention output, and state_c's zeros carried through
            next_h.append(out)
            next_c.append(cs[-1])
        if slots == 1:
            return logits, h, c
        return logits, tf.concat(next_h, -1), tf.concat(next_c, -1)

    def greedy(self, input_ids):
        """The encoder, then greedy steps until every row has chosen the end id (at most ``steps_out``)."""
        import tensorflow as tf

        encoded = self.encode(input_ids)
        attended = (encoded.get(mf.ENCODER_OUTPUTS), encoded.get(mf.ENCODER_MASK))
        batch = tf.shape(input_ids)[0]
        steps_out = self.steps_out
        slots = tf.constant(np.eye(steps_out, dtype=np.float32))  # row t: one-hot output slot t
        int_slots = tf.constant(np.eye(steps_out, dtype=np.int32))

        def body(t, prev, h, c, ended, ids, probs_out):
            probs, h, c = self.step(prev, h, c, *attended)
            chosen = tf.cast(tf.argmax(probs, axis=1), tf.int32)
            chosen_prob = tf.reduce_max(probs, axis=1)
            live = tf.logical_not(ended)
            ids = ids + tf.gather(int_slots, t)[None, :] * tf.where(live, chosen, 0)[:, None]
            probs_out = probs_out + tf.gather(slots, t)[None, :] * tf.where(live, chosen_prob, 0.0)[:, None]
            ended = tf.logical_or(ended, tf.equal(chosen, text.END_ID))
            return t + 1, chosen, h, c, ended, ids, probs_out

        start = (tf.constant(0), tf.fill(tf.stack([batch]), text.START_ID), encoded[mf.STATE_H],
                 encoded[mf.STATE_C], tf.zeros(tf.stack([batch]), tf.bool),
                 tf.zeros(tf.stack([batch, steps_out]), tf.int32), tf.zeros(tf.stack([batch, steps_out])))
        _, _, _, _, _, ids, probs_out = tf.while_loop(
            lambda t, _p, _h, _c, ended, *_: tf.logical_not(tf.reduce_all(ended)), body, start,
            maximum_iterations=steps_out)
        return {mf.OUTPUT_IDS: ids, mf.OUTPUT_PROBS: probs_out}


class _EnsembleGraphs(_Graphs):
    """The graphs of an ensemble (``EnsembleWeights``): each member's encoder and step on its own share of the
    state and memory, the shares side by side; the greedy loop is the single model's."""

    def __init__(self, weights: EnsembleWeights, max_input_tokens: int, max_output_tokens: int):
        super().__init__(weights, max_input_tokens, max_output_tokens)
        self.members = [_Graphs(m, max_input_tokens, max_output_tokens) for m in weights.members]

    def encode(self, input_ids):
        import tensorflow as tf

        encoded = [m.encode(input_ids) for m in self.members]
        joined = {k: tf.concat([e[k] for e in encoded], -1) for k in (mf.STATE_H, mf.STATE_C)}
        if self.w.attention:  # every member's mask is the input's padding
            joined[mf.ENCODER_OUTPUTS] = tf.concat([e[mf.ENCODER_OUTPUTS] for e in encoded], -1)
            joined[mf.ENCODER_MASK] = encoded[0][mf.ENCODER_MASK]
        return joined

    def step_logits(self, prev_token, state_h, state_c, encoder_outputs=None, encoder_mask=None):
        import tensorflow as tf

        members = self.w.members
        hs, cs = (tf.split(state, [m.latent_dim for m in members], axis=1) for state in (state_h, state_c))
        memories = (tf.split(encoder_outputs, [m.encoder_output_dim for m in members], axis=2) if self.w.attention
                    else [None] * len(members))
        stepped = [g.step_logits(prev_token, h, c, memory, encoder_mask)
                   for g, h, c, memory in zip(self.members, hs, cs, memories)]
        logits = stepped[0][0]
        for s in stepped[1:]:  # ADD, one pair at a time: tf.add_n is ADD_N, which the contract does not allow
            logits = logits + s[0]
        logits = logits * (1.0 / len(members))
        return logits, tf.concat([s[1] for s in stepped], -1), tf.concat([s[2] for s in stepped], -1)
