"""FinalMLP's FeatureGate and BilinearFusion against NumPy transcriptions of their equations."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.layers.bilinear_fusion import BilinearFusion
from ctr_zoo.layers.feature_gate import FeatureGate


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def numpy_gate(layer, context):
  h = context
  for k, b in zip(layer.kernels, layer.biases):
    h = np.maximum(h @ k.numpy() + b.numpy(), 0)
  return 2 * sigmoid(h @ layer.output_kernel.numpy() + layer.output_bias.numpy())


def numpy_fusion(layer, u, v):
  h = layer.num_heads
  out = u @ layer.kernel_u.numpy() + v @ layer.kernel_v.numpy() + layer.bias.numpy()
  w = layer.bilinear_kernel.numpy()
  a, b = u.shape[1] // h, v.shape[1] // h
  for j in range(h):
    uj, vj = u[:, j * a:(j + 1) * a], v[:, j * b:(j + 1) * b]
    out[:, 0] += np.einsum("bi,ij,bj->b", uj, w[j], vj)
  return out


class FeatureGateTest(testing.TestCase):

  def test_learned_context_matches_numpy(self):
    x = self.rng.normal(size=(5, 6)).astype(np.float32)
    layer = FeatureGate([4, 3], context_dim=2)
    got = layer(x)
    gate = numpy_gate(layer, layer.context.numpy())  # (1, 6): one gate for every example
    self.assertAllClose(got, x * gate, rtol=1e-5, atol=1e-6)
    self.assertTrue(np.all((gate > 0) & (gate < 2)))

  def test_feature_context_matches_numpy(self):
    x = self.rng.normal(size=(5, 6)).astype(np.float32)
    z = self.rng.normal(size=(5, 3)).astype(np.float32)
    layer = FeatureGate([4])
    self.assertAllClose(layer([x, z]), x * numpy_gate(layer, z), rtol=1e-5, atol=1e-6)
    self.assertIsNone(layer.context)

  def test_a_zero_output_layer_passes_the_input_unchanged(self):
    # 2 sigma(0) = 1 exactly.
    layer = FeatureGate([], kernel_initializer="zeros")
    x = self.rng.normal(size=(3, 4)).astype(np.float32)
    self.assertAllClose(layer(x), x, rtol=0, atol=0)

  def test_gradients_reach_the_context_and_every_gate_weight(self):
    layer = FeatureGate([32])  # some ReLU units of the first layer are active at init
    x = tf.constant(self.rng.normal(size=(8, 5)).astype(np.float32))
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(layer(x) ** 2)
    for g, v in zip(tape.gradient(loss, layer.trainable_weights), layer.trainable_weights):
      self.assertGreater(float(tf.reduce_sum(tf.abs(g))), 0.0, v.name)

  def test_errors_and_round_trip(self):
    with self.assertRaisesRegex(ValueError, "FeatureGate hidden_dims must be a tuple of ints"):
      FeatureGate([0])
    layer = FeatureGate([3], context_dim=5)
    self.assertEqual(FeatureGate.from_config(layer.get_config()).get_config(), layer.get_config())
    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(inputs, FeatureGate([3], name="gate")(inputs))
    self.assertSameAfterReload(model, self.rng.normal(size=(2, 4)).astype(np.float32))


class BilinearFusionTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(("one_head", 1), ("two_heads", 2), ("four_heads", 4))
  def test_matches_numpy(self, heads):
    u = self.rng.normal(size=(5, 8)).astype(np.float32)
    v = self.rng.normal(size=(5, 12)).astype(np.float32)
    layer = BilinearFusion(heads)
    self.assertAllClose(layer([u, v]), numpy_fusion(layer, u, v), rtol=1e-5, atol=1e-5)
    self.assertEqual(layer.count_params(), 8 + 12 + 1 + 8 * 12 // heads)

  def test_exact_values_from_constant_initializers(self):
    # u = [1, 2], v = [3], one head, every weight 1: u.1 + v.1 + 0 + u^T [[1], [1]] v = 3 + 3 + 9.
    layer = BilinearFusion(1, kernel_initializer="ones", bilinear_initializer="ones")
    self.assertAllClose(layer([np.array([[1.0, 2.0]], np.float32),
                               np.array([[3.0]], np.float32)]), [[15.0]])

  def test_errors_and_round_trip(self):
    with self.assertRaisesRegex(ValueError, "num_heads=3 must divide both stream widths, got 4 and 6"):
      BilinearFusion(3)([tf.ones((2, 4)), tf.ones((2, 6))])
    a, b = tf.keras.Input((4,)), tf.keras.Input((6,))
    model = tf.keras.Model([a, b], BilinearFusion(2, name="fusion")([a, b]))
    u = self.rng.normal(size=(3, 4)).astype(np.float32)
    v = self.rng.normal(size=(3, 6)).astype(np.float32)
    self.assertSameAfterReload(model, [u, v])


if __name__ == "__main__":
  tf.test.main()
