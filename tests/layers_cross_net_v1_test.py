"""VectorCrossNet (DCN v1) against a NumPy transcription of paper Eq. 3."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.layers.cross_net import CrossNet
from ctr_zoo.layers.cross_net_v1 import VectorCrossNet


def numpy_vector_cross(x0, weights):
  """x_{l+1} = x0 x_l^T w_l + b_l + x_l, one example (column vectors) at a time."""
  out = []
  for row in x0.astype(np.float64):
    c0 = row[:, None]  # (d, 1)
    c = c0
    for w, b in weights:
      c = c0 @ (c.T @ w[:, None]) + b[:, None] + c  # (d, 1) (1, 1) -> (d, 1)
    out.append(c[:, 0])
  return np.stack(out)


def layer_weights(layer):
  """[(w_l, b_l)] in NumPy; b_l = 0 without bias."""
  out = []
  for l in range(layer.num_layers):
    w = layer.kernels[l].numpy().astype(np.float64)
    b = layer.biases[l].numpy().astype(np.float64) if layer.use_bias else np.zeros_like(w)
    out.append((w, b))
  return out


class VectorCrossNetTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("one_layer", 1, True),
      ("three_layers", 3, True),
      ("three_layers_no_bias", 3, False),
  )
  def test_matches_numpy(self, num_layers, use_bias):
    x0 = self.rng.normal(size=(5, 8)).astype(np.float32)
    layer = VectorCrossNet(num_layers, use_bias=use_bias, bias_initializer="random_normal")
    got = layer(x0)
    self.assertAllClose(got, numpy_vector_cross(x0, layer_weights(layer)), rtol=1e-5, atol=1e-5)

  def test_zero_kernel_and_bias_is_identity(self):
    x0 = self.rng.normal(size=(4, 6)).astype(np.float32)
    layer = VectorCrossNet(3, kernel_initializer="zeros", bias_initializer="zeros")
    self.assertAllClose(layer(x0), x0, rtol=0, atol=0)

  def test_zero_kernel_adds_the_bias_per_layer(self):
    # w = 0: x_{l+1} = x_l + b, so L layers add L b (not x0 (.) b as in DCN-V2).
    x0 = self.rng.normal(size=(4, 6)).astype(np.float32)
    layer = VectorCrossNet(2, kernel_initializer="zeros",
                           bias_initializer=tf.keras.initializers.Constant(0.3))
    self.assertAllClose(layer(x0), x0 + 0.6)

  def test_exact_values_from_constant_initializers(self):
    # d = 2, w = [0.5, 0.5], b = [0.1, 0.1], x0 = [1, 2]:
    # x0^T w = 1.5 -> x1 = 1.5 x0 + b + x0 = [1.5 + 0.1 + 1, 3 + 0.1 + 2] = [2.6, 5.1].
    x0 = np.array([[1.0, 2.0]], np.float32)
    layer = VectorCrossNet(1, kernel_initializer=tf.keras.initializers.Constant(0.5),
                           bias_initializer=tf.keras.initializers.Constant(0.1))
    self.assertAllClose(layer(x0), [[2.6, 5.1]])
    # Second layer: x1^T w = 3.85 -> x2 = 3.85 x0 + b + x1 = [3.85+0.1+2.6, 7.7+0.1+5.1].
    two = VectorCrossNet(2, kernel_initializer=tf.keras.initializers.Constant(0.5),
                         bias_initializer=tf.keras.initializers.Constant(0.1))
    self.assertAllClose(two(x0), [[6.55, 12.9]], rtol=1e-6, atol=1e-5)
    # Ones, no bias: x0^T 1 = 3 -> [3 + 1, 6 + 2].
    ones = VectorCrossNet(1, use_bias=False, kernel_initializer="ones")
    self.assertAllClose(ones(x0), [[4.0, 8.0]])

  def test_without_bias_equals_rank_one_dcn_v2(self):
    # b = 0: x0 (w^T x_l) + x_l = x0 (.) (U V^T x_l) + x_l with U = 1 (d, 1), V = w (d, 1).
    d = 6
    x0 = self.rng.normal(size=(3, d)).astype(np.float32)
    v1 = VectorCrossNet(2, use_bias=False)
    v2 = CrossNet(2, projection_dim=1, use_bias=False)
    v1.build((None, d))
    v2.build((None, d))
    for l in range(2):
      w = self.rng.normal(size=(d,)).astype(np.float32)
      v1.kernels[l].assign(w)
      v2.u_kernels[l].assign(np.ones((d, 1), np.float32))
      v2.v_kernels[l].assign(w[:, None])
    self.assertAllClose(v1(x0), v2(x0), rtol=1e-5, atol=1e-5)

  def test_scalar_polynomial_degree(self):
    # d = 1, b = 0: x_{l+1} = x_l (1 + w x0), so x_l = x0 (1 + w x0)^l has degree l + 1.
    for num_layers in (1, 2, 3):
      layer = VectorCrossNet(num_layers, kernel_initializer=tf.keras.initializers.Constant(0.7))
      xs = np.linspace(-1.5, 1.5, 12)
      ys = layer(xs.reshape(-1, 1).astype(np.float32)).numpy().ravel().astype(np.float64)
      self.assertAllClose(ys, xs * (1 + 0.7 * xs) ** num_layers, rtol=1e-5, atol=1e-5)
      degree = num_layers + 1
      coeffs = np.polyfit(xs, ys, degree)
      self.assertGreater(abs(coeffs[0]), 1e-3)  # the top degree is really used
      lower = np.polyfit(xs, ys, degree - 1)
      self.assertGreater(np.max(np.abs(np.polyval(lower, xs) - ys)), 1e-3)

  def test_weight_count_and_shapes(self):
    d = 10
    layer = VectorCrossNet(3)
    layer.build((None, d))
    self.assertEqual(layer.count_params(), 3 * 2 * d)
    self.assertEqual([tuple(w.shape) for w in layer.weights], [(d,)] * 6)
    self.assertEqual([w.name.split("/")[-1] for w in layer.weights],
                     ["kernel_0:0", "bias_0:0", "kernel_1:0", "bias_1:0", "kernel_2:0", "bias_2:0"])
    no_bias = VectorCrossNet(2, use_bias=False)
    no_bias.build((None, d))
    self.assertEqual(no_bias.count_params(), 2 * d)

  def test_kernels_get_distinct_values_with_a_seeded_initializer(self):
    layer = VectorCrossNet(2, kernel_initializer=tf.keras.initializers.GlorotUniform(seed=1))
    layer.build((None, 5))
    self.assertNotAllClose(layer.kernels[0], layer.kernels[1])

  def test_errors_name_the_bad_value(self):
    with self.assertRaisesRegex(ValueError, r"num_layers.*got 0"):
      VectorCrossNet(0)
    with self.assertRaisesRegex(ValueError, r"num_layers.*got 2\.5"):
      VectorCrossNet(2.5)
    with self.assertRaisesRegex(ValueError, r"VectorCrossNet.*got shape \(2, 3, 4\)"):
      VectorCrossNet(1)(tf.ones((2, 3, 4)))

  def test_config_round_trip(self):
    layer = VectorCrossNet(2, use_bias=False, kernel_initializer="he_normal",
                           kernel_regularizer=tf.keras.regularizers.L2(0.01), name="cross_v1")
    clone = VectorCrossNet.from_config(layer.get_config())
    self.assertEqual(clone.get_config(), layer.get_config())
    self.assertEqual(clone.num_layers, 2)
    self.assertFalse(clone.use_bias)

  def test_save_and_reload(self):
    inputs = tf.keras.Input((6,))
    out = tf.keras.layers.Dense(1)(VectorCrossNet(2, bias_initializer="random_normal")(inputs))
    model = tf.keras.Model(inputs, out)
    self.assertSameAfterReload(model, self.rng.normal(size=(4, 6)).astype(np.float32))

  def test_gradients_reach_every_weight(self):
    layer = VectorCrossNet(2, bias_initializer="random_normal")
    x0 = tf.constant(self.rng.normal(size=(4, 6)).astype(np.float32))
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.square(layer(x0)))
    grads = tape.gradient(loss, layer.trainable_weights)
    self.assertLen(grads, 4)
    for w, g in zip(layer.trainable_weights, grads):
      self.assertIsNotNone(g, w.name)
      self.assertTrue(np.all(np.isfinite(g)), w.name)
      self.assertGreater(np.abs(g).sum(), 0, w.name)


if __name__ == "__main__":
  tf.test.main()
