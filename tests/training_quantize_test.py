"""Quantization sensitivity: each part's measured cost equals the model scored with only
that part quantized; the weights are restored; the mixed option keeps costly tables float32."""

import numpy as np

from tests import testing

import tensorflow as tf

from ctr_zoo import metrics
from ctr_zoo import models
from ctr_zoo.layers import quantization
from ctr_zoo.optimizers import sparsity
from ctr_zoo.training import quantize
from tests import models_zoo_test


class SensitivityTest(testing.TestCase):

  def _model_and_rows(self):
    spec = models_zoo_test.small_criteo_spec()
    model = models.build("dcn_v2", spec, dnn_dims=(8,), num_cross_layers=1)
    for v in model.trainable_variables:
      v.assign(self.rng.normal(0, 0.5, size=v.shape).astype(np.float32))
    n = 400
    features = {}
    for f in spec.features:
      if spec.input_dtype(f) == tf.int64:
        features[f.name] = self.rng.integers(0, spec.num_ids(f.name), size=(n,) + spec.input_shape(f))
      else:
        features[f.name] = self.rng.normal(size=(n,)).astype(np.float32)
    p = model.predict(features, verbose=0)[:, 0]
    labels = (self.rng.random(n) < p).astype(np.float64)
    return model, features, labels

  def test_costs_match_independent_scoring_and_weights_are_restored(self):
    model, features, labels = self._model_and_rows()
    before = [v.numpy().copy() for v in model.variables]
    report = quantize.sensitivity(model, features, labels, table_mode="int8", batch_size=128)
    for v, values in zip(model.variables, before):
      self.assertAllEqual(v.numpy(), values, msg=v.name)
    base = model.predict(features, verbose=0)[:, 0]
    self.assertAllClose(report["baseline"]["auc"], metrics.auc(labels, base), rtol=0, atol=1e-12)
    tables = sparsity.embedding_tables(model)
    self.assertEqual(set(report["tables"]), {v.name for v in tables})
    v = tables[0]
    original = v.numpy()
    v.assign(quantization.dequantize_rows(quantization.quantize_rows(original)))
    p = model.predict(features, verbose=0)[:, 0]
    v.assign(original)
    entry = report["tables"][v.name]
    self.assertAllClose(entry["auc_cost"], metrics.auc(labels, base) - metrics.auc(labels, p),
                        rtol=0, atol=1e-12)
    self.assertAllClose(entry["logloss_cost"],
                        metrics.logloss(labels, p) - metrics.logloss(labels, base), rtol=0, atol=1e-12)
    groups = quantize.dense_kernel_groups(model)
    self.assertEqual(set(report["dense_layers"]), set(groups))
    self.assertIn("cross", groups)  # the cross network's kernels, grouped under its layer
    self.assertTrue(all(v.shape.rank >= 2 for vs in groups.values() for v in vs))
    self.assertIn("auc_cost", report["all"])

  def test_mixed_tables_and_errors(self):
    report = {"tables": {"a:0": {"auc_cost": 0.0001, "logloss_cost": 0.0},
                         "b:0": {"auc_cost": 0.002, "logloss_cost": 0.001},
                         "c:0": {"auc_cost": -0.0003, "logloss_cost": 0.0004}}}
    self.assertEqual(quantize.mixed_tables(report, 0.0005), ["a:0", "c:0"])
    self.assertEqual(quantize.mixed_tables(report, 0.0005, metric="logloss"), ["a:0", "c:0"])
    self.assertEqual(quantize.mixed_tables(report, 0.0), ["c:0"])
    with self.assertRaisesRegex(ValueError, "threshold"):
      quantize.mixed_tables(report, -1.0)
    with self.assertRaisesRegex(ValueError, r"mode must be one of \('int8', 'float16'\), got 'int4'"):
      quantize.quantized_values(np.ones((2, 2)), "int4")
    halves = quantize.quantized_values(np.array([[1.0001, 3.0]]), "float16")
    self.assertAllEqual(halves, np.array([[1.0001, 3.0]], np.float16).astype(np.float32))


if __name__ == "__main__":
  tf.test.main()
