r"""Offline AUC benchmark: train experiments over seeds, record, render tables.

  bazel run //benchmarks:auc -- --experiments=lr,dnn,dcn_v2 --seeds=3
  python -m benchmarks.auc --experiments=lr,dnn --data_setup=criteo \
      --data=../shared/data/criteo/criteo_sample.tsv --seeds=3
  python -m benchmarks.auc --render_only --results=runs/benchmarks
  python -m benchmarks.auc --experiments=lr,dnn --data_setup=avazu --folds=5 --seeds=3

--folds=K runs K-fold cross-validation (`data.split=kfold`): fold f's rows are
scored by a model trained (and early-stopped on a valid share) on the other
folds, for every f and seed; the records' data label gets a `_<K>fold` suffix,
so the table of that label reports the mean +- std over folds and seeds.

Each run (experiment x seed) trains in a temporary directory that is removed
when the benchmark ends, also on an error or Ctrl-C. Its record (experiment,
seed, git revision, data fingerprint, split sizes, test AUC/logloss, params,
train time, examples/s, oracle) is appended to <results>/auc_records.jsonl;
then the markdown tables (mean +- std, best in bold, oracle row), a CSV and a
PNG are rendered from ALL records of that file into --output_dir (default:
the results directory), and with --readme that README's marked blocks are
replaced. --results defaults to <repo>/runs/benchmarks (git-ignored).

The repository's records (benchmarks/results/auc_records*.jsonl) change only
with an explicit --record; the maintainer's command is

  python -m benchmarks.auc --experiments=lr,dnn,dcn_v2 --seeds=3 \
      --record=benchmarks/results/auc_records.jsonl
  make results     # re-renders the README tables from the tracked records
"""

import os
import shutil
import signal
import sys
import tempfile

from absl import app
from absl import flags
from absl import logging

from experiments import cli

cli.import_tensorflow_quietly()  # Keras 2 before TensorFlow, without its start-up lines
import tensorflow as tf

from benchmarks import auc_tables
from benchmarks import common_flags  # noqa: F401  (--results, --record)
from benchmarks import fold_flags  # noqa: F401  (--folds)
from benchmarks import records
from ctr_zoo import training
from ctr_zoo.datasets import readers
from experiments import common_flags as experiment_flags  # noqa: F401  (--data, --params_override)
from experiments import configs
from experiments import runner

RECORDS_FILE = "auc_records.jsonl"

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(common_flags)
flags.adopt_module_key_flags(fold_flags)
flags.adopt_module_key_flags(experiment_flags)
flags.DEFINE_list("experiments", ["lr", "dnn", "dcn_v2"],
                  "Model names (combined with --data_setup) or full experiment names.")
flags.DEFINE_string("data_setup", "synthetic", "Data setup for bare model names.")
flags.DEFINE_integer("seeds", 3, "Seeds per experiment (first_seed .. first_seed+seeds-1).")
flags.DEFINE_integer("first_seed", 0,
                     "The first seed, so that more seeds can be added to existing records.")
flags.DEFINE_string("output_dir", "",
                    "Where auc_<data>.md, auc_summary.csv and auc.png go (default: --results).")
flags.DEFINE_string("readme", "", "README whose auc-table blocks are regenerated.")
flags.DEFINE_bool("render_only", False, "Only render tables from the records in --results.")


class UsageError(Exception):
  """A bad flag value: reported as one line, exit code 2."""


def record_of(result: dict, cfg) -> dict:
  """The benchmark record of one `runner.run` result."""
  oracle = result["oracle"].get("test") or {}
  kfold = cfg.data.split == "kfold"
  return {
      "experiment": cfg.name, "model": cfg.model.name,
      "data": f"{cfg.data.name}_{cfg.data.folds}fold" if kfold else cfg.data.name,
      "folds": cfg.data.folds if kfold else None, "fold": cfg.data.fold if kfold else None,
      "precision": cfg.model.precision, "seed": cfg.trainer.seed,
      "git_revision": records.git_revision(),
      "data_fingerprint": result["data_fingerprint"], "split_rows": result["split_rows"],
      "auc": result["test"]["auc"], "logloss": result["test"]["logloss"],
      "valid_auc": result["valid"]["auc"], "valid_logloss": result["valid"]["logloss"],
      "params": result["params"], "train_seconds": result["train"]["train_seconds"],
      "examples_per_sec": result["train"]["examples_per_sec"],
      "oracle_auc": oracle.get("auc"), "oracle_logloss": oracle.get("logloss"),
      "config": cfg.to_dict(), "time": records.now(),
  }


def experiment_names(items, data_setup):
  """Full experiment names: a bare model name gets `_<data_setup>`."""
  return [item if item in configs.names() else f"{item}_{data_setup}" for item in items]


