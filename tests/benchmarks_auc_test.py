"""The AUC benchmark: records -> mean/std tables (bold best, oracle), CSV, PNG, README; the CLI."""

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from unittest import mock

from absl import flags
from absl.testing import flagsaver
import numpy as np

from tests import testing

from benchmarks import auc
from benchmarks import auc_tables
from benchmarks import records as records_lib

FLAGS = flags.FLAGS
TINY = "data.synthetic_rows=2000,trainer.max_steps=2"


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

  def test_models_below_the_lr_anchor_are_marked(self):
    records = _records() + [
        {"data": "synthetic", "model": auc_tables.ANCHOR, "seed": 0, "auc": 0.75,
         "logloss": 0.4, "params": 10, "train_seconds": 1.0, "examples_per_sec": 5.0,
         "oracle_auc": None}]
    lines = auc_tables.markdown_table(auc_tables.summarize(records), "synthetic").splitlines()
    marked = [line.split(" | ")[0] for line in lines if auc_tables.BELOW_ANCHOR in line]
    self.assertEqual(marked, [f"| lr {auc_tables.BELOW_ANCHOR}"])  # 0.71 < 0.75 < 0.81
    self.assertTrue(any(line.startswith(f"| {auc_tables.ANCHOR} |") for line in lines))
    # No anchor record for the data: nothing is marked.
    real = auc_tables.markdown_table(auc_tables.summarize(_records()), "criteo_sample")
    self.assertNotIn(auc_tables.BELOW_ANCHOR, real)

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


def _snapshot(root: str) -> dict:
  """sha256 of every file under <root>/benchmarks/results, and `git status` when in git."""
  out = {}
  results = os.path.join(root, "benchmarks", "results")
  for dirpath, _, names in os.walk(results):
    for name in names:
      path = os.path.join(dirpath, name)
      with open(path, "rb") as fh:
        out[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
  status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root,
                          capture_output=True, text=True, check=False, timeout=60)
  if status.returncode == 0:
    out["git status"] = status.stdout
  return out


