r"""Exports a trained run as a raw-feature SavedModel: float32, float16 or int8, pruned, mixed.

  # int8 tables and float16 dense kernels (all computed in float32):
  bazel run //experiments:export -- --model_dir=$PWD/runs/dcn_v2_synthetic --quantize=int8 \
      --output=$PWD/runs/dcn_v2_synthetic/export_int8

  # What int8 costs each table and float16 each dense layer, measured on the
  # run's valid split; then int8 only for the tables that cost <= 0.0002 AUC:
  bazel run //experiments:export -- --model_dir=$PWD/runs/dcn_v2_synthetic --quantize=int8 \
      --sensitivity --mixed_threshold=0.0002

  # A group-lasso FTRL run: all-zero rows dropped, the rest int8:
  bazel run //experiments:export -- --model_dir=$PWD/runs/dcn_v2_gl --quantize=int8 \
      --prune_zero_rows

The run's best-validation checkpoint (else its latest) and fitted spec.json are
used (never refitted).
--output defaults to <model_dir>/export_<quantize>[_pruned][_mixed]. The
SavedModel has the same signatures as the float32 export and loads with
plain TensorFlow (no ctr_zoo). Prints the table and SavedModel sizes, and with
--sensitivity the per-part AUC / logloss costs (written with the export
report to --report_json when given).
"""

import os
import sys
import tempfile

from absl import flags
from absl import logging

from experiments import cli

cli.import_tensorflow_quietly()  # (selects Keras 2 before TensorFlow)
# pylint: disable=g-import-not-at-top,wrong-import-position

from ctr_zoo import datasets
from ctr_zoo import training
from ctr_zoo.datasets import input_pipeline
from ctr_zoo.training import quantize as quantize_lib
from experiments import common_flags  # noqa: F401  (--model_dir, --output, --quantize, ...)
from experiments import data as data_lib
from experiments import run_dir
from experiments import scorers

FLAGS = flags.FLAGS
flags.DEFINE_bool("prune_zero_rows", False,
                  "Drop all-zero embedding rows (group-lasso FTRL runs); predictions unchanged.")
flags.DEFINE_bool("sensitivity", False,
                  "Measure, per table and per dense layer, the AUC / logloss cost of quantizing "
                  "only that part, on --sensitivity_split.")
flags.DEFINE_float("mixed_threshold", None,
                   "Quantize only the tables whose measured AUC cost is <= this (implies "
                   "--sensitivity); the others stay float32.")
flags.DEFINE_enum("sensitivity_split", "valid", ["train", "valid", "test"],
                  "Split of the run's data the sensitivity is measured on.")
flags.DEFINE_string("report_json", "", "Write the export report (and sensitivity) as JSON here.")


def split_rows(model_dir: str, split: str):
  """(features, labels) of a split of a run's data, encoded with the run's spec."""
  cfg, spec = scorers.load_run(model_dir)
  with tempfile.TemporaryDirectory(prefix="ctr_zoo_export_") as work:
    shards = data_lib.run_split(cfg.data, spec, split, work)
    return input_pipeline.read_encoded(shards, spec)


def export_run(model_dir: str, output: str, quantize=None, prune_zero_rows: bool = False,
               sensitivity: bool = False, mixed_threshold=None, split: str = "valid",
               progress=None) -> dict:
  """Exports a run's best (else latest) checkpoint; returns the export report (with "sensitivity")."""
  cfg, spec, model, _ = scorers.restore_run(model_dir)
  report = None
  tables = None
  if sensitivity or mixed_threshold is not None:
    if not quantize:
      raise ValueError("--sensitivity and --mixed_threshold need --quantize=float16 or int8")
    features, labels = split_rows(model_dir, split)
    report = quantize_lib.sensitivity(model, features, labels, table_mode=quantize,
                                      batch_size=cfg.input.eval_batch_size, progress=progress)
    report["split"] = split
    if mixed_threshold is not None:
      tables = quantize_lib.mixed_tables(report, mixed_threshold)
  info = training.export_saved_model(model, spec, output, prune_zero_rows=prune_zero_rows,
                                     quantize=quantize, quantize_tables=tables)
  if report is not None:
    info["sensitivity"] = report
  if tables is not None:
    info["mixed"] = {"threshold": mixed_threshold, "quantized_tables": tables}
  return info


def default_output(model_dir: str, quantize, prune: bool, mixed: bool) -> str:
  name = f"{run_dir.EXPORT_DIR}_{quantize or 'float32'}"
  name += "_pruned" if prune else ""
  name += "_mixed" if mixed else ""
  return os.path.join(model_dir, name)


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if not FLAGS.model_dir:
    print("error: --model_dir is required (a run directory written by train)", file=sys.stderr)
    return 2
  quantize = None if FLAGS.quantize == "none" else FLAGS.quantize
  mixed = FLAGS.mixed_threshold is not None
  output = FLAGS.output or default_output(FLAGS.model_dir, quantize, FLAGS.prune_zero_rows, mixed)

  def progress(done, total, name):
    if FLAGS.progress:
      sys.stderr.write(f"\rsensitivity {done}/{total} {name[-40:]:40s}")
      if done == total:
        sys.stderr.write("\n")
      sys.stderr.flush()

  try:
    info = export_run(FLAGS.model_dir, output, quantize, FLAGS.prune_zero_rows,
                      FLAGS.sensitivity, FLAGS.mixed_threshold, FLAGS.sensitivity_split, progress)
  except (FileNotFoundError, ValueError, datasets.DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  if "sensitivity" in info:
    print(quantize_lib.format_report(info["sensitivity"], FLAGS.mixed_threshold))
  if "mixed" in info:
    print(f"mixed: {len(info['mixed']['quantized_tables'])} of {len(info['tables'])} tables "
          f"{quantize}, the others float32")
  tb = info["table_bytes"]
  print(f"exported {info['path']} ({quantize or 'float32'}"
        f"{', pruned' if FLAGS.prune_zero_rows else ''}): tables {tb['exported']:,} bytes "
        f"({tb['exported'] / max(tb['float32'], 1):.3f}x of float32 {tb['float32']:,}), "
        f"SavedModel {info['saved_model_bytes']:,} bytes")
  if FLAGS.report_json:
    run_dir.write_json(FLAGS.report_json, info)
  return 0


if __name__ == "__main__":
  cli.run(main)
