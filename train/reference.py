"""The reference decoder: batched greedy decoding with the Keras encoder and step models.

Every exported model is compared with this, so it is an oracle of its own: its loop is written here, with Keras
models and nothing of the runtime's loop (the parity gate would prove little if Keras were driven through the
code it checks). It shares only the plumbing: tokenization (``Preprocessing``), batching and padding
(``padded_batches``) and the special ids (``text``). The greedy rule is the bundle contract's (README): the
encoder once on the whole batch, then the step model once per output position on the whole batch, with a
finished mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seq2seq_edge import manifest as mf
from seq2seq_edge import text
from seq2seq_edge.decoder import padded_batches

from .run_folder import RunFolder


@dataclass(frozen=True)
class KerasTrace:
    """One batch decoded by Keras, with everything it computed on the way (the parity gate's reference)."""

    #: Greedy token ids per row, the end token excluded.
    outputs: list[list[int]]
    #: The encoder's outputs: {state_h, state_c}.
    encoded: dict[str, np.ndarray]
    #: Each step's input token and outputs: {prev_token, probs, next_state_h, next_state_c}; the step's input
    #: states are the encoder's (first step) or the previous step's next states.
    steps: list[dict[str, np.ndarray]]


@dataclass(frozen=True)
class KerasDecoder:
    """Greedy decoding with Keras models derived from a trained training model."""

    encoder: object
    step: object
    max_output_tokens: int
    #: Call the models with ``predict``, once per step, as the seed tutorial does (the benchmark's baseline),
    #: instead of calling them directly.
    use_predict: bool = False

    @classmethod
    def from_training_model(cls, model, max_output_tokens: int) -> "KerasDecoder":
        from .model import decoder_step_model, encoder_model

        return cls(encoder_model(model), decoder_step_model(model), max_output_tokens)

    def _call(self, model, inputs) -> dict[str, np.ndarray]:
        out = model.predict(inputs, verbose=0) if self.use_predict else model(inputs, training=False)
        return {k: np.asarray(v) for k, v in out.items()}

    def encode(self, input_ids: np.ndarray) -> dict[str, np.ndarray]:
        return self._call(self.encoder, np.asarray(input_ids, np.int32))

    def step_once(self, prev_token: np.ndarray, h: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
        return self._call(self.step, [np.asarray(prev_token, np.int32), h, c])

    def decode_ids(self, input_ids: np.ndarray) -> list[list[int]]:
        """Greedy token ids (end token excluded) for a padded int32 [batch, time] array."""
        return self._greedy(input_ids, None)[0]

    def trace(self, input_ids: np.ndarray) -> KerasTrace:
        """``decode_ids`` with the encoder's outputs and every step's input token and outputs."""
        steps: list[dict[str, np.ndarray]] = []
        outputs, encoded = self._greedy(input_ids, steps)
        return KerasTrace(outputs, encoded, steps)

    def _greedy(self, input_ids: np.ndarray, record: list | None) -> tuple[list[list[int]], dict[str, np.ndarray]]:
        batch = len(input_ids)
        encoded = self.encode(input_ids)
        h, c = encoded[mf.STATE_H], encoded[mf.STATE_C]
        prev = np.full(batch, text.START_ID, np.int32)
        done = np.zeros(batch, bool)
        outputs: list[list[int]] = [[] for _ in range(batch)]
        # max_output_tokens tokens, then one step that can only end the output.
        for step in range(self.max_output_tokens + 1):
            out = self.step_once(prev, h, c)
            if record is not None:
                record.append({mf.PREV_TOKEN: prev.copy(), **out})
            nxt = out[mf.PROBS].argmax(axis=1).astype(np.int32)
            done |= nxt == text.END_ID
            if done.all():
                break
            if step < self.max_output_tokens:
                for i in np.flatnonzero(~done):
                    outputs[i].append(int(nxt[i]))
            prev, h, c = nxt, out[mf.NEXT_STATE_H], out[mf.NEXT_STATE_C]
        return outputs, encoded


def decode_texts(decoder: KerasDecoder, prep: mf.Preprocessing, sources: list[str], batch_size: int = 512) -> list[str]:
    """Decode ``sources`` to strings, ``batch_size`` at a time."""
    encoded = [prep.encode_input(s) for s in sources]
    return [prep.decode_output(ids) for input_ids in padded_batches(encoded, batch_size, prep.max_input_tokens)
            for ids in decoder.decode_ids(input_ids)]


def load_reference(run_dir) -> tuple[KerasDecoder, mf.Preprocessing]:
    """The Keras reference decoder of a run folder, with the run's preprocessing."""
    run = RunFolder.open(run_dir)
    prep = run.read_config().preprocessing
    return KerasDecoder.from_training_model(run.load_keras_model(), prep.max_output_tokens), prep
