"""A trained run or a SavedModel export, as a scorer of raw record batches.

`load_run` / `restore_run` read a run directory written by `train` (its
params.json, fitted spec.json and best (else latest) checkpoint; nothing is refitted).
`ExportScorer` and `RunScorer` turn a typed raw Arrow table (a
`ctr_zoo.datasets.read_batches` batch) into click probabilities, the first
through a SavedModel's `serve_typed` signature, the second through the run's
Keras model and the Python encoding. `evaluate`, `predict`, `export` and the
serving benchmark share them.
"""

import os

import numpy as np
import pyarrow as pa

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf

from ctr_zoo import training
from ctr_zoo.datasets import encoding
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.training import export
from experiments import resolve
from experiments import run_dir
from experiments import zoo

PROBABILITY = "probability"


def load_run(model_dir: str):
  """(resolved config, fitted spec) of a run directory written by `train`."""
  params = run_dir.load_params(model_dir)
  if params is None:
    raise FileNotFoundError(f"{model_dir} holds no {run_dir.PARAMS_FILE}: not a run directory")
  spec_path = os.path.join(model_dir, run_dir.SPEC_FILE)
  if not os.path.exists(spec_path):
    raise FileNotFoundError(f"{model_dir} holds no {run_dir.SPEC_FILE}: the run never prepared "
                            "its data")
  return resolve.from_params(params), spec_lib.FeatureSpec.load(spec_path)


def restore_run(model_dir: str):
  """(resolved config, fitted spec, model, trainer) of a run directory, with the weights to serve.

  Those are the best-validation weights (`checkpoints/best/`) when the run
  kept them (early stopping), else its newest intact checkpoint.
  """
  cfg, spec = load_run(model_dir)
  # As in training, so that the model has the checkpoint's variables: a one-process
  # run checkpoints its dropout RNG states; a distributed run (trainer.distribute)
  # uses stateless dropout seeds and has none.
  if cfg.trainer.distribute == "none":
    tf.keras.backend.experimental.enable_tf_random_generator()
  else:
    tf.keras.backend.experimental.disable_tf_random_generator()
  tf.keras.utils.set_random_seed(cfg.trainer.seed)
  model = zoo.build_model(cfg.model, spec)
  optimizer = zoo.build_optimizer(cfg.optimizer, model)
  trainer = training.Trainer(model, optimizer, cfg.trainer, model_dir)
  if trainer.restore_for_prediction() is None:
    raise FileNotFoundError(f"{model_dir} has no checkpoint")
  return cfg, spec, model, trainer


class ExportScorer:
  """Scores typed raw batches with a SavedModel export's `serve_typed` signature.

  Exports written before `serve_typed` existed are scored through
  `serving_default` (numeric fields as decimal strings).
  """

  def __init__(self, export_dir: str):
    spec_path = os.path.join(export_dir, "assets", "spec.json")
    if not os.path.exists(os.path.join(export_dir, "saved_model.pb")):
      raise FileNotFoundError(f"{export_dir} holds no saved_model.pb: not a SavedModel export")
    if not os.path.exists(spec_path):
      raise FileNotFoundError(f"{export_dir} holds no assets/spec.json: not a ctr_zoo export")
    self.spec = spec_lib.FeatureSpec.load(spec_path)
    self._loaded = tf.saved_model.load(export_dir)
    self._typed = "serve_typed" in self._loaded.signatures
    self._fn = self._loaded.signatures["serve_typed" if self._typed else "serving_default"]

  def __call__(self, table: pa.Table) -> np.ndarray:
    inputs = export.typed_inputs(table, self.spec)
    if not self._typed:
      inputs = {k: (np.where(np.isnan(v), "", np.nan_to_num(v).astype(np.int64).astype(str))
                    if v.dtype == np.float64 else v) for k, v in inputs.items()}
    out = self._fn(**{k: tf.constant(v) for k, v in inputs.items()})
    return out[PROBABILITY].numpy().reshape(-1)


class RunScorer:
  """Scores typed raw batches with a run's restored weights (the Python encoding)."""

  def __init__(self, model_dir: str):
    _, self.spec, self._model, _ = restore_run(model_dir)
    model = self._model
    predict_fn = tf.function(lambda f: tf.reshape(model(f, training=False), [-1]))
    self._fn = predict_fn.get_concrete_function(self.spec.tensor_specs())

  def __call__(self, table: pa.Table) -> np.ndarray:
    features, _ = encoding.encode_table(table, self.spec, with_label=False)
    return self._fn(**{k: tf.constant(v) for k, v in features.items()}).numpy()
