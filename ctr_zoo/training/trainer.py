"""A resumable custom training loop for CTR models that output a click probability.

One step (a `tf.function`, optionally XLA-compiled) on a batch of B examples:

  p = model(x, training=True)                          # (B, 1)
  L = -mean(y log p + (1 - y) log(1 - p)) + sum(model.losses)
  g = dL/dtheta, clipped to global norm c when clipnorm = c > 0
  optimizer.apply_gradients(zip(g, model.trainable_variables))

The data loss is the model's `training_loss(x, y)` when it has one (every
`CTRModel`: mean binary cross-entropy, or a model's own, such as DCNv3's
Tri-BCE), else the binary cross-entropy above.

The optimizer is whatever the caller built (typically the split optimizer that
puts `model.embedding_variables` on sparse FTRL/AdaGrad and
`model.dense_variables` on Adam); the trainer only calls `apply_gradients`.

Validation and early stopping. Given validation data, `fit` scores it (exact
AUC and logloss) at the end of every epoch, or every `eval_every_steps` steps,
and once more at the end of training if the last step was not scored. The
monitor (FuxiCTR's convention, higher is better) is the validation AUC,
-logloss, or AUC - logloss. A score above the best so far is a new best: the
model's weights are written to `model_dir/checkpoints/best/` (outside the
rotation of `max_checkpoints`). After `patience` scores in a row without a new
best, training stops; `epochs` is then an upper bound. With `restore_best`
the model ends `fit` holding the best weights. The curve, the best score and
step, and the count of scores without improvement are part of the checkpoint.

Fault tolerance. The checkpoint holds the model, the optimizer (with its slot
variables), the global step, the data position (epoch, batches consumed in
that epoch), the early-stopping state and the state of every
`tf.random.Generator` behind the model's random layers (dropout). The training
data is a function `epoch -> dataset` that must return the same batches in the
same order for the same epoch (a shuffle seeded by the epoch) and can skip the
consumed batches of a resumed epoch, so with deterministic ops
(`tf.config.experimental.enable_op_determinism()`) it reaches bit-identical
weights and metrics.

- A non-finite loss stops the run (`NonFiniteLossError`) without saving. No
  checkpoint is written whose weights are not finite or whose model predicts a
  non-finite probability for the last training batch, so the last checkpoint
  on disk is the last good state.
- `restore` reads every tensor of a checkpoint (their checksums) before using
  it: a damaged one (truncated or missing data file, empty or corrupt index,
  flipped bytes, non-finite values) is skipped with a warning naming it, and
  the newest one that restores is used. A damaged `checkpoint` state file is
  rebuilt from the checkpoints on disk. `fit` removes the `*_temp` folders an
  interrupted write leaves behind.
- A full disk while saving raises `CheckpointWriteError` (an OSError) naming
  the path; the run resumes from its last checkpoint once space is freed.

The hot path has no per-step host work beyond calling the step: the step
records the first non-finite loss (its step, batch and value) in variables on
the device, and the loop reads that record only at log, evaluation and
checkpoint boundaries and before every save. A NaN therefore stops the run at
most `log_every_steps - 1` steps after it appears, reporting the step where
it appeared, and no checkpoint is ever written after it. The running
(display) AUC is updated from the batch of every log step only, outside the
step (and from the last batch of an epoch that had no log step).

Library code does not print: progress goes to `Callback`s (the CLI draws the
progress bar) and to absl logging.
"""

import dataclasses
import errno
import glob
import json
import math
import os
import re
import shutil
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

from absl import logging
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from ctr_zoo import checks
from ctr_zoo import metrics as metrics_lib

# Sub-folders of `model_dir` the trainer writes.
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"  # inside CHECKPOINT_DIR: the weights of the best validation score
TENSORBOARD_DIR = "tensorboard"

# Validation monitors, higher is better: name -> value of a metrics dict.
MONITORS = {
    "auc": lambda m: m["auc"],
    "logloss": lambda m: -m["logloss"],
    "auc-logloss": lambda m: m["auc"] - m["logloss"],
}

# --- distributed training (ctr_zoo.training.distributed reads these settings) ---
# trainer.distribute: one process ("none"), the GPUs of one machine ("mirrored"),
# synchronous data parallelism over TF_CONFIG's workers ("multi_worker") or
# parameter servers ("parameter_server").
DISTRIBUTE_MODES = ("none", "mirrored", "multi_worker", "parameter_server")
LR_SCALING_RULES = ("linear", "none")
# --- end distributed training ---

_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
_CKPT_INDEX = re.compile(r"ckpt-(\d+)\.index$")


class NonFiniteLossError(FloatingPointError):
  """The training loss (or the weights, or the predictions) became NaN or inf; nothing was saved."""


class CheckpointError(RuntimeError):
  """No checkpoint of a run directory can be restored (each one is damaged)."""


class CheckpointWriteError(OSError):
  """A checkpoint could not be written (e.g. the disk is full); the run can resume later."""