class AucCliTest(testing.TestCase):
  """`python -m benchmarks.auc`: a user's run writes its own results directory and nothing else."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    if not FLAGS.is_parsed():
      FLAGS.mark_as_parsed()

  def test_a_run_leaves_the_repository_and_the_temp_dir_as_they_were(self):
    work = self.make_temp_dir()
    results, tmp, cache = (os.path.join(work, d) for d in ("results", "tmp", "cache"))
    os.makedirs(tmp)
    tracked = os.path.join(work, "tracked", "auc_records.jsonl")
    before = _snapshot(testing.PROJECT_ROOT)
    # No byte-code cache: under Bazel it would be written below TMPDIR.
    env = dict(os.environ, TMPDIR=tmp, CTR_ZOO_CACHE=cache, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.auc", "--experiments=lr", "--seeds=1",
         f"--params_override={TINY}", f"--results={results}", f"--record={tracked}"],
        cwd=testing.PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
        check=False)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    self.assertNotIn("Traceback", proc.stderr)
    self.assertEqual(_snapshot(testing.PROJECT_ROOT), before)
    self.assertEqual(os.listdir(tmp), [])  # the run directories are gone
    mine = records_lib.load_jsonl(os.path.join(results, "auc_records.jsonl"))
    self.assertLen(mine, 1)
    self.assertEqual((mine[0]["experiment"], mine[0]["seed"]), ("lr_synthetic", 0))
    self.assertTrue(0 <= mine[0]["auc"] <= 1)
    self.assertEqual(records_lib.load_jsonl(tracked), mine)  # --record appends the same line
    with open(os.path.join(results, "auc_synthetic.md")) as fh:
      self.assertIn("| lr | ", fh.read())
    for name in ("auc_summary.csv", "auc.png"):
      self.assertTrue(os.path.exists(os.path.join(results, name)), name)
    self.assertIn(f"records: {os.path.join(results, 'auc_records.jsonl')}", proc.stdout)

  def test_default_results_dir_is_git_ignored_and_nothing_is_recorded(self):
    self.assertEqual(records_lib.results_dir(""),
                     os.path.join(records_lib.REPO_ROOT, "runs", "benchmarks"))
    self.assertEqual(FLAGS["record"].default, "")
    ignored = subprocess.run(["git", "check-ignore", "-q", "runs/benchmarks/auc_records.jsonl"],
                             cwd=testing.PROJECT_ROOT, capture_output=True, check=False,
                             timeout=60)
    if ignored.returncode == 128:
      self.skipTest("not a git checkout")
    self.assertEqual(ignored.returncode, 0, "runs/ is not git-ignored")

  def _main(self, **flag_values):
    out, err = io.StringIO(), io.StringIO()
    with flagsaver.flagsaver(**flag_values), mock.patch("sys.stdout", out), \
        mock.patch("sys.stderr", err):
      code = auc.main([])
    return code, out.getvalue(), err.getvalue()

  def test_bad_flags_are_one_line_and_exit_2(self):
    results = self.make_temp_dir()
    cases = {
        "unknown (experiment|model) 'nope": dict(experiments=["nope"], results=results),
        "unknown config field 'trainer.nope'": dict(experiments=["lr"], results=results,
                                                    params_override="trainer.nope=1"),
        "must be a directory": dict(results=os.path.join(results, "auc_records.jsonl")),
        r"must name a JSON-lines records file": dict(results=results, record="x.json"),
        "--seeds must be >= 1, got 0": dict(results=results, seeds=0),
        "no records at": dict(results=results, render_only=True),
    }
    for message, flag_values in cases.items():
      code, out, err = self._main(**flag_values)
      self.assertEqual(code, 2, (message, err))
      self.assertEqual(len(err.strip().splitlines()), 1, err)
      self.assertRegex(err, "^error: .*" + message)
      self.assertEqual(out, "")
    self.assertEqual(os.listdir(results), [])

  def test_run_directories_are_removed_when_training_fails(self):
    tmp = self.make_temp_dir()
    cfg = auc.runner.resolve_config("lr_synthetic", TINY)
    seen = []

    def failing_run(cfg, model_dir, **kwargs):
      del cfg, kwargs
      os.makedirs(os.path.join(model_dir, "checkpoints"))
      seen.append(model_dir)
      raise KeyboardInterrupt

    with mock.patch.object(tempfile, "tempdir", tmp), \
        mock.patch.object(auc.runner, "run", failing_run):
      with self.assertRaises(KeyboardInterrupt):
        auc.train_and_record([("lr_synthetic", 0, cfg)], self.make_temp_dir(), "")
    self.assertLen(seen, 1)
    self.assertTrue(seen[0].startswith(tmp))
    self.assertEqual(os.listdir(tmp), [])


if __name__ == "__main__":
  import tensorflow as tf
  tf.test.main()


class CvSweepTest(testing.TestCase):
  """The cross-validated sweep's points and its summary (selection on valid only)."""

  def test_points_are_parsed_and_bad_ones_refused(self):
    from benchmarks import cv_sweep  # pylint: disable=g-import-not-at-top
    self.assertEqual(cv_sweep.parse_points(["default:", "ep:trainer.epochs=30,input.batch_size=8"]),
                     [("default", ""), ("ep", "trainer.epochs=30,input.batch_size=8")])
    for bad in (["no_colon"], [":x=1"], ["a/b:x=1"], ["a:", "a:x=1"], []):
      with self.assertRaises(cv_sweep.UsageError, msg=str(bad)):
        cv_sweep.parse_points(bad)

  def test_summary_pairs_the_held_out_fold_auc_by_fold(self):
    from benchmarks import cv_sweep  # pylint: disable=g-import-not-at-top
    def recs(valid, test):
      return [{"fold": f, "valid_auc": v, "auc": t} for f, (v, t) in enumerate(zip(valid, test))]
    base = cv_sweep.summarize("dnn", "default", "", recs([0.9, 0.9, 0.9], [0.70, 0.72, 0.74]))
    self.assertAlmostEqual(base["mean_test_auc"], 0.72)
    self.assertNotIn("test_gain_vs_baseline", base)
    other = cv_sweep.summarize("dnn", "x", "a=1", recs([0.1, 0.1, 0.1], [0.71, 0.71, 0.76]), base)
    self.assertAlmostEqual(other["test_gain_vs_baseline"], (0.01 - 0.01 + 0.02) / 3)
    self.assertEqual(other["folds_better"], 2)
    self.assertAlmostEqual(other["valid_gain_vs_baseline"], -0.8)
    self.assertAlmostEqual(other["test_gain_std"], float(np.std([0.01, -0.01, 0.02], ddof=1)))
    table = cv_sweep.render([base, other]).splitlines()
    self.assertLen(table, 4)
    self.assertIn("| dnn | x | `a=1` | 0.7267 | +0.0067 ± 0.0153 | 2/3 | 0.1000 |", table)
