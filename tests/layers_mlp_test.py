"""MLP tower against NumPy."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.layers.mlp import MLP


def relu(x):
  return np.maximum(x, 0)


class MLPTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(("activate_last", True), ("linear_last", False))
  def test_matches_numpy(self, activate_last):
    x = self.rng.normal(size=(5, 4)).astype(np.float32)
    layer = MLP([6, 3], activate_last=activate_last)
    got = layer(x)
    (w1, b1), (w2, b2) = [(d.kernel.numpy(), d.bias.numpy()) for d in layer.dense_layers]
    h = relu(x @ w1 + b1) @ w2 + b2
    self.assertAllClose(got, relu(h) if activate_last else h, rtol=1e-5, atol=1e-5)

  def test_batch_norm_inference_and_prelu(self):
    x = self.rng.normal(size=(5, 4)).astype(np.float32)
    layer = MLP([3], activation="prelu", batch_norm=True)
    got = layer(x, training=False)
    dense = layer.dense_layers[0]
    h = (x @ dense.kernel.numpy() + dense.bias.numpy()) / np.sqrt(1.0 + 1e-3)  # moving mean 0, var 1
    self.assertAllClose(got, np.where(h > 0, h, 0.0), rtol=1e-5, atol=1e-5)  # PReLU alpha starts at 0
    layer.act_layers[0].alpha.assign(np.full((3,), 0.25, np.float32))
    self.assertAllClose(layer(x, training=False), np.where(h > 0, h, 0.25 * h), rtol=1e-5, atol=1e-5)

  def test_dropout_only_in_training(self):
    x = np.ones((64, 8), np.float32)
    layer = MLP([16], dropout=0.5, kernel_initializer="ones")
    self.assertAllClose(layer(x, training=False), np.full((64, 16), 8.0))
    trained = layer(x, training=True).numpy()
    self.assertTrue(np.any(trained == 0.0))
    self.assertAllClose(trained[trained != 0], np.full((trained != 0).sum(), 16.0))  # 8 / (1 - 0.5)

  def test_exact_values_from_constant_initializers(self):
    layer = MLP([2, 1], kernel_initializer=tf.keras.initializers.Constant(0.5), activation="linear")
    # [1, 2, 3] -> each unit 0.5 * 6 = 3 -> 0.5 * (3 + 3) = 3.
    self.assertAllClose(layer(np.array([[1.0, 2.0, 3.0]], np.float32)), [[3.0]])

  def test_weight_count_and_names(self):
    layer = MLP([8, 4], batch_norm=True)
    layer(np.zeros((2, 5), np.float32))
    self.assertEqual(layer.count_params(), (5 * 8 + 8) + 4 * 8 + (8 * 4 + 4) + 4 * 4)
    self.assertIn("mlp/dense_0/kernel:0", [w.name for w in layer.weights])

  def test_errors_name_the_bad_value(self):
    with self.assertRaisesRegex(ValueError, r"dims.*got \[8, 0\]"):
      MLP([8, 0])
    with self.assertRaisesRegex(ValueError, r"dropout.*got 1.5"):
      MLP([8], dropout=1.5)
    with self.assertRaisesRegex(ValueError, r"got shape \(3,\)"):
      MLP([2])(tf.ones((3,)))

  def test_config_round_trip(self):
    layer = MLP([8, 4], activation="prelu", dropout=0.2, batch_norm=True, activate_last=False)
    self.assertEqual(MLP.from_config(layer.get_config()).get_config(), layer.get_config())

  def test_save_and_reload(self):
    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(inputs, MLP([6, 1], activation="prelu", dropout=0.1, batch_norm=True,
                                       activate_last=False)(inputs))
    self.assertSameAfterReload(model, self.rng.normal(size=(3, 4)).astype(np.float32))

  def test_gradients_reach_every_weight(self):
    layer = MLP([6, 1], activation="prelu", batch_norm=True, activate_last=False)
    x = tf.constant(self.rng.normal(size=(8, 4)).astype(np.float32))
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.square(layer(x, training=True) - 1.0))
    grads = tape.gradient(loss, layer.trainable_weights)
    self.assertLen(grads, 2 + 2 + 1 + 2)  # dense_0, batch_norm_0, prelu_0, dense_1
    for w, g in zip(layer.trainable_weights, grads):
      self.assertIsNotNone(g, w.name)
      self.assertTrue(np.all(np.isfinite(g)), w.name)


if __name__ == "__main__":
  tf.test.main()
