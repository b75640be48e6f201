"""CrossNetMix (DCN-Mix) against a NumPy transcription of paper Eqs. 3-4."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.layers.cross_net import CrossNet
from ctr_zoo.layers.cross_net_mix import CrossNetMix


def numpy_mix(x0, layer, g=np.tanh):
  """x_{l+1} = sum_i G_i(x_l) x0 (.) (U^i g(C^i g(V^iT x_l)) + b_l) + x_l, per example."""
  x = x0.astype(np.float64)
  for l in range(layer.num_layers):
    logits = x @ layer.gate_kernels[l].numpy()  # a_i = w_i^T x_l
    gates = np.exp(logits - logits.max(1, keepdims=True))
    gates /= gates.sum(1, keepdims=True)
    nxt = x.copy()
    for i in range(layer.num_experts):
      u = layer.u_kernels[l][i].numpy()
      v = layer.v_kernels[l][i].numpy()
      c = layer.c_kernels[l][i].numpy()
      b = layer.biases[l].numpy()
      per_example = np.stack([u @ g(c @ g(v.T @ xe)) for xe in x])  # (B, d)
      nxt += gates[:, i:i + 1] * (x0 * (per_example + b))
    x = nxt
  return x


class CrossNetMixTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(("tanh", "tanh", np.tanh), ("linear", "linear", lambda z: z))
  def test_matches_numpy(self, activation, g):
    x0 = self.rng.normal(size=(4, 6)).astype(np.float32)
    layer = CrossNetMix(2, num_experts=3, low_rank=2, activation=activation,
                        bias_initializer="random_normal")
    self.assertAllClose(layer(x0), numpy_mix(x0, layer, g), rtol=1e-5, atol=1e-5)

  def test_one_expert_identity_g_and_c_equals_low_rank(self):
    d, r = 6, 3
    x0 = self.rng.normal(size=(4, d)).astype(np.float32)
    mix = CrossNetMix(2, num_experts=1, low_rank=r, activation="linear",
                      bias_initializer="random_normal")
    mix.build((None, d))
    for l in range(2):
      mix.c_kernels[l][0].assign(np.eye(r, dtype=np.float32))
    low = CrossNet(2, projection_dim=r)
    low.build((None, d))
    for l in range(2):
      low.u_kernels[l].assign(mix.u_kernels[l][0])
      low.v_kernels[l].assign(mix.v_kernels[l][0])
      low.biases[l].assign(mix.biases[l])
    self.assertAllClose(mix(x0), low(x0), rtol=1e-5, atol=1e-5)

  def test_identical_experts_equal_one_expert_for_any_gate(self):
    d, r = 5, 2
    x0 = self.rng.normal(size=(3, d)).astype(np.float32)
    many = CrossNetMix(1, num_experts=3, low_rank=r, bias_initializer="random_normal")
    one = CrossNetMix(1, num_experts=1, low_rank=r)
    many.build((None, d))
    one.build((None, d))
    for kernels_many, kernels_one in ((many.u_kernels, one.u_kernels), (many.v_kernels, one.v_kernels),
                                      (many.c_kernels, one.c_kernels)):
      for i in range(3):
        kernels_many[0][i].assign(kernels_one[0][0])
    one.biases[0].assign(many.biases[0])
    many.gate_kernels[0].assign(self.rng.normal(size=(d, 3)).astype(np.float32) * 3)
    self.assertAllClose(many(x0), one(x0), rtol=1e-5, atol=1e-5)

  def test_gates_sum_to_one_and_match_softmax(self):
    layer = CrossNetMix(1, num_experts=4, low_rank=2)
    x = self.rng.normal(size=(5, 6)).astype(np.float32)
    layer.build((None, 6))
    gates = layer.gates(x, 0).numpy()
    self.assertAllClose(gates.sum(axis=1), np.ones(5))
    logits = x @ layer.gate_kernels[0].numpy()
    expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    self.assertAllClose(gates, expected, rtol=1e-5, atol=1e-6)

  def test_exact_values_from_constant_initializers(self):
    # d = 2, r = 1, K = 2, all kernels 0.5, g = linear, b = 0.1: gates are 1/2 each
    # (equal logits) and the experts are equal: x1 = x0 * (U C V^T x0 + b) + x0.
    x0 = np.array([[1.0, 2.0]], np.float32)
    layer = CrossNetMix(1, num_experts=2, low_rank=1, activation="linear",
                        kernel_initializer=tf.keras.initializers.Constant(0.5),
                        bias_initializer=tf.keras.initializers.Constant(0.1))
    # V^T x0 = 1.5; C . = 0.75; U . = [0.375, 0.375]; + b = 0.475; x0 * . + x0 = [1.475, 2.95].
    self.assertAllClose(layer(x0), [[1.475, 2.95]])

  def test_weight_count_and_shapes(self):
    d, r, k = 8, 3, 4
    layer = CrossNetMix(2, num_experts=k, low_rank=r)
    layer.build((None, d))
    self.assertEqual(layer.count_params(), 2 * (k * (2 * d * r + r * r) + k * d + d))
    shapes = {w.name.split("/")[-1]: tuple(w.shape) for w in layer.weights}
    self.assertEqual(shapes["u_kernel_1_3:0"], (d, r))
    self.assertEqual(shapes["c_kernel_0_0:0"], (r, r))
    self.assertEqual(shapes["gate_kernel_1:0"], (d, k))
    self.assertEqual(shapes["bias_0:0"], (d,))

  @parameterized.named_parameters(
      ("unseeded", "glorot_uniform"),
      ("seeded", tf.keras.initializers.GlorotUniform(seed=7)))
  def test_every_expert_gets_its_own_values(self, initializer):
    layer = CrossNetMix(1, num_experts=3, low_rank=2, kernel_initializer=initializer)
    layer.build((None, 5))
    for kernels in (layer.u_kernels[0], layer.v_kernels[0], layer.c_kernels[0]):
      for i in range(3):
        for j in range(i + 1, 3):
          self.assertNotAllClose(kernels[i], kernels[j])

  def test_errors_name_the_bad_value(self):
    with self.assertRaisesRegex(ValueError, r"num_experts.*got 0"):
      CrossNetMix(1, num_experts=0)
    with self.assertRaisesRegex(ValueError, r"low_rank.*got -2"):
      CrossNetMix(1, low_rank=-2)
    with self.assertRaisesRegex(ValueError, r"got shape \(3,\)"):
      CrossNetMix(1)(tf.ones((3,)))

  def test_config_round_trip(self):
    layer = CrossNetMix(3, num_experts=2, low_rank=5, activation="relu",
                        kernel_regularizer=tf.keras.regularizers.L2(0.1))
    self.assertEqual(CrossNetMix.from_config(layer.get_config()).get_config(), layer.get_config())

  def test_save_and_reload(self):
    inputs = tf.keras.Input((6,))
    out = tf.keras.layers.Dense(1)(CrossNetMix(2, num_experts=2, low_rank=3,
                                               bias_initializer="random_normal")(inputs))
    model = tf.keras.Model(inputs, out)
    self.assertSameAfterReload(model, self.rng.normal(size=(4, 6)).astype(np.float32))

  def test_gradients_reach_every_weight(self):
    layer = CrossNetMix(2, num_experts=3, low_rank=2, bias_initializer="random_normal")
    x0 = tf.constant(self.rng.normal(size=(4, 6)).astype(np.float32))
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.square(layer(x0)))
    grads = tape.gradient(loss, layer.trainable_weights)
    self.assertLen(grads, 2 * (3 * 3 + 2))
    for w, g in zip(layer.trainable_weights, grads):
      self.assertIsNotNone(g, w.name)
      self.assertTrue(np.all(np.isfinite(g)), w.name)
      self.assertGreater(np.abs(g).sum(), 0, w.name)


if __name__ == "__main__":
  tf.test.main()
