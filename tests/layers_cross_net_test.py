"""CrossNet (DCN-V2) against a NumPy transcription of paper Eqs. 1-2."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.layers.cross_net import CrossNet


def numpy_cross(x0, weights, diag_scale=0.0):
  """x_{l+1} = x0 (.) (W_l x_l + b_l + s x_l) + x_l, per example (column vectors)."""
  x = x0
  for w, b in weights:
    x = x0 * (x @ w.T + b + diag_scale * x) + x
  return x


def layer_weights(layer):
  """[(W_l, b_l)] in NumPy, W_l = U V^T for low rank."""
  out = []
  for l in range(layer.num_layers):
    if layer.projection_dim is None:
      w = layer.kernels[l].numpy()
    else:
      w = layer.u_kernels[l].numpy() @ layer.v_kernels[l].numpy().T
    b = layer.biases[l].numpy() if layer.use_bias else 0.0
    out.append((w, b))
  return out


class CrossNetTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("full_rank", None, 0.0, True),
      ("low_rank", 3, 0.0, True),
      ("full_rank_diag_scale", None, 0.5, True),
      ("low_rank_no_bias", 2, 0.0, False),
  )
  def test_matches_numpy(self, projection_dim, diag_scale, use_bias):
    x0 = self.rng.normal(size=(5, 8)).astype(np.float32)
    layer = CrossNet(3, projection_dim=projection_dim, diag_scale=diag_scale, use_bias=use_bias,
                     bias_initializer="random_normal")
    got = layer(x0)
    self.assertAllClose(got, numpy_cross(x0, layer_weights(layer), diag_scale), rtol=1e-5, atol=1e-5)

  def test_zero_kernel_and_bias_is_identity(self):
    x0 = self.rng.normal(size=(4, 6)).astype(np.float32)
    layer = CrossNet(2, kernel_initializer="zeros", bias_initializer="zeros")
    self.assertAllClose(layer(x0), x0, rtol=0, atol=0)

  def test_zero_kernel_gives_x0_times_bias_plus_x0(self):
    x0 = self.rng.normal(size=(4, 6)).astype(np.float32)
    layer = CrossNet(1, kernel_initializer="zeros", bias_initializer=tf.keras.initializers.Constant(0.3))
    self.assertAllClose(layer(x0), x0 * 0.3 + x0)

  def test_exact_values_from_constant_initializers(self):
    # d = 2, W = all 0.5, b = 0.1: x1 = x0 * (W x0 + b) + x0.
    x0 = np.array([[1.0, 2.0]], np.float32)
    layer = CrossNet(1, kernel_initializer=tf.keras.initializers.Constant(0.5),
                     bias_initializer=tf.keras.initializers.Constant(0.1))
    # W x0 = [1.5, 1.5]; + b = [1.6, 1.6]; x0 * . = [1.6, 3.2]; + x0 = [2.6, 5.2].
    self.assertAllClose(layer(x0), [[2.6, 5.2]])
    # Low rank with ones, r = 1: U V^T x0 = [3, 3] -> x0 * [3, 3] + x0 = [4, 8].
    low = CrossNet(1, projection_dim=1, kernel_initializer="ones")
    self.assertAllClose(low(x0), [[4.0, 8.0]])

  def test_low_rank_with_uv_equal_to_w_equals_full_rank(self):
    d, r = 6, 2
    u = self.rng.normal(size=(d, r)).astype(np.float32)
    v = self.rng.normal(size=(d, r)).astype(np.float32)
    x0 = self.rng.normal(size=(3, d)).astype(np.float32)
    full, low = CrossNet(1), CrossNet(1, projection_dim=r)
    full.build((None, d))
    low.build((None, d))
    full.kernels[0].assign(u @ v.T)
    low.u_kernels[0].assign(u)
    low.v_kernels[0].assign(v)
    self.assertAllClose(full(x0), low(x0), rtol=1e-5, atol=1e-5)

  @parameterized.named_parameters(("full_rank", None), ("low_rank", 2))
  def test_same_math_as_tfrs_cross(self, projection_dim):
    import tensorflow_recommenders as tfrs  # pylint: disable=g-import-not-at-top
    x0 = self.rng.normal(size=(4, 6)).astype(np.float32)
    ours = CrossNet(1, projection_dim=projection_dim, diag_scale=0.3, bias_initializer="random_normal")
    theirs = tfrs.layers.dcn.Cross(projection_dim=projection_dim, diag_scale=0.3)
    expected = ours(x0)
    theirs(x0)
    if projection_dim is None:
      theirs._dense.kernel.assign(tf.transpose(ours.kernels[0]))  # pylint: disable=protected-access
      theirs._dense.bias.assign(ours.biases[0])  # pylint: disable=protected-access
    else:
      theirs._dense_u.kernel.assign(ours.v_kernels[0])  # pylint: disable=protected-access
      theirs._dense_v.kernel.assign(tf.transpose(ours.u_kernels[0]))  # pylint: disable=protected-access
      theirs._dense_v.bias.assign(ours.biases[0])  # pylint: disable=protected-access
    self.assertAllClose(theirs(x0), expected, rtol=1e-5, atol=1e-5)

  def test_scalar_polynomial_degree(self):
    # d = 1, b = 0: x_l = x0 * prod (1 + w x_{.}) is a polynomial of degree l + 1 in x0.
    for num_layers in (1, 2, 3):
      layer = CrossNet(num_layers, kernel_initializer=tf.keras.initializers.Constant(0.7),
                       bias_initializer="zeros")
      xs = np.linspace(-1.5, 1.5, 12).astype(np.float64)
      ys = layer(xs.reshape(-1, 1).astype(np.float32)).numpy().ravel().astype(np.float64)
      degree = num_layers + 1
      coeffs = np.polyfit(xs, ys, degree)
      self.assertAllClose(np.polyval(coeffs, xs), ys, rtol=1e-4, atol=1e-4)
      self.assertGreater(abs(coeffs[0]), 1e-3)  # the top degree is really used
      lower = np.polyfit(xs, ys, degree - 1)
      self.assertGreater(np.max(np.abs(np.polyval(lower, xs) - ys)), 1e-3)

  def test_weight_count_and_shapes(self):
    d, r = 10, 3
    full = CrossNet(2)
    full.build((None, d))
    self.assertEqual(full.count_params(), 2 * (d * d + d))
    self.assertEqual([tuple(w.shape) for w in full.weights], [(d, d), (d,), (d, d), (d,)])
    low = CrossNet(2, projection_dim=r)
    low.build((None, d))
    self.assertEqual(low.count_params(), 2 * (2 * d * r + d))
    self.assertEqual([w.name.split("/")[-1] for w in low.weights],
                     ["u_kernel_0:0", "v_kernel_0:0", "bias_0:0", "u_kernel_1:0", "v_kernel_1:0", "bias_1:0"])

  def test_kernels_get_distinct_values_with_a_seeded_initializer(self):
    layer = CrossNet(2, kernel_initializer=tf.keras.initializers.GlorotUniform(seed=1))
    layer.build((None, 5))
    self.assertNotAllClose(layer.kernels[0], layer.kernels[1])

  def test_errors_name_the_bad_value(self):
    with self.assertRaisesRegex(ValueError, r"num_layers.*got 0"):
      CrossNet(0)
    with self.assertRaisesRegex(ValueError, r"diag_scale.*got -1"):
      CrossNet(1, diag_scale=-1)
    with self.assertRaisesRegex(ValueError, r"projection_dim.*got 0"):
      CrossNet(1, projection_dim=0)
    with self.assertRaisesRegex(ValueError, r"got shape \(2, 3, 4\)"):
      CrossNet(1)(tf.ones((2, 3, 4)))

  def test_config_round_trip(self):
    layer = CrossNet(2, projection_dim=3, diag_scale=0.2, use_bias=False,
                     kernel_regularizer=tf.keras.regularizers.L2(0.01), name="cross")
    clone = CrossNet.from_config(layer.get_config())
    self.assertEqual(clone.get_config(), layer.get_config())

  @parameterized.named_parameters(("full_rank", None), ("low_rank", 2))
  def test_save_and_reload(self, projection_dim):
    inputs = tf.keras.Input((6,))
    out = tf.keras.layers.Dense(1)(CrossNet(2, projection_dim=projection_dim,
                                            bias_initializer="random_normal")(inputs))
    model = tf.keras.Model(inputs, out)
    self.assertSameAfterReload(model, self.rng.normal(size=(4, 6)).astype(np.float32))

  def test_gradients_reach_every_weight(self):
    layer = CrossNet(2, projection_dim=3, diag_scale=0.1, bias_initializer="random_normal")
    x0 = tf.constant(self.rng.normal(size=(4, 6)).astype(np.float32))
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.square(layer(x0)))
    grads = tape.gradient(loss, layer.trainable_weights)
    self.assertLen(grads, 6)
    for w, g in zip(layer.trainable_weights, grads):
      self.assertIsNotNone(g, w.name)
      self.assertTrue(np.all(np.isfinite(g)), w.name)
      self.assertGreater(np.abs(g).sum(), 0, w.name)


if __name__ == "__main__":
  tf.test.main()
