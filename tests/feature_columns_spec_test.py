"""FeatureSpec: JSON round trip, malformed JSON errors, Criteo bucketing values."""

import json
import math

from absl.testing import parameterized

from tests import testing
from ctr_zoo.feature_columns import criteo_spec
from ctr_zoo.feature_columns import spec as spec_lib


def _fitted_spec():
  return spec_lib.FeatureSpec(features=(
      spec_lib.DenseFeature("I1", transform="standardize", mean=1.5, std=2.25),
      spec_lib.DenseFeature("I2", transform="bucketize", min_count=3, vocabulary=("0", "1", "5")),
      spec_lib.CategoricalFeature("C1", vocabulary=("b", "a"), min_count=2, embedding_dim=8),
      spec_lib.CategoricalFeature("C2", hash_buckets=100),
      spec_lib.SequenceFeature("H1", max_len=7, shares_vocabulary_with="C1"),
  ), label="clicked", name="tiny")


class SpecJsonTest(testing.TestCase, parameterized.TestCase):

  def test_round_trip_fitted(self):
    spec = _fitted_spec()
    again = spec_lib.FeatureSpec.from_json(spec.to_json())
    self.assertEqual(spec, again)
    self.assertEqual(again["C1"].vocabulary, ("b", "a"))
    self.assertEqual(again.num_ids("H1"), 4)  # follows shares_vocabulary_with
    self.assertTrue(again.is_fitted)

  def test_round_trip_criteo_and_file(self):
    spec = criteo_spec(dense_transform="bucketize", min_count=10)
    path = self.make_temp_dir()
    spec.save(path)
    self.assertEqual(spec_lib.FeatureSpec.load(path), spec)
    self.assertEqual(len(spec.raw_columns), 40)

  @parameterized.named_parameters(
      ("top_level", lambda d: d.update(extra=1), "unknown keys \\['extra'\\]"),
      ("feature_key", lambda d: d["features"][2].update(vocab=["x"]), "unknown keys \\['vocab'\\]"),
      ("kind", lambda d: d["features"][0].update(kind="dense2"), "'kind' must be one of"),
      ("std_type", lambda d: d["features"][0].update(std="2"), "std must be a number"),
      ("vocab_type", lambda d: d["features"][2].update(vocabulary="ab"), "vocabulary must be a list"),
      ("min_count_type", lambda d: d["features"][2].update(min_count=1.5), "min_count must be an int"),
      ("features_type", lambda d: d.update(features={}), "'features' must be a list"),
      ("label_type", lambda d: d.update(label=3), "label must be a string"),
      ("transform", lambda d: d["features"][0].update(transform="sqrt"), "transform must be one of"),
  )
  def test_malformed_json(self, mutate, pattern):
    d = json.loads(_fitted_spec().to_json())
    mutate(d)
    with self.assertRaisesRegex(spec_lib.SpecError, pattern):
      spec_lib.FeatureSpec.from_json(json.dumps(d))

  def test_not_json(self):
    with self.assertRaisesRegex(spec_lib.SpecError, "does not parse"):
      spec_lib.FeatureSpec.from_json("{not json")

  def test_unfitted_sequence_partner(self):
    spec = spec_lib.FeatureSpec(features=(
        spec_lib.CategoricalFeature("item"),
        spec_lib.SequenceFeature("hist", shares_vocabulary_with="item")))
    self.assertFalse(spec.is_fitted)  # the partner has no vocabulary yet


class BucketizeTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("neg", -3, "-3"), ("zero", 0, "0"), ("one", 1, "1"), ("two", 2, "2"),
      ("three", 3, "1"),  # ln(3)^2 = 1.207
      ("ten", 10, "5"),  # ln(10)^2 = 5.302
      ("hundred", 100, "21"),  # 21.21
      ("big", 1_000_000, "190"),  # 190.87
  )
  def test_values(self, x, token):
    self.assertEqual(spec_lib.bucketize_value(x), token)
    if x > 2:
      self.assertEqual(int(token), math.floor(math.log(x) ** 2))
