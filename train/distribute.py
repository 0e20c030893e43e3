"""``s2s train --distribute mirrored|multiworker``: data-parallel training with ``tf.distribute``.

- ``mirrored``: ``MirroredStrategy`` over this machine's devices (its GPUs; on a machine without one, the CPU:
  one replica).
- ``multiworker``: ``MultiWorkerMirroredStrategy`` over the machines ``TF_CONFIG`` lists. Every worker runs the
  same ``s2s train`` command with its own ``TF_CONFIG`` (``{"cluster": {"worker": ["host:port", ...]}, "task":
  {"type": "worker", "index": i}}``); worker 0 (or the ``chief``) writes the run folder, the others write to a
  temporary folder they delete, since saving may take part in collective operations.

``--batch-size`` is per replica: the global batch is ``batch_size x replicas``, so each step sees that many pairs,
split across the replicas, and an epoch has that many times fewer steps. Adam's learning rate is scaled by the
square root of the replicas (the square-root rule for adaptive optimisers: Malladi et al. 2022, "On the SDEs and
Scaling Rules for Adaptive Gradient Algorithms"; linear scaling is SGD's). The config written to the run folder
holds the global batch and the scaled rate, so it says what was trained; its format is unchanged.

Keras 3's ``Model.fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585: a ``PerReplica`` it
cannot convert while building and reducing), so training here is a small custom loop: ``strategy.run`` of one
teacher-forcing step per replica, gradients summed across replicas by the Keras optimizer (its all-reduce; with
``clipnorm``, the global batch's gradient is clipped, as one process clips it), the loss scaled as Keras'
``sum_over_batch_size`` scales it over the global batch, a whole epoch per ``tf.function`` call (one all-reduce
per step, the metrics' sums reduced once per epoch), and the Keras callbacks (progress, validation sample, CSV
history, early stopping) driven as ``fit`` drives them, the progress bar once per epoch. Each worker holds the whole data
set and keeps its share of every global batch (``AutoShardPolicy.DATA``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from seq2seq_edge.errors import RunFolderError

log = logging.getLogger(__name__)

CHOICES = ("mirrored", "multiworker")


class Distribution:
    """One ``tf.distribute`` strategy and what the trainer needs of it; ``Distribution.create(None)`` is the
    single-process default (no strategy: ``Model.fit``)."""

    def __init__(self, kind: str | None, strategy=None):
        self.kind = kind
        self.strategy = strategy

    @classmethod
    def create(cls, kind: str | None) -> "Distribution":
        """The strategy for ``kind`` (None: none). Call before building anything: ``MultiWorkerMirroredStrategy``
        must be created before TensorFlow runs other ops, and it waits here for every worker to start."""
        if kind is None:
            return cls(None)
        if kind not in CHOICES:
            raise RunFolderError(f"--distribute must be one of {', '.join(CHOICES)}, got {kind!r}")
        import tensorflow as tf

        if kind == "mirrored":
            return cls(kind, tf.distribute.MirroredStrategy())
        config = _tf_config()
        communication = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=communication)
        log.info("multiworker: task %s %d of %d workers, %d replica(s) in sync", config["task"]["type"],
                 config["task"]["index"], sum(len(v) for v in config["cluster"].values()),
                 strategy.num_replicas_in_sync)
        return cls(kind, strategy)

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync if self.strategy else 1

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run folder: the chief, or worker 0 when the cluster has no chief."""
        if self.kind != "multiworker":
            return True
        task = json.loads(os.environ["TF_CONFIG"])["task"]
        return task["type"] == "chief" or (task["type"] == "worker" and task["index"] == 0
                                           and "chief" not in json.loads(os.environ["TF_CONFIG"])["cluster"])

    def config(self, cfg):
        """``cfg`` with the global batch size and the learning rate the strategy needs (see the docstring)."""
        if self.strategy is not None and cfg.length_buckets:
            raise RunFolderError("--distribute trains on padded arrays: add --no-length-buckets")
        if self.replicas == 1:
            return cfg
        scaled = replace(cfg, batch_size=cfg.batch_size * self.replicas,
                         learning_rate=cfg.learning_rate * math.sqrt(self.replicas))
        log.info("%d replicas: global batch %d (%d per replica), learning rate %.3g (%.3g x sqrt(%d))",
                 self.replicas, scaled.batch_size, cfg.batch_size, scaled.learning_rate, cfg.learning_rate,
                 self.replicas)
        return scaled

    def scope(self):
        """Where the model and its optimizer must be built (their variables mirrored across replicas)."""
        return self.strategy.scope() if self.strategy else contextlib.nullcontext()

    @contextlib.contextmanager
    def run_folder(self, out_dir: Path):
        """The folder this process writes: ``out_dir`` on the chief, a temporary one (deleted after) elsewhere."""
        if self.is_chief:
            yield Path(out_dir)
            return
        tmp = Path(tempfile.mkdtemp(prefix="s2s-worker-run-"))
        try:
            yield tmp / Path(out_dir).name
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def fit(self, model, x, y, w, validation, *, batch_size: int, epochs: int, seed: int, callbacks,
            label_smoothing: float = 0.0) -> dict:
        """Train ``model`` (built and compiled in ``scope()``) on the arrays ``x`` (a dict), ``y``, ``w`` with
        global batches of ``batch_size``, shuffled each epoch from ``seed``; ``validation`` is (x, y, w). Returns
        the history as ``Model.fit`` does (lists per metric)."""
        import keras
        import tensorflow as tf

        strategy = self.strategy
        n = len(y)
        batches = _distributed_batches(strategy, x, y, w, batch_size, seed)
        steps = math.ceil(n / batch_size)
        sums = _batch_sums(model, label_smoothing)
        width = float(y.shape[1])
        last_rows = n - (steps - 1) * batch_size
        local_replicas = len(strategy.extended.worker_devices)
        replicas = float(strategy.num_replicas_in_sync)
        clipnorm = model.optimizer.clipnorm

        def replica_step(batch, global_rows):
            xb, yb, wb = batch
            with tf.GradientTape() as tape:
                loss_sum, correct, weight, size = sums(xb, yb, wb, True)
                # Keras' sum_over_batch_size over the global batch: the weighted sum over all its elements.
                loss = loss_sum / (global_rows * width)
            grads = tape.gradient(loss, model.trainable_variables)
            if clipnorm:
                # Clip the global batch's gradient, as one process clips it, not each replica's part: sum it here,
                # clip, and hand each replica its share (the optimizer's own clip is then a no-op, its sum exact).
                grads = tf.distribute.get_replica_context().all_reduce("SUM", grads)
                grads = [tf.clip_by_norm(g, clipnorm) / replicas for g in grads]
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables))  # sums across replicas
            return tf.stack([loss_sum, correct, weight, size])

        @tf.function
        def train_epoch(iterator):
            # A whole epoch in one call: one gradient all-reduce per step, and the metrics' sums reduced once.
            acc = tf.zeros([4])
            for i in tf.range(steps):
                rows = tf.where(i == steps - 1, last_rows, batch_size)
                out = strategy.run(replica_step, args=(next(iterator), tf.cast(rows, tf.float32)))
                acc += tf.add_n(list(strategy.experimental_local_results(out)))
            # acc holds this worker's replicas' sums; every local replica gets it, hence the division.
            return strategy.reduce("SUM", strategy.run(lambda a: a / local_replicas, args=(acc,)), axis=None)

        vx, vy, vw = validation
        val = tf.data.Dataset.from_tensor_slices((vx, vy, vw)).batch(max(batch_size, 256))

        @tf.function
        def val_step(xb, yb, wb):
            return sums(xb, yb, wb, False)

        return _run_epochs(model, keras.callbacks.CallbackList(callbacks, model=model, epochs=epochs, steps=steps,
                                                               verbose=0),
                           epochs, steps, lambda: train_epoch(batches),
                           lambda: (val_step(*batch) for batch in val))


