r"""Batch prediction: scores raw rows from files, one probability per input row.

  # A run directory (its best-validation, else latest, checkpoint and fitted spec.json):
  bazel run //experiments:predict -- --model_dir=runs/dcn_v2_synthetic \
      --data=$PWD/new_rows.tsv --output=$PWD/preds.parquet

  # A raw-feature SavedModel export (float32 or quantized), feature-only
  # lines, an id column passed through, bad rows skipped:
  bazel run //experiments:predict -- --export_dir=runs/dcn_v2_synthetic/export \
      --data=$PWD/new_rows.csv --nowith_label --passthrough=id \
      --on_bad_rows=skip --output=$PWD/preds.csv

Input (--data): file(s), a glob or a comma-separated list, in any layout the
spec describes (the run's spec.json, or the export's assets/spec.json): a
headerless TSV in the spec's column order, a CSV with a header or Parquet
(columns matched by name). The files are streamed in record batches
(`ctr_zoo.datasets.read_batches`), so a file larger than memory is fine.
`--with_label` (default) reads files that hold the label column, as training
data does; `--nowith_label` reads feature-only rows (e.g. Kaggle test.txt).

Output (--output, .parquet or .csv, written to a temporary name and renamed
when complete): exactly one row per input data row, in input order (files
in the order given, header lines not counted), with the columns

  <passthrough columns>  probability (float32)  skip_reason (string)

A scored row has its probability and a null skip_reason. Bad rows follow the
pipeline's policy (`--on_bad_rows`): "error" (the default) stops at the
first bad row with the file, line and field; "skip" keeps going, and each
skipped row is still written, in its place, with a null probability, null
pass-through values and its skip_reason (e.g. "field count", "I3: not an
integer"), so no row is ever silently missing. The command prints the rows
scored and skipped (by reason), the time and the rate.

--passthrough: comma-separated columns copied to the output: spec columns
(the label as int8, numeric fields as float64, others as strings) or, for
CSV / Parquet input, any other column of the file (as strings, e.g. `id`).
"""

import os
import sys
import time

from absl import flags
from absl import logging
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from experiments import cli

cli.import_tensorflow_quietly()  # (selects Keras 2 before TensorFlow)
# pylint: disable=g-import-not-at-top,wrong-import-position

from ctr_zoo import datasets
from ctr_zoo.datasets import readers
from ctr_zoo.feature_columns import spec as spec_lib
from experiments import common_flags  # noqa: F401  (--data, --export_dir, --output, ...)
from experiments import data as data_lib
from experiments import progress as progress_lib
from experiments import scorers

ExportScorer = scorers.ExportScorer
RunScorer = scorers.RunScorer

FLAGS = flags.FLAGS
OUTPUT_FORMATS = ("parquet", "csv")
PROBABILITY = scorers.PROBABILITY
SKIP_REASON = "skip_reason"
DEFAULT_BATCH_SIZE = 8192



flags.DEFINE_list("passthrough", [], "predict: columns copied to the output (e.g. id).")
flags.DEFINE_bool("with_label", True,
                  "predict: the input rows hold the spec's label column (--nowith_label: "
                  "feature-only rows, e.g. Kaggle test.txt).")
flags.DEFINE_integer("predict_batch_size", DEFAULT_BATCH_SIZE, "Rows per scoring call.")