@dataclasses.dataclass
class TrainerConfig:
  """How to train: epochs, validation, checkpoint cadence, determinism and step options.

  Batch sizes are not here: the caller's `train_data` batches (the trainer
  steps through whatever batches it is given).

  Args:
    epochs: int. Passes over the training data (an upper bound when early
      stopping ends training sooner). Defaults to 1.
    max_steps: int. Stop after this many steps in total (0: no limit).
      Defaults to 0.
    checkpoint_every_steps: int. Save every this many steps (and at the end of
      every epoch). Defaults to 200.
    max_checkpoints: int. Checkpoints kept on disk (the best-validation
      weights are kept apart and not counted). Defaults to 3.
    log_every_steps: int. Callback / TensorBoard cadence. Defaults to 20.
    eval_every_steps: int. With validation data: score it every this many
      steps; 0 scores it at the end of every epoch. Defaults to 0.
    monitor: str. The validation score early stopping maximises: "auc",
      "logloss" (its negative) or "auc-logloss" (AUC - logloss, FuxiCTR's
      choice). Defaults to "auc".
    patience: int. Stop after this many validation scores in a row without a
      new best (0: never stop early). Defaults to 0.
    restore_best: bool. With validation data, end `fit` with the weights of
      the best validation score. Defaults to True.
    seed: int. Seed of the weights, the shuffles and the dropout RNG.
      Defaults to 0.
    deterministic: bool. Enable TensorFlow op determinism
      (`tf.config.experimental.enable_op_determinism()`, process-wide), which
      bit-identical resumes need. Defaults to True.
    jit_compile: bool. XLA-compile the train step. Defaults to False.
    clipnorm: float. Clip gradients to this global norm (0: off). Defaults to 0.
    running_auc_thresholds: int. Thresholds of the running (display-only)
      training AUC, estimated from the batch of every log step; reported
      metrics use the exact AUC. Defaults to 200.
    distribute: str. "none" (one process), "mirrored" (the local GPUs),
      "multi_worker" (synchronous, the workers of TF_CONFIG) or
      "parameter_server" (asynchronous workers, tables sharded over the ps
      tasks of TF_CONFIG); see `ctr_zoo.training.distributed`. Defaults to
      "none".
    min_shard_bytes: int. Parameter-server mode: a variable is split into at
      most one shard per ps task, each at least this many bytes (TF's
      `MinSizePartitioner`). Defaults to 262144 (256 KiB).
    lr_scaling: str. Synchronous modes: "linear" multiplies both learning
      rates by the number of replicas (global batch / per-replica batch),
      reached by a linear warm-up; "none" keeps them. Defaults to "linear".
    lr_warmup_steps: int. Steps of that warm-up (0: scaled from the first
      step). Defaults to 100.
  """
  epochs: int = 1
  max_steps: int = 0
  checkpoint_every_steps: int = 200
  max_checkpoints: int = 3
  log_every_steps: int = 20
  eval_every_steps: int = 0
  monitor: str = "auc"
  patience: int = 0
  restore_best: bool = True
  seed: int = 0
  deterministic: bool = True
  jit_compile: bool = False
  clipnorm: float = 0.0
  running_auc_thresholds: int = 200
  # Distributed training (ctr_zoo.training.distributed).
  distribute: str = "none"
  min_shard_bytes: int = 256 << 10
  lr_scaling: str = "linear"
  lr_warmup_steps: int = 100

  def __post_init__(self):
    for name in ("epochs", "checkpoint_every_steps", "max_checkpoints", "log_every_steps",
                 "running_auc_thresholds"):
      checks.positive_int(getattr(self, name), f"TrainerConfig.{name}")
    for name in ("max_steps", "seed", "eval_every_steps", "patience"):
      checks.positive_int(getattr(self, name), f"TrainerConfig.{name}", allow_zero=True)
    checks.choice(self.monitor, "TrainerConfig.monitor", tuple(MONITORS))
    checks.boolean(self.restore_best, "TrainerConfig.restore_best")
    checks.boolean(self.deterministic, "TrainerConfig.deterministic")
    checks.boolean(self.jit_compile, "TrainerConfig.jit_compile")
    checks.non_negative(self.clipnorm, "TrainerConfig.clipnorm")
    checks.choice(self.distribute, "TrainerConfig.distribute", DISTRIBUTE_MODES)
    checks.positive_int(self.min_shard_bytes, "TrainerConfig.min_shard_bytes")
    checks.choice(self.lr_scaling, "TrainerConfig.lr_scaling", LR_SCALING_RULES)
    checks.positive_int(self.lr_warmup_steps, "TrainerConfig.lr_warmup_steps", allow_zero=True)


class Callback:
  """Receives training progress; the CLI implements a progress bar with it.

  `logs` hold: step, epoch, batch (batches done in the epoch), num_batches
  (per epoch, or None when unknown), loss (last step), running_loss (mean
  over the steps since the epoch started or resumed), running_auc (over the
  log steps' batches since then; None before any), examples_per_sec.
  `on_evaluate` receives a validation score: step, epoch, auc, logloss,
  monitor (its value), best (True for a new best), best_step, bad_evals,
  patience, stop (early stopping ends training here) and epoch_end (the score
  of an epoch's end, sent before `on_epoch_end`).
  """

  def on_train_begin(self, logs: Dict) -> None:
    pass

  def on_epoch_begin(self, epoch: int, logs: Dict) -> None:
    pass

  def on_step_end(self, step: int, logs: Dict) -> None:
    pass

  def on_evaluate(self, step: int, logs: Dict) -> None:
    pass

  def on_epoch_end(self, epoch: int, logs: Dict) -> None:
    pass

  def on_train_end(self, logs: Dict) -> None:
    pass


