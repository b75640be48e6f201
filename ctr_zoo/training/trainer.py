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

Fault tolerance. The checkpoint holds the model, the optimizer (with its slot
variables), the global step, the data position (epoch, batches consumed in
that epoch) and the state of every `tf.random.Generator` behind the model's
random layers (dropout). The training data is a function `epoch -> dataset`
that must return the same batches in the same order for the same epoch (a
shuffle seeded by the epoch) and can skip the consumed batches of a resumed
epoch, so with deterministic ops (`tf.config.experimental.
enable_op_determinism()`) it reaches bit-identical weights and metrics. A
non-finite loss stops the run (`NonFiniteLossError`) without saving, so the
last checkpoint on disk is the last good state.

The hot path has no per-step host work beyond calling the step: the step
records the first non-finite loss (its step, batch and value) in variables on
the device, and the loop reads that record only at log and checkpoint
boundaries and before every save. A NaN therefore stops the run at most
`log_every_steps - 1` steps after it appears, reporting the step where it
appeared, and no checkpoint is ever written after it. The running (display)
AUC is updated from the batch of every log step only, outside the step.

Library code does not print: progress goes to `Callback`s (the CLI draws the
progress bar) and to absl logging.
"""

import dataclasses
import os
import time
from typing import Callable, Dict, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from ctr_zoo import checks
from ctr_zoo import metrics as metrics_lib

# Sub-folders of `model_dir` the trainer writes.
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"


# --- distributed training (ctr_zoo.training.distributed reads these settings) ---
# trainer.distribute: one process ("none"), the GPUs of one machine ("mirrored"),
# synchronous data parallelism over TF_CONFIG's workers ("multi_worker") or
# parameter servers ("parameter_server").
DISTRIBUTE_MODES = ("none", "mirrored", "multi_worker", "parameter_server")
LR_SCALING_RULES = ("linear", "none")
# --- end distributed training ---

_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or inf; the run stopped before saving."""


@dataclasses.dataclass
class TrainerConfig:
  """How to train: epochs, checkpoint cadence, determinism and step options.

  Batch sizes are not here: the caller's `train_data` batches (the trainer
  steps through whatever batches it is given).

  Args:
    epochs: int. Passes over the training data. Defaults to 1.
    max_steps: int. Stop after this many steps in total (0: no limit).
      Defaults to 0.
    checkpoint_every_steps: int. Save every this many steps (and at the end of
      every epoch). Defaults to 200.
    max_checkpoints: int. Checkpoints kept on disk. Defaults to 3.
    log_every_steps: int. Callback / TensorBoard cadence. Defaults to 20.
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
    checks.positive_int(self.max_steps, "TrainerConfig.max_steps", allow_zero=True)
    checks.positive_int(self.seed, "TrainerConfig.seed", allow_zero=True)
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
  log steps' batches since then), examples_per_sec.
  """

  def on_train_begin(self, logs: Dict) -> None:
    pass

  def on_epoch_begin(self, epoch: int, logs: Dict) -> None:
    pass

  def on_step_end(self, step: int, logs: Dict) -> None:
    pass

  def on_epoch_end(self, epoch: int, logs: Dict) -> None:
    pass

  def on_train_end(self, logs: Dict) -> None:
    pass