class _OrderedRows:
  """Places scored batches and skipped rows of each file in input order.

  Good rows arrive in order; a skipped row is known by its 0-based position
  among its file's data rows (`ReadSummary.skipped_rows`) no later than the
  batch that holds the rows after it. Good rows fill the positions that are
  not skipped, in order.
  """

  def __init__(self, summary: readers.ReadSummary):
    self._summary = summary
    self._taken = 0  # entries of summary.skipped_rows consumed
    self._pending = {}  # file index -> {row: reason}
    self._next = {}  # file index -> next position to emit
    self._file = None

  def _collect(self):
    fresh = self._summary.skipped_rows[self._taken:]
    self._taken += len(fresh)
    for file_index, row, reason in fresh:
      if row < self._next.get(file_index, 0):
        raise RuntimeError(f"skipped row {row} of file #{file_index} reported after later rows")
      self._pending.setdefault(file_index, {})[row] = reason

  def _flush_before(self, file_index):
    """Skipped rows left in files before `file_index` (all of them when None)."""
    out = []
    for f in sorted(self._pending):
      if file_index is not None and f >= file_index:
        continue
      rows = self._pending.pop(f)
      out.extend((f, r, rows[r]) for r in sorted(rows))
    return out

  def place(self, file_index: int, n: int):
    """For a batch of n good rows of `file_index`: (trailing skips of earlier files
    [(file, row, reason)], order, skipped [(row, reason)] of this batch, positions).

    The batch's output is [good rows; skipped rows] permuted by `order`.
    """
    self._collect()
    earlier = self._flush_before(file_index)
    pending = self._pending.get(file_index, {})
    start = self._next.get(file_index, 0)
    skip_rows = np.array(sorted(pending), np.int64)
    candidates = np.arange(start, start + n + len(skip_rows), dtype=np.int64)
    positions = candidates[~np.isin(candidates, skip_rows)][:n]
    last = positions[-1] if n else start - 1
    here = [int(r) for r in skip_rows if r < last]
    skipped = [(r, pending.pop(r)) for r in here]
    allpos = np.concatenate([positions, np.array([r for r, _ in skipped], np.int64)])
    order = np.argsort(allpos, kind="stable")
    self._next[file_index] = int(last) + 1
    return earlier, order, skipped

  def finish(self):
    self._collect()
    return self._flush_before(None)


class _Writer:
  """Streams output batches to Parquet or CSV under a temporary name; `close` renames."""

  def __init__(self, path: str, schema: pa.Schema):
    self.path = path
    self.fmt = output_format(path)
    self.tmp = f"{path}.tmp-{os.getpid()}"
    self.rows = 0
    if self.fmt == "parquet":
      self._writer = pq.ParquetWriter(self.tmp, schema)
    else:
      self._writer = pa_csv.CSVWriter(self.tmp, schema)

  def write(self, table: pa.Table):
    if table.num_rows:
      self._writer.write_table(table)
      self.rows += table.num_rows

  def close(self, ok: bool):
    self._writer.close()
    if ok:
      os.replace(self.tmp, self.path)
    elif os.path.exists(self.tmp):
      os.remove(self.tmp)


def output_format(path: str) -> str:
  ext = os.path.splitext(path)[1].lower().lstrip(".")
  ext = {"pq": "parquet"}.get(ext, ext)
  if ext not in OUTPUT_FORMATS:
    raise ValueError(f"--output {path!r}: the name must end in .parquet or .csv")
  return ext


def _passthrough_types(spec: spec_lib.FeatureSpec, names) -> dict:
  types = {}
  for name in names:
    if name == spec.label:
      types[name] = pa.int8()
    elif name in spec.feature_names and isinstance(spec[name], spec_lib.DenseFeature):
      types[name] = pa.float64()
    else:
      types[name] = pa.string()
  return types


