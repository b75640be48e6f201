"""encoding: every transform against a NumPy / pure-Python transcription of its rule."""

import math

import numpy as np
import pandas as pd
import pyarrow as pa

from absl.testing import parameterized

from tests import testing
import tensorflow as tf
from ctr_zoo import datasets
from ctr_zoo.datasets import encoding
from ctr_zoo.feature_columns import spec as spec_lib


class DenseTest(testing.TestCase, parameterized.TestCase):

  X = [0, 1, 5, -3, None, 123456, 2 ** 40]

  @parameterized.named_parameters(
      ("none", "none", lambda x: float(x)),
      ("log1p", "log1p", lambda x: math.log1p(max(x, 0))),
      ("standardize", "standardize", lambda x: (x - 3.5) / 7.25),
  )
  def test_dense_transform(self, transform, rule):
    f = spec_lib.DenseFeature("I1", transform=transform, mean=3.5, std=7.25)
    got = encoding.dense_values(pa.array(self.X, pa.int64()), f)
    expected = np.array([0.0 if x is None else rule(x) for x in self.X], np.float64).astype(np.float32)
    self.assertEqual(got.dtype, np.float32)
    self.assertAllClose(got, expected, rtol=0, atol=0)  # one float64 -> float32 rounding

  def test_bucketize_matches_bucketize_value(self):
    xs = list(range(-5, 3000)) + [10 ** 6, 10 ** 9]
    got = encoding.bucketize(pa.array(xs, pa.int64())).to_pylist()
    self.assertEqual([str(b) for b in got], [spec_lib.bucketize_value(x) for x in xs])

  def test_bucketize_ids(self):
    f = spec_lib.DenseFeature("I1", transform="bucketize", vocabulary=("5", "0", "21"))
    spec = spec_lib.FeatureSpec(features=(f,))
    table = pa.table({"label": pa.array([0] * 6, pa.int8()),
                      "I1": pa.array([10, 0, 100, 3, None, 12], pa.int64())})
    feats, _ = encoding.encode_table(table, spec)
    # 10 -> "5" (id 2), 0 -> "0" (3), 100 -> "21" (4), 3 -> "1" (OOV), missing, 12 -> "6" (OOV)
    np.testing.assert_array_equal(feats["I1"], [2, 3, 4, 1, 0, 1])


class CategoricalTest(testing.TestCase):

  def test_vocab_ids(self):
    ids = encoding.vocab_ids(pa.array(["b", "a", None, "zz", "A"]), ("a", "b"))
    np.testing.assert_array_equal(ids, [3, 2, 0, 1, 1])  # case sensitive

  def test_hash_ids_match_tf(self):
    values = ["68fd1e64", "", "x", "0a519c5c", None]
    got = encoding.hash_ids(pa.array(values).cast(pa.string()), 1000)
    for v, g in zip(values, got):
      if v is None:
        self.assertEqual(g, 0)
      else:
        self.assertEqual(g, 2 + int(tf.strings.to_hash_bucket_fast([v], 1000).numpy()[0]))

  def test_vocabulary_order_and_cap(self):
    frame = pd.DataFrame({"label": [0] * 9, "C1": list("ccbbbaadd")})
    spec = spec_lib.FeatureSpec(features=(spec_lib.CategoricalFeature("C1", max_vocab_size=3),))
    fitted = datasets.fit(frame, spec)
    self.assertEqual(fitted["C1"].vocabulary, ("b", "a", "c"))  # 3, then ties a, c, d by value


class SequenceTest(testing.TestCase):

  def reference(self, raw, vocab, max_len):
    out = []
    for s in raw:
      tokens = [t for t in (s or "").split("|") if t][-max_len:]
      ids = [vocab.index(t) + 2 if t in vocab else 1 for t in tokens]
      out.append(ids + [0] * (max_len - len(ids)))
    return np.array(out, np.int64)

  def test_sequence_ids_match_reference(self):
    rng = np.random.default_rng(0)
    tokens = ["i1", "i2", "i3", "i4", "q"]
    raw = ["|".join(rng.choice(tokens, size=rng.integers(0, 9))) for _ in range(200)]
    raw += ["", None, "i1||i2", "|i3|"]
    vocab = ("i3", "i1", "i2")
    f = spec_lib.SequenceFeature("h", max_len=4)
    got = encoding.sequence_ids(pa.array(raw, pa.string()), f, vocab, None)
    np.testing.assert_array_equal(got, self.reference(raw, list(vocab), 4))

  def test_shared_vocabulary(self):
    frame = pd.DataFrame({"label": [1, 0, 1], "item": ["a", "b", "a"],
                          "hist": ["c|a", "", "a|c|c"]})
    spec = spec_lib.FeatureSpec(features=(
        spec_lib.CategoricalFeature("item"),
        spec_lib.SequenceFeature("hist", max_len=3, shares_vocabulary_with="item")))
    fitted = datasets.fit(frame, spec)
    # counts over item and history tokens: a 4, c 3, b 1
    self.assertEqual(fitted["item"].vocabulary, ("a", "c", "b"))
    self.assertIsNone(fitted["hist"].vocabulary)
    feats, labels = datasets.encode_frame(frame, fitted)
    np.testing.assert_array_equal(feats["item"], [2, 4, 2])
    np.testing.assert_array_equal(feats["hist"], [[3, 2, 0], [0, 0, 0], [2, 3, 3]])
    self.assertEqual(labels.dtype, np.float32)
