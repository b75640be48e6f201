r"""Trains one named experiment: `python -m experiments.train [--experiment=NAME]`.

  bazel run //experiments:train -- --experiment=dcn_v2_criteo --data=train.txt \
      --model_dir=/tmp/dcn_v2 --params_override=trainer.epochs=2,model.params.tower.dropout=0.1

With no --data the built-in synthetic Criteo-style data is generated (once,
cached under $CTR_ZOO_CACHE or data_cache/) and the oracle AUC is printed next
to the model's. The model_dir receives params.json (the resolved config, every default filled in),
spec.json, checkpoints/, tensorboard/, metrics.json and export/ (the raw-feature
SavedModel). Run again with the same --model_dir to resume after a crash; a
model_dir holding another experiment is refused unless --overwrite.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)

from ctr_zoo import datasets
from ctr_zoo import training
from ctr_zoo.feature_columns.spec import SpecError
from ctr_zoo.training import distributed
from experiments import common_flags  # noqa: F401  (--data, --spec, --model_dir, --quantize, ...)
from experiments import configs
from experiments import paths
from experiments import run_dir
from experiments import runner

FLAGS = flags.FLAGS
flags.DEFINE_string("experiment", configs.DEFAULT_EXPERIMENT,
                    "Named experiment (see --list_experiments).")
flags.DEFINE_bool("list_experiments", False, "Print the named experiments and exit.")
flags.DEFINE_bool("overwrite", False, "Delete a different experiment's run in --model_dir.")
flags.DEFINE_bool("export", True, "Write the raw-feature SavedModel to model_dir/export.")


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # the progress bar and summary are the output
  if FLAGS.list_experiments:
    for name in configs.names():
      print(name)
    return 0
  try:
    cfg = runner.resolve_config(FLAGS.experiment, FLAGS.params_override, FLAGS.data, FLAGS.spec)
    model_dir = FLAGS.model_dir or os.path.join(paths.runs_root(), cfg.name)
    result = runner.run(cfg, model_dir, overwrite=FLAGS.overwrite, export=FLAGS.export,
                        progress=FLAGS.progress,
                        quantize=None if FLAGS.quantize == "none" else FLAGS.quantize)
  except (configs.ConfigError, run_dir.ExperimentMismatchError, training.NonFiniteLossError,
          datasets.DataError, FileNotFoundError, SpecError,
          distributed.ClusterError, distributed.ClusterFailureError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  if "test" not in result:  # a distributed task that does not evaluate (experiments/cluster_run.py)
    print(result["summary"])
    return 0
  print(runner.format_summary(result, model_dir))
  return 0


if __name__ == "__main__":
  app.run(main)
