"""The attention decoder with input feeding (Luong et al. 2015, section 3.3), as one Keras layer.

Without input feeding (train/model.py) the attention is applied after the decoder's LSTMs, so the whole output
sequence is computed in one pass of Keras' LSTM layers. With it, the attention's output of step t-1 is part of the
first LSTM layer's input at step t: the decoder knows which input positions it has attended to. That makes the
attention part of the recurrence, so ``InputFeedingDecoder`` runs the steps itself (``keras.ops.scan``).

The layer keeps the bundle's contract. Its state is one ``state_h`` and one ``state_c``: the LSTM layers' states
side by side, bottom layer first (as a stacked decoder's are), then one slot more, of the decoder's width: in
``state_h`` the attention's output of the last step (zero before the first); in ``state_c`` the encoder's zeros,
carried through unchanged (so the step graph needs no operator to make them). The manifest's
``latent_dim`` is that width, units x (layers + 1); no runtime knows the difference. The step model
(``model.decoder_step_model``) is this layer called on a sequence of one step, so training and the parity gate's
reference compute one thing.

Dropout (training only) applies to the decoder's embedded inputs (outside this layer, as the LSTM layers' own
input dropout does), between stacked layers (``dropout``, a new mask at every step) and to the attention's output
before the softmax layer (outside this layer; the fed vector is the output without dropout).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seq2seq_edge")
class InputFeedingDecoder(keras.layers.Layer):
    """[embedded targets [B, T, X], state_h [B, W], state_c [B, W], attention memory [B, S, E], mask [B, S]]
    -> [attention outputs [B, T, D], next state_h [B, W], next state_c [B, W]], W = D x (layers + 1).

    ``units`` is D, each LSTM layer's units and the attention output's width; ``memory_dim`` is E. The initial
    state may leave out the fed slot (width D x layers: the slot starts at zero). The mask is nonzero where the
    memory holds a real position: the encoder's mask, or the input ids themselves (the pad id is 0)."""

    def __init__(self, units: int, memory_dim: int, layers: int = 1, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.memory_dim, self.layers = int(units), int(memory_dim), int(layers)
        self.dropout = float(dropout)
        self.cells = [keras.layers.LSTMCell(self.units, name=f"lstm_cell_{j + 1}") for j in range(self.layers)]
        self.query = keras.layers.Dense(memory_dim, use_bias=False, name="attention_query")
        self.combine = keras.layers.Dense(self.units, activation="tanh", name="attention_combine")
        self.between = keras.layers.Dropout(self.dropout, name="between_layers_dropout")
        self.supports_masking = True  # takes Keras' masks and drops them (compute_mask): the fifth input says it

    def compute_mask(self, inputs, mask=None):
        return None

    @property
    def state_width(self) -> int:
        return self.units * (self.layers + 1)

    def build(self, input_shapes):
        embedded, _, _, memory, _ = input_shapes
        for j, cell in enumerate(self.cells):
            cell.build((None, embedded[-1] + self.units if j == 0 else self.units))
        self.query.build((None, self.units))
        self.combine.build((None, memory[-1] + self.units))
        self.built = True

    def compute_output_shape(self, input_shapes):
        embedded, state_h, _, _, _ = input_shapes
        state = (state_h[0], self.state_width)
        return (embedded[0], embedded[1], self.units), state, state

    def call(self, inputs, training=None):
        embedded, state_h, state_c, memory, positions = inputs
        d = self.units
        steps = ops.transpose(embedded, (1, 0, 2))  # time first, for the scan
        ones = ops.ones((ops.shape(steps)[0], ops.shape(steps)[1], d), dtype=steps.dtype)
        between = [self.between(ones, training=training) for _ in self.cells[1:]]
        if state_h.shape[-1] == d * self.layers:  # the fed slot starts at zero
            zeros = ops.zeros_like(state_h[:, :d])
            state_h, state_c = ops.concatenate([state_h, zeros], -1), ops.concatenate([state_c, zeros], -1)
        # As Keras' attention: padding at -1e9 before the softmax, so it weighs exactly 0.
        padding = ops.cast(ops.equal(positions, 0), memory.dtype) * -1e9

        def step(carry, xs):
            h_all, c_all = carry
            x, masks = xs[0], xs[1:]
            out = ops.concatenate([x, h_all[:, -d:]], axis=-1)  # the input, then the last attention output
            hs, cs = [], []
            for j, cell in enumerate(self.cells):
                if j:
                    out = out * masks[j - 1]
                out, (h, c) = cell(out, [h_all[:, j * d:(j + 1) * d], c_all[:, j * d:(j + 1) * d]])
                hs.append(h)
                cs.append(c)
            query = self.query(out)                                                   # [B, E]
            scores = ops.squeeze(ops.matmul(memory, query[:, :, None]), -1) + padding  # [B, S]
            context = ops.squeeze(ops.matmul(ops.softmax(scores, axis=-1)[:, None, :], memory), 1)
            attended = self.combine(ops.concatenate([context, out], axis=-1))         # [B, D]
            nxt = ops.concatenate(hs + [attended], axis=-1), ops.concatenate(cs + [c_all[:, -d:]], axis=-1)
            return nxt, nxt

        (last_h, last_c), (all_h, _) = ops.scan(step, (state_h, state_c), (steps, *between))
        outputs = ops.transpose(all_h[:, :, -d:], (1, 0, 2))
        return outputs, last_h, last_c

    def get_config(self):
        return {**super().get_config(), "units": self.units, "memory_dim": self.memory_dim, "layers": self.layers,
                "dropout": self.dropout}
