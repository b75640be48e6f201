"""The scikit-learn LR anchor under K-fold cross-validation: the folds' rows and records."""

import json
import os
from unittest import mock

import numpy as np

from tests import testing

from benchmarks import sklearn_anchor
from ctr_zoo import datasets
from ctr_zoo.feature_columns import avazu as avazu_lib
from ctr_zoo.feature_columns import criteo as criteo_lib
from experiments import data as data_lib

ROWS = 240


def write_tsv(path: str, rows: int, seed: int) -> np.ndarray:
  """A small Criteo-layout TSV whose I1 is the 0-based line number; returns the labels."""
  rng = np.random.default_rng(seed)
  c1 = rng.integers(0, 6, rows)
  labels = (rng.random(rows) < np.where(c1 < 3, 0.85, 0.05)).astype(int)  # C1 carries signal
  with open(path, "w") as fh:
    for i in range(rows):
      ints = [str(i)] + [str(int(v)) if v >= 0 else "" for v in rng.integers(-1, 9, 12)]
      cats = [f"{c1[i]:08x}"] + [f"{int(v):08x}" if v else "" for v in rng.integers(0, 5, 25)]
      fh.write("\t".join([str(labels[i])] + ints + cats) + "\n")
  return labels


class _CacheTestCase(testing.TestCase):
  """Each test prepares data under its own CTR_ZOO_CACHE."""

  def setUp(self):
    super().setUp()
    patcher = mock.patch.dict(os.environ, {"CTR_ZOO_CACHE": self.make_temp_dir()})
    patcher.start()
    self.addCleanup(patcher.stop)


class SklearnAnchorKFoldTest(_CacheTestCase):

  def setUp(self):
    super().setUp()
    self.path = os.path.join(self.make_temp_dir(), "tiny.tsv")
    self.labels = write_tsv(self.path, ROWS, seed=3)
    self.assertEqual(len(criteo_lib.RAW_COLUMNS), 40)

  def prepared_rows(self, cfg) -> dict:
    """{split: sorted line numbers} of the rows experiments.data puts in each split of `cfg`."""
    prepared = data_lib.prepare(cfg.data)
    values = {s: datasets.read_encoded(prepared.split_dir(s), prepared.spec)[0]["I1"].reshape(-1)
              for s in ("train", "valid", "test")}
    every = np.sort(np.concatenate(list(values.values())))
    self.assertEqual(len(np.unique(every)), ROWS)  # I1 (the line number) maps 1:1 and in order
    return {s: np.sort(np.searchsorted(every, v)) for s, v in values.items()}

  def test_each_fold_has_the_rows_of_the_kfold_split_and_one_record(self):
    results = self.make_temp_dir()
    tracked = os.path.join(self.make_temp_dir(), "tracked.jsonl")
    out = sklearn_anchor.run("lr_criteo", self.path, 2, [0.1, 1.0], [1, 2], results, tracked,
                             say=lambda m: None)
    label = sklearn_anchor.fold_config("lr_criteo", self.path).data.name
    self.assertEqual([(r["data"], r["folds"], r["fold"]) for r in out],
                     [(f"{label}_2fold", 2, 0), (f"{label}_2fold", 2, 1)])
    for path in (os.path.join(results, "auc_records.jsonl"), tracked):
      with open(path) as fh:
        self.assertEqual([json.loads(line)["fold"] for line in fh], [0, 1])
    tests = []
    for fold, record in enumerate(out):
      cfg = sklearn_anchor.fold_config("lr_criteo", self.path, 2, fold)
      self.assertEqual((cfg.data.split, cfg.data.folds, cfg.data.fold), ("kfold", 2, fold))
      masks = sklearn_anchor.split_masks(cfg, ROWS)
      self.assertEqual(sum(m.astype(int) for m in masks.values()).tolist(), [1] * ROWS)  # disjoint
      expected = self.prepared_rows(cfg)
      for split, mask in masks.items():
        np.testing.assert_array_equal(np.flatnonzero(mask), expected[split], err_msg=split)
      self.assertEqual(record["split_rows"], {s: int(m.sum()) for s, m in masks.items()})
      self.assertIn(record["config"]["C"], (0.1, 1.0))
      self.assertIn(record["config"]["min_count"], (1, 2))
      self.assertLen(record["config"]["sweep"], 4)
      self.assertEqual(record["config"]["split"]["fold"], fold)
      self.assertGreater(record["auc"], 0.6)  # C1 separates 0.85 from 0.05 click rates
      tests.append(masks["test"])
    np.testing.assert_array_equal(tests[0], ~tests[1])  # the two test folds partition the rows

  def test_bad_folds_and_separate_files_are_refused(self):
    with self.assertRaisesRegex(sklearn_anchor.UsageError, r"--folds must be 0 .* got 1"):
      sklearn_anchor.run("lr_criteo", self.path, 1, [1.0], [1], self.make_temp_dir(), "")
    with self.assertRaisesRegex(sklearn_anchor.UsageError, r"reads one data file"):
      sklearn_anchor.fold_config("lr_criteo", self.path, 0, 0,
                                 overrides=f"data.test_path={self.path}")