def predict_file(scorer, data: str, output: str, passthrough=(), on_bad_rows: str = "error",
                 with_label: bool = True, batch_size: int = DEFAULT_BATCH_SIZE,
                 progress=None, block_size: int = readers.DEFAULT_BLOCK_SIZE) -> dict:
  """Scores every row of `data` into `output`; returns the counts.

  Args:
    scorer: ExportScorer or RunScorer (has `.spec`; called on typed raw tables).
    data: str. File(s): a path, glob or comma-separated list.
    output: str. A .parquet or .csv path.
    passthrough: column names copied to the output.
    on_bad_rows: str. "error" or "skip" (see the module docstring).
    with_label: bool. The rows hold the spec's label column.
    batch_size: int. Rows per scoring call.
    progress: a readers' progress callback or None.
    block_size: int. Bytes of text per read block (`read_batches`).

  Returns:
    {"rows": output rows, "scored", "skipped", "skipped_by_reason",
     "examples", "seconds", "files"}.

  Raises:
    DataError: a bad row under on_bad_rows="error" (nothing is written).
  """
  start = time.perf_counter()
  spec = scorer.spec
  passthrough = list(passthrough)
  if not with_label and spec.label in passthrough:
    raise ValueError(f"--passthrough names the label {spec.label!r} but --nowith_label reads "
                     "no label")
  extra = [c for c in passthrough if c != spec.label and c not in spec.feature_names]
  types = _passthrough_types(spec, passthrough)
  schema = pa.schema([(c, types[c]) for c in passthrough]
                     + [(PROBABILITY, pa.float32()), (SKIP_REASON, pa.string())])
  summary = readers.ReadSummary(skipped_rows=[])
  files = data_lib.source_files(data)
  order = _OrderedRows(summary)
  writer = _Writer(output, schema)
  scored = 0

  def skipped_table(entries) -> pa.Table:
    k = len(entries)
    cols = [pa.nulls(k, types[c]) for c in passthrough]
    return pa.Table.from_arrays(
        cols + [pa.nulls(k, pa.float32()), pa.array([e[-1] for e in entries], pa.string())],
        schema=schema)

  ok = False
  try:
    for batch in datasets.read_batches(files, spec, on_bad_rows=on_bad_rows, summary=summary,
                                       progress=progress, with_label=with_label,
                                       extra_columns=extra, batch_rows=batch_size,
                                       block_size=block_size):
      table = batch.table
      probs = np.concatenate([scorer(table.slice(i, batch_size))
                              for i in range(0, table.num_rows, batch_size)])
      scored += len(probs)
      earlier, perm, skipped = order.place(batch.file_index, table.num_rows)
      writer.write(skipped_table(earlier))
      n, k = table.num_rows, len(skipped)
      cols = []
      for c in passthrough:
        col = table.column(c).cast(types[c])
        cols.append(pa.concat_arrays([a for a in col.chunks] + [pa.nulls(k, types[c])])
                    if col.num_chunks else pa.nulls(n + k, types[c]))
      prob = pa.array(np.concatenate([probs.astype(np.float32), np.zeros(k, np.float32)]),
                      mask=np.concatenate([np.zeros(n, bool), np.ones(k, bool)]))
      reason = pa.array([None] * n + [r for _, r in skipped], pa.string())
      out = pa.Table.from_arrays(cols + [prob, reason], schema=schema)
      writer.write(out.take(pa.array(perm)))
    writer.write(skipped_table(order.finish()))
    ok = True
  finally:
    writer.close(ok)
  return {"rows": writer.rows, "scored": scored, "skipped": summary.rows_skipped,
          "skipped_by_reason": dict(summary.skipped_by_reason), "examples": list(summary.examples),
          "seconds": time.perf_counter() - start, "files": files}


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if bool(FLAGS.model_dir) == bool(FLAGS.export_dir):
    print("error: give exactly one of --model_dir or --export_dir", file=sys.stderr)
    return 2
  if not FLAGS.data or not FLAGS.output:
    print("error: --data and --output are required", file=sys.stderr)
    return 2
  bar = None
  try:
    output_format(FLAGS.output)
    if FLAGS.predict_batch_size <= 0:
      raise ValueError(f"--predict_batch_size must be positive, got {FLAGS.predict_batch_size}")
    scorer = ExportScorer(FLAGS.export_dir) if FLAGS.export_dir else RunScorer(FLAGS.model_dir)
    bar = progress_lib.ProgressBar("predict", min_interval=0.2) if FLAGS.progress else None
    result = predict_file(scorer, data_lib.data_path(FLAGS.data), FLAGS.output,
                          passthrough=FLAGS.passthrough, on_bad_rows=FLAGS.on_bad_rows or "error",
                          with_label=FLAGS.with_label, batch_size=FLAGS.predict_batch_size,
                          progress=bar.file_callback if bar else None)
  except datasets.DataError as e:
    if bar:
      bar.finish()
    hint = ""
    if getattr(e, "field", None) == "field count":
      hint = (" (feature-only rows? pass --nowith_label)" if FLAGS.with_label
              else " (rows with the label first? drop --nowith_label)")
    print(f"error: {e}{hint}", file=sys.stderr)
    return 1
  except (FileNotFoundError, ValueError) as e:
    if bar:
      bar.finish()
    print(f"error: {e}", file=sys.stderr)
    return 1
  if bar:
    bar.finish()
  rate = result["rows"] / result["seconds"] if result["seconds"] else float("inf")
  print(f"wrote {result['rows']:,} rows to {FLAGS.output} in {result['seconds']:.1f}s "
        f"({rate:,.0f} rows/s): {result['scored']:,} scored, {result['skipped']:,} skipped")
  for reason, count in sorted(result["skipped_by_reason"].items()):
    print(f"  skipped {count:,}: {reason}")
  for example in result["examples"][:3]:
    print(f"  e.g. {example}")
  return 0


if __name__ == "__main__":
  cli.run(main)
