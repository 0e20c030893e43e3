"""Answering a batch of user inputs: the one use case behind ``s2s run`` (arguments, standard input, files, worker
processes) and the Ray predictor.

``RunOptions`` holds how inputs are decoded (the ``load`` arguments and the ``DecodeOptions``, checked once);
``answer`` encodes each input, keeps a per-input error instead of failing the batch, decodes the rest
``batch_size`` at a time, times each model batch and hands back one ``Answer`` per input, in order. Without
``keep_going`` it stops at the first bad input, after answering the ones before it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, fields, replace

from .errors import InputTextError
from . import options as _options
from .options import CLI_NAMES, MAX_BATCH_SIZE, OptionError, check_values

__all__ = ["RunOptions", "Answer", "Answered", "answer", "record", "MAX_BATCH_SIZE"]


def __getattr__(name: str):
    # answer.DecodeOptions (0.4: the load and decode options in one flat type) is RunOptions now; the decode
    # options alone are seq2seq_edge.DecodeOptions
    if name == "DecodeOptions":
        import warnings

        warnings.warn("seq2seq_edge.answer.DecodeOptions is now answer.RunOptions (RunOptions.of(...) takes the same "
                      "keyword arguments); seq2seq_edge.DecodeOptions holds the decode options alone",
                      DeprecationWarning, stacklevel=2)
        return RunOptions.of
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

_DECODE_FIELDS = frozenset(f.name for f in fields(_options.DecodeOptions))


@dataclass(frozen=True)
class RunOptions:
    """How a run decodes, the same in every worker process: the ``load`` arguments (backend, variant, threads,
    one_call), the decode options (``decode``) and whether a bad input stops the run (``keep_going``)."""

    decode: _options.DecodeOptions = _options.DecodeOptions()
    backend: str = "auto"
    variant: str = "fp32"
    threads: int = 1
    #: ``load``'s one_call: the bundle's one-call greedy model (True), the step loop (False), or its choice (None).
    one_call: bool | None = None
    keep_going: bool = False

    @classmethod
    def of(cls, options=None, **kwargs) -> "RunOptions":
        """Options from keyword arguments (the fields of this class and of ``DecodeOptions``: batch_size,
        beam_size, ...), as the file API and the Ray predictor take them; or ``options``, a RunOptions or a
        DecodeOptions (then with the load options' defaults), not both."""
        if options is not None:
            if kwargs:
                raise TypeError(f"give options= or keyword options ({', '.join(sorted(kwargs))}), not both")
            if isinstance(options, _options.DecodeOptions):
                return cls(decode=options)
            if not isinstance(options, RunOptions):
                raise TypeError(f"options must be a RunOptions or a DecodeOptions, not {type(options).__name__}")
            return options
        decode = {k: kwargs.pop(k) for k in list(kwargs) if k in _DECODE_FIELDS}
        return cls(decode=_options.DecodeOptions(**decode), **kwargs)

    @classmethod
    def from_args(cls, args) -> "RunOptions":
        """The options of an ``s2s run`` or ``s2s eval`` command line, checked before anything is loaded: an
        OptionError names the flag as the user typed it."""
        run = cls(backend=args.backend, variant=args.variant, threads=getattr(args, "threads", 1),
                  one_call=getattr(args, "one_call", None), keep_going=getattr(args, "keep_going", False)).check()
        decode = {"batch_size": args.batch_size, "beam_size": args.beam}
        for name in ("max_output_len", "skip_unknown", "n_best", "length_penalty"):  # s2s eval has only some
            if getattr(args, name, None) is not None:
                decode[name] = getattr(args, name)
        check_values(decode, CLI_NAMES)
        return replace(run, decode=_options.DecodeOptions(**decode))

    def check(self) -> "RunOptions":
        """OptionError when ``threads`` is beyond this machine's CPU count (the decode options were checked when
        made)."""
        cpus = os.cpu_count() or 1
        if not 1 <= self.threads <= cpus:
            raise OptionError(f"--threads must be between 1 and this machine's CPU count {cpus}, "
                              f"got {self.threads}")
        return self

    def check_for(self, decoder) -> None:
        """The check that needs the loaded bundle: ``--max-output-len`` within the trained maximum."""
        self.decode.limit(decoder.max_output_len, CLI_NAMES)

    def like(self, decoder) -> "RunOptions":
        """These options loading what ``decoder`` is: its backend, variant and path (one-call or step loop), so a
        worker process that loads the bundle again decodes as ``decoder`` does."""
        return replace(self, backend=decoder.backend, variant=decoder.variant,
                       one_call=decoder.decode_path == "one-call")

    def load(self, bundle, ensemble=()):
        """The decoder these options describe: ``bundle`` as ``load`` loads it, or with ``ensemble`` (more bundle
        folders) ``bundle`` and those as one ensemble (``load_ensemble``, which decodes by the step loop)."""
        if not ensemble:
            from .loader import load

            return load(bundle, **self.load_kwargs())
        if self.one_call:
            raise OptionError("--one-call: an ensemble decodes by the step loop (each bundle's step, then their "
                              "mean), never by a one-call greedy model")
        from .ensemble import load_ensemble

        return load_ensemble([bundle, *ensemble], backend=self.backend, variant=self.variant, threads=self.threads)

    def load_kwargs(self) -> dict:
        """The keyword arguments of ``load`` (one_call only when chosen)."""
        kwargs = {"backend": self.backend, "variant": self.variant, "threads": self.threads}
        if self.one_call is not None:
            kwargs["one_call"] = self.one_call
        return kwargs


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


def answer(decoder, items: list[tuple[str, object]], opts: RunOptions) -> Answered:
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
                todo.append((a, decoder.preprocessing.encode_input(t, skip_unknown=opts.decode.skip_unknown)))
            except InputTextError as e:
                a.error, a.reason = f"{where}: {e}", str(e)
        if a.error is not None and not opts.keep_going:
            stop = a.error
            break
        answers.append(a)
    for b in range(0, len(todo), opts.decode.batch_size):
        part = todo[b:b + opts.decode.batch_size]
        started = time.perf_counter()
        decoded = decoder.decode_ids([ids for _, ids in part], opts.decode)
        ms = (time.perf_counter() - started) * 1000 / len(part)
        for (a, _), r in zip(part, decoded):
            a.result, a.batch_items, a.batch_ms = r, len(part), ms
    return Answered(answers, stop)


def record(a: Answer, decoder, opts: RunOptions) -> dict:
    """The ``s2s run --json`` object of one answer (also each line of a .jsonl output): input, output, score,
    finished, backend, variant, path, batch_items, batch_ms_per_item, and with ``n_best`` > 1 the n best (best
    first; fewer when the search found fewer); for a failed input, ``{"input", "error"}``."""
    if a.error is not None:
        return {"input": a.text, "error": a.error}
    r = a.result
    out = {"input": a.text, "output": r.text, "score": round(r.score, 6), "finished": r.finished,
           "backend": decoder.backend, "variant": decoder.variant, "path": opts.decode.path or decoder.decode_path,
           "batch_items": a.batch_items, "batch_ms_per_item": round(a.batch_ms, 4)}
    if opts.decode.n_best > 1:
        out["n_best"] = [{"output": h.text, "score": round(h.score, 6), "finished": h.finished}
                         for h in (r, *r.alternatives)]
    return out