def resolve_all(names, seeds: int, params_override: str, data: str, folds: int = 0,
                spec: str = "", first_seed: int = 0):
  """[(name, seed, config)] for every run (and fold); a bad name or override fails before any training."""
  if folds == 1 or folds < 0:
    raise UsageError(f"--folds must be 0 (no cross-validation) or >= 2, got {folds}")
  runs = []
  for name in names:
    for seed in range(first_seed, first_seed + seeds):
      for fold in range(max(folds, 1)):
        kfold = f"data.split=kfold,data.folds={folds},data.fold={fold}" if folds else ""
        overrides = ",".join(x for x in (params_override, f"trainer.seed={seed}", kfold) if x)
        try:
          cfg = runner.resolve_config(name, overrides, data, spec)
        except (KeyError, ValueError) as e:
          raise UsageError(e.args[0] if isinstance(e, KeyError) and e.args else str(e)) from e
        runs.append((name, seed, cfg))
  return runs


def check_paths(results: str, tracked: str) -> None:
  """Refuses a --results that is a file and a --record that is not a .jsonl file."""
  if results.endswith(".jsonl") or os.path.isfile(results):
    raise UsageError(f"--results={results} must be a directory (the run's records go to "
                     f"<results>/{RECORDS_FILE}); to append to a tracked records file, use "
                     f"--record=benchmarks/results/{RECORDS_FILE}")
  if tracked and not tracked.endswith(".jsonl"):
    raise UsageError(f"--record={tracked} must name a JSON-lines records file (*.jsonl), e.g. "
                     f"benchmarks/results/{RECORDS_FILE}")


def _raise_on_sigterm():
  """SIGTERM raises SystemExit, so the temporary run directories are removed as on Ctrl-C."""
  def handler(signum, frame):
    del frame
    raise SystemExit(128 + signum)
  try:
    signal.signal(signal.SIGTERM, handler)
  except ValueError:  # not the main thread (tests): nothing to install
    pass


def train_and_record(runs, results: str, tracked: str) -> int:
  """Trains every run in a temporary directory (always removed); returns the records written."""
  written = 0
  work = tempfile.mkdtemp(prefix="ctr_zoo_benchmark_")
  try:
    for name, seed, cfg in runs:
      fold = f" fold {cfg.data.fold}" if cfg.data.split == "kfold" else ""
      model_dir = os.path.join(work, f"{name}-seed{seed}{fold.replace(' ', '-')}")
      tf.keras.backend.clear_session()
      try:
        result = runner.run(cfg, model_dir, overwrite=True, export=False)
      finally:
        shutil.rmtree(model_dir, ignore_errors=True)  # checkpoints are not kept between runs
      record = record_of(result, cfg)
      records.write_records([record], results, RECORDS_FILE, tracked)
      written += 1
      print(f"{name} seed {seed}{fold}: test AUC {record['auc']:.4f} logloss {record['logloss']:.4f} "
            f"({record['train_seconds']:.0f}s)", flush=True)
  finally:
    shutil.rmtree(work, ignore_errors=True)
  return written


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  results = records.results_dir(FLAGS.results)
  tracked = records.user_path(FLAGS.record)
  output_dir = records.user_path(FLAGS.output_dir) if FLAGS.output_dir else results
  records_path = os.path.join(results, RECORDS_FILE)
  try:
    check_paths(results, tracked)
    if FLAGS.seeds < 1 and not FLAGS.render_only:
      raise UsageError(f"--seeds must be >= 1, got {FLAGS.seeds}")
    if FLAGS.first_seed < 0:
      raise UsageError(f"--first_seed must be >= 0, got {FLAGS.first_seed}")
    if not FLAGS.render_only:
      runs = resolve_all(experiment_names(FLAGS.experiments, FLAGS.data_setup), FLAGS.seeds,
                         FLAGS.params_override, FLAGS.data, FLAGS.folds, FLAGS.spec,
                         FLAGS.first_seed)
      _raise_on_sigterm()
      train_and_record(runs, results, tracked)
    if not os.path.exists(records_path):
      raise UsageError(f"no records at {records_path} (run without --render_only first)")
    tables = auc_tables.render(records_path, output_dir,
                               records.user_path(FLAGS.readme) if FLAGS.readme else None)
  except UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except (readers.DataError, configs.ConfigError, training.NonFiniteLossError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  for data, table in tables.items():
    print(f"\n### {data}\n\n{table}")
  print(f"records: {records_path}")
  print(f"tables: {output_dir}/auc_<data>.md, auc_summary.csv, auc.png")
  if tracked and not FLAGS.render_only:
    print(f"also appended to the tracked records {tracked} (make results re-renders the README)")
  return 0


if __name__ == "__main__":
  app.run(main)
