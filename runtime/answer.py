"""Answering a batch of user inputs: the one use case behind ``s2s run`` (arguments, standard input, files, worker
processes) and the Ray predictor.

``DecodeOptions`` holds how inputs are decoded (the ``load`` arguments and the decode options, checked once);
``answer`` encodes each input, keeps a per-input error instead of failing the batch, decodes the rest
``batch_size`` at a time, times each model batch and hands back one ``Answer`` per input, in order. Without
``keep_going`` it stops at the first bad input, after answering the ones before it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace

from .beam import MAX_BEAM_SIZE, MAX_LENGTH_PENALTY
from .errors import InputTextError, Seq2SeqEdgeError

#: The largest batch size: throughput stops growing long before it (see the benchmarks' batch 64 and 256), while
#: every input of a batch, and its decoder state at each step, is held in memory at once.
MAX_BATCH_SIZE = 4096


@dataclass(frozen=True)
class DecodeOptions:
    """How inputs are decoded: the ``load`` arguments (backend, variant, threads, one_call) and the decode options,
    the same in every worker process."""

    backend: str = "auto"
    variant: str = "fp32"
    threads: int = 1
    batch_size: int = 32
    max_output_len: int | None = None
    skip_unknown: bool = False
    beam_size: int | None = None
    n_best: int = 1
    length_penalty: float = 0.0
    keep_going: bool = False
    #: ``load``'s one_call: the bundle's one-call greedy model (True), the step loop (False), or its choice (None).
    one_call: bool | None = None

    @classmethod
    def from_args(cls, args) -> "DecodeOptions":
        """The options of an ``s2s run`` command line."""
        return cls(backend=args.backend, variant=args.variant, threads=args.threads, batch_size=args.batch_size,
                   max_output_len=args.max_output_len, skip_unknown=args.skip_unknown, beam_size=args.beam,
                   n_best=args.n_best, length_penalty=args.length_penalty,
                   keep_going=getattr(args, "keep_going", False), one_call=getattr(args, "one_call", None))

    def check(self) -> "DecodeOptions":
        """Seq2SeqEdgeError naming the flag when an option is out of its bounds or this machine's; before anything
        is loaded."""
        cpus = os.cpu_count() or 1
        if not 1 <= self.threads <= cpus:
            raise Seq2SeqEdgeError(f"--threads must be between 1 and this machine's CPU count {cpus}, "
                                   f"got {self.threads}")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise Seq2SeqEdgeError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}, got {self.batch_size}")
        if self.max_output_len is not None and self.max_output_len < 1:
            raise Seq2SeqEdgeError(f"--max-output-len must be at least 1, got {self.max_output_len}")
        if not 1 <= self.n_best <= MAX_BEAM_SIZE:
            raise Seq2SeqEdgeError(f"--n-best must be between 1 and {MAX_BEAM_SIZE}, got {self.n_best}")
        if self.beam_size is not None and not 1 <= self.beam_size <= MAX_BEAM_SIZE:
            raise Seq2SeqEdgeError(f"--beam must be between 1 and {MAX_BEAM_SIZE}, got {self.beam_size}")
        if self.beam_size is not None and self.n_best > self.beam_size:
            raise Seq2SeqEdgeError(f"--n-best ({self.n_best}) cannot exceed --beam ({self.beam_size})")
        if not (math.isfinite(self.length_penalty) and 0 <= self.length_penalty <= MAX_LENGTH_PENALTY):
            raise Seq2SeqEdgeError(f"--length-penalty must be between 0 and {MAX_LENGTH_PENALTY:g}, "
                                   f"got {self.length_penalty}")
        return self

    def check_for(self, decoder) -> None:
        """The checks that need the loaded bundle: ``max_output_len`` within the trained maximum."""
        if self.max_output_len is not None and not 1 <= self.max_output_len <= decoder.max_output_len:
            raise Seq2SeqEdgeError(f"--max-output-len must be between 1 and the trained maximum "
                                   f"{decoder.max_output_len}, got {self.max_output_len}")

    def like(self, decoder) -> "DecodeOptions":
        """These options loading what ``decoder`` is: its backend, variant and path (one-call or step loop), so a
        worker process that loads the bundle again decodes as ``decoder`` does."""
        return replace(self, backend=decoder.backend, variant=decoder.variant,
                       one_call=decoder.decode_path == "one-call")

    def load_kwargs(self) -> dict:
        """The keyword arguments of ``load`` (one_call only when chosen)."""
        kwargs = {"backend": self.backend, "variant": self.variant, "threads": self.threads}
        if self.one_call is not None:
            kwargs["one_call"] = self.one_call
        return kwargs

    @property
    def path(self) -> str | None:
        """"beam-search" when the options ask for it, else None (the decoder's own path)."""
        return "beam-search" if (self.beam_size or self.n_best) > 1 else None


@dataclass
class Answer:
    """One input's answer: ``where`` it came from, its ``text`` (None if the line was not text), and either the
    ``result`` (a DecodeResult) or the ``error`` naming the place, with ``reason`` the error without the place.
    ``batch_items`` inputs were decoded together in ``batch_ms`` ms per input (the batch's time shared out)."""

    where: str
    text: str | None
    result: object | None = None
    error: str | None = None
    reason: str | None = None
    batch_items: int = 0
    batch_ms: float = 0.0


@dataclass
class Answered:
    """``answers`` in input order, up to ``stop``: the error that ends the run (without keep_going)."""

    answers: list[Answer]
    stop: str | None = None

    @property
    def failed(self) -> list[Answer]:
        return [a for a in self.answers if a.error is not None]


def answer(decoder, items: list[tuple[str, object]], opts: DecodeOptions) -> Answered:
    """Encode and decode ``items``, (where, text | InputTextError) pairs, with ``opts``. An input that is not a
    string, or that the model cannot encode, gets its error; without ``opts.keep_going`` the first one ends the
    batch (``Answered.stop``) and only the inputs before it are decoded."""
    answers: list[Answer] = []
    todo: list[tuple[Answer, list[int]]] = []  # the encodable inputs and their token ids
    stop = None
    for where, t in items:
        if isinstance(t, InputTextError):  # refused while reading: the message names its place
            a = Answer(where, None, error=str(t), reason=str(t))
        elif not isinstance(t, str):
            reason = f"input must be a string, not {type(t).__name__}"
            a = Answer(where, None, error=f"{where}: {reason}", reason=reason)
        else:
            a = Answer(where, t)
            try:
                todo.append((a, decoder.preprocessing.encode_input(t, skip_unknown=opts.skip_unknown)))
            except InputTextError as e:
                a.error, a.reason = f"{where}: {e}", str(e)
        if a.error is not None and not opts.keep_going:
            stop = a.error
            break
        answers.append(a)
    for b in range(0, len(todo), opts.batch_size):
        part = todo[b:b + opts.batch_size]
        started = time.perf_counter()
        decoded = decoder.decode_ids([ids for _, ids in part], opts.batch_size, max_output_len=opts.max_output_len,
                                     beam_size=opts.beam_size, n_best=opts.n_best,
                                     length_penalty=opts.length_penalty)
        ms = (time.perf_counter() - started) * 1000 / len(part)
        for (a, _), r in zip(part, decoded):
            a.result, a.batch_items, a.batch_ms = r, len(part), ms
    return Answered(answers, stop)


def record(a: Answer, decoder, opts: DecodeOptions) -> dict:
    """The ``s2s run --json`` object of one answer (also each line of a .jsonl output): input, output, score,
    finished, backend, variant, path, batch_items, batch_ms_per_item, and with ``n_best`` > 1 the n best (best
    first; fewer when the search found fewer); for a failed input, ``{"input", "error"}``."""
    if a.error is not None:
        return {"input": a.text, "error": a.error}
    r = a.result
    out = {"input": a.text, "output": r.text, "score": round(r.score, 6), "finished": r.finished,
           "backend": decoder.backend, "variant": decoder.variant, "path": opts.path or decoder.decode_path,
           "batch_items": a.batch_items, "batch_ms_per_item": round(a.batch_ms, 4)}
    if opts.n_best > 1:
        out["n_best"] = [{"output": h.text, "score": round(h.score, 6), "finished": h.finished}
                         for h in (r, *r.alternatives)]
    return out
