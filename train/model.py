"""The seed's LSTM encoder-decoder in Keras, and the two inference models derived from it by layer name.

Training graph (teacher forcing), as in the keras-io tutorial the project grows from:

    input_ids -> encoder_embedding -> encoder_lstm -> (h, c)
    decoder_input_ids -> decoder_embedding -> decoder_lstm(initial_state=(h, c)) -> decoder_output (softmax)

With ``embedding_dim=0`` (the default) both embeddings are frozen one-hot tables, so the LSTMs see exactly the
seed's one-hot vectors; id 0 (padding) maps to a zero vector and is masked in the encoder, so right-padding does
not change the final state. The step model calls the decoder LSTM's cell once: no loop in its graph.
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
                         embedding_dim: int = 0):
    """The teacher-forcing model: inputs ``input_ids`` and ``decoder_input_ids``, output softmax per step."""
    import keras

    input_ids = keras.Input(shape=(None,), dtype="int32", name=mf.INPUT_IDS)
    decoder_ids = keras.Input(shape=(None,), dtype="int32", name=DECODER_INPUT_IDS)
    # mask_zero masks id 0, which is text.PAD_ID: right-padding leaves the encoder's final state as it was.
    enc_emb = _embedding(keras, ENCODER_EMBEDDING, input_vocab_size, embedding_dim, mask_zero=True)
    dec_emb = _embedding(keras, DECODER_EMBEDDING, target_vocab_size, embedding_dim, mask_zero=False)
    _, h, c = keras.layers.LSTM(latent_dim, return_state=True, name=ENCODER_LSTM)(enc_emb(input_ids))
    seq = keras.layers.LSTM(latent_dim, return_sequences=True, return_state=True, name=DECODER_LSTM)(
        dec_emb(decoder_ids), initial_state=[h, c])[0]
    probs = keras.layers.Dense(target_vocab_size, activation="softmax", name=DECODER_OUTPUT)(seq)
    model = keras.Model([input_ids, decoder_ids], probs, name="seq2seq")
    if not embedding_dim:
        enc_emb.set_weights([_one_hot_table(input_vocab_size)])
        dec_emb.set_weights([_one_hot_table(target_vocab_size)])
    return model


def encoder_model(model):
    """``input_ids`` -> [``state_h``, ``state_c``], sharing the trained weights."""
    import keras

    input_ids = keras.Input(shape=(None,), dtype="int32", name=mf.INPUT_IDS)
    emb = model.get_layer(ENCODER_EMBEDDING)(input_ids)
    _, h, c = model.get_layer(ENCODER_LSTM)(emb)
    return keras.Model(input_ids, {mf.STATE_H: h, mf.STATE_C: c}, name=mf.ENCODER)


def decoder_step_model(model):
    """[``prev_token``, ``state_h``, ``state_c``] -> {``probs``, ``next_state_h``, ``next_state_c``}: one step, no loop."""
    import keras

    lstm = model.get_layer(DECODER_LSTM)
    latent = lstm.units
    prev_token = keras.Input(shape=(), dtype="int32", name=mf.PREV_TOKEN)
    state_h = keras.Input(shape=(latent,), dtype="float32", name=mf.STATE_H)
    state_c = keras.Input(shape=(latent,), dtype="float32", name=mf.STATE_C)
    x = model.get_layer(DECODER_EMBEDDING)(prev_token)
    out, (h, c) = lstm.cell(x, [state_h, state_c])
    probs = model.get_layer(DECODER_OUTPUT)(out)
    return keras.Model([prev_token, state_h, state_c],
                       {mf.PROBS: probs, mf.NEXT_STATE_H: h, mf.NEXT_STATE_C: c}, name=mf.DECODER_STEP)
