"""make_dataset: dtypes/shapes per the spec contract, coverage, determinism, resume."""

import os

import numpy as np
import pandas as pd

from tests import testing
import tensorflow as tf
from ctr_zoo import datasets
from ctr_zoo.feature_columns import spec as spec_lib

SPEC = spec_lib.FeatureSpec(features=(
    spec_lib.DenseFeature("I1", transform="log1p"),
    spec_lib.CategoricalFeature("C1"),
    spec_lib.SequenceFeature("H1", max_len=3, shares_vocabulary_with="C1"),
))


def _frame(n=1000):
  rng = np.random.default_rng(0)
  return pd.DataFrame({
      "label": np.arange(n) % 2,
      "I1": np.arange(n),  # row identity
      "C1": [f"c{v}" for v in rng.integers(0, 20, n)],
      "H1": ["|".join(f"c{v}" for v in rng.integers(0, 20, rng.integers(0, 5))) for _ in range(n)],
  })


class InputTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    self.frame = _frame()
    self.spec = datasets.fit(self.frame, SPEC)
    self.out = self.make_temp_dir()
    datasets.transform(self.frame, self.spec, self.out, batch_rows=128, rows_per_shard=300)

  def rows(self, ds):
    return np.concatenate([np.round(np.expm1(f["I1"].numpy())).astype(int) for f, _ in ds])

  def test_dtypes_and_shapes(self):
    ds = datasets.make_dataset(os.path.join(self.out, "train"), self.spec, 64)
    features, label = next(iter(ds))
    self.assertEqual(features["I1"].dtype, tf.float32)
    self.assertEqual(features["C1"].dtype, tf.int64)
    self.assertEqual(features["H1"].dtype, tf.int64)
    self.assertEqual(features["C1"].shape, (64,))
    self.assertEqual(features["H1"].shape, (64, 3))
    self.assertEqual(label.dtype, tf.float32)
    self.assertEqual(label.shape, (64,))
    self.assertEqual(len(datasets.list_shards(self.out)), 4)  # 1000 rows / 300 per shard

  def test_every_row_once_in_order(self):
    ds = datasets.make_dataset(self.out, self.spec, 64)
    np.testing.assert_array_equal(self.rows(ds), np.arange(1000))
    labels = np.concatenate([l.numpy() for _, l in ds])
    np.testing.assert_array_equal(labels, np.arange(1000) % 2)

  def test_shuffle_deterministic_with_seed(self):
    a = self.rows(datasets.make_dataset(self.out, self.spec, 64, shuffle=True, seed=5,
                                        shuffle_buffer_rows=256))
    b = self.rows(datasets.make_dataset(self.out, self.spec, 64, shuffle=True, seed=5,
                                        shuffle_buffer_rows=256))
    c = self.rows(datasets.make_dataset(self.out, self.spec, 64, shuffle=True, seed=6,
                                        shuffle_buffer_rows=256))
    np.testing.assert_array_equal(a, b)
    self.assertFalse(np.array_equal(a, c))
    np.testing.assert_array_equal(np.sort(a), np.arange(1000))
    self.assertFalse(np.array_equal(a, np.arange(1000)))

  def test_epochs_and_skip_batches(self):
    kw = dict(shuffle=True, seed=1, epochs=3, shuffle_buffer_rows=256)
    full = [f["I1"].numpy() for f, _ in datasets.make_dataset(self.out, self.spec, 100, **kw)]
    self.assertEqual(len(full), 30)
    self.assertFalse(np.array_equal(full[0], full[10]))  # epochs are reshuffled
    resumed = [f["I1"].numpy() for f, _ in
               datasets.make_dataset(self.out, self.spec, 100, skip_batches=13, **kw)]
    self.assertEqual(len(resumed), 17)
    for x, y in zip(full[13:], resumed):
      np.testing.assert_array_equal(x, y)

  def test_dataframe_source_matches_shards(self):
    from_frame = list(datasets.make_dataset(self.frame, self.spec, 250))
    from_shards = list(datasets.make_dataset(self.out, self.spec, 250))
    for (fa, la), (fb, lb) in zip(from_frame, from_shards):
      for k in fa:
        np.testing.assert_array_equal(fa[k].numpy(), fb[k].numpy())
      np.testing.assert_array_equal(la.numpy(), lb.numpy())

  def test_drop_remainder_static_shape(self):
    ds = datasets.make_dataset(self.out, self.spec, 300, drop_remainder=True)
    self.assertEqual(ds.element_spec[1].shape, (300,))
    self.assertEqual(len(list(ds)), 3)

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, "batch_size must be an int >= 1, got 0"):
      datasets.make_dataset(self.out, self.spec, 0)
    with self.assertRaisesRegex(datasets.DataError, "no Parquet shards under"):
      datasets.make_dataset(self.make_temp_dir(), self.spec, 8)
    other = spec_lib.FeatureSpec(features=(spec_lib.CategoricalFeature("C9", hash_buckets=4),))
    with self.assertRaisesRegex(datasets.DataError, "shard has no column 'C9'"):
      datasets.make_dataset(self.out, other, 8)
