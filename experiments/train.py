r"""Trains one named experiment: `python -m experiments.train [--experiment=NAME]`.

  bazel run //experiments:train -- --experiment=dcn_v2_criteo --data=train.txt \
      --model_dir=/tmp/dcn_v2 --params_override=trainer.epochs=2,model.params.tower.dropout=0.1

With no --data the built-in synthetic Criteo-style data is generated (once,
cached under $CTR_ZOO_CACHE or data_cache/) and the oracle AUC is printed next
to the model's. The valid split is scored after every epoch (or every
trainer.eval_every_steps steps); named experiments stop early after
trainer.patience scores without a new best (trainer.epochs is an upper bound)
and score the test split and export the weights of the best one.

The model_dir receives params.json (the resolved config, every default filled
in), spec.json, checkpoints/ (and checkpoints/best/), tensorboard/,
metrics.json (with the validation curve) and export/ (the raw-feature
SavedModel). Run again with the same --model_dir to resume after a crash; a
model_dir holding another experiment is refused unless --overwrite, and a
model_dir another process is training in is always refused (run.lock names
its pid).

Errors are one line on stderr. Exit status: 0 done; 2 usage error (unknown
flag or experiment, bad --params_override key or value, a model config the
model rejects, a --data path that does not exist or a directory that is not
prepared data); 1 any other failure (bad data, a run directory in use or
holding another experiment, non-finite loss, full disk, damaged checkpoints).
"""

import glob
import os
from typing import Optional

from absl import flags
from absl import logging

from experiments import cli

cli.import_tensorflow_quietly()

# pylint: disable=g-import-not-at-top,wrong-import-position
from ctr_zoo import datasets
from ctr_zoo import training
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.models import base as models_base
from ctr_zoo.training import distributed
from experiments import common_flags  # (--data, --spec, --model_dir, --params_override, --seed, ...)
from experiments import configs
from experiments import paths
from experiments import run_dir
from experiments import run_lock
from experiments import runner
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string("experiment", configs.DEFAULT_EXPERIMENT,
                    "Named experiment (see --list_experiments).")
flags.DEFINE_bool("list_experiments", False, "Print the named experiments and exit.")
flags.DEFINE_bool("overwrite", False, "Delete a different experiment's run in --model_dir.")
flags.DEFINE_bool("export", True, "Write the raw-feature SavedModel to model_dir/export.")
flags.adopt_module_key_flags(common_flags)  # --help lists them


def data_flag_problem(value: str) -> Optional[str]:
  """Why --data names nothing train can read (a usage error), or None."""
  for item in (part.strip() for part in value.split(",")):
    if not item:
      continue
    if any(c in item for c in "*?["):
      if not glob.glob(item):
        return f"--data pattern {item!r} matches no file"
    elif not os.path.exists(item):
      return f"--data file {item!r} does not exist"
    elif os.path.isdir(item) and not os.path.exists(os.path.join(item, run_dir.SPEC_FILE)):
      return (f"--data {item!r} is a directory, not a data file (a directory must be prepared "
              f"data written by experiments.preprocess, with a {run_dir.SPEC_FILE})")
  return None


def os_error_line(e: OSError) -> str:
  """One line for an OSError; a full disk says the run resumes once space is freed."""
  if isinstance(e, training.CheckpointWriteError):
    return e.strerror
  if training.trainer.is_disk_full(e):
    return (f"no space left on device writing {e.filename or 'the run'}: free space and run the "
            "same command again (training resumes from its last checkpoint)")
  return str(e)


def main(argv):
  if len(argv) > 1:
    return cli.error(f"unexpected arguments {argv[1:]} (flags are written --name=value)",
                     cli.USAGE)
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # the progress bar and summary are the output
  if FLAGS.list_experiments:
    for name in configs.names():
      print(name)
    return 0
  problem = data_flag_problem(FLAGS.data) if FLAGS.data else None
  if problem:
    return cli.error(problem, cli.USAGE)
  extra = {}
  if FLAGS.seed is not None:
    extra["trainer.seed"] = FLAGS.seed
  if FLAGS.on_bad_rows:
    extra["data.on_bad_rows"] = FLAGS.on_bad_rows
  try:
    cfg = runner.resolve_config(FLAGS.experiment, FLAGS.params_override, FLAGS.data, FLAGS.spec,
                                extra)
    model_dir = (os.path.normpath(FLAGS.model_dir) if FLAGS.model_dir
                 else os.path.join(paths.runs_root(), cfg.name))
    result = runner.run(cfg, model_dir, overwrite=FLAGS.overwrite, export=FLAGS.export,
                        progress=FLAGS.progress,
                        quantize=None if FLAGS.quantize == "none" else FLAGS.quantize)
  except (configs.ConfigError, models_base.ModelConfigError) as e:
    return cli.error(e, cli.USAGE)
  except (run_lock.RunLockedError, run_dir.ExperimentMismatchError, training.NonFiniteLossError,
          training.CheckpointError, datasets.DataError, spec_lib.SpecError,
          distributed.ClusterError, distributed.ClusterFailureError) as e:
    return cli.error(e)
  except OSError as e:  # a full disk, an unreadable path, a missing spec file, ...
    return cli.error(os_error_line(e))
  except Exception as e:  # pylint: disable=broad-except
    if not training.trainer.is_disk_full(e):  # TensorFlow's write errors (summaries, export)
      raise
    return cli.error(os_error_line(OSError(28, str(e))))
  if "test" not in result:  # a distributed task that does not evaluate (experiments/cluster_run.py)
    print(result["summary"])
    return 0
  print(runner.format_summary(result, model_dir))
  return 0


if __name__ == "__main__":
  cli.run(main)
