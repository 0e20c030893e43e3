"""The seed's LSTM encoder-decoder in Keras, and the two inference models derived from it by layer name.

Training graph (teacher forcing), as in the keras-io tutorial the project grows from:

    input_ids -> encoder_embedding -> encoder_lstm -> (h, c)
    decoder_input_ids -> decoder_embedding -> decoder_lstm(initial_state=(h, c)) -> decoder_output (softmax)

With ``attention=True`` the decoder also looks at the encoder's output at every input position (Luong et al.
2015, "general" score, without input feeding), and the encoder may be bidirectional (its final states are
concatenated, so the decoder has twice the encoder's units):

    encoder_lstm -> encoder_outputs [batch, T, E] (padding masked), (h, c)
    decoder_lstm -> s_t;  scores = (attention_query(s_t)) . encoder_outputs, padding at -1e9;  a = softmax(scores)
    context = a . encoder_outputs;  attention_combine = tanh(W [context; s_t] + b) -> decoder_output (softmax)

With ``attend_embeddings=True`` the attention reads each input position's embedding beside the encoder's output
there (the encoder's outputs are [LSTM outputs; embedding], as the attention values of ConvS2S, Gehring et al.
2017, hold the input embeddings): the decoder can see which symbol it attends to without the LSTM carrying it.

With ``embedding_dim=0`` (the default) both embeddings are frozen one-hot tables, so the LSTMs see exactly the
seed's one-hot vectors; id 0 (padding) maps to a zero vector and is masked in the encoder, so right-padding does
not change the final state. The step model calls the decoder LSTM's cell once: no loop in its graph.

With ``encoder_layers`` or ``decoder_layers`` above 1 the LSTMs are stacked (Sutskever et al. 2014; the
g2p-seq2seq models are 2 x 512): each layer reads the outputs of the one below, with the same ``dropout`` on its
inputs. The encoder's top layer makes the attention's memory. Decoder layer j starts from the final state of
encoder layer ``stacked_source(j)``: the top layers face each other, and extra decoder layers start from the
encoder's first layer. The step model keeps the bundle's contract: its ``state_h`` and ``state_c`` are the decoder
layers' states side by side, bottom layer first (so the manifest's ``latent_dim`` is layers x units), and it
splits and rejoins them inside its graph; no runtime knows the difference.

With ``input_feeding=True`` (attention only) the attention's output of step t-1 is part of the first decoder
layer's input at step t (Luong et al. 2015, section 3.3): the decoder's LSTMs and its attention are one recurrent
layer, ``train/input_feeding.py``, whose state carries the fed vector in one slot more (``latent_dim`` is units x
(layers + 1)).
"""

from __future__ import annotations

import numpy as np

from seq2seq_edge import manifest as mf
from seq2seq_edge import text

ENCODER_EMBEDDING = "encoder_embedding"
ENCODER_LSTM = "encoder_lstm"
DECODER_EMBEDDING = "decoder_embedding"
DECODER_LSTM = "decoder_lstm"
DECODER_OUTPUT = "decoder_output"
DECODER_INPUT_IDS = "decoder_input_ids"
ATTENTION_QUERY = "attention_query"
ATTENTION = "attention"
ATTENTION_COMBINE = "attention_combine"
ATTENTION_MEMORY = "attention_memory"
ENCODER_STATE_H = "encoder_state_h"
ENCODER_STATE_C = "encoder_state_c"
INPUT_FEEDING_DECODER = "input_feeding_decoder"
#: The most stacked LSTM layers on either side.
MAX_LAYERS = 4


def layer_name(base: str, index: int) -> str:
    """The name of stacked layer ``index`` (0-based): the first keeps the single-layer name, so models trained
    before stacking load as one-layer models."""
    return base if index == 0 else f"{base}_{index + 1}"


def stacked_source(decoder_layer: int, encoder_layers: int, decoder_layers: int) -> int:
    """The encoder layer whose final state starts ``decoder_layer`` (all 0-based): the top layers face each other,
    and decoder layers below the encoder's first start from the first."""
    return max(0, encoder_layers - decoder_layers + decoder_layer)


def layer_count(model, base: str) -> int:
    """How many stacked layers named after ``base`` the model has."""
    names = {layer.name for layer in model.layers}
    count = 0
    while layer_name(base, count) in names:
        count += 1
    return count


def _one_hot_table(vocab_size: int) -> np.ndarray:
    table = np.eye(vocab_size, dtype="float32")
    table[text.PAD_ID] = 0.0  # padding -> zero vector
    return table


def _embedding(keras, name, vocab_size, embedding_dim, mask_zero):
    if embedding_dim:
        return keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=mask_zero, name=name)
    return keras.layers.Embedding(vocab_size, vocab_size, mask_zero=mask_zero, trainable=False,
                                  embeddings_initializer="zeros", name=name)


