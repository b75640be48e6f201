r"""Regularisation by validation: a small grid per model on an experiment's VALID split.

  python -m benchmarks.regularization_sweep --sweep_models=dnn,dcn_v2 --sweep_data_setup=criteo

For each model, every combination of the grid below is trained once (seed 0)
and scored on the valid split only (the test split is never looked at); the
results go to --sweep_output (default <results>/regularization_sweep.json; JSON:
one entry per run, plus the best per model), from which the `TUNED` table of
`experiments/configs/registry.py` is filled by hand. With
--record=benchmarks/results/regularization_sweep.json the runs are merged into
that tracked file too. The run directories are temporary and always removed.
Grid (a "*" entry of TUNED sets the rest):
  model.params.embedding.l2 in --embedding_l2 (models with an embedding section),
  model.params.tower.dropout in --dropouts (models with a tower),
  optimizer.embedding_learning_rate in --embedding_lrs.
"""

import itertools
import json
import os
import shutil
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

from experiments import cli

cli.import_tensorflow_quietly()  # Keras 2 before TensorFlow, without its start-up lines
import tensorflow as tf

from benchmarks import common_flags  # noqa: F401  (--results, --record)
from benchmarks import records
from experiments import common_flags as experiment_flags  # noqa: F401  (--data, --params_override)
from experiments import resolve
from experiments import runner

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(common_flags)
flags.adopt_module_key_flags(experiment_flags)
flags.DEFINE_list("sweep_models", ["dnn", "dcn_v2"], "Model names.")
flags.DEFINE_string("sweep_data_setup", "criteo", "Data setup.")
flags.DEFINE_list("embedding_l2", ["1e-5", "1e-4"], "Embedding L2 values.")
flags.DEFINE_list("dropouts", ["0.2"], "Dropout values.")
flags.DEFINE_list("embedding_lrs", ["0.05", "0.2"], "Embedding (AdaGrad) learning rates.")
flags.DEFINE_string("sweep_output", "",
                    "JSON results file (default: <results>/regularization_sweep.json).")


def _load(path: str, data_setup: str) -> dict:
  """The sweep document at `path` if it is for `data_setup`, else an empty one."""
  results = {"data_setup": data_setup, "split": "valid", "seed": 0, "runs": [], "best": {}}
  if path and os.path.exists(path):
    with open(path) as fh:
      old = json.load(fh)
    if old.get("data_setup") == data_setup:
      results = old
  return results


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  output = records.user_path(FLAGS.sweep_output) or os.path.join(
      records.results_dir(FLAGS.results), "regularization_sweep.json")
  tracked = records.user_path(FLAGS.record)
  # With --record the tracked document is the base, so it keeps every model's runs.
  results = _load(tracked or output, FLAGS.sweep_data_setup)
  work = tempfile.mkdtemp(prefix="ctr_zoo_sweep_")
  try:
    for model in FLAGS.sweep_models:
      fields = resolve.model_fields(model)
      l2s = FLAGS.embedding_l2 if "embedding" in fields else [None]
      dropouts = FLAGS.dropouts if "tower" in fields else [None]
      results["runs"] = [r for r in results["runs"] if r["model"] != model]
      for l2, dropout, lr in itertools.product(l2s, dropouts, FLAGS.embedding_lrs):
        items = [FLAGS.params_override, f"optimizer.embedding_learning_rate={lr}"]
        if l2 is not None:
          items.append(f"model.params.embedding.l2={l2}")
        if dropout is not None:
          items.append(f"model.params.tower.dropout={dropout}")
        overrides = ",".join(x for x in items if x)
        cfg = runner.resolve_config(f"{model}_{FLAGS.sweep_data_setup}", overrides, FLAGS.data)
        tf.keras.backend.clear_session()
        start = time.perf_counter()
        model_dir = os.path.join(work, f"{model}-{len(results['runs'])}")
        result = runner.run(cfg, model_dir, overwrite=True, export=False)
        shutil.rmtree(model_dir, ignore_errors=True)
        run = {"model": model, "embedding_l2": None if l2 is None else float(l2),
               "dropout": None if dropout is None else float(dropout),
               "embedding_learning_rate": float(lr), "valid_auc": result["valid"]["auc"],
               "valid_logloss": result["valid"]["logloss"],
               "seconds": time.perf_counter() - start,
               "git_revision": records.git_revision()}
        results["runs"].append(run)
        print(json.dumps(run), flush=True)
      mine = [r for r in results["runs"] if r["model"] == model]
      results["best"][model] = max(mine, key=lambda r: r["valid_auc"])
      for path in [output] + ([tracked] if tracked else []):
        _write(path, results)
  finally:
    shutil.rmtree(work, ignore_errors=True)
  for model, best in results["best"].items():
    print(f"{model}: best valid AUC {best['valid_auc']:.4f} with embedding_l2 "
          f"{best['embedding_l2']}, dropout {best['dropout']}, embedding lr "
          f"{best['embedding_learning_rate']}")
  print("wrote " + " and ".join([output] + ([tracked] if tracked else [])))
  return 0


def _write(path: str, results: dict) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as fh:
    json.dump(results, fh, indent=1, sort_keys=True)

if __name__ == "__main__":
  app.run(main)
