r"""Evaluates a trained model on a data split: AUC, logloss and calibration.

Two ways in:

  # A run directory written by `train`: its best (else latest) checkpoint, its params.json
  # and its fitted spec.json (never refitted). Without --data: the run's own
  # --eval_split (from the cached shards when the cache still holds them);
  # with --data: every row of those raw file(s), encoded with the run's spec
  # (values the run never saw -> OOV).
  bazel run //experiments:evaluate -- --model_dir=runs/dcn_v2_synthetic --eval_split=test \
      --plot=/tmp/reliability.png

  # A raw-feature SavedModel export (float32 or quantized) on labelled raw rows
  # in any layout its spec describes (a headerless TSV in the spec's column
  # order, label first; a CSV with a header; Parquet):
  bazel run //experiments:evaluate -- --export_dir=runs/dcn_v2_synthetic/export \
      --data=$PWD/../shared/data/criteo/criteo_sample.tsv

With --export_dir the rows are read with the export's assets/spec.json by the
pipeline's readers and scored through the export's `serve_typed` signature. A
row that does not fit the layout (a wrong field count, a label that is not
0/1, a non-integer numeric field) follows --on_bad_rows like the pipeline:
"error" (the default) stops with the file, line and field; "skip" leaves it
out and reports the count by reason.

--eval_split is one of train, valid, test (the split names everywhere).

Prints AUC, logloss, predicted vs observed CTR and a 10-bin reliability table;
`--plot` writes the reliability diagram as a PNG; `--metrics_json` writes the
metrics as JSON.
"""

import os
import sys
import tempfile

from absl import flags
from absl import logging
import numpy as np

from experiments import cli

cli.import_tensorflow_quietly()  # (selects Keras 2 before TensorFlow)

from ctr_zoo import datasets
from ctr_zoo import training
from ctr_zoo.datasets import input_pipeline
from ctr_zoo.datasets import readers
from experiments import common_flags  # noqa: F401  (--data, --model_dir, --export_dir, ...)
from experiments import configs
from experiments import data as data_lib
from experiments import run_dir
from experiments import runner
from experiments import scorers

FLAGS = flags.FLAGS
SPLITS = ("train", "valid", "test")
flags.DEFINE_enum("eval_split", "test", list(SPLITS),
                  "Split of the run's data (--model_dir without --data): train, valid or test.")
flags.DEFINE_integer("eval_batch_size", None,
                     "Evaluation batch size (default: the run's input.eval_batch_size; "
                     f"{configs.InputConfig().eval_batch_size} for --export_dir).")
flags.DEFINE_integer("num_bins", 10, "Equal-count bins of the reliability table.")
flags.DEFINE_string("plot", "", "Write the reliability diagram to this PNG path.")
flags.DEFINE_string("metrics_json", "", "Write the metrics as JSON to this path.")


load_run = scorers.load_run  # (resolved config, fitted spec) of a run directory
restore_run = scorers.restore_run


def predict_run(model_dir: str, split: str, data: str, batch_size=None):
  """(labels, probabilities) from the run's best (else latest) checkpoint, on its fitted spec.

  Args:
    model_dir: str. A run directory.
    split: str. The run's split to score when `data` is empty.
    data: str. --data: raw file(s) to score (every row), or a prepared
      directory encoded with the run's spec (its `split`); "" = the run's data.
    batch_size: int or None. None: the run's input.eval_batch_size.
  """
  cfg, spec, _, trainer = scorers.restore_run(model_dir)
  batch_size = batch_size or cfg.input.eval_batch_size
  data_cfg = data_lib.with_data_flag(cfg.data, data)
  with tempfile.TemporaryDirectory(prefix="ctr_zoo_evaluate_") as work:
    if data and not os.path.isdir(data_cfg.path):
      shards = data_lib.transform_files(data_cfg.path, spec, work, data_cfg)
    else:
      shards = data_lib.run_split(data_cfg, spec, split, work)
    return trainer.predict(input_pipeline.make_dataset(shards, spec, batch_size))


