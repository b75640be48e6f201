r"""Offline AUC benchmark: train experiments over seeds, record, render tables.

  bazel run //experiments:benchmark -- --experiments=lr,dnn,dcn_v2 --seeds=3
  python -m experiments.benchmark --experiments=lr,dnn --data_setup=criteo \
      --data=../shared/data/criteo/criteo_sample.tsv --seeds=3
  python -m experiments.benchmark --render_only --readme=README.md

Each run appends one JSON record (experiment, seed, git revision, data
fingerprint, split sizes, test AUC/logloss, params, train time, examples/s,
oracle) to --results; then the markdown tables (mean +- std, best in bold,
oracle row), a CSV and a PNG are rendered from ALL records of that file into
--output_dir, and with --readme the README's marked blocks are replaced.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf

from benchmarks import auc_tables
from experiments import common_flags  # noqa: F401  (--data, --params_override)
from experiments import configs
from experiments import data as data_lib
from experiments import runner

FLAGS = flags.FLAGS
flags.DEFINE_list("experiments", ["lr", "dnn", "dcn_v2"],
                  "Model names (combined with --data_setup) or full experiment names.")
flags.DEFINE_string("data_setup", "synthetic", "Data setup for bare model names.")
flags.DEFINE_integer("seeds", 3, "Seeds per experiment (0..seeds-1).")
flags.DEFINE_string("results", os.path.join(data_lib.REPO_ROOT, "benchmarks", "results",
                                            "auc_records.jsonl"), "JSON-lines records file.")
flags.DEFINE_string("output_dir", os.path.join(data_lib.REPO_ROOT, "benchmarks", "results"),
                    "Where auc_<data>.md, auc_summary.csv and auc.png go.")
flags.DEFINE_string("readme", "", "README whose auc-table blocks are regenerated.")
flags.DEFINE_bool("render_only", False, "Only render tables from existing records.")


def git_revision() -> str:
  """HEAD's short hash, with "-dirty" when the tree has changes ("unknown" outside git)."""
  try:
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=data_lib.REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           cwd=data_lib.REPO_ROOT, capture_output=True, text=True).stdout.strip()
    return rev + ("-dirty" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def record_of(result: dict, cfg) -> dict:
  """The benchmark record of one `train.run` result."""
  oracle = result["oracle"].get("test") or {}
  return {
      "experiment": cfg.name, "model": cfg.model.name, "data": cfg.data.name,
      "precision": cfg.model.precision, "seed": cfg.trainer.seed, "git_revision": git_revision(),
      "data_fingerprint": result["data_fingerprint"], "split_rows": result["split_rows"],
      "auc": result["test"]["auc"], "logloss": result["test"]["logloss"],
      "valid_auc": result["valid"]["auc"], "valid_logloss": result["valid"]["logloss"],
      "params": result["params"], "train_seconds": result["train"]["train_seconds"],
      "examples_per_sec": result["train"]["examples_per_sec"],
      "oracle_auc": oracle.get("auc"), "oracle_logloss": oracle.get("logloss"),
      "config": cfg.to_dict(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
  }


def experiment_names(items, data_setup):
  out = []
  for item in items:
    out.append(item if item in configs.names() else f"{item}_{data_setup}")
  return out


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if not FLAGS.render_only:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
    work = tempfile.mkdtemp(prefix="ctr_zoo_benchmark_")
    for name in experiment_names(FLAGS.experiments, FLAGS.data_setup):
      for seed in range(FLAGS.seeds):
        overrides = ",".join(x for x in (FLAGS.params_override, f"trainer.seed={seed}") if x)
        cfg = runner.resolve_config(name, overrides, FLAGS.data)
        model_dir = os.path.join(work, f"{name}-seed{seed}")
        tf.keras.backend.clear_session()
        result = runner.run(cfg, model_dir, overwrite=True, export=False)
        record = record_of(result, cfg)
        with open(FLAGS.results, "a") as fh:
          fh.write(json.dumps(record, sort_keys=True) + "\n")
        print(f"{name} seed {seed}: test AUC {record['auc']:.4f} logloss {record['logloss']:.4f} "
              f"({record['train_seconds']:.0f}s)", flush=True)
  if not os.path.exists(FLAGS.results):
    print(f"error: no records at {FLAGS.results}", file=sys.stderr)
    return 1
  tables = auc_tables.render(FLAGS.results, FLAGS.output_dir, FLAGS.readme or None)
  for data, table in tables.items():
    print(f"\n### {data}\n\n{table}")
  print(f"wrote {FLAGS.output_dir}/auc_*.md, auc_summary.csv, auc.png")
  return 0


if __name__ == "__main__":
  app.run(main)