class SklearnAnchorSyntheticTest(_CacheTestCase):
  """On the built-in synthetic data: the deep runs' rows, and the oracle beside the anchor."""

  def test_synthetic_split_rows_labels_and_oracle(self):
    overrides = "data.synthetic_rows=3000"
    cfg = sklearn_anchor.fold_config("lr_synthetic", "", 0, 0, overrides)
    results = self.make_temp_dir()
    (record,) = sklearn_anchor.run("lr_synthetic", "", 0, [0.1], [1, 2], results, "",
                                   say=lambda m: None, overrides=overrides)
    prepared = data_lib.prepare(cfg.data)  # what a deep model's run on this config reads
    y, _ = sklearn_anchor.read_tokens(cfg)
    masks = sklearn_anchor.split_masks(cfg, len(y))
    self.assertLen(y, 3000)
    for split, mask in masks.items():
      labels = datasets.read_encoded(prepared.split_dir(split), prepared.spec)[1].reshape(-1)
      np.testing.assert_array_equal(y[mask], labels, err_msg=split)  # same rows, same order
    self.assertEqual(record["data"], "synthetic")
    self.assertEqual(record["split_rows"], {s: int(m.sum()) for s, m in masks.items()})
    self.assertAlmostEqual(record["oracle_auc"], prepared.oracle["test"]["auc"], places=12)
    self.assertAlmostEqual(record["oracle_logloss"], prepared.oracle["test"]["logloss"], places=12)
    self.assertGreater(record["auc"], 0.55)  # main effects are learnable by a linear model
    self.assertLess(record["auc"], record["oracle_auc"])


def write_avazu_csv(path: str, rows: int, seed: int, bad_line: int = 0) -> tuple:
  """A small Avazu-layout CSV (with its header) whose hour of day carries the signal.

  Returns (labels, hours of day). Line `bad_line` (1-based, counting the header
  as line 1) gets an impossible hour value when > 0.
  """
  rng = np.random.default_rng(seed)
  hours = rng.integers(0, 4, rows) * 6  # 0, 6, 12, 18
  labels = (rng.random(rows) < np.where(hours < 12, 0.8, 0.1)).astype(int)
  lines = [",".join(avazu_lib.RAW_COLUMNS)]
  for i in range(rows):
    when = f"141021{hours[i]:02d}" if bad_line != i + 2 else "14102199"
    other = [f"v{int(v)}" for v in rng.integers(0, 4, len(avazu_lib.RAW_COLUMNS) - 3)]
    lines.append(",".join([str(10**6 + i), str(labels[i]), when] + other))
  with open(path, "w") as fh:
    fh.write("\n".join(lines) + "\n")
  return labels, hours


class SklearnAnchorAnySpecTest(_CacheTestCase):
  """The anchor reads what the experiment's spec describes, with the pipeline's reader."""

  def test_avazu_csv_token_fields_derived_hours_and_folds(self):
    path = os.path.join(self.make_temp_dir(), "avazu.csv")
    labels, hours = write_avazu_csv(path, ROWS, seed=5)
    cfg = sklearn_anchor.fold_config("lr_avazu", path, 2, 0)
    y, tok = sklearn_anchor.read_tokens(cfg)
    np.testing.assert_array_equal(y, labels)
    cats = [c for c in avazu_lib.RAW_COLUMNS if c not in ("id", "click", "hour")]
    self.assertEqual(list(tok.columns), cats + ["hour_of_day", "weekday"])  # id, hour not fields
    self.assertEqual(tok["hour_of_day"].tolist(), [str(h) for h in hours])
    self.assertEqual(set(tok["weekday"]), {"1"})  # 2014-10-21 was a Tuesday (Monday = 0)
    out = sklearn_anchor.run("lr_avazu", path, 2, [1.0], [1], self.make_temp_dir(), "",
                             say=lambda m: None)
    self.assertEqual([r["fold"] for r in out], [0, 1])
    for r in out:
      self.assertTrue(r["data"].endswith("_2fold"), r["data"])
      self.assertGreater(r["auc"], 0.7)  # hour of day: 0.8 vs 0.1 click rates (best AUC 0.85)

  def test_a_bad_row_is_named_by_file_line_and_field(self):
    path = os.path.join(self.make_temp_dir(), "bad.csv")
    write_avazu_csv(path, 20, seed=1, bad_line=7)
    cfg = sklearn_anchor.fold_config("lr_avazu", path, 0, 0)
    with self.assertRaisesRegex(datasets.DataError, r"bad.csv: line 7, field 'hour'"):
      sklearn_anchor.read_tokens(cfg)

  def test_frappe_libfm_fields_by_position(self):
    path = os.path.join(self.make_temp_dir(), "f.libfm")
    rng = np.random.default_rng(2)
    rows = []
    for i in range(ROWS):
      ids = [10 * j + int(rng.integers(0, 3)) for j in range(10)]
      label = 1 if ids[0] % 10 == 0 else -1
      rows.append(" ".join([str(label)] + [f"{v}:1" for v in ids]))
    with open(path, "w") as fh:
      fh.write("\n".join(rows) + "\n")
    y, tok = sklearn_anchor.read_tokens(sklearn_anchor.fold_config("lr_frappe", path, 0, 0))
    self.assertLen(tok.columns, 10)
    np.testing.assert_array_equal(y, [int(r.split()[0] == "1") for r in rows])
    first = [r.split()[1].split(":")[0] for r in rows]
    self.assertEqual(len(set(tok.iloc[:, 0])), len(set(first)))  # one token per feature id