def random_generators(model: tf.keras.Model) -> Dict[str, tf.random.Generator]:
  """The tf.random.Generator of every random layer (dropout) of `model`, by position.

  Generators exist only for layers built after
  `tf.keras.backend.experimental.enable_tf_random_generator()`; legacy
  stateful RNG ops (the Keras default) cannot be checkpointed (see
  `legacy_random_layers`).
  """
  out = {}
  for i, layer in enumerate(model._flatten_layers(include_self=False)):  # pylint: disable=protected-access
    rng = getattr(layer, "_random_generator", None)
    if rng is None or not hasattr(rng, "_maybe_init"):
      continue
    rng._maybe_init()  # pylint: disable=protected-access
    generator = getattr(rng, "_generator", None)
    if generator is not None:
      out[f"layer_{i}"] = generator
  return out


def legacy_random_layers(model: tf.keras.Model) -> List[str]:
  """Names of `model`'s random layers whose RNG state cannot be checkpointed."""
  out = []
  for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
    rng = getattr(layer, "_random_generator", None)
    if (rng is not None and getattr(rng, "_generator", None) is None
        and getattr(rng, "_rng_type", None) == "legacy_stateful"):
      out.append(layer.name)
  return out


def _labels_2d(labels):
  labels = tf.cast(labels, tf.float32)
  return tf.reshape(labels, (-1, 1))  # (B, 1)


def _first_line(error: BaseException, limit: int = 160) -> str:
  text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
  text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
  return text if len(text) <= limit else text[:limit - 3] + "..."


def checkpoint_problem(path: str) -> Optional[str]:
  """None if every tensor of checkpoint `path` reads back intact and finite, else why not.

  Reads the whole checkpoint (each tensor's checksum is verified on read):
  a truncated, missing or corrupt data file, an empty or corrupt index and
  flipped bytes are all found, as are NaN / inf values.
  """
  try:
    reader = tf.train.load_checkpoint(path)
    for key, dtype in sorted(reader.get_variable_to_dtype_map().items()):
      value = reader.get_tensor(key)
      if dtype.is_floating and not np.all(np.isfinite(value)):
        return f"{key} holds non-finite values"
  except (tf.errors.OpError, IndexError, ValueError, OSError) as e:
    return _first_line(e)
  return None


def is_disk_full(error: BaseException) -> bool:
  """True for the errors of a write to a full disk (or an exhausted quota)."""
  if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
    return True
  text = str(error)
  return "No space left on device" in text or "Disk quota exceeded" in text


def _step_of(path: str) -> int:
  m = re.search(r"ckpt-(\d+)$", path)
  return int(m.group(1)) if m else -1