def build_training_model(input_vocab_size: int, target_vocab_size: int, latent_dim: int,
                         embedding_dim: int = 0, *, attention: bool = False, bidirectional: bool = False,
                         dropout: float = 0.0, recurrent_dropout: float = 0.0, attend_embeddings: bool = False,
                         attention_dropout: float = 0.0, encoder_layers: int = 1, decoder_layers: int = 1,
                         input_feeding: bool = False):
    """The teacher-forcing model: inputs ``input_ids`` and ``decoder_input_ids``, output softmax per step.

    ``latent_dim`` is the encoder's units (per direction); the decoder has as many units as the encoder's final
    state is wide. ``dropout`` applies to the LSTMs' inputs and ``recurrent_dropout`` to their recurrent state;
    ``attention_dropout`` to the embeddings the attention reads (``attend_embeddings``) and to the attention's
    output before the softmax layer. All during training only: no weight is added, so nothing changes for export.
    ``encoder_layers`` and ``decoder_layers`` stack LSTMs (1 to MAX_LAYERS each); ``input_feeding`` feeds the
    attention's output to the next step (train/input_feeding.py)."""
    import keras

    if (bidirectional or attend_embeddings or attention_dropout or input_feeding) and not attention:
        raise ValueError("a bidirectional encoder, attended embeddings, attention dropout and input feeding need "
                         "the attention decoder")
    if input_feeding and recurrent_dropout:
        raise ValueError("input feeding has no recurrent dropout")
    if not (1 <= encoder_layers <= MAX_LAYERS and 1 <= decoder_layers <= MAX_LAYERS):
        raise ValueError(f"stacked layers: 1 to {MAX_LAYERS} on each side")
    input_ids = keras.Input(shape=(None,), dtype="int32", name=mf.INPUT_IDS)
    decoder_ids = keras.Input(shape=(None,), dtype="int32", name=DECODER_INPUT_IDS)
    # mask_zero masks id 0, which is text.PAD_ID: right-padding leaves the encoder's final state as it was.
    enc_emb = _embedding(keras, ENCODER_EMBEDDING, input_vocab_size, embedding_dim, mask_zero=True)
    dec_emb = _embedding(keras, DECODER_EMBEDDING, target_vocab_size, embedding_dim, mask_zero=False)
    embedded = enc_emb(input_ids)
    seq, finals = embedded, []
    for i in range(encoder_layers):
        # Lower layers hand their whole sequence up; the top one returns it only for the attention.
        lstm = keras.layers.LSTM(latent_dim, return_sequences=attention or i < encoder_layers - 1,
                                 return_state=True, dropout=dropout, recurrent_dropout=recurrent_dropout,
                                 name=layer_name(ENCODER_LSTM, i))
        if bidirectional:
            lstm = keras.layers.Bidirectional(lstm, name=layer_name(ENCODER_LSTM, i))
        seq, *final = lstm(seq)
        finals.append(final)
    states = _decoder_initial_states(keras, finals, decoder_layers, bidirectional, lambda name: None)
    decoder_units = latent_dim * (2 if bidirectional else 1)
    if attend_embeddings:
        attended = (keras.layers.Dropout(attention_dropout, name="attended_embedding_dropout")(embedded)
                    if attention_dropout else embedded)
        seq = keras.layers.Concatenate(name=ATTENTION_MEMORY)([seq, attended])
    dec_seq = dec_emb(decoder_ids)
    if input_feeding:
        from .input_feeding import InputFeedingDecoder

        if dropout:
            dec_seq = keras.layers.Dropout(dropout, name="decoder_input_dropout")(dec_seq)
        decoder = InputFeedingDecoder(decoder_units, seq.shape[-1], decoder_layers, dropout,
                                      name=INPUT_FEEDING_DECODER)
        # The initial state without the fed slot: the layer adds its zeros. The mask is the input ids themselves
        # (nonzero where the memory holds a real position).
        dec_seq = decoder([dec_seq, _packed(keras, [s[0] for s in states], "decoder_initial_state_h"),
                           _packed(keras, [s[1] for s in states], "decoder_initial_state_c"), seq, input_ids])[0]
        if attention_dropout:
            dec_seq = keras.layers.Dropout(attention_dropout, name="attention_output_dropout")(dec_seq)
    else:
        dec_seq = _lstm_decoder(keras, dec_seq, states, seq, decoder_units, decoder_layers, attention, dropout,
                                recurrent_dropout, attention_dropout)
    probs = keras.layers.Dense(target_vocab_size, activation="softmax", name=DECODER_OUTPUT)(dec_seq)
    model = keras.Model([input_ids, decoder_ids], probs, name="seq2seq")
    if not embedding_dim:
        enc_emb.set_weights([_one_hot_table(input_vocab_size)])
        dec_emb.set_weights([_one_hot_table(target_vocab_size)])
    return model


