"""What ``s2s train`` shows while the model fits, and the validation sample it scores each epoch.

On a terminal: one progress bar over the epochs (rich, which Keras installs), advancing with each batch, with
the epoch count, loss, validation loss, the validation sample's exact match and the time left. Anywhere else
(a pipe, a CI log): plain lines, at most one every ``LINE_EVERY_S`` seconds, always after the first and the last
epoch, and during a long epoch too (batch count and loss so far), so a log shows life without 200 lines.

The time left, from the second epoch on, is the mean time of the epochs so far but the first (which is mostly
building the graphs) times the epochs to go; early stopping may end the run sooner.
"""

from __future__ import annotations

import math
import sys
import time

import keras

from .durations import duration

#: Without a terminal, a progress line at most this often (seconds).
LINE_EVERY_S = 10.0
#: Validation pairs decoded at the end of an epoch for ``val_sample_exact_match``.
SAMPLE_SIZE = 32
#: The sample's decoding may take at most this share of the training time; when one decode costs more than
#: that share of an epoch, it runs every few epochs instead (NaN in the history for the epochs between).
SAMPLE_BUDGET = 0.1
SAMPLE_KEY = "val_sample_exact_match"


class ValidationSample(keras.callbacks.Callback):
    """Exact match of a fixed sample of validation pairs, decoded greedily by Keras (the reference decoder, as
    the test split is scored) at the end of an epoch, into ``logs[SAMPLE_KEY]``; NaN where it was skipped to
    stay within ``SAMPLE_BUDGET`` of the training time. Decoding does not touch the weights or any random
    state, so the same seed gives the same weights with it or without it."""

    def __init__(self, model, prep, pairs):
        super().__init__()
        from .reference import KerasDecoder, normalized_targets

        step = max(1, len(pairs) // SAMPLE_SIZE)
        sample = list(pairs)[::step][:SAMPLE_SIZE]
        self.prep = prep
        self.sources = [p.source for p in sample]
        self.references = normalized_targets(prep, sample)
        self.decoder = KerasDecoder.from_training_model(model, prep.max_output_tokens) if sample else None
        self.every = 1
        self.cost = self.epoch_seconds = 0.0

    # Costs in CPU time (all of the process's threads): what the decode takes from training, whatever else runs.
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        self.epoch_seconds = time.process_time() - self.started
        last = epoch + 1 == self.params.get("epochs")
        if self.decoder is None or ((epoch + 1) % self.every and not last):
            logs[SAMPLE_KEY] = math.nan
            return
        from .reference import exact_match

        t0 = time.process_time()
        logs[SAMPLE_KEY] = exact_match(self.decoder, self.prep, self.sources, self.references)
        self.cost = time.process_time() - t0
        self.every = max(1, math.ceil(self.cost / (SAMPLE_BUDGET * max(self.epoch_seconds, 1e-6))))


class TrainingProgress(keras.callbacks.Callback):
    """The progress bar (a terminal) or the progress lines (anything else) of ``s2s train``; see the module."""

    def __init__(self, epochs: int, stream=None, every_s: float = LINE_EVERY_S):
        super().__init__()
        self.epochs = epochs
        self.stream = stream
        self.every_s = every_s
        self.durations: list[float] = []
        self.bar = None
        self.pending = ""  # the last epoch's line when it was not printed (LINE_EVERY_S)
        self.validation = self.sample = ""  # the last epoch's validation figures, the sample's last score

    @property
    def _out(self):
        return self.stream or sys.stderr

    def _tty(self) -> bool:
        try:
            return self._out.isatty()
        except (AttributeError, ValueError):
            return False

    # -- the estimates --------------------------------------------------------------------------------------
    def _left(self, done_epochs: int) -> float | None:
        """None until two epochs are done: the first one's time is mostly building the graphs."""
        if len(self.durations) < 2:
            return None
        timed = self.durations[1:]
        return sum(timed) / len(timed) * (self.epochs - done_epochs)

    def _metrics(self, logs: dict, batch: bool = False) -> str:
        """The figures shown: the loss, then the validation loss and the sample's last exact match (during an
        epoch, its loss so far and, on the bar, the last epoch's validation figures)."""
        parts = []
        if isinstance(logs.get("loss"), (int, float)):
            parts.append(f"loss {logs['loss']:.4f}")
        if batch:
            return ", ".join(parts + ([self.validation] if self.validation and self.bar is not None else []))
        validation = []
        if isinstance(logs.get("val_loss"), (int, float)):
            validation.append(f"val_loss {logs['val_loss']:.4f}")
        sample = logs.get(SAMPLE_KEY)
        if isinstance(sample, float) and not math.isnan(sample):
            self.sample = f"val sample exact {sample:.0%}"
        if self.sample:
            validation.append(self.sample)
        self.validation = ", ".join(validation)
        return ", ".join(parts + validation)

    # -- Keras' hooks -----------------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.train_started = self.last_line = time.perf_counter()
        self.steps = self.params.get("steps")
        if self._tty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn

            self.bar = Progress(TextColumn("epoch {task.fields[epoch]}/{task.total:.0f}"), BarColumn(bar_width=30),
                                TextColumn("{task.fields[info]}"),
                                console=Console(file=self._out), transient=False, refresh_per_second=4,
                                redirect_stdout=False, redirect_stderr=False)
            self.task = self.bar.add_task("training", total=self.epochs, epoch=0, info="building the model ...")
            self.bar.start()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_started = time.perf_counter()
        self.info = ""

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        now = time.perf_counter()
        if self.bar is not None:
            fraction = (batch + 1) / self.steps if self.steps else 0.0
            left = self._left(self.epoch)
            info = self._metrics(logs, batch=True) + (f"  ~{duration(left)} left" if left and left >= 1 else "")
            self.bar.update(self.task, completed=self.epoch + min(fraction, 1.0), epoch=self.epoch + 1,
                            info=info)
        elif now - self.last_line >= self.every_s and now - self.epoch_started >= self.every_s:  # a long epoch
            of = f"/{self.steps}" if self.steps else ""
            self._line(f"epoch {self.epoch + 1}/{self.epochs}: batch {batch + 1}{of}, {self._metrics(logs, True)}")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        now = time.perf_counter()
        self.durations.append(now - self.epoch_started)
        left = self._left(epoch + 1)
        left_text = f"~{duration(left)} left" if left and left >= 1 and epoch + 1 < self.epochs else ""
        summary = self._metrics(logs)
        if self.bar is not None:
            self.bar.update(self.task, completed=epoch + 1, epoch=epoch + 1,
                            info="  ".join(x for x in (summary, left_text) if x))
        else:
            took = f"{duration(now - self.train_started)} so far"
            self.pending = f"epoch {epoch + 1}/{self.epochs}: {summary} ({', '.join(x for x in (took, left_text) if x)})"
            if epoch == 0 or epoch + 1 == self.epochs or now - self.last_line >= self.every_s:
                self._line(self.pending)

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        elif self.pending:  # the last epoch's line, when early stopping ended the run between two lines
            self._line(self.pending)
        if self.durations and len(self.durations) < self.epochs:
            print(f"early stopping after epoch {len(self.durations)} of {self.epochs}", file=self._out, flush=True)

    def _line(self, message: str) -> None:
        print(message, file=self._out, flush=True)
        self.last_line = time.perf_counter()
        self.pending = ""


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping on a validation figure (the loss, ``mode="min"``, or the token accuracy, ``mode="max"``),
    restoring the best weights, where an epoch counts as better only if it lowers the best loss, or the best error
    (1 - accuracy), by at least ``min_improvement`` of it (a figure creeping by crumbs does not keep a run going),
    and which also stops once the validation sample has been decoded without an error for ``patience`` evaluated
    epochs in a row (nothing left to gain on it)."""

    def __init__(self, patience: int, min_improvement: float, monitor: str = "val_loss", mode: str = "min"):
        super().__init__(monitor=monitor, mode=mode, patience=patience, restore_best_weights=True)
        self.min_improvement = min_improvement
        self.perfect_epochs = 0
        self.stopped_on_exact_match = False

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None or not math.isfinite(reference_value):
            return True
        if self.mode == "max":  # an accuracy: its error must fall
            return 1.0 - monitor_value < (1.0 - reference_value) * (1.0 - self.min_improvement)
        return monitor_value < reference_value * (1.0 - self.min_improvement)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        sample = (logs or {}).get(SAMPLE_KEY)
        if sample is None or math.isnan(sample):
            return  # not evaluated this epoch: neither a perfect epoch nor a break in a run of them
        self.perfect_epochs = self.perfect_epochs + 1 if sample >= 1.0 else 0
        if self.perfect_epochs >= self.patience and not self.model.stop_training:
            self.stopped_on_exact_match = True
            self.stopped_epoch = epoch
            self.model.stop_training = True


class CSVLogger(keras.callbacks.CSVLogger):
    """Keras' CSVLogger with epochs counted from 1, as the progress lines, metrics.json and s2s info count them."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)


class TimeBudget(keras.callbacks.Callback):
    """Stop before an epoch that would end past ``seconds`` of training (judged by the slowest epoch so far), so a
    run on a CPU ends on time with the best weights early stopping kept; ``stopped`` says whether it did."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.stopped = False

    def on_train_begin(self, logs=None):
        self.started = time.monotonic()
        self.longest = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.longest = max(self.longest, now - self.epoch_started)
        if now - self.started + self.longest > self.seconds:
            self.stopped = True
            self.model.stop_training = True
