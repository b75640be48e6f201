"""experiments.data and the CLIs on any tabular data: specs, separate files, labels, k-fold, Avazu and Frappe."""

import contextlib
import io
import json
import os
from unittest import mock

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

from tests import testing

import tensorflow as tf

from benchmarks import auc
from benchmarks import auc_tables
from ctr_zoo import datasets
from ctr_zoo.datasets import preprocessing
from experiments import configs
from experiments import data as data_lib
from experiments import evaluate
from experiments import paths
from experiments import preprocess
from experiments import resolve
from experiments import run_dir
from experiments import runner
from experiments import train

FLAGS = flags.FLAGS
TINY = ("input.batch_size=64,input.eval_batch_size=1024,trainer.max_steps=4,"
        "trainer.checkpoint_every_steps=4,trainer.epochs=1")
AVAZU_HEADER = ("id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,"
                "app_category,device_id,device_ip,device_model,device_type,device_conn_type,C14,"
                "C15,C16,C17,C18,C19,C20,C21")


def write_avazu(path, n, seed):
  """`n` Avazu-layout rows (header first) with a few values per column."""
  rng = np.random.default_rng(seed)
  with open(path, "w") as fh:
    fh.write(AVAZU_HEADER + "\n")
    for i in range(n):
      hour = f"1410{rng.integers(21, 31):02d}{rng.integers(0, 24):02d}"
      cats = [f"v{rng.integers(0, 5)}" for _ in range(21)]
      fh.write(",".join([str(10 ** 18 + i), str(int(rng.random() < 0.2)), hour] + cats) + "\n")


def data_cfg(name, **overrides):
  return resolve.resolve(configs.get(name, overrides)).data


class ExperimentsDataTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    if not FLAGS.is_parsed():
      FLAGS.mark_as_parsed()

  def setUp(self):
    super().setUp()
    self.cache = self.make_temp_dir()
    patcher = mock.patch.dict(os.environ, {"CTR_ZOO_CACHE": self.cache})
    patcher.start()
    self.addCleanup(patcher.stop)

  def tearDown(self):
    tf.keras.backend.experimental.disable_tf_random_generator()
    super().tearDown()

  def tsv(self, rows, seed, name="d.tsv"):
    path = os.path.join(self.make_temp_dir(), name)
    datasets.generate_criteo_tsv(path, rows, seed=seed)
    return path

  # --- separate files ------------------------------------------------------------------
  def test_test_file_leaves_the_whole_training_file_to_train_and_valid(self):
    train_path, test_path = self.tsv(1000, 1), self.tsv(300, 2)
    prepared = data_lib.prepare(data_cfg("dnn_criteo", **{
        "data.path": train_path, "data.test_path": test_path, "data.test_fraction": 0}))
    self.assertEqual(prepared.rows["train"] + prepared.rows["valid"], 1000)  # 100% of the file
    self.assertBetween(prepared.rows["valid"], 60, 140)
    self.assertEqual(prepared.rows["test"], 300)
    labels = datasets.read_encoded(prepared.split_dir("test"), prepared.spec)[1]
    with open(test_path) as fh:
      np.testing.assert_array_equal(labels, [float(l[0]) for l in fh])
    # A valid file too: the training file is all train; the spec is fitted on it alone.
    valid_path = self.tsv(200, 3)
    both_cfg = data_cfg("dnn_criteo", **{
        "data.train_path": train_path, "data.valid_path": valid_path, "data.test_path": test_path,
        "data.valid_fraction": 0, "data.test_fraction": 0})
    both = data_lib.prepare(both_cfg)
    self.assertEqual(both.rows, {"train": 1000, "valid": 200, "test": 300})
    fitted = datasets.fit(train_path, data_lib.load_spec_arg(both_cfg.spec, both_cfg))
    self.assertEqual(both.spec["C3"].vocabulary, fitted["C3"].vocabulary)

  def test_zero_fraction_needs_its_file_and_errors_name_the_key(self):
    with self.assertRaisesRegex(configs.ConfigError, r"data.test_fraction must be a number > 0 "
                                                     r"\(0 only with data.test_path"):
      data_cfg("dnn_criteo", **{"data.test_fraction": 0})
    self.assertEqual(runner.resolve_config(  # a train_path override replaces the setup's file
        "dnn_criteo", "data.train_path=/b/day.tsv").data.path, "/b/day.tsv")
    with self.assertRaisesRegex(configs.ConfigError, r"data.fold must be in 0..2"):
      data_cfg("dnn_criteo", **{"data.split": "kfold", "data.folds": 3, "data.fold": 3})
    with self.assertRaisesRegex(configs.ConfigError, r"data.spec: spec 'nope' is neither"):
      data_cfg("dnn_criteo", **{"data.spec": "nope"})
    with self.assertRaisesRegex(configs.ConfigError, r"data.integer_encoding must be one of"):
      data_cfg("dnn_criteo", **{"data.integer_encoding": "both"})

  def test_kfold_folds_partition_the_file(self):
    path = self.tsv(900, 4)
    tests = []
    for fold in range(3):
      prepared = data_lib.prepare(data_cfg("dnn_criteo", **{
          "data.path": path, "data.split": "kfold", "data.folds": 3, "data.fold": fold}))
      self.assertEqual(sum(prepared.rows.values()), 900)
      feats, _ = datasets.read_encoded(prepared.split_dir("test"), prepared.spec)
      tests.append(feats["I1"])
    self.assertEqual(sum(len(t) for t in tests), 900)  # each row is tested in exactly one fold
    self.assertLen(os.listdir(os.path.join(self.cache, "prepared")), 3)

  # --- labels -----------------------------------------------------------------------------
  def test_runs_and_caches_are_labelled_by_the_real_data_set(self):
    avazu = os.path.join(self.make_temp_dir(), "avazu_small.csv")
    write_avazu(avazu, 50, 0)
    cfg = runner.resolve_config("dnn_criteo", TINY, data=avazu, spec="avazu")
    self.assertEqual((cfg.name, cfg.data.name, cfg.data.spec), ("dnn_avazu_small", "avazu_small",
                                                                 "avazu"))
    self.assertEqual(runner.resolve_config("dnn_synthetic", TINY, data=avazu, spec="avazu").name,
                     "dnn_avazu_small")
    same = runner.resolve_config("dcn_v2_avazu", TINY, data=paths.avazu_sample())
    self.assertEqual((same.name, same.data.name), ("dcn_v2_avazu", "avazu_sample"))
    user_file = runner.resolve_config("dnn_criteo_x4", TINY, data=self.tsv(10, 0, "train.txt"))
    self.assertEqual(user_file.name, "dnn_criteo_x4")  # a setup made for the user's file
    prepared = data_lib.prepare(cfg.data)
    self.assertTrue(os.path.basename(prepared.directory).startswith("avazu_small-"))

  # --- CLIs ----------------------------------------------------------------------------------
  def _cli(self, module, argv):
    FLAGS.unparse_flags()
    FLAGS([module.__name__] + argv)
    out, err = io.StringIO(), io.StringIO()
    try:
      with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = module.main([])
    finally:
      FLAGS.unparse_flags()
      FLAGS.mark_as_parsed()
    return code, out.getvalue(), err.getvalue()

  def test_preprocess_any_spec_and_two_way_split(self):
    csv = os.path.join(self.make_temp_dir(), "a.csv")
    write_avazu(csv, 400, 1)
    out = self.make_temp_dir()
    code, stdout, err = self._cli(preprocess, [f"--input={csv}", f"--output={out}",
                                               "--spec=avazu", "--split=random:0.8,0.2"])
    self.assertEqual(code, 0, err)
    summary = json.load(open(os.path.join(out, "summary.json")))
    self.assertEqual(set(summary["rows"]), {"train", "valid"})
    self.assertEqual(sum(summary["rows"].values()), 400)
    self.assertIn("weekday", stdout)
    code, _, err = self._cli(preprocess, [f"--input={csv}", f"--output={out}", "--spec=avazu",
                                          "--split=random:0.8,0.1,0.05,0.05"])
    self.assertEqual(code, 2)
    self.assertEqual(len(err.strip().splitlines()), 1, err)
    self.assertIn("accepted: 'random:0.8,0.1,0.1'", err)
    code, _, err = self._cli(preprocess, [f"--input={csv}", f"--output={out}", "--spec=nope.json"])
    self.assertEqual(code, 2)
    self.assertIn("error: spec 'nope.json' is neither a built-in spec", err)

  def test_train_with_a_schema_file_and_separate_test_file(self):
    directory = self.make_temp_dir()
    train_csv, test_csv = (os.path.join(directory, n) for n in ("tr.csv", "te.csv"))
    write_avazu(train_csv, 600, 2)
    write_avazu(test_csv, 150, 3)
    schema = {"label": "click", "columns": AVAZU_HEADER.split(","), "ignore": ["id"],
              "kinds": {"hour": "integer"}}
    schema_path = os.path.join(directory, "schema.json")
    with open(schema_path, "w") as fh:
      json.dump(schema, fh)
    model_dir = os.path.join(directory, "run")
    with flagsaver.flagsaver(experiment="dnn_criteo", data=train_csv, spec=schema_path,
                             model_dir=model_dir, progress=False, export=False,
                             params_override=TINY + f",data.test_path={test_csv},"
                             "data.test_fraction=0,data.integer_encoding=continuous+bucketize"):
      out, err = io.StringIO(), io.StringIO()
      with mock.patch("sys.stdout", out), mock.patch("sys.stderr", err):
        code = train.main([])
    self.assertEqual(code, 0, err.getvalue())
    metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
    self.assertEqual(metrics["split_rows"]["test"], 150)
    self.assertEqual(metrics["split_rows"]["train"] + metrics["split_rows"]["valid"], 600)
    self.assertEqual((metrics["experiment"], metrics["data"]), ("dnn_tr", "tr"))
    spec = json.load(open(os.path.join(model_dir, "spec.json")))
    self.assertIn("hour_bucket", [f["name"] for f in spec["features"]])

  def test_benchmark_folds_records_every_fold_and_seed(self):
    runs = auc.resolve_all(["lr_synthetic"], 2, "data.synthetic_rows=600," + TINY, "", folds=3)
    self.assertEqual([(r[1], r[2].data.split, r[2].data.folds, r[2].data.fold) for r in runs],
                     [(s, "kfold", 3, f) for s in range(2) for f in range(3)])
    with self.assertRaisesRegex(auc.UsageError, "--folds must be 0"):
      auc.resolve_all(["lr_synthetic"], 1, TINY, "", folds=1)
    more = auc.resolve_all(["lr_synthetic"], 2, TINY, "", folds=2, first_seed=1)
    self.assertEqual([(r[1], r[2].trainer.seed, r[2].data.fold) for r in more],
                     [(s, s, f) for s in (1, 2) for f in range(2)])
    results = self.make_temp_dir()
    with mock.patch("sys.stdout", io.StringIO()):
      self.assertEqual(auc.train_and_record(runs[:3], results, ""), 3)
    records = auc_tables.load_records(os.path.join(results, auc.RECORDS_FILE))
    self.assertEqual([(r["data"], r["fold"], r["folds"]) for r in records],
                     [("synthetic_3fold", f, 3) for f in range(3)])
    row = auc_tables.summarize(records)[0]
    self.assertEqual(row["runs"], 3)
    self.assertAllClose(row["auc_mean"], np.mean([r["auc"] for r in records]))

  # --- Avazu and Frappe end to end (the shared samples) --------------------------------------
  def _train_then_evaluate(self, experiment, data, other):
    model_dir = os.path.join(self.make_temp_dir(), experiment)
    cfg = runner.resolve_config(experiment, TINY, data=data)
    self.assertEqual(cfg.name, experiment)  # runs/<experiment> by default
    with flagsaver.flagsaver(experiment=experiment, data=data, model_dir=model_dir,
                             progress=False, export=False, params_override=TINY, spec=""):
      out, err = io.StringIO(), io.StringIO()
      with mock.patch("sys.stdout", out), mock.patch("sys.stderr", err):
        self.assertEqual(train.main([]), 0, err.getvalue())
    self.assertIn(f"== {experiment} ==", out.getvalue())
    with mock.patch.object(preprocessing, "fit", side_effect=AssertionError("refit")), \
        mock.patch.object(preprocessing, "fit_transform", side_effect=AssertionError("refit")):
      labels, preds = evaluate.predict_run(model_dir, "test", other)
    self.assertTrue(np.all((preds > 0) & (preds < 1)))
    with flagsaver.flagsaver(model_dir=model_dir, export_dir="", data=other, metrics_json="",
                             plot="", eval_batch_size=None):
      out, err = io.StringIO(), io.StringIO()
      with mock.patch("sys.stdout", out), mock.patch("sys.stderr", err):
        self.assertEqual(evaluate.main([]), 0, err.getvalue())
    self.assertIn(f"({len(labels):,} rows)", out.getvalue())
    return run_dir.load_params(model_dir), labels

  @pytest.mark.real_data
  @pytest.mark.slow
  def test_avazu_sample_trains_and_scores_another_avazu_csv(self):
    sample = testing.require_file(paths.avazu_sample())
    with open(sample) as fh:
      lines = fh.readlines()
    other = os.path.join(self.make_temp_dir(), "avazu_other.csv")
    with open(other, "w") as fh:
      fh.writelines([lines[0]] + lines[-500:])
    params, labels = self._train_then_evaluate("dcn_v2_avazu", sample, other)
    self.assertEqual((params["data"]["spec"], params["data"]["name"]), ("avazu", "avazu_sample"))
    self.assertLen(labels, 500)

  @pytest.mark.real_data
  @pytest.mark.slow
  def test_frappe_libfm_trains_and_scores_another_libfm_file(self):
    sample = testing.require_file(paths.frappe_libfm())
    with open(sample) as fh:
      head = [next(fh) for _ in range(800)]
    other = os.path.join(self.make_temp_dir(), "frappe_other.libfm")
    with open(other, "w") as fh:
      fh.writelines(head)
    params, labels = self._train_then_evaluate("dcn_v2_frappe", sample, other)
    self.assertEqual(params["data"]["spec"], "frappe")
    np.testing.assert_array_equal(labels, [float(l.split()[0] == "1") for l in head])


if __name__ == "__main__":
  tf.test.main()
