"""The reference decoder: batched greedy decoding with the Keras encoder and step models.

Every exported model is compared with this. It runs the encoder once on the whole batch and the step model once
per output position on the whole batch, with a finished mask, exactly as the runtime's loop does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seq2seq_edge import manifest as mf
from seq2seq_edge import text


@dataclass
class KerasDecoder:
    """Greedy decoding with Keras models derived from a trained training model."""

    encoder: object
    step: object
    max_output_tokens: int
    trace: list = field(default_factory=list)

    @classmethod
    def from_training_model(cls, model, max_output_tokens: int) -> "KerasDecoder":
        from .model import decoder_step_model, encoder_model

        return cls(encoder_model(model), decoder_step_model(model), max_output_tokens)

    def encode(self, input_ids: np.ndarray) -> dict[str, np.ndarray]:
        out = self.encoder(np.asarray(input_ids, np.int32), training=False)
        return {k: np.asarray(v) for k, v in out.items()}

    def step_once(self, prev_token: np.ndarray, h: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
        out = self.step([np.asarray(prev_token, np.int32), h, c], training=False)
        return {k: np.asarray(v) for k, v in out.items()}

    def decode_ids(self, input_ids: np.ndarray, record: bool = False) -> list[list[int]]:
        """Greedy token ids (end token excluded) for a padded int32 [batch, time] array.

        With ``record``, ``self.trace`` holds the encoder outputs and every step's inputs and outputs.
        """
        batch = len(input_ids)
        states = self.encode(input_ids)
        h, c = states[mf.STATE_H], states[mf.STATE_C]
        self.trace = [states] if record else []
        prev = np.full(batch, text.START_ID, np.int32)
        done = np.zeros(batch, bool)
        outputs: list[list[int]] = [[] for _ in range(batch)]
        # max_output_tokens tokens, then one step that can only end the output (the runtime does the same).
        for step in range(self.max_output_tokens + 1):
            out = self.step_once(prev, h, c)
            if record:
                self.trace.append({mf.PREV_TOKEN: prev.copy(), **out})
            nxt = out[mf.PROBS].argmax(axis=1).astype(np.int32)
            done |= nxt == text.END_ID
            if done.all():
                break
            if step < self.max_output_tokens:
                for i in np.flatnonzero(~done):
                    outputs[i].append(int(nxt[i]))
            prev, h, c = nxt, out[mf.NEXT_STATE_H], out[mf.NEXT_STATE_C]
        return outputs


def decode_texts(decoder: KerasDecoder, prep: mf.Preprocessing, sources: list[str], batch_size: int = 512) -> list[str]:
    """Decode ``sources`` to strings in batches."""
    results: list[str] = []
    for start in range(0, len(sources), batch_size):
        chunk = sources[start:start + batch_size]
        ids = mf.pad_batch([prep.encode_input(s) for s in chunk], prep.max_input_tokens)
        results.extend(prep.decode_output(o) for o in decoder.decode_ids(ids))
    return results
