"""Benchmark rendering: records -> mean/std table with bold best and oracle, CSV, PNG, README."""

import json
import os

import numpy as np

from tests import testing

from benchmarks import auc_tables


def _records():
  out = []
  for model, aucs in (("lr", [0.70, 0.71, 0.72]), ("dcn_v2", [0.80, 0.82, 0.81])):
    for seed, auc in enumerate(aucs):
      out.append({"data": "synthetic", "model": model, "seed": seed, "auc": auc,
                  "logloss": 1 - auc, "params": 100 if model == "lr" else 5000,
                  "train_seconds": 10.0 + seed, "examples_per_sec": 1000.0,
                  "oracle_auc": 0.85, "oracle_logloss": 0.30})
  out.append({"data": "criteo_sample", "model": "lr", "seed": 0, "auc": 0.7, "logloss": 0.5,
              "params": 10, "train_seconds": 1.0, "examples_per_sec": 5.0, "oracle_auc": None})
  return out


class AucTablesTest(testing.TestCase):

  def _write(self, records):
    path = os.path.join(self.make_temp_dir(), "records.jsonl")
    with open(path, "w") as fh:
      fh.writelines(json.dumps(r) + "\n" for r in records)
    return path

  def test_summary_is_mean_and_sample_std(self):
    rows = auc_tables.summarize(_records())
    dcn = next(r for r in rows if r["model"] == "dcn_v2")
    self.assertAllClose(dcn["auc_mean"], np.mean([0.80, 0.82, 0.81]))
    self.assertAllClose(dcn["auc_std"], np.std([0.80, 0.82, 0.81], ddof=1))
    self.assertAllClose(dcn["auc_gap_to_oracle"], 0.85 - 0.81)
    self.assertEqual(dcn["runs"], 3)
    self.assertEqual([r["model"] for r in rows if r["data"] == "synthetic"], ["dcn_v2", "lr"])

  def test_markdown_bolds_best_and_has_oracle_row(self):
    table = auc_tables.markdown_table(auc_tables.summarize(_records()), "synthetic")
    lines = table.strip().splitlines()
    self.assertIn("| dcn_v2 | **0.8100 ± 0.0100** | **0.1900 ± 0.0100** | 0.0400 |", lines[2])
    self.assertIn("| lr | 0.7100 ± 0.0100 | 0.2900 ± 0.0100 | 0.1400 |", lines[3])
    self.assertTrue(lines[-1].startswith("| *oracle*"), lines[-1])
    self.assertIn("0.8500", lines[-1])
    real = auc_tables.markdown_table(auc_tables.summarize(_records()), "criteo_sample")
    self.assertNotIn("oracle", real)

  def test_render_writes_csv_png_and_readme_blocks(self):
    out = self.make_temp_dir()
    readme = os.path.join(out, "README.md")
    with open(readme, "w") as fh:
      fh.write("intro\n<!-- auc-table:synthetic:begin -->\nold\n<!-- auc-table:synthetic:end -->\n"
               "tail\n")
    tables = auc_tables.render(self._write(_records()), out, readme)
    self.assertEqual(sorted(tables), ["criteo_sample", "synthetic"])
    for name in ("auc_synthetic.md", "auc_criteo_sample.md", "auc_summary.csv", "auc.png"):
      self.assertGreater(os.path.getsize(os.path.join(out, name)), 0, name)
    with open(readme) as fh:
      text = fh.read()
    self.assertNotIn("old", text)
    self.assertIn("<!-- auc-table:synthetic:begin -->\n" + tables["synthetic"] +
                  "<!-- auc-table:synthetic:end -->\ntail", text)
    with open(os.path.join(out, "auc_summary.csv")) as fh:
      header = fh.readline().strip().split(",")
    self.assertEqual(tuple(header), auc_tables.CSV_FIELDS)

  def test_bad_record_line_is_named(self):
    path = self._write(_records())
    with open(path, "a") as fh:
      fh.write("{oops\n")
    with self.assertRaisesRegex(ValueError, r"records.jsonl:8: not a JSON record"):
      auc_tables.load_records(path)


if __name__ == "__main__":
  import tensorflow as tf
  tf.test.main()


class PrecisionTableTest(testing.TestCase):

  def _write(self, records, name):
    path = os.path.join(self.make_temp_dir(), name)
    with open(path, "w") as fh:
      fh.writelines(json.dumps(r) + "\n" for r in records)
    return path

  def test_pairs_float32_and_bfloat16_means(self):
    from benchmarks import render_readme  # pylint: disable=g-import-not-at-top
    full = self._write(_records(), "f32.jsonl")
    mixed_records = [dict(r, auc=r["auc"] + 0.005) for r in _records() if r["model"] == "dcn_v2"]
    mixed = self._write(mixed_records, "bf16.jsonl")
    table = render_readme.precision_markdown(full, mixed)
    lines = table.strip().splitlines()
    self.assertLen(lines, 3)  # header, rule, dcn_v2 only (lr has no bfloat16 runs)
    self.assertEqual(lines[2], "| synthetic | dcn_v2 | 0.8100 ± 0.0100 | 0.8150 ± 0.0100 | "
                               "+0.0050 | 3 / 3 |")
    missing = os.path.join(self.make_temp_dir(), "absent.jsonl")
    self.assertIn("No mixed_bfloat16 runs", render_readme.precision_markdown(full, missing))