def _lstm_decoder(keras, dec_seq, states, seq, decoder_units, decoder_layers, attention, dropout,
                  recurrent_dropout, attention_dropout):
    """The decoder's LSTM layers over the whole target sequence, then (with ``attention``) the attention over
    ``seq`` at every step: the decoder without input feeding."""
    for j in range(decoder_layers):
        dec_seq = keras.layers.LSTM(decoder_units, return_sequences=True, return_state=True, dropout=dropout,
                                    recurrent_dropout=recurrent_dropout, name=layer_name(DECODER_LSTM, j))(
            dec_seq, initial_state=list(states[j]))[0]
    if attention:
        query = keras.layers.Dense(seq.shape[-1], use_bias=False, name=ATTENTION_QUERY)(dec_seq)
        # Keras' dot-product attention masks the encoder's padding (from input_ids) with -1e9 before the softmax.
        context = keras.layers.Attention(name=ATTENTION)([query, seq])
        dec_seq = keras.layers.Dense(decoder_units, activation="tanh", name=ATTENTION_COMBINE)(
            keras.layers.Concatenate(name="attention_concat")([context, dec_seq]))
        if attention_dropout:
            dec_seq = keras.layers.Dropout(attention_dropout, name="attention_output_dropout")(dec_seq)
    return dec_seq


def input_feeding_decoder(model):
    """The model's ``InputFeedingDecoder`` layer (train/input_feeding.py), or None."""
    return next((layer for layer in model.layers if layer.name == INPUT_FEEDING_DECODER), None)


def has_attention(model) -> bool:
    return any(layer.name == ATTENTION for layer in model.layers) or input_feeding_decoder(model) is not None


def decoder_layer_count(model) -> int:
    """The decoder's stacked LSTM layers."""
    feeding = input_feeding_decoder(model)
    return feeding.layers if feeding is not None else layer_count(model, DECODER_LSTM)


def attends_embeddings(model) -> bool:
    """Whether the encoder's outputs hold the input embeddings beside the LSTM's (``attend_embeddings``)."""
    return any(layer.name == ATTENTION_MEMORY for layer in model.layers)


def is_bidirectional(model) -> bool:
    import keras

    return isinstance(model.get_layer(ENCODER_LSTM), keras.layers.Bidirectional)


def _decoder_initial_states(keras, finals, decoder_layers: int, bidirectional: bool, existing):
    """Each decoder layer's initial (h, c), from the encoder layers' final states ``finals`` ([h, c], or
    [h_f, c_f, h_b, c_b] for a bidirectional layer, whose directions are joined by a Concatenate layer made for
    the encoder layers a decoder layer starts from: ``existing(name)`` returns it if the model has it already)."""
    states, made = [], {}
    for j in range(decoder_layers):
        i = stacked_source(j, len(finals), decoder_layers)
        if not bidirectional:
            states.append(tuple(finals[i]))
            continue
        h_f, c_f, h_b, c_b = finals[i]
        joined = []
        for base, pair in ((ENCODER_STATE_H, [h_f, h_b]), (ENCODER_STATE_C, [c_f, c_b])):
            name = layer_name(base, i)
            if name not in made:
                made[name] = existing(name) or keras.layers.Concatenate(name=name)
            joined.append(made[name](pair))
        states.append(tuple(joined))
    return states


def _packed(keras, tensors, name):
    """One tensor, or several side by side on the last axis (a stacked decoder's states)."""
    return tensors[0] if len(tensors) == 1 else keras.layers.Concatenate(name=name)(list(tensors))


def encoder_model(model):
    """``input_ids`` -> {``state_h``, ``state_c``} (and with attention ``encoder_outputs``, ``encoder_mask``),
    sharing the trained weights. A stacked decoder's initial states are packed side by side, bottom layer first
    (then, with input feeding, the fed slot's zeros)."""
    import keras

    input_ids = keras.Input(shape=(None,), dtype="int32", name=mf.INPUT_IDS)
    emb = model.get_layer(ENCODER_EMBEDDING)(input_ids)
    encoder_layers, decoder_layers = layer_count(model, ENCODER_LSTM), decoder_layer_count(model)
    seq, finals = emb, []
    for i in range(encoder_layers):
        seq, *final = model.get_layer(layer_name(ENCODER_LSTM, i))(seq)
        finals.append(final)
    states = _decoder_initial_states(keras, finals, decoder_layers, is_bidirectional(model), model.get_layer)
    if input_feeding_decoder(model) is not None:
        states.append((keras.ops.zeros_like(states[0][0]),) * 2)
    h = _packed(keras, [s[0] for s in states], "decoder_initial_state_h")
    c = _packed(keras, [s[1] for s in states], "decoder_initial_state_c")
    if not has_attention(model):
        return keras.Model(input_ids, {mf.STATE_H: h, mf.STATE_C: c}, name=mf.ENCODER)
    if attends_embeddings(model):
        seq = model.get_layer(ATTENTION_MEMORY)([seq, emb])
    mask = keras.layers.Identity(name=mf.ENCODER_MASK)(
        keras.ops.cast(keras.ops.not_equal(input_ids, text.PAD_ID), "float32"))
    return keras.Model(input_ids, {mf.STATE_H: h, mf.STATE_C: c, mf.ENCODER_OUTPUTS: seq, mf.ENCODER_MASK: mask},
                       name=mf.ENCODER)


