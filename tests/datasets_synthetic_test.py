"""Synthetic Criteo and sequence data: oracle quality, reproducibility; MovieLens reader."""

import filecmp
import os

import numpy as np
from sklearn import metrics as sk_metrics

from tests import testing
from ctr_zoo import datasets
from ctr_zoo.feature_columns import criteo_spec


class SyntheticCriteoTest(testing.TestCase):

  def test_oracle_quality_and_pipeline_end_to_end(self):
    d = self.make_temp_dir()
    path = os.path.join(d, "syn.tsv")
    info = datasets.generate_criteo_tsv(path, 60_000, seed=3, chunk_rows=25_000)
    self.assertGreater(info["oracle_auc"], 0.75)
    self.assertLess(info["oracle_auc"], 0.9)
    self.assertBetween(info["ctr"], 0.19, 0.26)
    split = datasets.RandomSplit(seed=2)
    spec = datasets.fit(path, criteo_spec(min_count=2), split=split)
    summary = datasets.transform(path, spec, os.path.join(d, "out"), split=split)
    self.assertEqual(sum(summary.rows.values()), 60_000)
    test = datasets.split_oracle_metrics(path, split, "test")
    self.assertEqual(test["rows"], summary.rows["test"])
    self.assertAllClose(test["ctr"], summary.ctr["test"], atol=0, rtol=0)
    self.assertGreater(test["auc"], 0.75)
    # the TSV's labels are the oracle file's labels, row for row
    _, labels = datasets.read_encoded(os.path.join(d, "out", "train"), spec)
    self.assertEqual(int(labels.sum()), summary.positives["train"])

  def test_reproducible_by_seed_and_prefix_stable(self):
    d = self.make_temp_dir()
    a, b, c, short = (os.path.join(d, n) for n in ("a.tsv", "b.tsv", "c.tsv", "s.tsv"))
    datasets.generate_criteo_tsv(a, 3000, seed=7, chunk_rows=1000)
    datasets.generate_criteo_tsv(b, 3000, seed=7, chunk_rows=1000)
    datasets.generate_criteo_tsv(c, 3000, seed=8, chunk_rows=1000)
    datasets.generate_criteo_tsv(short, 2000, seed=7, chunk_rows=1000)
    self.assertTrue(filecmp.cmp(a, b, shallow=False))
    self.assertFalse(filecmp.cmp(a, c, shallow=False))
    with open(a) as fa, open(short) as fs:
      self.assertEqual(fa.read().splitlines()[:2000], fs.read().splitlines())
    with open(a) as fa:
      fields = [line.split("\t") for line in fa.read().splitlines()]
    self.assertTrue(all(len(f) == 40 for f in fields))
    tokens = [f[39] for f in fields if f[39]]
    self.assertTrue(all(len(t) == 8 and int(t, 16) >= 0 for t in tokens))

  def test_auc_and_logloss_match_sklearn(self):
    y = self.rng.integers(0, 2, 500)
    s = np.round(self.rng.random(500), 2)  # ties
    self.assertAllClose(datasets.auc(y, s), sk_metrics.roc_auc_score(y, s), atol=1e-12)
    self.assertAllClose(datasets.logloss(y, s), sk_metrics.log_loss(y, np.clip(s, 1e-7, 1 - 1e-7)),
                        atol=1e-9)


class SequenceDataTest(testing.TestCase):

  def test_synthetic_sequences(self):
    frame, spec = datasets.generate_sequence_data(4000, seed=1)
    again, _ = datasets.generate_sequence_data(4000, seed=1)
    self.assertTrue(frame.equals(again))
    self.assertGreater(datasets.auc(frame["label"], frame["oracle_p"]), 0.72)
    fitted = datasets.fit(frame, spec)
    feats, _ = datasets.encode_frame(frame, fitted)
    lengths = (feats["hist_item_id"] != 0).sum(1)
    np.testing.assert_array_equal(lengths, frame["hist_item_id"].str.count(r"\|") + 1)
    self.assertEqual(fitted.num_ids("hist_item_id"), fitted["item_id"].num_ids)

  def test_movielens_no_leakage(self):
    directory = testing.require_file(testing.MOVIELENS_100K)
    frame, spec = datasets.read_movielens_100k(directory, max_len=20)
    self.assertEqual(len(frame), 100_000)
    self.assertAllClose(frame["label"].mean(), 0.55375, atol=1e-9)
    # history of each event = the user's items rated strictly earlier (last 20)
    sub = frame[frame["user_id"] == "1"].copy()
    sub["item_num"] = sub["item_id"].astype(int)
    sub = sub.sort_values(["timestamp", "item_num"], kind="mergesort")
    for _, row in sub.sample(40, random_state=0).iterrows():
      earlier = sub[sub["timestamp"] < row["timestamp"]]
      expected = earlier["item_id"].tolist()[-20:]
      got = row["hist_item_id"].split("|") if row["hist_item_id"] else []
      self.assertEqual(got, expected)
      later = set(sub[sub["timestamp"] >= row["timestamp"]]["item_id"])
      self.assertFalse(later & set(got))  # the target and later events never leak in
    train, valid, test = datasets.split_by_time(frame)
    self.assertLessEqual(train["timestamp"].max(), valid["timestamp"].min())
    self.assertEqual(len(train) + len(valid) + len(test), 100_000)
    fitted = datasets.fit(train, spec)
    self.assertTrue(fitted.is_fitted)
