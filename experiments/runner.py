"""Runs one experiment config: data, model, optimizer split, trainer, metrics, export.

Shared by the `train` and `benchmark` targets (which own the flags). The
config is resolved (`experiments.resolve`) before the run directory is
claimed, and the resolved config is what params.json records.
"""

import math
import os

from absl import logging

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf

from ctr_zoo import training
from experiments import configs
from experiments import data as data_lib
from experiments import progress as progress_lib
from experiments import resolve as resolve_lib
from experiments import run_dir
from experiments import zoo


def resolve_config(experiment: str, params_override: str = "", data: str = "",
                   spec: str = "") -> resolve_lib.ResolvedExperiment:
  """The named config with overrides, --data and --spec applied, resolved and checked.

  Raises:
    ConfigError: an unknown experiment, key or value (nothing is touched yet).
  """
  cfg = configs.get(experiment, configs.parse_overrides(params_override))
  cfg = data_lib.apply_data_flags(cfg, data, spec)
  return resolve_lib.resolve(cfg)


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
  """
  cfg = resolve_lib.resolve(cfg)
  if cfg.trainer.distribute != "none":  # a tf.distribute task: experiments/cluster_run.py
    from experiments import cluster_run  # pylint: disable=g-import-not-at-top
    return cluster_run.run(cfg, model_dir, overwrite=overwrite, export=export,
                           callbacks=callbacks, progress=progress, quantize=quantize)
  # data.fingerprint: the run's data is part of its identity (checked before anything is written).
  cfg = data_lib.with_fingerprint(cfg)
  run_dir.prepare(model_dir, cfg.to_dict(), overwrite=overwrite)
  prepared = data_lib.prepare(cfg.data)
  prepared.spec.save(os.path.join(model_dir, run_dir.SPEC_FILE))

  tcfg = cfg.trainer
  batch_size, eval_batch_size = cfg.input.batch_size, cfg.input.eval_batch_size
  tf.keras.backend.experimental.enable_tf_random_generator()  # checkpointable dropout RNG
  tf.keras.utils.set_random_seed(tcfg.seed)
  model = zoo.build_model(cfg.model, prepared.spec)
  optimizer = zoo.build_optimizer(cfg.optimizer, model)
  num_batches = math.ceil(prepared.rows.get("train", 0) / batch_size) or None
  callbacks = list(callbacks) + ([progress_lib.TrainingProgress(num_batches)] if progress else [])
  trainer = training.Trainer(model, optimizer, tcfg, model_dir, callbacks)

  def train_data(epoch, skip_batches):
    return prepared.dataset("train", batch_size, shuffle=True,
                            seed=tcfg.seed * 1_000_003 + epoch, skip_batches=skip_batches)

  fit = trainer.fit(train_data)
  result = {"experiment": cfg.name, "model": cfg.model.name, "data": cfg.data.name,
            "seed": tcfg.seed, "train": fit, "params": training.count_params(model),
            "data_fingerprint": prepared.fingerprint, "split_rows": prepared.rows,
            "oracle": prepared.oracle}
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
