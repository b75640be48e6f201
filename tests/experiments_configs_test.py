"""Experiment configs: named variants, dotted overrides and their errors."""

from tests import testing

from experiments import configs
from experiments.configs import base


class ConfigsTest(testing.TestCase):

  def test_overrides_parse_and_coerce_types(self):
    overrides = configs.parse_overrides(
        "trainer.epochs=3,optimizer.dense_learning_rate=1,model.params.hidden=[64,32],"
        "model.params.act=relu,data.hash_buckets=1000")
    self.assertEqual(overrides["model.params.hidden"], [64, 32])
    cfg = configs.get("dnn_synthetic", overrides)
    self.assertEqual(cfg.trainer.epochs, 3)
    self.assertIsInstance(cfg.optimizer.dense_learning_rate, float)
    # dropout 0.1 is the validation-tuned synthetic default (registry.TUNED).
    self.assertEqual(cfg.model.params, {"hidden": [64, 32], "act": "relu", "dropout": 0.1})
    self.assertEqual(cfg.data.hash_buckets, 1000)

  def test_errors_name_the_bad_field_and_value(self):
    with self.assertRaisesRegex(configs.ConfigError, r"unknown config field 'trainer.epoch'; allowed"):
      configs.get("dnn_synthetic", {"trainer.epoch": 2})
    with self.assertRaisesRegex(configs.ConfigError, r"trainer.epochs must be an integer, got 'two'"):
      configs.get("dnn_synthetic", configs.parse_overrides("trainer.epochs=two"))
    with self.assertRaisesRegex(configs.ConfigError, r"not key=value"):
      configs.parse_overrides("trainer.epochs")
    with self.assertRaisesRegex(KeyError, r"unknown experiment 'nope_synthetic'"):
      configs.get("nope_synthetic")
    with self.assertRaisesRegex(ValueError, r"epochs must be an int >= 1, got 0"):
      configs.get("dnn_synthetic", {"trainer.epochs": 0})

  def test_model_precision_is_checked(self):
    cfg = configs.get("dcn_v2_synthetic", {"model.precision": "mixed_bfloat16"})
    self.assertEqual(cfg.model.precision, "mixed_bfloat16")
    self.assertEqual(configs.get("dcn_v2_synthetic").model.precision, "float32")
    with self.assertRaisesRegex(configs.ConfigError,
                                r"model.precision must be one of .*got 'float16'"):
      configs.get("dcn_v2_synthetic", {"model.precision": "float16"})

  def test_named_data_setups_are_the_published_ones(self):
    x4 = configs.get("dcn_v2_criteo_x4")
    self.assertEqual((x4.data.split, x4.data.split_seed, x4.data.min_count), ("random", 2018, 10))
    self.assertEqual((x4.data.valid_fraction, x4.data.test_fraction), (0.1, 0.1))
    self.assertEqual((x4.data.dense_transform, x4.data.embedding_dim), ("bucketize", 16))
    paper = configs.get("dcn_v2_dcnv2_paper")
    self.assertEqual((paper.data.split, paper.data.num_days), ("by_day", 7))
    self.assertEqual((paper.data.dense_transform, paper.data.embedding_dim), ("log1p", 39))
    self.assertEqual((paper.trainer.batch_size, paper.trainer.clipnorm), (512, 10.0))

  def test_variants_differ_from_their_base_only_where_named(self):
    # (lr_* differ in the optimizer too: FTRL, see registry.TUNED.)
    a, b = configs.get("dcn_v2_synthetic").to_dict(), configs.get("dnn_synthetic").to_dict()
    self.assertEqual({k for k in a if a[k] != b[k]}, {"name", "model"})
    fresh = configs.get("lr_synthetic")
    fresh.model.params["x"] = 1
    self.assertEqual(configs.get("lr_synthetic").model.params, {})  # no shared state

  def test_round_trip_through_dict(self):
    cfg = configs.get("deepfm_criteo", {"model.params.dropout": 0.1})
    self.assertEqual(base.ExperimentConfig.from_dict(cfg.to_dict()).to_dict(), cfg.to_dict())

  def test_split_overrides_keeps_brackets_and_quotes(self):
    self.assertEqual(base.split_overrides('a=[1,2],b="x,y",c=3'), ["a=[1,2]", 'b="x,y"', "c=3"])


if __name__ == "__main__":
  import tensorflow as tf
  tf.test.main()
