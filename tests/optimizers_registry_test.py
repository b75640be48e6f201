"""ctr_zoo.optimizers.get: every optimizer by name or config dict."""

from absl.testing import parameterized
import numpy as np

from tests import testing

import tensorflow as tf

from ctr_zoo.optimizers import ftrl
from ctr_zoo.optimizers import group_lasso_ftrl
from ctr_zoo.optimizers import lamb
from ctr_zoo.optimizers import lazy_adam
from ctr_zoo.optimizers import lookahead
from ctr_zoo.optimizers import registry
from ctr_zoo.optimizers import split

legacy = tf.keras.optimizers.legacy


class RegistryTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("sgd", "sgd", legacy.SGD, {"momentum": 0.0, "nesterov": False}),
      ("momentum", "momentum", legacy.SGD, {"momentum": 0.9, "nesterov": False}),
      ("nesterov", "Nesterov", legacy.SGD, {"momentum": 0.9, "nesterov": True}),
      ("adam", "adam", legacy.Adam, {"amsgrad": False}),
      ("amsgrad", "amsgrad", legacy.Adam, {"amsgrad": True}),
      ("lazy_adam", "lazy_adam", lazy_adam.LazyAdam, {"amsgrad": False}),
      ("adagrad", "adagrad", legacy.Adagrad, {}),
      ("rmsprop", "rmsprop", legacy.RMSprop, {}),
      ("ftrl", "ftrl", ftrl.Ftrl, {"initial_accumulator_value": 0.0}),
      ("group_lasso_ftrl", "group_lasso_ftrl", group_lasso_ftrl.GroupLassoFtrl, {"row_wise_accumulator": False}),
      ("lamb", "lamb", lamb.Lamb, {}),
      ("split", "split", split.SplitOptimizer, {"embedding_name_pattern": "embedding"}),
  )
  def test_by_name(self, name, cls, expected_config):
    opt = registry.get(name)
    self.assertIsInstance(opt, cls)
    config = opt.get_config()
    for key, value in expected_config.items():
      self.assertEqual(config[key], value, key)

  def test_each_named_optimizer_takes_a_step(self):
    for name in registry.names():
      if name in ("lookahead", "split"):
        continue
      w = tf.Variable([1.0, -1.0])
      registry.get(name).apply_gradients([(tf.constant([0.5, 0.5]), w)])
      self.assertFalse(np.array_equal(w.numpy(), [1.0, -1.0]), name)

  def test_lookahead_of_name(self):
    opt = registry.get("lookahead(adam)")
    self.assertIsInstance(opt, lookahead.Lookahead)
    self.assertIsInstance(opt.inner_optimizer, legacy.Adam)
    opt = registry.get({"name": "lookahead(lamb)", "sync_period": 4, "learning_rate": 0.02})
    self.assertIsInstance(opt.inner_optimizer, lamb.Lamb)
    self.assertEqual(opt.sync_period, 4)
    self.assertAllClose(opt.inner_optimizer.get_config()["learning_rate"], 0.02, rtol=1e-6, atol=0)

  def test_dicts(self):
    opt = registry.get({"name": "ftrl", "learning_rate": 0.05, "l1": 1e-3})
    self.assertAllClose(opt.get_config()["learning_rate"], 0.05, rtol=1e-6, atol=0)
    self.assertAllClose(opt.get_config()["l1"], 1e-3, rtol=1e-6, atol=0)
    opt = registry.get({"name": "split", "embedding_optimizer": "adagrad",
                        "dense_optimizer": {"name": "amsgrad", "learning_rate": 1e-3}})
    self.assertIsInstance(opt.embedding_optimizer, legacy.Adagrad)
    self.assertTrue(opt.dense_optimizer.get_config()["amsgrad"])
    keras_dict = tf.keras.optimizers.serialize(group_lasso_ftrl.GroupLassoFtrl(group_lasso=0.3))
    self.assertIsInstance(registry.get(keras_dict), group_lasso_ftrl.GroupLassoFtrl)

  def test_instance_passes_through_and_errors(self):
    opt = legacy.Adagrad()
    self.assertIs(registry.get(opt), opt)
    with self.assertRaisesRegex(ValueError, r"'adamw_typo'.*known"):
      registry.get("adamw_typo")
    with self.assertRaisesRegex(TypeError, "legacy"):
      registry.get(tf.keras.optimizers.Adam())
    with self.assertRaisesRegex(ValueError, "'name'"):
      registry.get({"learning_rate": 0.1})
    with self.assertRaisesRegex(TypeError, "42"):
      registry.get(42)


if __name__ == "__main__":
  tf.test.main()
