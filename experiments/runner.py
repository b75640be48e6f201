"""Runs one experiment config: data, model, optimizer split, trainer, metrics, export.

Shared by the `train` and `benchmark` targets (which own the flags).
"""

import math
import os
import sys
import time

from absl import logging

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf

from ctr_zoo import training
from ctr_zoo.training import model_dir as model_dir_lib
from experiments import configs
from experiments import data as data_lib
from experiments import zoo


class ProgressBar(training.Callback):
  """One status line per epoch: bar, batches, examples/s, running loss and AUC."""

  def __init__(self, num_batches, stream=sys.stderr, width=24):
    self.num_batches = num_batches
    self.stream = stream
    self.width = width
    self._start = time.perf_counter()

  def on_train_begin(self, logs):
    if logs.get("resumed_from"):
      self.stream.write(f"resuming from {logs['resumed_from']} (step {logs['step']})\n")

  def on_step_end(self, step, logs):
    total = logs.get("num_batches") or self.num_batches
    done = logs["batch"]
    frac = min(done / total, 1.0) if total else 0.0
    bar = "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))
    speed = logs.get("examples_per_sec")
    self.stream.write(
        f"\repoch {logs['epoch'] + 1} [{bar}] {done}/{total or '?'}  "
        f"loss {logs['running_loss']:.4f}  auc {logs['running_auc']:.4f}"
        + (f"  {speed:,.0f} ex/s   " if speed is not None else "              "))
    self.stream.flush()

  def on_epoch_end(self, epoch, logs):
    self.on_step_end(logs["step"], {**logs, "batch": logs["batch"] or self.num_batches})
    self.stream.write("\n")
    self.stream.flush()


def resolve_config(experiment: str, params_override: str = "", data: str = ""):
  """The named config with overrides applied and --data recorded in it."""
  cfg = configs.get(experiment, configs.parse_overrides(params_override))
  if data:
    cfg.data.path = os.path.abspath(data) if os.path.exists(data) else data
    cfg.data.source = "file"
  return cfg


def run(cfg, model_dir: str, overwrite: bool = False, export: bool = True,
        callbacks=(), progress: bool = False):
  """Trains and evaluates `cfg` in `model_dir`; returns the metrics dict.

  Args:
    cfg: ExperimentConfig (resolved).
    model_dir: str. Run directory (resumed when it holds the same config).
    overwrite: bool. Replace a different experiment's run. Defaults to False.
    export: bool. Write the raw-feature SavedModel. Defaults to True.
    callbacks: extra training.Callback objects. Defaults to ().
    progress: bool. Add the progress bar. Defaults to False.
  """
  params = cfg.to_dict()
  model_dir_lib.prepare(model_dir, params, overwrite=overwrite)
  prepared = data_lib.prepare(cfg.data, cfg.data.path if cfg.data.source == "file" else "")
  prepared.spec.save(os.path.join(model_dir, model_dir_lib.SPEC_FILE))

  tcfg = cfg.trainer
  tf.keras.backend.experimental.enable_tf_random_generator()  # checkpointable dropout RNG
  tf.keras.utils.set_random_seed(tcfg.seed)
  model = zoo.build_model(cfg.model, prepared.spec)
  optimizer = zoo.build_optimizer(cfg.optimizer, model)
  num_batches = math.ceil(prepared.rows.get("train", 0) / tcfg.batch_size) or None
  callbacks = list(callbacks) + ([ProgressBar(num_batches)] if progress else [])
  trainer = training.Trainer(model, optimizer, tcfg, model_dir, callbacks)

  def train_data(epoch, skip_batches):
    return prepared.dataset("train", tcfg.batch_size, shuffle=True,
                            seed=tcfg.seed * 1_000_003 + epoch, skip_batches=skip_batches)

  fit = trainer.fit(train_data)
  result = {"experiment": cfg.name, "model": cfg.model.name, "data": cfg.data.name,
            "seed": tcfg.seed, "train": fit, "params": training.count_params(model),
            "data_fingerprint": prepared.fingerprint, "split_rows": prepared.rows,
            "oracle": prepared.oracle}
  for split in ("valid", "test"):
    labels, preds = trainer.predict(prepared.dataset(split, tcfg.eval_batch_size))
    result[split] = training.evaluate_predictions(labels, preds)
    trainer._summary(split, result[split], fit["steps"])  # pylint: disable=protected-access
    if split == "test":
      result["calibration"] = training.calibration(labels, preds)
  if export:
    export_dir = os.path.join(model_dir, model_dir_lib.EXPORT_DIR)
    result["export"] = training.export_saved_model(model, prepared.spec, export_dir)
  model_dir_lib.write_json(os.path.join(model_dir, model_dir_lib.METRICS_FILE), result)
  logging.info("metrics: %s", result)
  return result


def format_summary(result, model_dir) -> str:
  """The final summary block printed by the CLI."""
  lines = ["", f"== {result['experiment']} ==  ({result['params']:,} parameters)"]
  train = result["train"]
  lines.append(f"train: {train['steps']} steps, {train['examples']:,} examples, "
               f"{train['train_seconds']:.1f}s, {train['examples_per_sec']:,.0f} ex/s")
  for split in ("valid", "test"):
    m = result[split]
    row = f"{split:5s}: AUC {m['auc']:.4f}  logloss {m['logloss']:.4f}  ({m['num_examples']:,} rows)"
    oracle = result["oracle"].get(split)
    if oracle:
      row += f"   oracle AUC {oracle['auc']:.4f} logloss {oracle['logloss']:.4f}"
    lines.append(row)
  cal = result.get("calibration")
  if cal:
    lines.append(f"calibration (test): predicted CTR {cal['predicted_ctr']:.4f} vs observed "
                 f"{cal['observed_ctr']:.4f} (ratio {cal['calibration']:.3f})")
  lines.append(f"model_dir: {model_dir}")
  return "\n".join(lines)
