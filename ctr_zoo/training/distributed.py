r"""Training on several processes with tf.distribute: parameter servers or synchronous replicas.

There is no home-made transport: the modes are TensorFlow's strategies, the
cluster is the standard `TF_CONFIG`, and every task runs the same program.

parameter_server (`tf.distribute.ParameterServerStrategy`)
  Tasks: one chief (the coordinator: it schedules steps, evaluates and writes
  every file), W workers (run the steps) and P ps tasks (hold the variables).
  Workers and ps tasks run `serve`: a `tf.distribute.Server` that blocks.
  An embedding table of V rows of b bytes is split along its rows into
  min(P, V, floor(V b / min_shard_bytes)) shards (`TablePartitioner`, TF's
  `MinSizePartitioner` on the tables only), so a large table becomes a
  `ShardedVariable` with one shard on each ps task; smaller tables and every
  dense variable are placed whole, round-robin. A step on a
  worker: de-duplicate the batch's ids of each table, read those U rows from
  the shards that hold them (`FeatureEmbedding` / `gather_rows`), compute the
  gradient, and send U rows of gradient back; the optimizer's update runs on
  the ps that holds the shard (legacy Keras optimizers colocate it with the
  variable) and reads and writes only those rows and their slots. A table
  is never concatenated or densified by a step (AdaGrad's dense path for
  small tables is turned off); every optimizer slot is created beside its
  shard. AdaGrad and FTRL update a table on a ps with TF's fused sparse
  kernels, which hold the variable's lock, so concurrent workers never lose
  an update; GroupLassoFtrl has no such kernel and gathers, computes and
  scatters the rows (`ctr_zoo.optimizers.sparse_rows`), so two workers
  updating the same row at the same moment can lose one of the two updates
  (lock-free, "Hogwild!"-style asynchronous SGD).
  Steps are asynchronous: each applies its own batch's gradient (no learning
  rate scaling). Each worker reads its own part of the training split
  (`worker_input`).

multi_worker (`tf.distribute.MultiWorkerMirroredStrategy`), mirrored (`MirroredStrategy`)
  Synchronous data parallelism: every worker holds a full copy of every
  variable, initialised from the chief's values (the strategy broadcasts
  them), reads its own part of the training split, and the gradients are
  summed with collective all-reduce (tables' `IndexedSlices` by all-gather)
  before every worker applies the same update. With R replicas of per-replica
  batch b the global batch is R b, and each replica's loss is

      L_r = (data_r + weight_reg) / R + row_reg_r

  (data_r: the mean loss of its b examples; row_reg_r: the penalty on the
  embedding rows it looked up, a sum over looked-up rows; weight_reg: the
  kernel regularizers), so that sum_r grad L_r is the gradient of the same
  loss over the global batch in one process. Learning rates follow the
  linear scaling rule with warm-up (Goyal et al., "Accurate, Large Minibatch
  SGD", 2017): lr(t) = lr0 (1 + (R - 1) min(t, T) / T) with T =
  lr_warmup_steps, i.e. R times the configured rate after the warm-up
  (`lr_scaling="none"` keeps lr0; LAMB stays selectable as the dense
  optimizer for large batches). The first worker (or the chief) writes
  checkpoints; every worker restores the latest one, so a killed job started
  again resumes from it.

Checkpoints hold what `Trainer` checkpoints hold (model, optimizer with its
slots, global step, data position, examples, seconds; the RNG entry is empty:
distributed runs use Keras' stateless dropout seeds), so the run's evaluation,
a plain `Trainer.restore` or `plain_copy` read them in a single process. A
`ShardedVariable` is saved as one full tensor (its shards as slices), so a
checkpoint of P shards restores into an unsharded table, or another P.

Failures (parameter_server). A worker that dies is waited for by the
coordinator while the other workers take its steps; the step it was running
is re-run elsewhere (`ClusterCoordinator.schedule`: at least once), and when
it comes back (a restarted process with the same TF_CONFIG) it gets its data
part again. A ps task that dies loses the variables it held: the chief stops
with `ClusterFailureError` naming the last checkpoint; restart the ps and the
chief and the chief resumes from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf
from tf_keras.src.engine import base_layer_utils as tf_keras_utils  # pylint: disable=g-direct-tensorflow-import

from ctr_zoo import metrics as metrics_lib
from ctr_zoo import serialization
from ctr_zoo.layers import embedding as embedding_lib
from ctr_zoo.training import trainer as trainer_lib
from ctr_zoo.training import worker_input

MODES = trainer_lib.DISTRIBUTE_MODES
SYNC_MODES = ("mirrored", "multi_worker")
# The default smallest shard (TrainerConfig.min_shard_bytes): TF's MinSizePartitioner default.
DEFAULT_MIN_SHARD_BYTES = 256 << 10

# Rows of each step's batch a parameter-server worker returns to the chief for the
# display-only running AUC (the rest of the batch stays on the worker).
RUNNING_AUC_SAMPLE = 256

# Errors by which a cluster task is reported lost or its state gone.
_CLUSTER_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError,
                   tf.errors.CancelledError, tf.errors.NotFoundError,
                   tf.errors.FailedPreconditionError, tf.errors.InternalError)


class ClusterError(ValueError):
  """TF_CONFIG is missing or does not fit the distribute mode."""


class ClusterFailureError(RuntimeError):
  """A task of the cluster failed in a way training cannot survive (a ps task)."""


@dataclasses.dataclass(frozen=True)
class Cluster:
  """This task's place in the cluster of TF_CONFIG.

  Attributes:
    task_type: str. "chief", "worker", "ps" (or "" without TF_CONFIG).
    task_index: int.
    jobs: dict job name -> list of "host:port".
  """
  task_type: str
  task_index: int
  jobs: Dict[str, List[str]]

  @classmethod
  def from_env(cls, environ=None) -> "Cluster":
    """The cluster of $TF_CONFIG; ClusterError naming what is wrong with it."""
    text = (environ if environ is not None else os.environ).get("TF_CONFIG", "")
    if not text.strip():
      return cls("", 0, {})
    try:
      config = json.loads(text)
    except json.JSONDecodeError as e:
      raise ClusterError(f"TF_CONFIG is not JSON ({e}): {text[:200]!r}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
      raise ClusterError(f"TF_CONFIG needs a 'cluster' object, got {text[:200]!r}")
    jobs = {}
    for job, addresses in config["cluster"].items():
      if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise ClusterError(f"TF_CONFIG cluster.{job} must be a list of 'host:port', "
                           f"got {addresses!r}")
      jobs[job] = list(addresses)
    task = config.get("task") or {}
    task_type, task_index = task.get("type", ""), task.get("index", 0)
    if task_type not in jobs:
      raise ClusterError(f"TF_CONFIG task.type {task_type!r} is not a job of the cluster "
                         f"{sorted(jobs)}")
    if not isinstance(task_index, int) or not 0 <= task_index < len(jobs[task_type]):
      raise ClusterError(f"TF_CONFIG task.index {task_index!r} is out of range for job "
                         f"{task_type!r} of {len(jobs[task_type])} task(s)")
    return cls(task_type, task_index, jobs)

  @property
  def num_workers(self) -> int:
    return len(self.jobs.get("worker", []))

  @property
  def num_ps(self) -> int:
    return len(self.jobs.get("ps", []))

  @property
  def role(self) -> str:
    return f"{self.task_type}:{self.task_index}" if self.task_type else "local"

  @property
  def is_chief(self) -> bool:
    """The task that writes: the chief, or worker 0 of a cluster without one (or no cluster)."""
    if not self.task_type:
      return True
    if "chief" in self.jobs:
      return self.task_type == "chief"
    return self.task_type == "worker" and self.task_index == 0

  @property
  def is_server(self) -> bool:
    """A task that only serves (parameter-server training's workers and ps tasks)."""
    return self.task_type in ("worker", "ps") and "ps" in self.jobs

  def check(self, mode: str) -> "Cluster":
    """Raises ClusterError unless the cluster fits `mode`; returns self."""
    if mode == "parameter_server":
      if not self.task_type:
        raise ClusterError("trainer.distribute=parameter_server needs TF_CONFIG with a chief, "
                           "workers and ps tasks (see experiments/local_cluster.py)")
      missing = [job for job in ("chief", "worker", "ps") if not self.jobs.get(job)]
      if missing:
        raise ClusterError(f"trainer.distribute=parameter_server: TF_CONFIG has no {missing} "
                           f"task(s); cluster: {self.jobs}")
      if len(self.jobs["chief"]) != 1:
        raise ClusterError(f"TF_CONFIG must have one chief, got {self.jobs['chief']}")
    elif mode == "multi_worker":
      if self.num_ps:
        raise ClusterError("trainer.distribute=multi_worker takes no ps tasks; use "
                           "parameter_server, or drop cluster.ps from TF_CONFIG")
      if self.task_type and self.task_type not in ("chief", "worker"):
        raise ClusterError(f"trainer.distribute=multi_worker: task.type {self.task_type!r} "
                           "must be chief or worker")
    return self


class TablePartitioner:
  """Splits the embedding tables over the ps tasks; every other variable stays whole.

  A variable whose name matches `pattern` (ctr_zoo names its id-indexed
  tables ".../embedding/<table>", the pattern `SplitOptimizer` uses too) gets
  min(num_ps, rows, floor(bytes / min_shard_bytes)) shards along its rows
  (TF's `MinSizePartitioner`); dense kernels, read whole by every step, are
  placed whole (round-robin over the ps tasks). A partitioner sees only a
  shape and a dtype, so the name comes from a variable creator that
  `naming()` installs inside `strategy.scope()`.

  Args:
    min_shard_bytes: int. The smallest shard.
    num_ps: int. The most shards (one per ps task).
    pattern: str. Regex searched in variable names. Defaults to "embedding".
  """

  def __init__(self, min_shard_bytes: int, num_ps: int, pattern: str = "embedding"):
    self.min_size = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=min_shard_bytes, max_shards=num_ps)
    self.pattern = re.compile(pattern)
    self._creating = threading.local()

  def __call__(self, shape, dtype, axis=0):
    name = getattr(self._creating, "name", None) or ""
    if not self.pattern.search(name):
      return [1] * len(shape)
    return self.min_size(shape, dtype, axis)

  @contextlib.contextmanager
  def naming(self):
    """Records the name of each variable created inside (enter it inside strategy.scope())."""
    def creator(next_creator, **kwargs):
      previous, self._creating.name = getattr(self._creating, "name", None), kwargs.get("name")
      try:
        return next_creator(**kwargs)
      finally:
        self._creating.name = previous
    with tf.variable_creator_scope(creator):
      yield