def _batch_sums(model, label_smoothing: float):
    """``sums(x, y, w, training)``: a batch's summed loss, correct tokens, weight and size. The loss is per token,
    as the single-process fit's: with label smoothing the same smoothed cross-entropy."""
    import keras
    import tensorflow as tf

    from .trainer import smoothed_sparse_crossentropy

    loss_fn = (smoothed_sparse_crossentropy(label_smoothing) if label_smoothing
               else keras.losses.SparseCategoricalCrossentropy(reduction=None))

    def sums(xb, yb, wb, training: bool):
        probs = model(xb, training=training)
        per_token = loss_fn(yb, probs) * wb
        correct = tf.cast(tf.equal(tf.argmax(probs, -1, output_type=tf.int32), tf.cast(yb, tf.int32)),
                          tf.float32) * wb
        return tf.reduce_sum(per_token), tf.reduce_sum(correct), tf.reduce_sum(wb), tf.cast(tf.size(yb), tf.float32)

    return sums


def _distributed_batches(strategy, x, y, w, batch_size: int, seed: int):
    """One iterator over global batches for the whole run (a distributed iterator is slow to make): repeated,
    reshuffled each pass from ``seed``, sharded by data across the workers."""
    import tensorflow as tf

    data = (tf.data.Dataset.from_tensor_slices((x, y, w))
            .shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size).repeat())
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return iter(strategy.experimental_distribute_dataset(data.with_options(options)))


def _run_epochs(model, cbs, epochs: int, steps: int, train_epoch, val_sums) -> dict:
    """The epoch loop of ``fit``: each epoch's summed loss/accuracy/weight/size from ``train_epoch()`` and the
    validation batches' from ``val_sums()``, turned into the logs Keras' callbacks and history expect."""
    history: dict[str, list] = {}
    model.stop_training = False
    cbs.on_train_begin()
    for epoch in range(epochs):
        cbs.on_epoch_begin(epoch)
        totals = [float(v) for v in train_epoch()]
        log.debug("epoch %d: %d target tokens of %d padded positions in %d steps", epoch + 1, totals[2],
                  totals[3], steps)
        cbs.on_train_batch_end(steps - 1, {"loss": totals[0] / max(totals[3], 1.0)})  # once, at the end
        vt = [0.0, 0.0, 0.0, 0.0]
        for sums in val_sums():
            vt = [t + float(v) for t, v in zip(vt, sums)]
        logs = {"accuracy": totals[1] / max(totals[2], 1.0), "loss": totals[0] / max(totals[3], 1.0),
                "val_accuracy": vt[1] / max(vt[2], 1.0), "val_loss": vt[0] / max(vt[3], 1.0)}
        cbs.on_epoch_end(epoch, logs)
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        if model.stop_training:
            break
    cbs.on_train_end()
    return history


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise RunFolderError("--distribute multiworker needs TF_CONFIG: {\"cluster\": {\"worker\": [\"host:port\", "
                             "...]}, \"task\": {\"type\": \"worker\", \"index\": N}} (see docs/scale.md)")
    try:
        config = json.loads(raw)
        task = config["task"]
        workers = config["cluster"]
        assert isinstance(workers, dict) and task["type"] in workers and isinstance(task["index"], int)
        assert 0 <= task["index"] < len(workers[task["type"]])
    except (ValueError, KeyError, TypeError, AssertionError):
        raise RunFolderError(f"TF_CONFIG is not a cluster with this task in it: {raw[:200]}") from None
    return config

