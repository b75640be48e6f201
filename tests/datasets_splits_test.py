"""Splits: sizes, determinism, independence from batching, file splits."""

import os

import numpy as np

from tests import testing
from ctr_zoo import datasets
from ctr_zoo.datasets import splits
from ctr_zoo.feature_columns import spec as spec_lib

SPEC = spec_lib.FeatureSpec(features=(spec_lib.CategoricalFeature("C1"),))


class SplitsTest(testing.TestCase):

  def test_random_split_sizes_and_determinism(self):
    keys = np.arange(200_000)
    s = datasets.RandomSplit((0.8, 0.1, 0.1), seed=3)
    a = s.assign(0, keys)
    sizes = np.bincount(a, minlength=3) / len(keys)
    self.assertAllClose(sizes, [0.8, 0.1, 0.1], atol=0.004)  # ~5 binomial std
    np.testing.assert_array_equal(a, s.assign(0, keys))
    np.testing.assert_array_equal(a[1000:2000], s.assign(0, keys[1000:2000]))
    self.assertGreater(np.mean(a != datasets.RandomSplit((0.8, 0.1, 0.1), seed=4).assign(0, keys)), 0.2)
    self.assertGreater(np.mean(a != s.assign(1, keys)), 0.2)  # files differ

  def test_file_split(self):
    s = datasets.FileSplit(num_train_files=2, seed=0)
    keys = np.arange(10_000)
    self.assertTrue(np.all(s.assign(0, keys) == 0))
    self.assertTrue(np.all(s.assign(1, keys) == 0))
    last = s.assign(2, keys)
    self.assertEqual(set(np.unique(last)), {1, 2})
    self.assertAllClose(np.mean(last == 1), 0.5, atol=0.03)

  def test_parse_split_errors(self):
    self.assertIsNone(splits.parse_split("none"))
    self.assertEqual(splits.parse_split("files:6"), datasets.FileSplit(6))
    with self.assertRaisesRegex(ValueError, "sum to 1"):
      splits.parse_split("random:0.5,0.1,0.1")
    with self.assertRaisesRegex(ValueError, "bad split 'day:3'"):
      splits.parse_split("day:3")
    for bad in ("day:3", "random:0.5,x", "random:0.2,0.2,0.2,0.4", "random:test=0.5,train=0.5",
                "random:train=0.5,0.5", "kfold:1,0", "kfold:5,5", "kfold:5", "files:x"):
      with self.assertRaisesRegex(ValueError, r"bad split .*; accepted: 'random:0.8,0.1,0.1'"
                                              r".*'kfold:K,F\[,V\]'"):
        splits.parse_split(bad)

  def test_split_names_are_train_valid_test_everywhere(self):
    self.assertEqual(splits.parse_split("random:0.8,0.1,0.1").names, ("train", "valid", "test"))
    self.assertEqual(splits.parse_split("random:0.8,0.2").names, ("train", "valid"))
    named = splits.parse_split("random:train=0.7,test=0.3", seed=2)
    self.assertEqual((named.names, named.fractions, named.seed), (("train", "test"), (0.7, 0.3), 2))
    self.assertEqual(splits.parse_split("kfold:5,2").names, ("train", "valid", "test"))
    self.assertEqual(datasets.ConstantSplit("test").names, ("test",))
    frame = __import__("pandas").DataFrame({"label": [0, 1] * 50, "C1": [f"v{i}" for i in range(100)]})
    for text in ("random:0.8,0.2", "random:train=0.5,test=0.5"):
      fitted = datasets.fit(frame, SPEC, split=splits.parse_split(text))  # fit_split "train"
      self.assertBetween(len(fitted["C1"].vocabulary), 30, 90)
    with self.assertRaisesRegex(ValueError, r"fit split 'valid' is not one of the split names "
                                            r"\('train', 'test'\)"):
      datasets.fit(frame, SPEC, split=splits.parse_split("random:train=0.5,test=0.5"),
                   fit_split="valid")

  def test_kfold_partitions_the_rows_and_carves_valid_from_train(self):
    keys = np.arange(30_000)
    k = 5
    folds = [datasets.KFoldSplit(k, f, seed=9, valid_fraction=0.1) for f in range(k)]
    assigned = [s.assign(0, keys) for s in folds]
    test_masks = np.stack([a == 2 for a in assigned])
    np.testing.assert_array_equal(test_masks.sum(axis=0), np.ones(len(keys)))  # one test fold each
    self.assertAllClose(test_masks.mean(axis=1), np.full(k, 0.2), atol=0.01)
    for s, a in zip(folds, assigned):
      np.testing.assert_array_equal(a == 2, s.fold_of(0, keys) == s.fold)
      self.assertAllClose(np.mean(a[a != 2] == 1), 0.1, atol=0.01)  # valid share of the rest
      np.testing.assert_array_equal(a, s.assign(0, keys[::-1])[::-1])  # a function of the key
    self.assertGreater(np.mean(folds[0].fold_of(0, keys) !=
                               datasets.KFoldSplit(k, 0, seed=10).fold_of(0, keys)), 0.5)
    with self.assertRaisesRegex(ValueError, "fold must be in 0..4"):
      datasets.KFoldSplit(5, 5)

  def test_transform_split_independent_of_block_size(self):
    rng = np.random.default_rng(0)
    path = os.path.join(self.make_temp_dir(), "d.tsv")
    with open(path, "w") as fh:
      for i in range(5000):
        fh.write(f"{i % 2}\tv{rng.integers(50)}\n")
    split = datasets.RandomSplit((0.6, 0.2, 0.2), seed=1)
    results = []
    for block in (1 << 10, 1 << 20):
      spec = datasets.fit(path, SPEC, split=split, block_size=block)
      out = self.make_temp_dir()
      summary = datasets.transform(path, spec, out, split=split, block_size=block)
      results.append((spec, summary.rows, datasets.read_encoded(os.path.join(out, "test"), spec)[0]["C1"]))
    self.assertEqual(results[0][0], results[1][0])
    self.assertEqual(results[0][1], results[1][1])
    self.assertEqual(sum(results[0][1].values()), 5000)
    np.testing.assert_array_equal(results[0][2], results[1][2])

  def test_fit_sees_only_train_rows(self):
    import pandas as pd  # pylint: disable=g-import-not-at-top
    frame = pd.DataFrame({"label": [0] * 1000, "C1": [f"v{i}" for i in range(1000)]})
    split = datasets.RandomSplit((0.5, 0.25, 0.25), seed=0)
    fitted = datasets.fit(frame, SPEC, split=split)
    train = split.assign(0, np.arange(1000)) == 0
    self.assertEqual(set(fitted["C1"].vocabulary), set(frame["C1"][train]))
