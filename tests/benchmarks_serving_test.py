"""benchmarks.serving: the table is rendered from records (latest per data/model/variant)."""

import numpy as np

from tests import testing

from benchmarks import serving


def record(variant, auc, time="2026-01-01T00:00:00", **extra):
  return {"benchmark": "serving", "data": "synthetic", "model": "dcn_v2", "variant": variant,
          "saved_model_bytes": 12_000_000, "table_bytes": 1_700_000,
          "table_bytes_float32": 6_400_000, "table_ratio": 1_700_000 / 6_400_000,
          "test_auc": auc, "test_logloss": 0.45, "auc_delta": auc - 0.76, "logloss_delta": 0.0,
          "auc_delta_std": 0.0001, "latency": {"1": {"p50_ms": 2.5, "p99_ms": 4.0},
                                              "256": {"p50_ms": 20.0, "p99_ms": 25.0}},
          "epochs": 1, "time": time, "machine": "2 cores", "git_revision": "abc", **extra}


class ServingRenderTest(testing.TestCase):

  def test_latest_record_per_variant_in_variant_order(self):
    records = [record("int8", 0.7000), record("float32", 0.76), record("int8", 0.7598),
               {"benchmark": "serving_predict_rate", "data": "synthetic", "file_rows": 200000,
                "predict_model_dir_vs_evaluate": 1.02, "predict_export_float32_vs_evaluate": 0.8,
                "predict_export_int8_vs_evaluate": 0.78, "evaluate_seconds": 9.5}]
    text = serving.render(records)
    rows = [l for l in text.splitlines() if l.startswith("| synthetic")]
    self.assertLen(rows, 2)
    self.assertIn("| float32 |", rows[0])
    self.assertIn("| int8 | 12.00 | 1.70 (0.266x) | 0.7598 | -0.0002 ± 0.0001 |", rows[1])
    self.assertIn("| 2.50 / 4.00 | 20.0 / 25.0 |", rows[1])
    self.assertIn("0.80x with the float32 export", text)
    self.assertEqual(serving.render([]), "No serving records yet.\n")

  def test_bootstrap_std_of_a_paired_difference(self):
    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.3).astype(float)
    base = rng.random(500) + labels * 0.3
    self.assertEqual(serving.bootstrap_delta_std(labels, base, base, 50), 0.0)
    noisy = base + rng.normal(0, 0.05, 500)
    self.assertGreater(serving.bootstrap_delta_std(labels, base, noisy, 50), 0.0)
