"""Runs one experiment config: data, model, optimizer split, trainer, metrics, export.

Shared by the `train` and `benchmark` targets (which own the flags). The
config is resolved (`experiments.resolve`) first. Then the run directory's
lock is taken (a second process training there is refused), the directory is
checked against the config (a different experiment is refused unless
overwrite), the data is prepared and the model built; only then is the
directory claimed (params.json written, an overwritten run deleted), so a
config that fails on the way leaves the directory as it was.
"""

import json
import math
import os
from typing import Optional

from absl import logging

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf

from ctr_zoo import datasets
from ctr_zoo import training
from experiments import configs
from experiments import data as data_lib
from experiments import progress as progress_lib
from experiments import resolve as resolve_lib
from experiments import run_dir
from experiments import run_lock
from experiments import zoo


def resolve_config(experiment: str, params_override: str = "", data: str = "",
                   spec: str = "", extra: Optional[dict] = None
                   ) -> resolve_lib.ResolvedExperiment:
  """The named config with overrides, `extra` dotted overrides, --data and --spec applied, resolved.

  Raises:
    ConfigError: an unknown experiment, key or value (nothing is touched yet).
  """
  cfg = configs.get(experiment, configs.parse_overrides(params_override))
  if extra:
    configs.apply_overrides(cfg, dict(extra))
  cfg = data_lib.apply_data_flags(cfg, data, spec)
  return resolve_lib.resolve(cfg)


def label_problem(prepared: data_lib.PreparedData, monitor: str) -> Optional[str]:
  """Why the labels of `prepared` cannot train (or early-stop) a click model, or None.

  A split with one label class: the train split cannot teach clicks from
  non-clicks, and the AUC of a split (which ranks clicks above non-clicks)
  is undefined, so a valid split of one class cannot be monitored by AUC.
  """
  path = os.path.join(prepared.directory, "summary.json")
  if not os.path.exists(path):
    return None
  with open(path) as fh:
    summary = json.load(fh)
  rows, positives = summary.get("rows", {}), summary.get("positives", {})
  for split in ("train", "valid"):
    n, p = rows.get(split), positives.get(split)
    if not n or p is None or 0 < p < n:
      continue
    kind = "negatives (no click)" if p == 0 else "positives (every row a click)"
    if split == "train":
      return (f"the train split of {prepared.directory} has only {kind} in its {n:,} rows: a "
              "click model needs both classes, and AUC (the rank of clicks above non-clicks) "
              "is undefined with one")
    if "auc" in monitor:
      return (f"the valid split has only {kind} in its {n:,} rows, so its AUC (the rank of "
              f"clicks above non-clicks) is undefined and early stopping cannot monitor "
              f"{monitor!r}; set trainer.monitor=logloss, or use more data")
  return None