def decoder_step_model(model):
    """[``prev_token``, ``state_h``, ``state_c``] (and with attention ``encoder_outputs``, ``encoder_mask``) ->
    {``probs``, ``next_state_h``, ``next_state_c``}: one step, no loop. A stacked decoder's states are its layers'
    side by side, split and rejoined in the graph."""
    import keras

    if input_feeding_decoder(model) is not None:
        return _input_feeding_step_model(model)
    lstms = [model.get_layer(layer_name(DECODER_LSTM, j)) for j in range(layer_count(model, DECODER_LSTM))]
    units = lstms[0].units
    prev_token = keras.Input(shape=(), dtype="int32", name=mf.PREV_TOKEN)
    state_h = keras.Input(shape=(units * len(lstms),), dtype="float32", name=mf.STATE_H)
    state_c = keras.Input(shape=(units * len(lstms),), dtype="float32", name=mf.STATE_C)
    inputs = [prev_token, state_h, state_c]
    out = model.get_layer(DECODER_EMBEDDING)(prev_token)
    hs, cs = [], []
    for j, lstm in enumerate(lstms):
        part = slice(j * units, (j + 1) * units)
        if j:  # Keras names every LSTM's cell "lstm_cell", and a functional model wants its operations' names
            # unique: the upper cells are renamed on the trained model itself, for good (deliberate: weights are
            # saved by attribute path, not by name, and no config holds a cell's name)
            lstm.cell.name = f"{lstm.name}_cell"
        out, (h, c) = lstm.cell(out, [state_h[:, part], state_c[:, part]] if len(lstms) > 1 else [state_h, state_c])
        hs.append(h)
        cs.append(c)
    h, c = _packed(keras, hs, "next_state_h_layers"), _packed(keras, cs, "next_state_c_layers")
    if has_attention(model):
        width = model.get_layer(ATTENTION_QUERY).units
        enc_out = keras.Input(shape=(None, width), dtype="float32", name=mf.ENCODER_OUTPUTS)
        enc_mask = keras.Input(shape=(None,), dtype="float32", name=mf.ENCODER_MASK)
        inputs += [enc_out, enc_mask]
        query = keras.ops.expand_dims(model.get_layer(ATTENTION_QUERY)(out), 1)         # [batch, 1, E]
        context = model.get_layer(ATTENTION)([query, enc_out],
                                             mask=[None, keras.ops.cast(enc_mask, "bool")])  # [batch, 1, E]
        combined = model.get_layer("attention_concat")([keras.ops.squeeze(context, 1), out])
        out = model.get_layer(ATTENTION_COMBINE)(combined)
    probs = model.get_layer(DECODER_OUTPUT)(out)
    return keras.Model(inputs, {mf.PROBS: probs, mf.NEXT_STATE_H: h, mf.NEXT_STATE_C: c}, name=mf.DECODER_STEP)


def _input_feeding_step_model(model):
    """The step model of a decoder with input feeding: its recurrent layer over a sequence of one step."""
    import keras

    decoder = input_feeding_decoder(model)
    prev_token = keras.Input(shape=(), dtype="int32", name=mf.PREV_TOKEN)
    state_h = keras.Input(shape=(decoder.state_width,), dtype="float32", name=mf.STATE_H)
    state_c = keras.Input(shape=(decoder.state_width,), dtype="float32", name=mf.STATE_C)
    enc_out = keras.Input(shape=(None, decoder.memory_dim), dtype="float32", name=mf.ENCODER_OUTPUTS)
    enc_mask = keras.Input(shape=(None,), dtype="float32", name=mf.ENCODER_MASK)
    embedded = keras.ops.expand_dims(model.get_layer(DECODER_EMBEDDING)(prev_token), 1)  # [batch, 1, X]
    out, h, c = decoder([embedded, state_h, state_c, enc_out, enc_mask])
    probs = model.get_layer(DECODER_OUTPUT)(keras.ops.squeeze(out, 1))
    return keras.Model([prev_token, state_h, state_c, enc_out, enc_mask],
                       {mf.PROBS: probs, mf.NEXT_STATE_H: h, mf.NEXT_STATE_C: c}, name=mf.DECODER_STEP)