def random_generators(model: tf.keras.Model) -> Dict[str, tf.random.Generator]:
  """The tf.random.Generator of every random layer (dropout) of `model`, by position.

  Generators exist only for layers built after
  `tf.keras.backend.experimental.enable_tf_random_generator()`; legacy
  stateful RNG ops (the Keras default) cannot be checkpointed.
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
    elif getattr(rng, "_rng_type", None) == "legacy_stateful":
      logging.warning("layer %s uses legacy stateful RNG ops: its random state is not "
                      "checkpointed (call enable_tf_random_generator() before building "
                      "the model for exact resumes)", layer.name)
  return out


def _labels_2d(labels):
  labels = tf.cast(labels, tf.float32)
  return tf.reshape(labels, (-1, 1))  # (B, 1)


class Trainer:
  """Trains, checkpoints and evaluates one model.

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
    trainer = Trainer(model, optimizer, TrainerConfig(epochs=2), "/tmp/run")
    trainer.fit(lambda epoch, skip: make_train_dataset(seed=epoch).skip(skip))
    auc = trainer.evaluate(valid_dataset)["auc"]
  """

  def __init__(self, model: tf.keras.Model, optimizer, config: Optional[TrainerConfig] = None,
               model_dir: Optional[str] = None, callbacks: Sequence[Callback] = ()):
    self.model = model
    self.optimizer = optimizer
    self.config = config or TrainerConfig()
    self.model_dir = model_dir
    self.callbacks = list(callbacks)
    if self.config.deterministic:
      tf.config.experimental.enable_op_determinism()
    self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    self.batch_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="batch_in_epoch")
    self.examples_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="examples_seen")
    self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
    # The first non-finite loss since fit() started: step (0: none), batch, value. Not checkpointed.
    self._bad_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_step")
    self._bad_batch = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_batch")
    self._bad_loss = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="nonfinite_loss")
    self._running_auc = tf.keras.metrics.AUC(num_thresholds=self.config.running_auc_thresholds,
                                             name="running_auc")
    self._running_loss = tf.keras.metrics.Mean(name="running_loss")
    self._rng = random_generators(model)
    self.checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, global_step=self.global_step, epoch=self.epoch,
        batch_in_epoch=self.batch_in_epoch, examples_seen=self.examples_seen,
        train_seconds=self.train_seconds, rng=tf.train.Checkpoint(**self._rng))
    self.manager = None
    self._writer = None
    if model_dir:
      self.manager = tf.train.CheckpointManager(
          self.checkpoint, os.path.join(model_dir, CHECKPOINT_DIR),
          max_to_keep=self.config.max_checkpoints, step_counter=self.global_step)
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
  def restore(self, expect_partial: bool = False) -> Optional[str]:
    """Restores the latest checkpoint of model_dir, if any; returns its path.

    Args:
      expect_partial: bool. For a caller that only predicts: checkpointed
        values nothing has created yet (optimizer slots, RNG states) are
        expected and not reported. Defaults to False.
    """
    if self.manager is None or self.manager.latest_checkpoint is None:
      return None
    path = self.manager.latest_checkpoint
    status = self.checkpoint.restore(path).assert_existing_objects_matched()
    if expect_partial:
      status.expect_partial()
    logging.info("restored %s: step %d, epoch %d, batch %d", path, int(self.global_step),
                 int(self.epoch), int(self.batch_in_epoch))
    return path

  def save(self) -> Optional[str]:
    """Writes a checkpoint; raises NonFiniteLossError instead if a loss was non-finite."""
    self._raise_if_nonfinite()
    if self.manager is None:
      return None
    return self.manager.save(checkpoint_number=self.global_step)

  def _raise_if_nonfinite(self, epoch: Optional[int] = None) -> None:
    """Raises NonFiniteLossError if a step since fit() started had a non-finite loss."""
    step = int(self._bad_step)  # one host read, at boundaries only
    if not step:
      return
    epoch = int(self.epoch) if epoch is None else epoch
    raise NonFiniteLossError(
        f"training loss is {float(self._bad_loss)} at step {step} (epoch {epoch}, batch "
        f"{int(self._bad_batch)}); stopped without saving. The last good "
        f"checkpoint is {self.latest_checkpoint or '<none: no checkpoint was saved yet>'}. "
        f"Lower the learning rate or set clipnorm.")

  @property
  def latest_checkpoint(self) -> Optional[str]:
    return self.manager.latest_checkpoint if self.manager is not None else None

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

  def fit(self, train_data: Callable[[int, int], tf.data.Dataset]) -> Dict[str, float]:
    """Trains from the latest checkpoint (or from scratch) to the configured end.

    Args:
      train_data: callable. `train_data(epoch, skip_batches)` returns the
        (features, labels) batches of that epoch without its first
        `skip_batches` batches; the same batches every time it is called with
        the same epoch (e.g. `make_dataset(..., shuffle=True, seed=f(epoch),
        skip_batches=skip_batches)`).

    Returns:
      A dict: steps, epochs, examples, train_seconds, examples_per_sec,
      final running_loss and resumed_from (checkpoint path or None).

    Raises:
      NonFiniteLossError: the loss became NaN or inf (nothing is saved).
    """
    cfg = self.config
    resumed_from = self.restore()
    self._bad_step.assign(0)
    start_epoch = int(self.epoch)
    step = int(self.global_step)  # mirrored in Python: no variable read per step
    logs = {"step": step, "epoch": start_epoch, "resumed_from": resumed_from}
    self._notify("on_train_begin", dict(logs))
    last_loss = float("nan")
    done = cfg.max_steps and step >= cfg.max_steps
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
      self._notify("on_epoch_begin", epoch, {"epoch": epoch, "batch": skip,
                                             "num_batches": num_batches, "step": step})
      window_start, window_examples = time.perf_counter(), 0
      epoch_start_examples = int(self.examples_seen)
      seconds = 0.0  # wall time of this epoch's steps, input pipeline included
      t_prev = time.perf_counter()
      loss = None
      for features, labels in dataset:
        loss, probs = self._train_step(features, labels, True)
        step += 1
        window_examples += int(labels.shape[0])
        t_now = time.perf_counter()
        seconds += t_now - t_prev
        t_prev = t_now
        save_now = step % cfg.checkpoint_every_steps == 0
        log_now = step % cfg.log_every_steps == 0
        stop_now = bool(cfg.max_steps) and step >= cfg.max_steps
        if save_now or log_now:
          self._raise_if_nonfinite(epoch)
        if save_now:
          self.train_seconds.assign_add(seconds)
          seconds = 0.0
          self.save()
          t_prev = time.perf_counter()  # writing checkpoints is not training time
        if log_now:
          self._running_auc.update_state(_labels_2d(labels), probs)  # log steps only
          last_loss = float(loss)
          now = time.perf_counter()
          step_logs = self._step_logs(epoch, num_batches, last_loss,
                                      window_examples / max(now - window_start, 1e-9))
          window_start, window_examples = now, 0
          self.write_scalars("train", step_logs, step)
          self._notify("on_step_end", step, step_logs)
          t_prev = time.perf_counter()  # callbacks and summaries are not training time
        if stop_now:
          done = True
          break
      self.train_seconds.assign_add(seconds)
      self._raise_if_nonfinite(epoch)
      if loss is not None:
        last_loss = float(loss)
      epoch_logs = self._step_logs(epoch, num_batches, last_loss, None)
      epoch_logs["epoch_examples"] = int(self.examples_seen) - epoch_start_examples
      if not done:
        self.epoch.assign(epoch + 1)
        self.batch_in_epoch.assign(0)
      self.save()
      self._notify("on_epoch_end", epoch, epoch_logs)
    if self.model_dir and self.manager is not None and self.manager.latest_checkpoint is None:
      self.save()
    seconds = float(self.train_seconds)
    result = {
        "steps": int(self.global_step), "epochs": int(self.epoch),
        "examples": int(self.examples_seen), "train_seconds": seconds,
        "examples_per_sec": int(self.examples_seen) / seconds if seconds > 0 else float("nan"),
        "running_loss": float(self._running_loss.result()), "resumed_from": resumed_from,
    }
    self._notify("on_train_end", dict(result))
    return result

  def _step_logs(self, epoch, num_batches, loss, examples_per_sec) -> Dict:
    logs = {"step": int(self.global_step), "epoch": epoch, "batch": int(self.batch_in_epoch),
            "num_batches": num_batches, "loss": loss,
            "running_loss": float(self._running_loss.result()),
            "running_auc": float(self._running_auc.result())}
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

