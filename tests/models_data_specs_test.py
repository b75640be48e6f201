"""Every model builds and predicts on the built-in data specs: integer fields as float + id, all-categorical."""

import dataclasses

from absl.testing import parameterized
import numpy as np

from tests import testing
from tests.models_zoo_test import random_inputs, small_overrides

from ctr_zoo import models
from ctr_zoo.feature_columns import schema
from ctr_zoo.feature_columns import spec as spec_lib


def fit_by_hand(spec):
  """A fitted copy: vocabularies "0".."5", quantile boundaries (1, 5)."""
  out = []
  for f in spec.features:
    if isinstance(f, spec_lib.DenseFeature) and f.transform == "quantile":
      f = dataclasses.replace(f, boundaries=(1.0, 5.0))
    elif f.is_categorical and not f.is_fitted:
      f = dataclasses.replace(f, vocabulary=tuple(str(i) for i in range(6)))
    out.append(f)
  return spec.with_features(out)


SPECS = {
    # Each integer field twice: I<k> (float) and I<k>_bucket (ids).
    "criteo_both": fit_by_hand(schema.builtin_spec(
        "criteo", integer_encoding="continuous+quantile", embedding_dim=4)),
    "frappe": fit_by_hand(schema.builtin_spec("frappe", embedding_dim=4)),  # ids only
}
CASES = [(f"{m}_{s}", m, s) for m in models.names() if m != "can" for s in SPECS]


class DataSpecsModelsTest(testing.TestCase, parameterized.TestCase):

  def test_both_spec_has_a_float_and_an_id_input_per_integer_field(self):
    spec = SPECS["criteo_both"]
    self.assertLen(spec.dense_features, 13)
    self.assertLen(spec.id_features, 26 + 13)
    self.assertEqual(spec.input_columns[:13], [f"I{i}" for i in range(1, 14)])

  @parameterized.named_parameters(*CASES)
  def test_builds_and_predicts(self, name, spec_name):
    spec = SPECS[spec_name]
    model = models.build(name, spec, **small_overrides(name))
    p = model(random_inputs(spec, 16, self.rng), training=False).numpy()
    self.assertEqual(p.shape, (16, 1))
    self.assertTrue(np.all(np.isfinite(p)) and np.all((p > 0) & (p < 1)))


if __name__ == "__main__":
  import tensorflow as tf
  tf.test.main()