class Trainer:
  """Trains, checkpoints, validates and evaluates one model.

  Args:
    model: tf.keras.Model. Maps a feature dict to click probabilities (B, 1).
    optimizer: a Keras optimizer (or a split/composite one) with
      `apply_gradients`.
    config: TrainerConfig. Defaults to TrainerConfig().
    model_dir: str or None. Where checkpoints (`model_dir/checkpoints`) and
      TensorBoard logs (`model_dir/tensorboard/<split>`) go; None trains
      without either. Defaults to None.
    callbacks: sequence of Callback. Defaults to ().

  Example:
    trainer = Trainer(model, optimizer, TrainerConfig(epochs=10, patience=2), "/tmp/run")
    trainer.fit(lambda epoch, skip: make_train_dataset(seed=epoch).skip(skip), valid_dataset)
    auc = trainer.evaluate(test_dataset, split="test")["auc"]  # the best epoch's weights
  """

  def __init__(self, model: tf.keras.Model, optimizer, config: Optional[TrainerConfig] = None,
               model_dir: Optional[str] = None, callbacks: Sequence[Callback] = ()):
    self.model = model
    self.optimizer = optimizer
    self.config = config or TrainerConfig()
    self.model_dir = os.path.normpath(model_dir) if model_dir else model_dir
    self.callbacks = list(callbacks)
    if self.config.deterministic:
      tf.config.experimental.enable_op_determinism()
    self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    self.batch_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="batch_in_epoch")
    self.examples_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="examples_seen")
    self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
    # Validation / early stopping: the best monitor value and its step (-1: none
    # yet), scores in a row without a new best, whether training stopped early,
    # the step last scored and the curve (JSON). Checkpointed.
    self.best_value = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="best_value")
    self.best_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_step")
    self.bad_evals = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_evals")
    self.stopped_early = tf.Variable(False, dtype=tf.bool, trainable=False, name="stopped_early")
    self.evaluated_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="evaluated_step")
    self._curve = tf.Variable("[]", dtype=tf.string, trainable=False, name="validation_curve")
    # The first non-finite loss since fit() started: step (0: none), batch, value. Not checkpointed.
    self._bad_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_step")
    self._bad_batch = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_batch")
    self._bad_loss = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="nonfinite_loss")
    self._running_auc = tf.keras.metrics.AUC(num_thresholds=self.config.running_auc_thresholds,
                                             name="running_auc")
    self._running_loss = tf.keras.metrics.Mean(name="running_loss")
    self._rng = random_generators(model)
    self._legacy_rng = legacy_random_layers(model)
    self.checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, global_step=self.global_step, epoch=self.epoch,
        batch_in_epoch=self.batch_in_epoch, examples_seen=self.examples_seen,
        train_seconds=self.train_seconds, rng=tf.train.Checkpoint(**self._rng),
        early_stopping=tf.train.Checkpoint(
            best_value=self.best_value, best_step=self.best_step, bad_evals=self.bad_evals,
            stopped_early=self.stopped_early, evaluated_step=self.evaluated_step,
            curve=self._curve))
    self._model_checkpoint = tf.train.Checkpoint(model=model)  # weights only (best, predict)
    self._restore_status = None
    self._best_weights = None  # the best weights in memory, without a model_dir
    self._last_features = None  # the last training batch: its predictions are checked at saves
    self._finite_fn = None
    self.manager = None
    self._writer = None
    if model_dir:
      self.manager = self._open_manager()
    self._train_step = tf.function(self._train_step_fn, jit_compile=self.config.jit_compile,
                                   reduce_retracing=True)
    self._predict_step = tf.function(self._predict_step_fn, reduce_retracing=True)

  # --- steps --------------------------------------------------------------
  def _train_step_fn(self, features, labels, with_probs=False):
    """One step; returns the loss, or (loss, probabilities (B, 1)) when `with_probs`."""
    labels = _labels_2d(labels)  # (B, 1)
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      if hasattr(self.model, "training_loss"):  # a CTRModel: its own loss (e.g. DCNv3's Tri-BCE)
        loss, probs = self.model.training_loss(features, labels)  # scalar, (B, 1)
      else:
        probs = self.model(features, training=True)  # (B, 1)
        loss = tf.reduce_mean(tf.keras.losses.binary_crossentropy(labels, probs))
      if self.model.losses:
        # Under a mixed policy, losses on activations are bfloat16: sum in float32.
        loss += tf.add_n([tf.cast(l, tf.float32) for l in self.model.losses])
    grads = tape.gradient(loss, variables)
    if self.config.clipnorm > 0:
      grads, _ = tf.clip_by_global_norm(grads, self.config.clipnorm)
    self.optimizer.apply_gradients(zip(grads, variables))
    self.global_step.assign_add(1)
    self.batch_in_epoch.assign_add(1)
    self.examples_seen.assign_add(tf.shape(labels, out_type=tf.int64)[0])
    self._running_loss.update_state(loss)
    first_bad = tf.logical_and(tf.equal(self._bad_step, 0),
                               tf.logical_not(tf.math.is_finite(loss)))  # on device, no sync
    self._bad_step.assign(tf.where(first_bad, self.global_step, self._bad_step))
    self._bad_batch.assign(tf.where(first_bad, self.batch_in_epoch, self._bad_batch))
    self._bad_loss.assign(tf.where(first_bad, tf.cast(loss, tf.float32), self._bad_loss))
    return (loss, probs) if with_probs else loss

  def _predict_step_fn(self, features):
    return tf.reshape(self.model(features, training=False), (-1,))  # (B,)

  @property
  def train_step(self):
    """The compiled train step `(features, labels, with_probs=False) -> loss`.

    The same `tf.function` `fit` calls (one optimizer update per call, the
    step counters advanced); `with_probs=True` also returns the probabilities
    (B, 1). For driving the step outside `fit`, e.g. to time it.
    """
    return self._train_step

  # --- checkpoints --------------------------------------------------------
  def _checkpoint_dir(self) -> str:
    return os.path.join(self.model_dir, CHECKPOINT_DIR)

  def _best_dir(self) -> str:
    return os.path.join(self.model_dir, CHECKPOINT_DIR, BEST_DIR)

  def _open_manager(self, latest: Optional[str] = None,
                    older: Sequence[str] = ()) -> tf.train.CheckpointManager:
    """The CheckpointManager of model_dir; rewrites a damaged (or given) state first.

    Args:
      latest: str or None. Make this the latest checkpoint of the state file,
        with `older` before it (after a fallback past damaged checkpoints).
      older: sequence of str.
    """
    directory = self._checkpoint_dir()
    if latest is None:
      try:
        return tf.train.CheckpointManager(self.checkpoint, directory,
                                          max_to_keep=self.config.max_checkpoints,
                                          step_counter=self.global_step)
      except ValueError as e:  # an empty or corrupt `checkpoint` state file
        found = self._checkpoints_on_disk()
        logging.warning("the checkpoint state file %s is damaged (%s): rebuilt from the %d "
                        "checkpoint(s) on disk", os.path.join(directory, "checkpoint"),
                        _first_line(e), len(found))
        if not found:
          os.remove(os.path.join(directory, "checkpoint"))
          return self._open_manager()
        latest, older = found[0], sorted(found[1:], key=_step_of)
    tf.compat.v1.train.update_checkpoint_state(
        directory, latest, all_model_checkpoint_paths=list(older) + [latest])
    return tf.train.CheckpointManager(self.checkpoint, directory,
                                      max_to_keep=self.config.max_checkpoints,
                                      step_counter=self.global_step)

  def _checkpoints_on_disk(self, directory: Optional[str] = None) -> List[str]:
    """Prefixes of the `ckpt-N.index` files in `directory`, newest (largest N) first."""
    directory = directory or self._checkpoint_dir()
    found = []
    for index in glob.glob(os.path.join(directory, "ckpt-*.index")):
      if _CKPT_INDEX.search(os.path.basename(index)):
        found.append(index[:-len(".index")])
    return sorted(found, key=_step_of, reverse=True)

  def _candidates(self) -> List[str]:
    """Checkpoints to restore, newest first: the state file's and any others on disk."""
    listed = list(self.manager.checkpoints) if self.manager is not None else []
    paths = {os.path.normpath(p) for p in listed + self._checkpoints_on_disk()}
    return sorted(paths, key=_step_of, reverse=True)

  def remove_partial_checkpoints(self) -> List[str]:
    """Deletes the `*_temp` folders an interrupted checkpoint write left; returns them."""
    if not self.model_dir:
      return []
    removed = []
    for directory in (self._checkpoint_dir(), self._best_dir()):
      for temp in sorted(glob.glob(os.path.join(directory, "*_temp"))):
        if os.path.isdir(temp):
          shutil.rmtree(temp, ignore_errors=True)
          removed.append(temp)
          logging.warning("removed %s: a partial checkpoint left by an interrupted write", temp)
    return removed

  def restore(self, expect_partial: bool = False) -> Optional[str]:
    """Restores the newest checkpoint of model_dir that is intact; returns its path.

    Damaged checkpoints (see `checkpoint_problem`) are skipped with one
    warning each, and the state file then names the one restored.

    Args:
      expect_partial: bool. For a caller that only predicts: checkpointed
        values nothing has created yet (optimizer slots, RNG states) are
        expected and not reported. Defaults to False.

    Raises:
      CheckpointError: checkpoints exist but none of them is intact.
    """
    if self.manager is None:
      return None
    skipped = []
    for path in self._candidates():
      problem = checkpoint_problem(path)
      if problem:
        logging.warning("checkpoint %s is damaged (%s): skipped, falling back to an older one",
                        path, problem)
        skipped.append(f"{os.path.basename(path)}: {problem}")
        continue
      status = self.checkpoint.restore(path).assert_existing_objects_matched()
      if expect_partial:
        status.expect_partial()
      self._restore_status = status
      if skipped:
        older = [p for p in self._candidates() if _step_of(p) < _step_of(path)]
        self.manager = self._open_manager(path, sorted(older, key=_step_of))
      logging.info("restored %s: step %d, epoch %d, batch %d", path, int(self.global_step),
                   int(self.epoch), int(self.batch_in_epoch))
      return path
    if skipped:
      raise CheckpointError(
          f"no checkpoint in {self._checkpoint_dir()} restores ({'; '.join(skipped)}); move "
          "that folder aside to train from the start")
    return None

  def restore_for_prediction(self) -> Optional[str]:
    """Loads the weights a caller that only predicts should use; returns their path.

    The best-validation weights (`checkpoints/best/`) when the run has them,
    else the newest intact checkpoint. Only the model is read: no optimizer
    slot or RNG state is created or reported missing.
    """
    if not self.model_dir:
      return None
    for path in self._checkpoints_on_disk(self._best_dir()) + self._candidates():
      problem = checkpoint_problem(path)
      if problem:
        logging.warning("checkpoint %s is damaged (%s): skipped", path, problem)
        continue
      status = self._model_checkpoint.read(path)
      status.expect_partial()
      status.assert_existing_objects_matched()
      return path
    return None

  def save(self) -> Optional[str]:
    """Writes a checkpoint of the whole training state; returns its path.

    Raises:
      NonFiniteLossError: a loss since fit() started was non-finite, a weight
        is, or the model predicts a non-finite probability for the last
        training batch (nothing is written).
      CheckpointWriteError: the disk is full (the partial write is removed).
    """
    self._raise_if_nonfinite()
    self._raise_if_nonfinite_state()
    if self.manager is None:
      return None
    step = int(self.global_step)
    try:
      return self.manager.save(checkpoint_number=self.global_step)
    except (tf.errors.OpError, OSError) as e:
      if not is_disk_full(e):
        raise
      self.remove_partial_checkpoints()
      raise CheckpointWriteError(
          errno.ENOSPC,
          f"no space left on device while writing checkpoint "
          f"{os.path.join(self._checkpoint_dir(), f'ckpt-{step}')}; free space and run the same "
          f"command again: it resumes from {self.latest_checkpoint or 'the start (none saved yet)'}"
      ) from None

  def _raise_if_nonfinite(self, epoch: Optional[int] = None) -> None:
    """Raises NonFiniteLossError if a step since fit() started had a non-finite loss."""
    step = int(self._bad_step)  # one host read, at boundaries only
    if not step:
      return
    epoch = int(self.epoch) if epoch is None else epoch
    raise NonFiniteLossError(
        f"training loss is {float(self._bad_loss)} at step {step} (epoch {epoch}, batch "
        f"{int(self._bad_batch)}); stopped without saving. {self._last_good()} "
        f"Lower the learning rate or set clipnorm.")

  def _last_good(self) -> str:
    return (f"The last good checkpoint is "
            f"{self.latest_checkpoint or '<none: no checkpoint was saved yet>'}.")

  def _raise_if_nonfinite_state(self) -> None:
    """Raises NonFiniteLossError if a weight, or a prediction on the last batch, is not finite."""
    if self._finite_fn is None:
      variables = [v for v in self.model.variables if v.dtype.is_floating]
      self._finite_fn = tf.function(lambda: tf.reduce_all(
          [tf.reduce_all(tf.math.is_finite(v)) for v in variables]))
    what = None
    if not bool(self._finite_fn()):
      bad = [v.name for v in self.model.variables
             if v.dtype.is_floating and not bool(tf.reduce_all(tf.math.is_finite(v)))]
      what = f"the weights {bad[:3]}{' ...' if len(bad) > 3 else ''} are not finite"
    elif self._last_features is not None:
      probs = self._predict_step(self._last_features)
      if not bool(tf.reduce_all(tf.math.is_finite(probs))):
        what = "the model predicts non-finite probabilities for the last training batch"
    if what:
      raise NonFiniteLossError(
          f"after step {int(self.global_step)} {what}; stopped without saving. "
          f"{self._last_good()} Lower the learning rate or set clipnorm.")

  @property
  def latest_checkpoint(self) -> Optional[str]:
    return self.manager.latest_checkpoint if self.manager is not None else None

  @property
  def best_checkpoint(self) -> Optional[str]:
    """The checkpoint of the best validation weights, if written."""
    if not self.model_dir:
      return None
    found = self._checkpoints_on_disk(self._best_dir())
    return found[0] if found else None

  def _save_best(self) -> None:
    """Keeps the current weights as the best: in checkpoints/best/ (or in memory)."""
    if not self.model_dir:
      self._best_weights = [v.numpy() for v in self.model.variables]
      return
    step = int(self.global_step)
    previous = self._checkpoints_on_disk(self._best_dir())
    try:
      self._model_checkpoint.write(os.path.join(self._best_dir(), f"ckpt-{step}"))
    except (tf.errors.OpError, OSError) as e:
      if not is_disk_full(e):
        raise
      self.remove_partial_checkpoints()
      raise CheckpointWriteError(
          errno.ENOSPC, f"no space left on device while writing {self._best_dir()}; free space "
          f"and run the same command again: it resumes from {self.latest_checkpoint}") from None
    for path in previous:
      if _step_of(path) != step:
        for file in glob.glob(path + ".*"):
          os.remove(file)

  def restore_best(self) -> Optional[str]:
    """Loads the best validation weights kept by `fit` into the model; returns where from."""
    step = int(self.best_step)
    if step < 0:
      return None
    if not self.model_dir:
      if self._best_weights is None:
        return None
      for variable, value in zip(self.model.variables, self._best_weights):
        variable.assign(value)
      return "<memory>"
    path = os.path.join(self._best_dir(), f"ckpt-{step}")
    problem = checkpoint_problem(path)
    if problem:
      logging.warning("the best checkpoint %s cannot be read (%s): keeping the last weights",
                      path, problem)
      return None
    status = self._model_checkpoint.read(path)
    status.expect_partial()
    status.assert_existing_objects_matched()
    return path

  # --- training -----------------------------------------------------------
  def write_scalars(self, split: str, values: Dict[str, float], step: int) -> None:
    """Writes the numeric entries of `values` as TensorBoard scalars of `split` at `step`.

    They go to `model_dir/tensorboard/<split>` (nothing without a model_dir);
    non-numeric entries are skipped.
    """
    if not self.model_dir:
      return
    if self._writer is None:
      self._writer = {}
    if split not in self._writer:
      self._writer[split] = tf.summary.create_file_writer(
          os.path.join(self.model_dir, TENSORBOARD_DIR, split))
    with self._writer[split].as_default(step=step):
      for name, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
          # tf.summary.write with the "scalars" plugin metadata is what
          # tf.summary.scalar writes, without needing the tensorboard package.
          tf.summary.write(name, tf.constant(float(value), tf.float32),
                           metadata=_SCALAR_METADATA.SerializeToString())
    self._writer[split].flush()

  def _notify(self, method: str, *args) -> None:
    for callback in self.callbacks:
      getattr(callback, method)(*args)

  @property
  def validation_curve(self) -> List[Dict]:
    """Every validation score so far: dicts of step, epoch, auc, logloss, monitor, best."""
    return json.loads(self._curve.numpy().decode())

  def _validate(self, valid_data, epoch: int, epoch_end: bool = False) -> bool:
    """Scores `valid_data`, updates the early-stopping state; True when training should stop."""
    cfg = self.config
    step = int(self.global_step)
    labels, preds = self.predict(valid_data() if callable(valid_data) else valid_data)
    if not np.all(np.isfinite(preds)):
      raise NonFiniteLossError(
          f"the model predicts non-finite probabilities for {int(np.sum(~np.isfinite(preds)))} "
          f"of {preds.size} validation rows after step {step}; stopped without saving. "
          f"{self._last_good()} Lower the learning rate or set clipnorm.")
    result = metrics_lib.evaluate_predictions(labels, preds)
    value = MONITORS[cfg.monitor](result)
    if math.isnan(value):
      raise ValueError(f"validation monitor {cfg.monitor!r} is undefined: "
                       f"{metrics_lib.single_class(labels) or 'NaN'} (set monitor='logloss' or "
                       "give validation data with clicks and non-clicks)")
    best = int(self.best_step) < 0 or value > float(self.best_value)
    if best:
      self._save_best()
      self.best_value.assign(value)
      self.best_step.assign(step)
      self.bad_evals.assign(0)
    else:
      self.bad_evals.assign_add(1)
    stop = bool(cfg.patience) and int(self.bad_evals) >= cfg.patience
    point = {"step": step, "epoch": epoch + 1, "auc": result["auc"],
             "logloss": result["logloss"], "monitor": value, "best": best}
    self._curve.assign(json.dumps(self.validation_curve + [point]))
    self.evaluated_step.assign(step)
    if stop:
      self.stopped_early.assign(True)
    self.write_scalars("valid", {"auc": result["auc"], "logloss": result["logloss"]}, step)
    self._notify("on_evaluate", step, {
        **point, "best_step": int(self.best_step), "best_value": float(self.best_value),
        "bad_evals": int(self.bad_evals), "patience": cfg.patience, "monitor_name": cfg.monitor,
        "stop": stop, "epoch_end": epoch_end})
    return stop

  def fit(self, train_data: Callable[[int, int], tf.data.Dataset],
          valid_data: Union[None, tf.data.Dataset, Callable[[], tf.data.Dataset]] = None
          ) -> Dict[str, object]:
    """Trains from the latest intact checkpoint (or from scratch) to the configured end.

    Args:
      train_data: callable. `train_data(epoch, skip_batches)` returns the
        (features, labels) batches of that epoch without its first
        `skip_batches` batches; the same batches every time it is called with
        the same epoch (e.g. `make_dataset(..., shuffle=True, seed=f(epoch),
        skip_batches=skip_batches)`).
      valid_data: tf.data.Dataset, a callable returning one, or None. The
        validation batches scored for early stopping. Defaults to None.

    Returns:
      A dict: steps, epochs, examples, train_seconds, examples_per_sec,
      final running_loss, resumed_from (checkpoint path or None); with
      validation data also validation (the curve), best_step, best_epoch,
      best_value, monitor, stopped_early and restored_best (path or None).

    Raises:
      NonFiniteLossError: the loss, the weights or the predictions became
        non-finite (nothing is saved).
      CheckpointWriteError: a checkpoint could not be written (disk full).
      ValueError: patience without validation data, or a validation monitor
        that is undefined (one label class).
    """
    cfg = self.config
    if cfg.patience and valid_data is None:
      raise ValueError("TrainerConfig.patience needs valid_data (early stopping scores it)")
    for name in self._legacy_rng:
      logging.warning("layer %s uses legacy stateful RNG ops: its random state is not "
                      "checkpointed (call enable_tf_random_generator() before building "
                      "the model for exact resumes)", name)
    self.remove_partial_checkpoints()
    resumed_from = self.restore()
    self._bad_step.assign(0)
    start_epoch = int(self.epoch)
    step = int(self.global_step)  # mirrored in Python: no variable read per step
    logs = {"step": step, "epoch": start_epoch, "resumed_from": resumed_from}
    self._notify("on_train_begin", dict(logs))
    last_loss = float("nan")
    validating = valid_data is not None
    eval_steps = cfg.eval_every_steps if validating else 0
    done = bool(self.stopped_early) or bool(cfg.max_steps and step >= cfg.max_steps)
    for epoch in range(start_epoch, cfg.epochs):
      if done:
        break
      skip = int(self.batch_in_epoch)
      if skip:
        logging.info("epoch %d: skipping %d batches already trained on", epoch, skip)
      dataset = train_data(epoch, skip)
      cardinality = int(dataset.cardinality())
      num_batches = cardinality + skip if cardinality >= 0 else None
      self._running_auc.reset_state()
      self._running_loss.reset_state()
      logged = False  # a log step updated the running AUC in this epoch
      self._notify("on_epoch_begin", epoch, {"epoch": epoch, "batch": skip,
                                             "num_batches": num_batches, "step": step})
      window_start, window_examples = time.perf_counter(), 0
      epoch_start_examples = int(self.examples_seen)
      seconds = 0.0  # wall time of this epoch's steps, input pipeline included
      t_prev = time.perf_counter()
      loss = probs = labels = None
      for features, labels in dataset:
        loss, probs = self._train_step(features, labels, True)
        self._last_features = features
        step += 1
        window_examples += int(labels.shape[0])
        t_now = time.perf_counter()
        seconds += t_now - t_prev
        t_prev = t_now
        save_now = step % cfg.checkpoint_every_steps == 0
        log_now = step % cfg.log_every_steps == 0
        eval_now = bool(eval_steps) and step % eval_steps == 0
        stop_now = bool(cfg.max_steps) and step >= cfg.max_steps
        if save_now or log_now or eval_now:
          self._raise_if_nonfinite(epoch)
        if eval_now:
          self.train_seconds.assign_add(seconds)
          seconds = 0.0
          if self._validate(valid_data, epoch):
            stop_now = True
            save_now = True
        if save_now:
          self.train_seconds.assign_add(seconds)
          seconds = 0.0
          self.save()
        if log_now:
          self._running_auc.update_state(_labels_2d(labels), probs)  # log steps only
          logged = True
          last_loss = float(loss)
          now = time.perf_counter()
          step_logs = self._step_logs(epoch, num_batches, last_loss,
                                      window_examples / max(now - window_start, 1e-9))
          window_start, window_examples = now, 0
          self.write_scalars("train", step_logs, step)
          self._notify("on_step_end", step, step_logs)
        if save_now or log_now or eval_now:
          t_prev = time.perf_counter()  # saves, scores, callbacks are not training time
        if stop_now:
          done = True
          break
      self.train_seconds.assign_add(seconds)
      self._raise_if_nonfinite(epoch)
      if loss is not None:
        last_loss = float(loss)
        if not logged:  # no log step in this epoch: show the last batch's AUC, not 0
          self._running_auc.update_state(_labels_2d(labels), probs)
          logged = True
      epoch_logs = self._step_logs(epoch, num_batches, last_loss, None, logged)
      epoch_logs["epoch_examples"] = int(self.examples_seen) - epoch_start_examples
      if not done:
        if validating and not eval_steps and self._validate(valid_data, epoch, epoch_end=True):
          done = True
        self.epoch.assign(epoch + 1)
        self.batch_in_epoch.assign(0)
      self.save()
      self._notify("on_epoch_end", epoch, epoch_logs)
    if validating and int(self.evaluated_step) != int(self.global_step):
      # The final weights were never scored (max_steps, or a cadence not
      # dividing the last step): score them so they can be the best.
      self._validate(valid_data, int(self.epoch) - (0 if int(self.batch_in_epoch) else 1))
      self.save()
    if self.model_dir and self.manager is not None and self.manager.latest_checkpoint is None:
      self.save()
    if self._restore_status is not None:
      # Values the loop never needed (e.g. the optimizer of a finished run)
      # are expected to stay unrestored: no warning when the status is deleted.
      self._restore_status.expect_partial()
    seconds = float(self.train_seconds)
    result = {
        "steps": int(self.global_step), "epochs": int(self.epoch),
        "examples": int(self.examples_seen), "train_seconds": seconds,
        "examples_per_sec": int(self.examples_seen) / seconds if seconds > 0 else float("nan"),
        "running_loss": float(self._running_loss.result()), "resumed_from": resumed_from,
    }
    if validating:
      curve = self.validation_curve
      best = [p for p in curve if p["step"] == int(self.best_step)]
      result.update(
          validation=curve, monitor=cfg.monitor, best_step=int(self.best_step),
          best_epoch=best[-1]["epoch"] if best else None,
          best_value=float(self.best_value) if best else None,
          stopped_early=bool(self.stopped_early), patience=cfg.patience,
          restored_best=self.restore_best() if cfg.restore_best else None)
    self._notify("on_train_end", dict(result))
    return result

  def _step_logs(self, epoch, num_batches, loss, examples_per_sec, logged=True) -> Dict:
    logs = {"step": int(self.global_step), "epoch": epoch, "batch": int(self.batch_in_epoch),
            "num_batches": num_batches, "loss": loss,
            "running_loss": float(self._running_loss.result()),
            "running_auc": float(self._running_auc.result()) if logged else None}
    if examples_per_sec is not None:
      logs["examples_per_sec"] = examples_per_sec
    return logs

  # --- evaluation ---------------------------------------------------------
  def predict(self, dataset: tf.data.Dataset):
    """Collects (labels, probabilities) as float64 NumPy arrays of shape (N,)."""
    labels, preds = [], []
    # One trace for every batch size: the dataset's element spec has batch dim None.
    predict_step = self._predict_step.get_concrete_function(dataset.element_spec[0])
    for features, y in dataset:
      preds.append(predict_step(features).numpy())
      labels.append(np.reshape(y.numpy(), (-1,)))
    if not preds:
      raise ValueError("evaluation dataset is empty")
    return (np.concatenate(labels).astype(np.float64),
            np.concatenate(preds).astype(np.float64))

  def evaluate(self, dataset: tf.data.Dataset, split: str = "valid") -> Dict[str, float]:
    """Exact AUC, logloss and CTRs of `dataset`; logged to TensorBoard under `split`."""
    labels, preds = self.predict(dataset)
    result = metrics_lib.evaluate_predictions(labels, preds)
    self.write_scalars(split, {"auc": result["auc"], "logloss": result["logloss"]},
                  int(self.global_step))
    logging.info("%s: %s", split, result)
    return result


def count_params(model: tf.keras.Model) -> int:
  """Number of scalar weights (trainable or not) of `model`."""
  return int(sum(int(np.prod(v.shape)) for v in model.weights))
