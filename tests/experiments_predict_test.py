"""experiments.predict and experiments.export on a tiny trained run.

predict: one probability per input row, in input order, skipped rows in place.

A tiny run is trained once; its export and its checkpoint score raw rows from
TSV, CSV and Parquet files. The output has exactly the input's rows in the
input's order; under on_bad_rows="skip" each bad row is still there, with a
null probability and its reason, and the good rows' probabilities equal
those of the same rows in a clean file. Under "error" nothing is written.
"""

import io
import json
import os
from unittest import mock

from absl import flags
from absl.testing import flagsaver
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from tests import testing

import tensorflow as tf

from ctr_zoo import datasets
from experiments import export as export_cli
from experiments import predict
from experiments import train

FLAGS = flags.FLAGS
TINY = ("data.synthetic_rows=3000,input.batch_size=128,trainer.max_steps=6,"
        "trainer.checkpoint_every_steps=3,input.eval_batch_size=1024")


def read_output(path):
  if path.endswith(".csv"):
    return pa_csv.read_csv(path)
  return pq.read_table(path)


class PredictTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    if not FLAGS.is_parsed():
      FLAGS.mark_as_parsed()
    cls.tmp = tf.compat.v1.test.get_temp_dir()
    cls.model_dir = os.path.join(cls.tmp, "predict_run")
    cls.cache = os.path.join(cls.tmp, "cache")
    with mock.patch.dict(os.environ, {"CTR_ZOO_CACHE": cls.cache}), \
        flagsaver.flagsaver(experiment="dnn_synthetic", model_dir=cls.model_dir,
                            params_override=TINY, progress=False, export=True), \
        mock.patch("sys.stdout", io.StringIO()), mock.patch("sys.stderr", io.StringIO()) as err:
      code = train.main([])
    tf.keras.backend.experimental.disable_tf_random_generator()
    assert code == 0, err.getvalue()
    cls.export_dir = os.path.join(cls.model_dir, "export")
    cls.raw = os.path.join(cls.tmp, "raw.tsv")
    datasets.generate_criteo_tsv(cls.raw, 400, seed=11)

  def tearDown(self):
    tf.keras.backend.experimental.disable_tf_random_generator()
    super().tearDown()

  def _lines(self):
    with open(self.raw) as fh:
      return [line.rstrip("\n") for line in fh]

  def test_skipped_rows_keep_their_place_in_the_output(self):
    lines = self._lines()
    bad = {}
    out_lines = []
    for i, line in enumerate(lines):
      fields = line.split("\t")
      if i % 37 == 5:
        out_lines.append(line + "\textra")  # 41 fields
        bad[i] = "field count"
      elif i % 41 == 7:
        fields[3] = "3.5"  # I3 is an integer field
        out_lines.append("\t".join(fields))
        bad[i] = "I3: not an integer"
      elif i % 53 == 9:
        fields[0] = "2"
        out_lines.append("\t".join(fields))
        bad[i] = "label: label must be 0 or 1"
      else:
        out_lines.append(line)
    out_lines.append("1\t2")  # a bad last row
    bad[len(out_lines) - 1] = "field count"
    directory = self.make_temp_dir()
    dirty = os.path.join(directory, "dirty.tsv")
    clean = os.path.join(directory, "clean.tsv")
    with open(dirty, "w") as fh:
      fh.write("\n".join(out_lines) + "\n")
    with open(clean, "w") as fh:
      fh.write("\n".join(l for i, l in enumerate(out_lines) if i not in bad) + "\n")
    scorer = predict.ExportScorer(self.export_dir)
    dirty_out = os.path.join(directory, "dirty.parquet")
    clean_out = os.path.join(directory, "clean.parquet")
    # Small blocks and batches: many batches, skipped rows on their boundaries too.
    result = predict.predict_file(scorer, dirty, dirty_out, on_bad_rows="skip", batch_size=32,
                                  block_size=2048)
    predict.predict_file(scorer, clean, clean_out, batch_size=1000)
    self.assertEqual(result["rows"], len(out_lines))
    self.assertEqual((result["scored"], result["skipped"]), (len(out_lines) - len(bad), len(bad)))
    got = read_output(dirty_out).to_pydict()
    self.assertLen(got["probability"], len(out_lines))
    reasons = {i: r for i, r in enumerate(got["skip_reason"]) if r is not None}
    self.assertEqual(reasons, bad)
    self.assertTrue(all(got["probability"][i] is None for i in bad))
    kept = [p for i, p in enumerate(got["probability"]) if i not in bad]
    self.assertAllClose(kept, read_output(clean_out).column("probability").to_numpy(),
                        rtol=0, atol=1e-6)
    # Under the default policy the first bad row stops the command and nothing is written.
    stopped = os.path.join(directory, "stopped.csv")
    with self.assertRaisesRegex(datasets.DataError, r"dirty\.tsv: line 6, field count: "
                                                    r"expected 40 fields, got 41"):
      predict.predict_file(scorer, dirty, stopped)
    self.assertFalse(os.path.exists(stopped))
    self.assertEqual(os.listdir(directory).count("stopped.csv"), 0)
    self.assertFalse([f for f in os.listdir(directory) if ".tmp-" in f])

  def test_csv_parquet_and_feature_only_inputs_with_passthrough(self):
    directory = self.make_temp_dir()
    table = pa_csv.read_csv(self.raw, read_options=pa_csv.ReadOptions(
        column_names=["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]),
        parse_options=pa_csv.ParseOptions(delimiter="\t"),
        convert_options=pa_csv.ConvertOptions(column_types={
            **{f"C{i}": pa.string() for i in range(1, 27)}}))
    ids = pa.array([f"row{i:04d}" for i in range(table.num_rows)])
    with_id = table.add_column(0, "id", ids)
    csv_path = os.path.join(directory, "rows.csv")
    pa_csv.write_csv(with_id.drop_columns(["label"]), csv_path)  # feature-only, with a header
    parquet_path = os.path.join(directory, "rows.parquet")
    pq.write_table(with_id, parquet_path)
    run, export = predict.RunScorer(self.model_dir), predict.ExportScorer(self.export_dir)
    tsv_out = os.path.join(directory, "tsv.parquet")
    predict.predict_file(export, self.raw, tsv_out, passthrough=["label", "C1"])
    reference = read_output(tsv_out)
    self.assertEqual(reference.column_names, ["label", "C1", "probability", "skip_reason"])
    self.assertEqual(reference.column("label").to_pylist(), table.column("label").to_pylist())
    expected = reference.column("probability").to_numpy()
    for scorer in (run, export):
      for source, with_label, output in ((csv_path, False, "a.csv"),
                                         (parquet_path, True, "b.parquet")):
        out = os.path.join(directory, output)
        result = predict.predict_file(scorer, source, out, passthrough=["id"],
                                      with_label=with_label, batch_size=64)
        self.assertEqual(result["rows"], table.num_rows)
        got = read_output(out)
        self.assertEqual(got.column("id").to_pylist(), ids.to_pylist())
        self.assertAllClose(got.column("probability").to_numpy(), expected, rtol=0, atol=1e-5,
                            msg=f"{type(scorer).__name__} {source}")
    with self.assertRaisesRegex(datasets.DataError, r"headerless file has no column names"):
      predict.predict_file(export, self.raw, os.path.join(directory, "c.csv"), passthrough=["id"])
    with self.assertRaisesRegex(ValueError, r"must end in \.parquet or \.csv"):
      predict.predict_file(export, self.raw, os.path.join(directory, "c.json"))

  def _main(self, **flag_values):
    out = io.StringIO()
    with flagsaver.flagsaver(progress=False, **flag_values), mock.patch("sys.stdout", out), \
        mock.patch("sys.stderr", io.StringIO()) as err:
      code = predict.main([])
    return code, out.getvalue(), err.getvalue()

  def test_cli_prints_counts_and_one_line_errors(self):
    directory = self.make_temp_dir()
    output = os.path.join(directory, "preds.csv")
    code, out, err = self._main(export_dir=self.export_dir, model_dir="", data=self.raw,
                                output=output)
    self.assertEqual(code, 0, err)
    self.assertRegex(out, r"wrote 400 rows to .*preds\.csv in \d+\.\d+s \([\d,]+ rows/s\): "
                          r"400 scored, 0 skipped")
    self.assertEqual(read_output(output).num_rows, 400)
    code, _, err = self._main(export_dir=self.export_dir, model_dir=self.model_dir,
                              data=self.raw, output=output)
    self.assertEqual((code, err.strip()), (2, "error: give exactly one of --model_dir or --export_dir"))
    code, _, err = self._main(export_dir=self.export_dir, model_dir="", data=self.raw,
                              output=output, with_label=False)
    self.assertEqual(code, 1)
    self.assertEqual(len(err.strip().splitlines()), 1, err)
    self.assertRegex(err, r"field count: expected 39 fields, got 40 .*\(rows with the label "
                          r"first\? drop --nowith_label\)")
    code, _, err = self._main(export_dir=self.export_dir, model_dir="",
                              data=os.path.join(directory, "missing.tsv"), output=output)
    self.assertEqual(code, 1)
    self.assertRegex(err.strip(), r"^error: .*missing\.tsv.*$")

  def test_export_cli_int8_with_sensitivity_and_mixed_tables(self):
    directory = self.make_temp_dir()
    output = os.path.join(directory, "export_mixed")
    report = os.path.join(directory, "report.json")
    out = io.StringIO()
    with mock.patch.dict(os.environ, {"CTR_ZOO_CACHE": self.cache}), \
        flagsaver.flagsaver(model_dir=self.model_dir, output=output, quantize="int8",
                            sensitivity=True, mixed_threshold=0.0, report_json=report,
                            progress=False), \
        mock.patch("sys.stdout", out), mock.patch("sys.stderr", io.StringIO()) as err:
      code = export_cli.main([])
    self.assertEqual(code, 0, err.getvalue())
    text = out.getvalue()
    self.assertIn("float32: AUC 0.", text)
    self.assertRegex(text, r"mixed: \d+ of \d+ tables int8, the others float32")
    self.assertRegex(text, r"exported .*export_mixed \(int8\): tables [\d,]+ bytes \(0\.\d+x of "
                           r"float32 [\d,]+\), SavedModel [\d,]+ bytes")
    with open(report) as fh:
      info = json.load(fh)
    quantized = info["mixed"]["quantized_tables"]
    costs = info["sensitivity"]["tables"]
    self.assertEqual(sorted(quantized), sorted(n for n, e in costs.items() if e["auc_cost"] <= 0.0))
    for name, entry in info["tables"].items():
      self.assertEqual(entry["storage"], "int8" if name in quantized else "float32", name)
    self.assertEqual(info["sensitivity"]["split"], "valid")
    scored = predict.predict_file(predict.ExportScorer(output), self.raw,
                                  os.path.join(directory, "p.parquet"))
    self.assertEqual(scored["rows"], 400)
    out = io.StringIO()
    with flagsaver.flagsaver(model_dir=self.model_dir, output=output, quantize="none",
                             sensitivity=True, mixed_threshold=None, report_json=""), \
        mock.patch("sys.stdout", out), mock.patch("sys.stderr", io.StringIO()) as err:
      code = export_cli.main([])
    self.assertEqual((code, err.getvalue().strip()),
                     (1, "error: --sensitivity and --mixed_threshold need --quantize=float16 or int8"))


if __name__ == "__main__":
  tf.test.main()
