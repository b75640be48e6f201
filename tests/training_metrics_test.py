"""Exact AUC / logloss / calibration against brute-force NumPy and scikit-learn."""

import numpy as np
from sklearn import metrics as sk_metrics

from tests import testing

from ctr_zoo import metrics


def _pairwise_auc(y, p):
  pos, neg = p[y == 1], p[y == 0]
  diff = pos[:, None] - neg[None, :]
  return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / (len(pos) * len(neg))


class MetricsTest(testing.TestCase):

  def test_auc_matches_pairwise_definition_with_ties(self):
    y = self.rng.integers(0, 2, 500).astype(float)
    p = np.round(self.rng.uniform(size=500), 1)  # many ties
    self.assertAllClose(metrics.auc(y, p), _pairwise_auc(y, p), rtol=0, atol=1e-12)
    self.assertAllClose(metrics.auc(y, p), sk_metrics.roc_auc_score(y, p), rtol=0, atol=1e-12)

  def test_auc_extremes(self):
    y = np.array([0, 0, 1, 1])
    self.assertEqual(metrics.auc(y, [0.1, 0.2, 0.3, 0.4]), 1.0)
    self.assertEqual(metrics.auc(y, [0.4, 0.3, 0.2, 0.1]), 0.0)
    self.assertEqual(metrics.auc(y, [0.5] * 4), 0.5)
    self.assertTrue(np.isnan(metrics.auc([1, 1], [0.2, 0.3])))

  def test_logloss_matches_formula_and_sklearn(self):
    y = self.rng.integers(0, 2, 200).astype(float)
    p = self.rng.uniform(0.01, 0.99, 200)
    want = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    self.assertAllClose(metrics.logloss(y, p), want, rtol=1e-12, atol=0)
    self.assertAllClose(metrics.logloss(y, p), sk_metrics.log_loss(y, p), rtol=1e-9, atol=0)
    self.assertAllClose(metrics.logloss([1, 0], [0.0, 1.0]), -np.log(1e-7), rtol=1e-6, atol=0)

  def test_calibration_bins(self):
    y = np.array([0, 1, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    cal = metrics.calibration(y, p, num_bins=2)
    self.assertAllClose(cal["predicted_ctr"], p.mean())
    self.assertAllClose(cal["observed_ctr"], 4 / 6)
    self.assertAllClose(cal["calibration"], p.mean() / (4 / 6))
    self.assertEqual([b["count"] for b in cal["bins"]], [3, 3])
    self.assertAllClose([b["predicted"] for b in cal["bins"]], [0.2, 0.7])
    self.assertAllClose([b["observed"] for b in cal["bins"]], [1 / 3, 1.0])

  def test_bad_inputs_name_the_value(self):
    with self.assertRaisesRegex(ValueError, r"labels\[1\] = 2.0"):
      metrics.auc([0, 2], [0.1, 0.2])
    with self.assertRaisesRegex(ValueError, r"predictions\[0\] = nan"):
      metrics.logloss([0, 1], [np.nan, 0.2])
    with self.assertRaisesRegex(ValueError, r"differ in size: 2 vs 3"):
      metrics.auc([0, 1], [0.1, 0.2, 0.3])


if __name__ == "__main__":
  import tensorflow as tf
  tf.test.main()