def run(cfg, model_dir: str, overwrite: bool = False, export: bool = True,
        callbacks=(), progress: bool = False, quantize=None):
  """Trains and evaluates `cfg` in `model_dir`; returns the metrics dict.

  Args:
    cfg: ResolvedExperiment (or an ExperimentConfig, resolved here first).
    model_dir: str. Run directory (resumed when it holds the same config).
    overwrite: bool. Replace a different experiment's run. Defaults to False.
    export: bool. Write the raw-feature SavedModel. Defaults to True.
    callbacks: extra training.Callback objects. Defaults to ().
    progress: bool. Add the progress bar. Defaults to False.
    quantize: None, "float16" or "int8". Storage of the exported weights
      (`training.export_saved_model`). Defaults to None (float32).

  Raises:
    run_lock.RunLockedError: another live process trains in `model_dir`.
    run_dir.ExperimentMismatchError: `model_dir` holds another run (another
      config, or the same config on other data).
    datasets.DataError: bad data, or labels of one class.
  """
  cfg = resolve_lib.resolve(cfg)
  if cfg.trainer.distribute != "none":  # a tf.distribute task: experiments/cluster_run.py
    from experiments import cluster_run  # pylint: disable=g-import-not-at-top
    return cluster_run.run(cfg, model_dir, overwrite=overwrite, export=export,
                           callbacks=callbacks, progress=progress, quantize=quantize)
  # data.fingerprint: the run's data is part of its identity (checked before anything is written).
  cfg = data_lib.with_fingerprint(cfg)
  model_dir = os.path.normpath(model_dir)
  params = cfg.to_dict()
  with run_lock.RunLock(model_dir):
    action = run_dir.check(model_dir, params, overwrite=overwrite)
    prepared = data_lib.prepare(cfg.data)
    problem = label_problem(prepared, cfg.trainer.monitor)
    if problem:
      raise datasets.DataError(problem)

    tcfg = cfg.trainer
    batch_size, eval_batch_size = cfg.input.batch_size, cfg.input.eval_batch_size
    tf.keras.backend.experimental.enable_tf_random_generator()  # checkpointable dropout RNG
    tf.keras.utils.set_random_seed(tcfg.seed)
    model = zoo.build_model(cfg.model, prepared.spec)
    optimizer = zoo.build_optimizer(cfg.optimizer, model)
    run_dir.commit(model_dir, params, action)  # the config built: claim the directory
    prepared.spec.save(os.path.join(model_dir, run_dir.SPEC_FILE))

    num_batches = math.ceil(prepared.rows.get("train", 0) / batch_size) or None
    callbacks = list(callbacks) + ([progress_lib.TrainingProgress(num_batches)] if progress
                                   else [])
    trainer = training.Trainer(model, optimizer, tcfg, model_dir, callbacks)

    def train_data(epoch, skip_batches):
      return prepared.dataset("train", batch_size, shuffle=True,
                              seed=tcfg.seed * 1_000_003 + epoch, skip_batches=skip_batches)

    validating = prepared.rows.get("valid", 1) > 0
    fit = trainer.fit(train_data, prepared.dataset("valid", eval_batch_size) if validating
                      else None)
    # With validation, the model now holds the weights of the best score.
    result = {"experiment": cfg.name, "model": cfg.model.name, "data": cfg.data.name,
              "seed": tcfg.seed, "train": fit, "params": training.count_params(model),
              "data_fingerprint": prepared.fingerprint, "split_rows": prepared.rows,
              "oracle": prepared.oracle}
    if "validation" in fit:
      result["validation"] = fit.pop("validation")  # the curve: step, epoch, auc, logloss
      result["early_stopping"] = {
          key: fit.pop(key) for key in ("monitor", "patience", "best_step", "best_epoch",
                                        "best_value", "stopped_early", "restored_best")}
    for split in ("valid", "test"):
      labels, preds = trainer.predict(prepared.dataset(split, eval_batch_size))
      result[split] = training.evaluate_predictions(labels, preds)
      trainer.write_scalars(split, result[split], fit["steps"])
      if split == "test":
        result["calibration"] = training.calibration(labels, preds)
    if export:
      export_dir = os.path.join(model_dir, run_dir.EXPORT_DIR)
      result["export"] = training.export_saved_model(model, prepared.spec, export_dir,
                                                     quantize=quantize)
    run_dir.write_json(os.path.join(model_dir, run_dir.METRICS_FILE), result)
  logging.info("metrics: %s", result)
  return result


def nonfinite_predictions(preds, where: str) -> Optional[str]:
  """One line saying how many predictions are NaN/inf (a diverged model), or None."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  bad = ~np.isfinite(np.asarray(preds, dtype=np.float64))
  if not bad.any():
    return None
  return (f"{where} predicts a non-finite probability (NaN or inf) for {int(bad.sum()):,} of "
          f"{bad.size:,} rows (first: row {int(np.argmax(bad))}): its weights have diverged; "
          "train it again with a lower learning rate or trainer.clipnorm")


def format_auc(metrics: dict) -> str:
  """"AUC 0.7712", or why the AUC is undefined (NaN: one class only)."""
  if not math.isnan(metrics["auc"]):
    return f"AUC {metrics['auc']:.4f}"
  kind = "positives" if metrics.get("observed_ctr") == 1.0 else "negatives"
  return f"AUC undefined (only {kind})"


def format_summary(result, model_dir) -> str:
  """The final summary block printed by the CLI."""
  lines = ["", f"== {result['experiment']} ==  ({result['params']:,} parameters)"]
  train = result["train"]
  lines.append(f"train: {train['steps']} steps, {train['examples']:,} examples, "
               f"{train['train_seconds']:.1f}s, {train['examples_per_sec']:,.0f} ex/s")
  stopping = result.get("early_stopping")
  if stopping and stopping.get("best_step") is not None and stopping["best_step"] >= 0:
    curve = result.get("validation", [])
    how = (f"stopped early after epoch {curve[-1]['epoch']} (patience {stopping['patience']})"
           if stopping["stopped_early"] else f"{len(curve)} validation score(s)")
    used = "restored" if stopping.get("restored_best") else "found"
    lines.append(f"best  : epoch {stopping['best_epoch']} (step {stopping['best_step']}) by "
                 f"valid {stopping['monitor']}, {used}; {how}")
  for split in ("valid", "test"):
    m = result[split]
    row = f"{split:5s}: {format_auc(m)}  logloss {m['logloss']:.4f}  ({m['num_examples']:,} rows)"
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
