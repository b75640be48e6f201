"""experiments.preprocess: the CLI end to end on a tiny synthetic file and on bad input."""

import contextlib
import io
import json
import os

from absl import flags

from tests import testing
from ctr_zoo import datasets
from ctr_zoo.feature_columns import spec as spec_lib
from experiments import preprocess


class PreprocessCliTest(testing.TestCase):

  def run_cli(self, *args):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["preprocess"] + list(args))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      rc = preprocess.main([])
    flags.FLAGS.unparse_flags()
    return rc, out.getvalue(), err.getvalue()

  def test_synthetic_end_to_end(self):
    out = self.make_temp_dir()
    rc, stdout, _ = self.run_cli("--input=synthetic:3000", f"--output={out}", "--min_count=2",
                                 "--seed=4")
    self.assertEqual(rc, 0)
    self.assertIn("oracle AUC", stdout)
    self.assertIn("skipped rows: 0", stdout)
    summary = json.load(open(os.path.join(out, "summary.json")))
    self.assertEqual(sum(summary["rows"].values()), 3000)
    spec = spec_lib.FeatureSpec.load(out)
    self.assertTrue(spec.is_fitted)
    self.assertEqual(spec["C1"].min_count, 2)
    feats, labels = datasets.read_encoded(os.path.join(out, "valid"), spec)
    self.assertEqual(len(labels), summary["rows"]["valid"])

  def test_two_parses_below_max_stage_gib_write_the_same(self):
    d = self.make_temp_dir()
    src = os.path.join(d, "raw.tsv")
    datasets.generate_criteo_tsv(src, 2000, seed=2)
    outputs = []
    for extra in ([], ["--max_stage_gib=0"]):
      out = os.path.join(d, f"out{len(outputs)}")
      rc, _, _ = self.run_cli(f"--input={src}", f"--output={out}", "--min_count=2", *extra)
      self.assertEqual(rc, 0)
      outputs.append(out)
    self.assertEqual(spec_lib.FeatureSpec.load(outputs[0]), spec_lib.FeatureSpec.load(outputs[1]))
    for split in ("train", "valid", "test"):
      a, la = datasets.read_encoded(os.path.join(outputs[0], split), spec_lib.FeatureSpec.load(outputs[0]))
      b, lb = datasets.read_encoded(os.path.join(outputs[1], split), spec_lib.FeatureSpec.load(outputs[1]))
      self.assertAllClose(la, lb, rtol=0, atol=0)
      for name in a:
        self.assertAllClose(a[name], b[name], rtol=0, atol=0)

  def test_bad_rows_error_and_skip(self):
    d = self.make_temp_dir()
    src = os.path.join(d, "raw.tsv")
    datasets.generate_criteo_tsv(src, 500, seed=1)
    lines = open(src).read().splitlines()
    lines[9] = "\t".join(lines[9].split("\t")[:30])  # line 10: 30 fields
    with open(src, "w") as fh:
      fh.write("\n".join(lines) + "\n")
    rc, _, stderr = self.run_cli(f"--input={src}", f"--output={d}/out", "--split=none")
    self.assertEqual(rc, 1)
    self.assertIn("raw.tsv: line 10, field count: expected 40 fields, got 30", stderr)
    rc, stdout, _ = self.run_cli(f"--input={src}", f"--output={d}/out", "--split=none",
                                 "--on_bad_rows=skip")
    self.assertEqual(rc, 0)
    self.assertIn("skipped rows: 1 {'field count': 1}", stdout)
    self.assertIn("line 10", stdout)