def predict_export(export_dir: str, data: str, batch_size=None, on_bad_rows: str = "error",
                   summary=None):
  """(labels, probabilities) of labelled raw file(s) scored by a SavedModel export.

  The rows are read by the pipeline's readers with the export's spec, in any
  layout it describes, and scored by the `serve_typed` signature.

  Args:
    export_dir: str. A raw-feature SavedModel written by `export_saved_model`.
    data: str. File(s): a path, glob or comma-separated list.
    batch_size: int or None. Rows per call (None: the input section's default).
    on_bad_rows: str. "error" or "skip" (skipped rows are counted in `summary`).
    summary: ReadSummary or None. Filled with the read's counts.
  """
  if not data:
    raise ValueError("--export_dir needs --data: labelled raw rows in the export's layout")
  batch_size = batch_size or configs.InputConfig().eval_batch_size
  scorer = scorers.ExportScorer(export_dir)
  labels, preds = [], []
  for batch in datasets.read_batches(data_lib.source_files(data_lib.data_path(data)),
                                     scorer.spec, on_bad_rows=on_bad_rows, summary=summary,
                                     batch_rows=batch_size):
    table = batch.table
    for i in range(0, table.num_rows, batch_size):
      part = table.slice(i, batch_size)
      preds.append(scorer(part))
      labels.append(part.column(scorer.spec.label).to_numpy().astype(np.float64))
  if not labels:
    raise ValueError(f"{data} holds no rows to score")
  return np.concatenate(labels), np.concatenate(preds).astype(np.float64)


def reliability_plot(cal: dict, path: str, title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  predicted = [b["predicted"] for b in cal["bins"]]
  observed = [b["observed"] for b in cal["bins"]]
  top = max(predicted + observed + [1e-3]) * 1.05
  fig, ax = plt.subplots(figsize=(4.5, 4.5))
  ax.plot([0, top], [0, top], "--", color="grey", label="perfect calibration")
  ax.plot(predicted, observed, "o-", label="model")
  ax.set_xlabel("predicted CTR (bin mean)")
  ax.set_ylabel("observed CTR")
  ax.set_title(title)
  ax.legend(loc="upper left")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if bool(FLAGS.model_dir) == bool(FLAGS.export_dir):
    print("error: give exactly one of --model_dir or --export_dir", file=sys.stderr)
    return 2
  try:
    if FLAGS.model_dir:
      labels, preds = predict_run(FLAGS.model_dir, FLAGS.eval_split, FLAGS.data, FLAGS.eval_batch_size)
      source = f"{FLAGS.model_dir} on {FLAGS.data}" if FLAGS.data else \
          f"{FLAGS.model_dir} ({FLAGS.eval_split})"
    else:
      summary = readers.ReadSummary()
      labels, preds = predict_export(FLAGS.export_dir, FLAGS.data, FLAGS.eval_batch_size,
                                     on_bad_rows=FLAGS.on_bad_rows or "error", summary=summary)
      source = f"{FLAGS.export_dir} on {FLAGS.data}"
      if summary.rows_skipped:
        skipped = ", ".join(f"{n:,} {r}" for r, n in sorted(summary.skipped_by_reason.items()))
        source += f" ({summary.rows_skipped:,} bad rows skipped: {skipped})"
  except (FileNotFoundError, ValueError, datasets.DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  problem = runner.nonfinite_predictions(preds, FLAGS.model_dir or FLAGS.export_dir)
  if problem:
    return cli.error(problem)
  result = training.evaluate_predictions(labels, preds)
  cal = training.calibration(labels, preds, num_bins=FLAGS.num_bins)
  result["calibration"] = cal
  print(f"== {source} ==")
  print(f"{runner.format_auc(result)}  logloss {result['logloss']:.4f}  "
        f"({result['num_examples']:,} rows)")
  print(f"predicted CTR {cal['predicted_ctr']:.4f} vs observed {cal['observed_ctr']:.4f} "
        f"(ratio {cal['calibration']:.3f})")
  print("bin  predicted  observed   rows")
  for i, b in enumerate(cal["bins"]):
    print(f"{i:3d}  {b['predicted']:9.4f}  {b['observed']:8.4f}  {b['count']:5d}")
  if FLAGS.plot:
    reliability_plot(cal, FLAGS.plot, os.path.basename(os.path.normpath(FLAGS.model_dir or FLAGS.export_dir)))
    print(f"reliability plot: {FLAGS.plot}")
  if FLAGS.metrics_json:
    run_dir.write_json(FLAGS.metrics_json, result)
  return 0


if __name__ == "__main__":
  cli.run(main)
