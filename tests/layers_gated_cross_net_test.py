"""GatedCrossNet (GDCN) against a NumPy transcription of its gated cross layer."""

import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.layers.cross_net import CrossNet
from ctr_zoo.layers.gated_cross_net import GatedCrossNet


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def numpy_gated_cross(x0, weights):
  """x_{l+1} = x0 (.) (W_l x_l + b_l) (.) sigma(W^g_l x_l) + x_l (column vectors)."""
  x = x0
  for w, wg, b in weights:
    x = x0 * (x @ w.T + b) * sigmoid(x @ wg.T) + x
  return x


def layer_weights(layer):
  return [(k.numpy(), g.numpy(), b.numpy())
          for k, g, b in zip(layer.kernels, layer.gate_kernels, layer.biases)]


class GatedCrossNetTest(testing.TestCase):

  def test_matches_numpy(self):
    x0 = self.rng.normal(size=(5, 7)).astype(np.float32)
    layer = GatedCrossNet(3, bias_initializer="random_normal")
    self.assertAllClose(layer(x0), numpy_gated_cross(x0, layer_weights(layer)), rtol=1e-5,
                        atol=1e-5)

  def test_exact_values_from_constant_initializers(self):
    # d = 2, W = W^g = 0.5, b = 0.1, x0 = [1, 2]: W x0 = [1.5, 1.5], gate = sigma(1.5).
    x0 = np.array([[1.0, 2.0]], np.float32)
    layer = GatedCrossNet(1, kernel_initializer=tf.keras.initializers.Constant(0.5),
                          bias_initializer=tf.keras.initializers.Constant(0.1))
    g = sigmoid(1.5)
    self.assertAllClose(layer(x0), [[1.6 * g + 1.0, 3.2 * g + 2.0]])

  def test_zero_kernel_and_bias_is_identity(self):
    x0 = self.rng.normal(size=(4, 6)).astype(np.float32)
    layer = GatedCrossNet(2, kernel_initializer="zeros")
    self.assertAllClose(layer(x0), x0, rtol=0, atol=0)

  def test_a_zero_gate_kernel_halves_the_dcn_v2_cross_term(self):
    # sigma(0) = 1/2: GDCN with W^g = 0 is DCN-V2 with W/2 and b/2.
    d = 5
    x0 = self.rng.normal(size=(3, d)).astype(np.float32)
    gated, plain = GatedCrossNet(2, bias_initializer="random_normal"), CrossNet(2)
    gated.build((None, d))
    plain.build((None, d))
    for l in range(2):
      gated.gate_kernels[l].assign(np.zeros((d, d), np.float32))
      plain.kernels[l].assign(gated.kernels[l] / 2)
      plain.biases[l].assign(gated.biases[l] / 2)
    self.assertAllClose(gated(x0), plain(x0), rtol=1e-5, atol=1e-5)

  def test_weights_and_parameter_count(self):
    layer = GatedCrossNet(3)
    layer.build((None, 6))
    self.assertEqual([w.name.split("/")[-1] for w in layer.weights][:3],
                     ["kernel_0:0", "gate_kernel_0:0", "bias_0:0"])
    self.assertEqual(layer.count_params(), 3 * (2 * 36 + 6))
    kernels = [w.numpy() for w in layer.kernels + layer.gate_kernels]
    self.assertFalse(any(np.allclose(a, b) for i, a in enumerate(kernels) for b in kernels[i + 1:]))

  def test_errors_name_the_bad_value(self):
    with self.assertRaisesRegex(ValueError, "GatedCrossNet num_layers must be an int >= 1, got 0"):
      GatedCrossNet(0)
    with self.assertRaisesRegex(ValueError, r"expects input of shape \(batch, d\)"):
      GatedCrossNet(1)(tf.ones((2, 3, 4)))

  def test_config_round_trip_and_reload(self):
    layer = GatedCrossNet(2, kernel_regularizer="l2")
    clone = GatedCrossNet.from_config(layer.get_config())
    self.assertEqual(clone.get_config(), layer.get_config())
    inputs = tf.keras.Input((6,))
    model = tf.keras.Model(inputs, GatedCrossNet(2, name="gated")(inputs))
    self.assertSameAfterReload(model, self.rng.normal(size=(4, 6)).astype(np.float32))

  def test_gradients_reach_every_weight(self):
    layer = GatedCrossNet(2, bias_initializer="random_normal")
    x0 = tf.constant(self.rng.normal(size=(4, 5)).astype(np.float32))
    with tf.GradientTape() as tape:
      out = tf.reduce_sum(layer(x0) ** 2)
    for g in tape.gradient(out, layer.trainable_weights):
      self.assertGreater(float(tf.reduce_sum(tf.abs(g))), 0.0)


if __name__ == "__main__":
  tf.test.main()