def partitioner(min_shard_bytes: int, num_ps: int) -> TablePartitioner:
  """The embedding-table partitioner of parameter-server training."""
  return TablePartitioner(min_shard_bytes, num_ps)


def num_shards(shape: Sequence[int], bytes_per_value: int, min_shard_bytes: int,
               num_ps: int) -> int:
  """Shards a variable of `shape` gets: min(num_ps, rows, floor(size / min_shard_bytes)) >= 1."""
  size = int(np.prod(shape)) * bytes_per_value
  return max(1, min(num_ps, int(shape[0]), size // min_shard_bytes))


@contextlib.contextmanager
def scope(strategy: tf.distribute.Strategy):
  """`strategy.scope()`, plus the table naming its partitioner needs (build models in it)."""
  with strategy.scope():
    partition = getattr(strategy.extended, "_variable_partitioner", None)
    if isinstance(partition, TablePartitioner):
      with partition.naming():
        yield
    else:
      yield


def make_strategy(mode: str, cluster: Optional[Cluster] = None,
                  min_shard_bytes: int = DEFAULT_MIN_SHARD_BYTES) -> tf.distribute.Strategy:
  """The strategy of `mode` for this task (call once, before any other TF op)."""
  cluster = cluster or Cluster.from_env()
  cluster.check(mode)
  if mode == "none":
    return tf.distribute.get_strategy()
  if mode == "mirrored":
    return tf.distribute.MirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
  if mode == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
  if mode == "parameter_server":
    return tf.distribute.experimental.ParameterServerStrategy(
        resolver, variable_partitioner=partitioner(min_shard_bytes, cluster.num_ps))
  raise ValueError(f"distribute mode must be one of {MODES}, got {mode!r}")


def serve(cluster: Cluster) -> None:
  """Runs this worker or ps task of parameter-server training: serves until killed."""
  if not cluster.is_server:
    raise ClusterError(f"task {cluster.role} is not a parameter-server worker or ps task")
  server = tf.distribute.Server(
      tf.train.ClusterSpec(cluster.jobs), job_name=cluster.task_type,
      task_index=cluster.task_index, protocol="grpc", start=True)
  logging.info("%s serving at %s", cluster.role, server.target)
  server.join()


@serialization.register
class WarmupScaledRate(tf.keras.optimizers.schedules.LearningRateSchedule):
  """Linear scaling with linear warm-up (Goyal et al., 2017, Sec. 2.1-2.2).

      lr(t) = base (1 + (factor - 1) min(t, warmup_steps) / warmup_steps)

  (lr(t) = base * factor when warmup_steps = 0): `base` at step 0, `factor`
  times it from step `warmup_steps` on.

  Args:
    base: float. The configured (single-replica) learning rate.
    factor: float. The number of replicas (global batch / per-replica batch).
    warmup_steps: int. Steps to reach `base * factor`.
  """

  def __init__(self, base: float, factor: float, warmup_steps: int):
    self.base = float(base)
    self.factor = float(factor)
    self.warmup_steps = int(warmup_steps)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    if self.warmup_steps <= 0:
      return tf.constant(self.base * self.factor, tf.float32)
    ramp = tf.minimum(step, float(self.warmup_steps)) / float(self.warmup_steps)
    return self.base * (1.0 + (self.factor - 1.0) * ramp)

  def get_config(self):
    return {"base": self.base, "factor": self.factor, "warmup_steps": self.warmup_steps}


def scaled_learning_rate(base: float, factor: float, warmup_steps: int):
  """`base` when factor is 1, else the WarmupScaledRate schedule."""
  if factor == 1:
    return base
  return WarmupScaledRate(base, factor, warmup_steps)


def _loss_terms(model: tf.keras.Model) -> Tuple[list, list]:
  """(per-call losses, weight-regularization losses) of the model's last call.

  `model.losses` is their concatenation; this repeats its loop over the
  layers (tf-keras 2.21 `Layer.losses`) keeping the two apart: losses added
  in `call` (ctr_zoo's penalties on looked-up embedding rows, sums over the
  batch; `_eager_losses` inside a tf.function or eagerly, else `_losses`)
  and the weight regularizers (`_callable_losses`, functions of the variables
  only).
  """
  per_call, weights = [], []
  for layer in model._flatten_layers():  # pylint: disable=protected-access
    eager = layer._eager_losses  # pylint: disable=protected-access
    if eager:
      if eager[0] is not tf_keras_utils.REVIVED_LOSS_PLACEHOLDER:
        per_call.extend(eager)
    else:
      per_call.extend(layer._losses)  # pylint: disable=protected-access
    for regularizer in layer._callable_losses:  # pylint: disable=protected-access
      value = regularizer()
      if value is not None:
        weights.append(value)
  return per_call, weights


def _sum32(terms) -> tf.Tensor:
  return tf.add_n([tf.cast(t, tf.float32) for t in terms]) if terms else tf.constant(0.0)


def model_loss(model: tf.keras.Model, features, labels, num_replicas: int = 1):
  """(loss to differentiate, loss to report, probabilities (B, 1)) of one replica's batch.

  With one replica both losses are the `Trainer`'s: the data loss plus every
  model loss. With R replicas the differentiated loss is
  (data + weight_reg) / R + row_reg (see the module docstring), whose
  gradients summed over the replicas are those of the global batch.
  """
  labels = tf.reshape(tf.cast(labels, tf.float32), (-1, 1))  # (B, 1)
  if hasattr(model, "training_loss"):
    data, probs = model.training_loss(features, labels)
  else:
    probs = model(features, training=True)
    data = tf.reduce_mean(tf.keras.losses.binary_crossentropy(labels, probs))
  per_call, weights = _loss_terms(model)
  per_call, weights = _sum32(per_call), _sum32(weights)
  total = data + per_call + weights
  if num_replicas == 1:
    return total, total, probs
  return (data + weights) / num_replicas + per_call, total, probs


@dataclasses.dataclass
class _Position:
  step: int = 0
  examples: int = 0
  seconds: float = 0.0


class DistributedTrainer:
  """Trains a model built under `strategy.scope()`, in one of the distributed modes.

  The checkpoint is `Trainer`'s (same object names), written by the chief
  only; every task restores the latest one.

  Args:
    model: tf.keras.Model built under `strategy.scope()`.
    optimizer: a legacy Keras optimizer (or SplitOptimizer) built there too.
    strategy: the strategy of `config.distribute`.
    config: TrainerConfig.
    model_dir: str or None. The run directory (checkpoints/, tensorboard/).
    is_chief: bool. Whether this task writes. Defaults to True.
    callbacks: sequence of trainer.Callback (the chief's progress).
  """

  def __init__(self, model, optimizer, strategy, config: trainer_lib.TrainerConfig,
               model_dir: Optional[str], is_chief: bool = True,
               callbacks: Sequence[trainer_lib.Callback] = ()):
    self.model = model
    self.optimizer = optimizer
    self.strategy = strategy
    self.config = config
    self.model_dir = model_dir
    self.is_chief = is_chief
    self.callbacks = list(callbacks)
    # Counters live on this task (not under the strategy: they are set by the loop).
    self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    self.batch_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="batch_in_epoch")
    self.examples_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="examples_seen")
    self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
    self.checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, global_step=self.global_step, epoch=self.epoch,
        batch_in_epoch=self.batch_in_epoch, examples_seen=self.examples_seen,
        train_seconds=self.train_seconds, rng=tf.train.Checkpoint())
    self.manager = None
    if model_dir:
      self.manager = tf.train.CheckpointManager(
          self.checkpoint, os.path.join(model_dir, trainer_lib.CHECKPOINT_DIR),
          max_to_keep=config.max_checkpoints, step_counter=self.global_step)
    self._writer = None
    # Display only: over the last batch of each chunk of steps since the epoch began.
    self._running_auc = tf.keras.metrics.AUC(num_thresholds=config.running_auc_thresholds,
                                             name="running_auc")
    self.worker_steps: Dict[int, int] = {}

  # --- checkpoints --------------------------------------------------------
  @property
  def latest_checkpoint(self) -> Optional[str]:
    return self.manager.latest_checkpoint if self.manager is not None else None

  def restore(self) -> Optional[str]:
    """Restores the latest checkpoint of model_dir (every task); returns its path.

    Without one, the chief writes the initial state (the weights every replica
    starts from, the optimizer's slots at their initial values) as checkpoint
    0, and None is returned.
    """
    with self.strategy.scope():  # the slots, beside their variables
      self.optimizer._create_all_weights(self.model.trainable_variables)  # pylint: disable=protected-access
    path = self.latest_checkpoint
    if path is None:
      self.save()
      return None
    if path.endswith("-0"):  # only the initial state: a fresh start
      self.checkpoint.restore(path).assert_existing_objects_matched()
      return None
    self.checkpoint.restore(path).assert_existing_objects_matched()
    logging.info("restored %s: step %d", path, int(self.global_step))
    return path

  def save(self) -> Optional[str]:
    """Writes a checkpoint on the chief; other tasks write nothing."""
    if self.manager is None or not self.is_chief:
      return None
    return self.manager.save(checkpoint_number=self.global_step)

  def _set_position(self, position: _Position, steps_per_epoch: int) -> None:
    self.global_step.assign(position.step)
    self.epoch.assign(position.step // steps_per_epoch)
    self.batch_in_epoch.assign(position.step % steps_per_epoch)
    self.examples_seen.assign(position.examples)
    self.train_seconds.assign(position.seconds)

  def _notify(self, method: str, *args) -> None:
    if self.is_chief:
      for callback in self.callbacks:
        getattr(callback, method)(*args)

  def write_scalars(self, split: str, values: Dict[str, float], step: int) -> None:
    """TensorBoard scalars under model_dir/tensorboard/<split> (chief only)."""
    if not (self.model_dir and self.is_chief):
      return
    if self._writer is None:
      self._writer = {}
    if split not in self._writer:
      self._writer[split] = tf.summary.create_file_writer(
          os.path.join(self.model_dir, trainer_lib.TENSORBOARD_DIR, split))
    with self._writer[split].as_default(step=step):
      for name, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
          tf.summary.write(name, tf.constant(float(value), tf.float32),
                           metadata=trainer_lib._SCALAR_METADATA.SerializeToString())  # pylint: disable=protected-access
    self._writer[split].flush()

  def _raise_if_nonfinite(self, losses: np.ndarray, first_step: int) -> None:
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
      raise trainer_lib.NonFiniteLossError(
          f"training loss is {losses[bad[0]]} at step {first_step + int(bad[0]) + 1}; stopped "
          f"without saving. The last good checkpoint is "
          f"{self.latest_checkpoint or '<none: no checkpoint was saved yet>'}. Lower the "
          "learning rate or set clipnorm.")

  def _total_steps(self, steps_per_epoch: int) -> int:
    total = self.config.epochs * steps_per_epoch
    return min(total, self.config.max_steps) if self.config.max_steps else total

  def _next_stop(self, step: int, total: int, steps_per_epoch: int) -> int:
    """The next step at which the loop logs, saves or ends an epoch."""
    cfg = self.config
    stops = [total, (step // steps_per_epoch + 1) * steps_per_epoch,
             (step // cfg.log_every_steps + 1) * cfg.log_every_steps,
             (step // cfg.checkpoint_every_steps + 1) * cfg.checkpoint_every_steps]
    return min(stops)

  def _result(self, resumed_from, last_loss) -> Dict:
    seconds = float(self.train_seconds)
    return {"steps": int(self.global_step), "epochs": int(self.epoch),
            "examples": int(self.examples_seen), "train_seconds": seconds,
            "examples_per_sec": (int(self.examples_seen) / seconds if seconds > 0
                                 else float("nan")),
            "running_loss": last_loss, "resumed_from": resumed_from}

  def _boundary(self, position: _Position, steps_per_epoch: int, total: int, losses: list,
                window: Tuple[float, int], next_epoch_begins: bool) -> Tuple[float, int]:
    """Logs, saves and ends epochs at `position.step` (after a chunk of steps)."""
    cfg = self.config
    step = position.step
    epoch, batch = divmod(step, steps_per_epoch)
    if batch == 0 and step > 0:
      epoch, batch = epoch - 1, steps_per_epoch
    self._set_position(position, steps_per_epoch)
    running = float(np.mean(losses)) if losses else float("nan")
    now = time.perf_counter()
    logs = {"step": step, "epoch": epoch, "batch": batch, "num_batches": steps_per_epoch,
            "loss": float(losses[-1]) if losses else float("nan"), "running_loss": running,
            "running_auc": float(self._running_auc.result()),
            "examples_per_sec": window[1] / max(now - window[0], 1e-9)}
    end_of_epoch = step % steps_per_epoch == 0 or step == total
    if step % cfg.log_every_steps == 0 or end_of_epoch:
      self.write_scalars("train", logs, step)
    if step % cfg.log_every_steps == 0 and not end_of_epoch:
      self._notify("on_step_end", step, logs)
    if step % cfg.checkpoint_every_steps == 0 or end_of_epoch:
      self.save()
    if end_of_epoch:
      self._notify("on_epoch_end", epoch, logs)
      if next_epoch_begins and step < total:
        self._notify("on_epoch_begin", epoch + 1, {"epoch": epoch + 1, "batch": 0,
                                                   "num_batches": steps_per_epoch, "step": step})
    return now, 0

  # --- synchronous modes --------------------------------------------------
  def fit_sync(self, dataset_fn: Callable[[int, int], Callable], steps_per_epoch: int,
               global_batch: int) -> Dict:
    """Synchronous training (mirrored / multi_worker), the same loop on every worker.

    Args:
      dataset_fn: `dataset_fn(epoch, skip_batches)` returns the function given
        to `strategy.distribute_datasets_from_function` (input context ->
        per-replica batches of the epoch, the first `skip_batches` global
        batches skipped).
      steps_per_epoch: int. Global batches per epoch (the same on every worker).
      global_batch: int. Examples per step over all replicas.
    """
    strategy = self.strategy
    num_replicas = strategy.num_replicas_in_sync
    cfg = self.config
    model, optimizer = self.model, self.optimizer

    def replica_fn(features, labels):
      variables = model.trainable_variables
      with tf.GradientTape() as tape:
        loss, report, probs = model_loss(model, features, labels, num_replicas)
      grads = tape.gradient(loss, variables)
      # Sum over replicas here (not inside apply_gradients) so that clipping sees the
      # gradient of the global batch.
      grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
      if cfg.clipnorm > 0:
        grads, _ = tf.clip_by_global_norm(grads, cfg.clipnorm)
      optimizer.apply_gradients(zip(grads, variables), experimental_aggregate_gradients=False)
      return report, probs, tf.reshape(tf.cast(labels, tf.float32), (-1, 1))

    @tf.function
    def train_step(iterator):
      report, probs, labels = strategy.run(replica_fn, args=next(iterator))
      return strategy.reduce(tf.distribute.ReduceOp.MEAN, report, axis=None), probs, labels

    resumed_from = self.restore()
    position = _Position(int(self.global_step), int(self.examples_seen),
                         float(self.train_seconds))
    self._check_same_start(position.step)
    total = self._total_steps(steps_per_epoch)
    self._notify("on_train_begin", {"step": position.step, "epoch": int(self.epoch),
                                    "resumed_from": resumed_from})
    last_loss = float("nan")
    while position.step < total:
      epoch, skip = divmod(position.step, steps_per_epoch)
      dataset = strategy.distribute_datasets_from_function(dataset_fn(epoch, skip))
      iterator = iter(dataset)
      self._notify("on_epoch_begin", epoch, {"epoch": epoch, "batch": skip,
                                             "num_batches": steps_per_epoch,
                                             "step": position.step})
      window = (time.perf_counter(), 0)
      self._running_auc.reset_state()
      epoch_end = min(total, (epoch + 1) * steps_per_epoch)
      while position.step < epoch_end:
        stop = self._next_stop(position.step, total, steps_per_epoch)
        start = time.perf_counter()
        outputs = [train_step(iterator) for _ in range(stop - position.step)]
        losses = np.array([float(loss) for loss, _, _ in outputs])  # host reads per chunk
        self._raise_if_nonfinite(losses, position.step)
        _, probs, labels = outputs[-1]
        self._running_auc.update_state(strategy.experimental_local_results(labels)[0],
                                       strategy.experimental_local_results(probs)[0])
        position.seconds += time.perf_counter() - start
        position.examples += len(losses) * global_batch
        position.step = stop
        last_loss = float(losses[-1])
        window = (window[0], window[1] + len(losses) * global_batch)
        window = self._boundary(position, steps_per_epoch, total, list(losses), window, False)
    self._set_position(position, steps_per_epoch)
    result = self._result(resumed_from, last_loss)
    result.update(replicas=num_replicas, global_batch=global_batch)
    self._notify("on_train_end", dict(result))
    return result

  def _check_same_start(self, step: int) -> None:
    """Raises ClusterError unless every replica restored the same step (a shared model_dir)."""
    strategy = self.strategy

    @tf.function
    def moments():
      def fn():
        s = tf.constant(float(step), tf.float64)
        return tf.stack([s, s * s])
      return strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(fn), axis=None)

    mean, mean_square = moments().numpy()
    if mean_square - mean * mean > 0.25:
      raise ClusterError(
          f"the workers restored different checkpoints (this one step {step}, mean {mean:g}): "
          "every worker must see the chief's model_dir (shared storage)")

  # --- parameter servers --------------------------------------------------
  def fit_parameter_server(self, coordinator, per_worker_iterator, steps_per_epoch: int,
                           batch_size: int) -> Dict:
    """Asynchronous training: the chief schedules steps on the workers.

    Args:
      coordinator: the `ClusterCoordinator` of the strategy.
      per_worker_iterator: from `per_worker_iterators` (batches and the part index).
      steps_per_epoch: int. Steps (batches) per epoch.
      batch_size: int. Examples per step.
    """
    strategy = self.strategy
    cfg = self.config
    model, optimizer = self.model, self.optimizer

    def replica_fn(features, labels, part):
      variables = model.trainable_variables
      with tf.GradientTape() as tape:
        loss, report, probs = model_loss(model, features, labels, 1)
      grads = tape.gradient(loss, variables)
      if cfg.clipnorm > 0:
        grads, _ = tf.clip_by_global_norm(grads, cfg.clipnorm)
      optimizer.apply_gradients(zip(grads, variables))
      # The first rows of the batch, for the chief's display-only running AUC.
      sample = RUNNING_AUC_SAMPLE
      return report, part, probs[:sample], tf.reshape(tf.cast(labels, tf.float32), (-1, 1))[:sample]

    @tf.function
    def worker_step(iterator):
      return strategy.run(replica_fn, args=next(iterator))

    resumed_from = self.restore()
    position = _Position(int(self.global_step), int(self.examples_seen),
                         float(self.train_seconds))
    total = self._total_steps(steps_per_epoch)
    epoch, skip = divmod(position.step, steps_per_epoch)
    self._notify("on_train_begin", {"step": position.step, "epoch": epoch,
                                    "resumed_from": resumed_from})
    self._notify("on_epoch_begin", epoch, {"epoch": epoch, "batch": skip,
                                           "num_batches": steps_per_epoch,
                                           "step": position.step})
    last_loss = float("nan")
    window = (time.perf_counter(), 0)
    while position.step < total:
      stop = self._next_stop(position.step, total, steps_per_epoch)
      start = time.perf_counter()
      with self._cluster_failures(position.step):
        with strategy.scope():
          results = [coordinator.schedule(worker_step, args=(per_worker_iterator,))
                     for _ in range(stop - position.step)]
        coordinator.join()
        fetched = [r.fetch() for r in results]
      losses = np.array([float(out[0]) for out in fetched])
      for out in fetched:
        self.worker_steps[int(out[1])] = self.worker_steps.get(int(out[1]), 0) + 1
      self._raise_if_nonfinite(losses, position.step)
      if position.step // steps_per_epoch != stop // steps_per_epoch:
        self._running_auc.reset_state()
      self._running_auc.update_state(fetched[-1][3], fetched[-1][2])
      position.seconds += time.perf_counter() - start
      position.examples += len(losses) * batch_size
      position.step = stop
      last_loss = float(losses[-1])
      window = (window[0], window[1] + len(losses) * batch_size)
      with self._cluster_failures(position.step):  # the checkpoint reads every ps
        window = self._boundary(position, steps_per_epoch, total, list(losses), window, True)
    self._set_position(position, steps_per_epoch)
    result = self._result(resumed_from, last_loss)
    result["steps_by_worker_part"] = {str(k): v for k, v in sorted(self.worker_steps.items())}
    self._notify("on_train_end", dict(result))
    return result

  @contextlib.contextmanager
  def _cluster_failures(self, step: int):
    """Turns a lost task's error into ClusterFailureError naming it and the last checkpoint."""
    try:
      yield
    except _CLUSTER_ERRORS as e:
      text = str(e).strip()
      tasks = sorted(set(re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", text)))
      lost = ", ".join(f"{job}:{index}" for job, index in tasks) or "a task"
      first = text.splitlines()[0] if text else type(e).__name__
      raise ClusterFailureError(
          f"parameter-server training stopped near step {step}: {lost} failed "
          f"({type(e).__name__}: {first}). A ps task holds the only copy of its variables: "
          f"restart the cluster and the chief resumes from "
          f"{self.latest_checkpoint or '<no checkpoint yet>'}") from e

  # --- evaluation ---------------------------------------------------------
  def predict(self, dataset: tf.data.Dataset):
    """(labels, probabilities) float64 (N,) of a local dataset, computed by this task.

    Under parameter servers the chief reads the touched rows and the dense
    variables from the ps tasks.
    """
    return predict(self.model, dataset)

  def evaluate(self, dataset: tf.data.Dataset, split: str = "valid") -> Dict[str, float]:
    labels, preds = self.predict(dataset)
    result = metrics_lib.evaluate_predictions(labels, preds)
    self.write_scalars(split, {"auc": result["auc"], "logloss": result["logloss"]},
                       int(self.global_step))
    return result


def barrier(strategy: tf.distribute.Strategy) -> None:
  """Returns when every replica of a synchronous strategy has called it (an all-reduce)."""
  @tf.function
  def all_reduce():
    return strategy.reduce(tf.distribute.ReduceOp.SUM,
                           strategy.run(lambda: tf.constant(1.0)), axis=None)
  all_reduce()


def predict(model: tf.keras.Model, dataset: tf.data.Dataset):
  """(labels, probabilities) as float64 (N,) arrays of (features, labels) batches.

  One compiled step for every batch size (as `Trainer.predict`).
  """
  step = tf.function(lambda features: tf.reshape(model(features, training=False), (-1,)))
  step = step.get_concrete_function(dataset.element_spec[0])
  labels, preds = [], []
  for features, y in dataset:
    preds.append(step(features).numpy())
    labels.append(np.reshape(y.numpy(), (-1,)))
  if not preds:
    raise ValueError("evaluation dataset is empty")
  return (np.concatenate(labels).astype(np.float64),
          np.concatenate(preds).astype(np.float64))


def per_worker_iterators(coordinator, dataset_fns: Sequence[Callable[[], tf.data.Dataset]]):
  """Iterators of a different dataset on each worker (worker i: `dataset_fns[i]()`).

  `ClusterCoordinator.create_per_worker_dataset` builds the same dataset
  function on every worker (TF 2.21 documents that a custom `PerWorkerValues`
  cannot be made), so each worker would read the whole split. This does
  what its `__iter__` does (`values.PerWorkerDatasetFromDatasetFunction`),
  with one function per worker: each iterator is a resource of its worker,
  rebuilt by the coordinator on that worker when it restarts. Depends on
  `ClusterCoordinator` internals of TF 2.21 (`_cluster.workers`,
  `Worker.create_resource`, `RemoteValue._type_spec`).

  Returns:
    A PerWorkerValues of iterators, to pass to `coordinator.schedule`.
  """
  from tensorflow.python.distribute.coordinator import values as coordinator_values  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top
  workers = coordinator._cluster.workers  # pylint: disable=protected-access
  if len(dataset_fns) != len(workers):
    raise ValueError(f"need one dataset function per worker ({len(workers)}), got "
                     f"{len(dataset_fns)}")
  iterators = []
  element_spec = None
  for worker, dataset_fn in zip(workers, dataset_fns):
    make = tf.function(lambda fn=dataset_fn: iter(fn()))
    spec = make.get_concrete_function().structured_outputs.element_spec
    element_spec = element_spec or spec
    if spec != element_spec:
      raise ValueError(f"worker datasets differ in element spec: {spec} vs {element_spec}")
    remote = worker.create_resource(make)
    remote._type_spec = tf.data.IteratorSpec(spec)  # pylint: disable=protected-access
    iterators.append(remote)
  return coordinator_values.PerWorkerValues(tuple(iterators))


def shard_report(model: tf.keras.Model) -> List[Dict]:
  """Per embedding table of `model`: name, full shape and (device, shape) of each shard."""
  out = []
  for layer in model._flatten_layers():  # pylint: disable=protected-access
    if not isinstance(layer, embedding_lib.FeatureEmbedding) or not layer.built:
      continue
    tables = [layer.fused_table] if layer.fused else list(layer.table_variables)
    for table in tables:
      parts = embedding_lib.table_parts(table)
      out.append({"table": parts[0].name.split(":")[0].rsplit("/part_", 1)[0],
                  "shape": [int(x) for x in table.shape],
                  "shards": [{"device": p.device, "shape": [int(x) for x in p.shape]}
                             for p in parts]})
  return out


def plain_copy(build_model: Callable[[], tf.keras.Model], checkpoint_path: str) -> tf.keras.Model:
  """A single-process copy of a distributed run's model, from one of its checkpoints.

  `build_model()` is called outside any strategy, so every variable is a
  plain local one; sharded tables restore into whole tables (a
  `ShardedVariable` is checkpointed as slices of the full tensor).
  """
  if tf.distribute.has_strategy():
    raise RuntimeError("plain_copy must be called outside strategy.scope()")
  model = build_model()
  tf.train.Checkpoint(model=model).read(checkpoint_path).expect_partial()
  return model
