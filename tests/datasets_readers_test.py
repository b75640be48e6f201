"""Readers + fit/transform on hand-written files: ids, OOV, missing, bad input."""

import gzip
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tests import testing
from ctr_zoo import datasets
from ctr_zoo.datasets import readers
from ctr_zoo.feature_columns import criteo as criteo_lib
from ctr_zoo.feature_columns import spec as spec_lib

SPEC = spec_lib.FeatureSpec(features=(
    spec_lib.DenseFeature("I1", transform="log1p"),
    spec_lib.CategoricalFeature("C1", min_count=2),
))
# label, I1, C1. "a" x3, "b" x2, "c" x1 (rare), two missing C1, one missing I1.
ROWS = ["1\t3\ta", "0\t\tb", "0\t7\ta", "1\t0\tc", "0\t-2\t", "1\t1\tb", "0\t5\ta", "0\t2\t"]


class ReadersTest(testing.TestCase):

  def write(self, name, text, mode="w"):
    path = os.path.join(self.make_temp_dir(), name)
    with open(path, mode) as fh:
      fh.write(text)
    return path

  def tsv(self, rows=ROWS):
    return self.write("data.tsv", "\n".join(rows) + "\n")

  def test_min_count_oov_missing_ids(self):
    fitted, summary = datasets.fit(self.tsv(), SPEC, return_summary=True)
    # sorted by count desc, then value: a (3), b (2); c (1) is below min_count.
    self.assertEqual(fitted["C1"].vocabulary, ("a", "b"))
    self.assertEqual(summary.rows, 8)
    self.assertAllClose(summary.ctr, 3 / 8)
    out = self.make_temp_dir()
    result = datasets.transform(self.tsv(), fitted, out)
    self.assertEqual(result.rows, {"train": 8})
    feats, labels = datasets.read_encoded(os.path.join(out, "train"), fitted)
    np.testing.assert_array_equal(feats["C1"], [2, 3, 2, 1, 0, 3, 2, 0])
    x = np.array([3, np.nan, 7, 0, -2, 1, 5, 2])
    expected = np.where(np.isnan(x), 0.0, np.log1p(np.maximum(np.nan_to_num(x), 0))).astype(np.float32)
    self.assertAllClose(feats["I1"], expected, rtol=0, atol=0)
    np.testing.assert_array_equal(labels, [1, 0, 0, 1, 0, 1, 0, 0])
    self.assertAllClose(result.oov_rate["C1"], 1 / 6)
    self.assertAllClose(result.missing_rate["C1"], 2 / 8)
    self.assertEqual(spec_lib.FeatureSpec.load(out), fitted)

  def test_unseen_value_is_oov(self):
    fitted = datasets.fit(self.tsv(), SPEC)
    feats, _ = datasets.encode_frame(pd.DataFrame({"label": [1, 0], "I1": [1, 2], "C1": ["zz", "a"]}),
                                     fitted)
    np.testing.assert_array_equal(feats["C1"], [1, 2])

  def test_csv_with_header_and_gzip_and_parquet_agree(self):
    header = "Id,Label,C1,I1\n" + "\n".join(
        f"{i},{r.split(chr(9))[0]},{r.split(chr(9))[2]},{r.split(chr(9))[1]}" for i, r in enumerate(ROWS))
    csv_path = self.write("data.csv", header + "\n")
    gz_path = os.path.join(self.make_temp_dir(), "data.tsv.gz")
    with gzip.open(gz_path, "wt") as fh:
      fh.write("\n".join(ROWS) + "\n")
    pq_path = os.path.join(self.make_temp_dir(), "data.parquet")
    pq.write_table(pa.table({"label": [int(r.split("\t")[0]) for r in ROWS],
                             "I1": pa.array([int(r.split("\t")[1]) if r.split("\t")[1] else None
                                             for r in ROWS], pa.int64()),
                             "C1": [r.split("\t")[2] or None for r in ROWS]}), pq_path)
    base = datasets.fit(self.tsv(), SPEC)
    for path in (csv_path, gz_path, pq_path):
      self.assertEqual(datasets.fit(path, SPEC), base, msg=path)

  def test_real_criteo_sample(self):
    path = testing.require_file(testing.CRITEO_SAMPLE)
    summary = datasets.ReadSummary()
    spec = spec_lib.FeatureSpec(features=criteo_lib.criteo_spec().features, label="label")
    rows = positives = 0
    for batch in datasets.read_batches(path, spec, summary=summary, block_size=1 << 18):
      rows += batch.num_rows
      positives += int(np.sum(batch.table.column("label").to_numpy()))
      self.assertEqual(batch.table.num_columns, 40)
    self.assertEqual(rows, 6000)
    self.assertAllClose(positives / rows, 0.215, atol=5e-4)
    self.assertEqual(summary.rows_skipped, 0)

  # --- bad input -------------------------------------------------------------
  def test_wrong_field_count_error_names_line(self):
    rows = list(ROWS)
    rows[4] = "0\t1"
    with self.assertRaisesRegex(datasets.DataError, r"data.tsv: line 5, field count: expected 3 fields, got 2") as cm:
      datasets.fit(self.tsv(rows), SPEC)
    self.assertEqual(cm.exception.line, 5)
    self.assertEqual(cm.exception.field, "field count")

  def test_wrong_field_count_skip_is_counted(self):
    rows = list(ROWS)
    rows[4] = "0\t1"
    rows[6] = "0\t1\ta\textra"
    fitted, summary = datasets.fit(self.tsv(rows), SPEC, on_bad_rows="skip", return_summary=True)
    self.assertEqual(summary.rows, 6)
    self.assertEqual(summary.read["rows_skipped"], 2)
    self.assertEqual(summary.read["skipped_by_reason"], {"field count": 2})
    self.assertIn("line 5", summary.read["examples"][0])
    self.assertIn("line 7", summary.read["examples"][1])
    # a and b are now both seen twice: the tie is broken by the value.
    self.assertEqual(fitted["C1"].vocabulary, ("a", "b"))

  def test_non_numeric_integer_field(self):
    rows = list(ROWS)
    rows[2] = "0\tseven\ta"
    with self.assertRaisesRegex(datasets.DataError, r"line 3, field 'I1': not an integer, got 'seven'"):
      datasets.fit(self.tsv(rows), SPEC)
    fitted, summary = datasets.fit(self.tsv(rows), SPEC, on_bad_rows="skip", return_summary=True)
    self.assertEqual(summary.read["rows_skipped"], 1)
    self.assertIn("line 3", summary.read["examples"][0])

  def test_byte_scans_of_integer_and_utf8_checks(self):
    """The one-pass byte scans: hex anywhere in a (sliced) column, non-ASCII UTF-8 kept, bad UTF-8 named."""
    arr = pa.array(["12", "0X1f", "7", "-3"]).slice(2)
    self.assertFalse(readers._holds_x(arr))  # pylint: disable=protected-access
    self.assertTrue(readers._holds_x(pa.array(["12", "0X1f"]).slice(1)))  # pylint: disable=protected-access
    self.assertIsNone(readers._invalid_utf8(pa.array(["café", None, "a"])))  # pylint: disable=protected-access
    for value in ("0x1F", "0X10"):
      rows = list(ROWS)
      rows[6] = f"0\t{value}\ta"
      with self.assertRaisesRegex(datasets.DataError,
                                  rf"line 7, field 'I1': not an integer, got '{value}'"):
        datasets.fit(self.tsv(rows), SPEC)
    rows = list(ROWS)
    rows[3] = "1\t0\tcafé"
    fitted = datasets.fit(self.tsv(rows), spec_lib.FeatureSpec(features=(
        spec_lib.DenseFeature("I1", transform="log1p"), spec_lib.CategoricalFeature("C1"))))
    self.assertIn("café", fitted["C1"].vocabulary)
    path = self.write("latin1.tsv", ("\n".join(ROWS[:4]) + "\n1\t0\tcaf\xe9\n").encode("latin-1"),
                      mode="wb")
    with self.assertRaisesRegex(datasets.DataError, r"line 5, field 'C1': invalid UTF-8"):
      datasets.fit(path, SPEC)

  def test_skip_line_numbers_after_a_short_row(self):
    rows = list(ROWS)
    rows[1] = "0\t1"  # line 2: field count
    rows[5] = "2\t1\tb"  # line 6: label
    _, summary = datasets.fit(self.tsv(rows), SPEC, on_bad_rows="skip", return_summary=True)
    self.assertEqual(summary.read["rows_skipped"], 2)
    self.assertTrue(any("line 6, field 'label'" in e for e in summary.read["examples"]),
                    summary.read["examples"])

  def test_label_not_binary(self):
    rows = list(ROWS)
    rows[3] = "2\t0\tc"
    with self.assertRaisesRegex(datasets.DataError, r"line 4, field 'label': label must be 0 or 1, got '2'"):
      datasets.fit(self.tsv(rows), SPEC)

  def test_empty_file(self):
    with self.assertRaisesRegex(datasets.DataError, r"empty.tsv: the file is empty"):
      datasets.fit(self.write("empty.tsv", ""), SPEC)

  def test_truncated_gzip(self):
    path = os.path.join(self.make_temp_dir(), "big.tsv.gz")
    rng = np.random.default_rng(0)
    text = "".join(f"{i % 2}\t{i}\t{rng.integers(1 << 30):x}\n" for i in range(20000))
    blob = gzip.compress(text.encode())
    with open(path, "wb") as fh:
      fh.write(blob[: len(blob) // 2])
    with self.assertRaisesRegex(datasets.DataError, r"big.tsv.gz: .*(truncated|corrupt)"):
      datasets.fit(path, SPEC)

  def test_unreadable_path(self):
    with self.assertRaisesRegex(datasets.DataError, r"cannot read /nonexistent/x.tsv"):
      datasets.fit("/nonexistent/x.tsv", SPEC)
    with self.assertRaisesRegex(datasets.DataError, r"is a directory"):
      datasets.fit(self.make_temp_dir(), SPEC)

  def test_parquet_bad_label_names_record_batch(self):
    path = os.path.join(self.make_temp_dir(), "bad.parquet")
    pq.write_table(pa.table({"label": [0, 1, 0, 5], "I1": [1, 2, 3, 4], "C1": list("abcd")}), path)
    with self.assertRaisesRegex(datasets.DataError,
                                r"bad.parquet: record batch 1, row 1 \(file row 3\), field 'label'"):
      datasets.fit(path, SPEC, batch_rows=2)

  def test_missing_header_column(self):
    path = self.write("h.csv", "label,I1,Cx\n1,2,a\n")
    with self.assertRaisesRegex(datasets.DataError, r"h.csv: field 'C1' is not among the columns"):
      datasets.fit(path, SPEC)

  def test_transform_needs_fitted_spec(self):
    with self.assertRaisesRegex(spec_lib.SpecError, r"not fitted: \['C1'\]"):
      datasets.transform(self.tsv(), SPEC, self.make_temp_dir())

  def test_bad_policy(self):
    with self.assertRaisesRegex(ValueError, "on_bad_rows must be one of"):
      list(readers.read_batches(self.tsv(), SPEC, on_bad_rows="drop"))
