"""CIN (xDeepFM) against a NumPy transcription of paper Eqs. 6-8."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.layers.cin import CIN


def numpy_cin(x0, layer, act=lambda z: z):
  b, m, d = x0.shape
  x, pooled = x0, []
  n_layers = len(layer.layer_sizes)
  for k, size in enumerate(layer.layer_sizes):
    w, bias = layer.kernels[k].numpy(), layer.biases[k].numpy()
    xk = np.zeros((b, size, d))
    for h in range(size):
      for i in range(x.shape[1]):
        for j in range(m):
          xk[:, h] += w[i * m + j, h] * x[:, i] * x0[:, j]
      xk[:, h] += bias[h]
    xk = act(xk)
    if layer.split_half and k < n_layers - 1:
      x, out = xk[:, :size // 2], xk[:, size // 2:]
    else:
      x, out = xk, xk
    pooled.append(out.sum(axis=-1))
  return np.concatenate(pooled, axis=1)


class CINTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(("split_half", True, "linear", lambda z: z),
                                  ("no_split_relu", False, "relu", lambda z: np.maximum(z, 0)))
  def test_matches_numpy(self, split_half, activation, act):
    x0 = self.rng.normal(size=(3, 4, 5)).astype(np.float32)
    layer = CIN([4, 2, 3], split_half=split_half, activation=activation)
    layer.build(x0.shape)
    for bias in layer.biases:
      bias.assign(self.rng.normal(size=bias.shape).astype(np.float32))
    self.assertAllClose(layer(x0), numpy_cin(x0, layer, act), rtol=1e-4, atol=1e-4)

  def test_exact_values_from_ones(self):
    # m = 2, D = 1, one map: X^1 = sum_{i,j} x_i x_j = (x_1 + x_2)^2.
    x0 = np.array([[[1.0], [2.0]], [[-1.0], [0.5]]], np.float32)
    self.assertAllClose(CIN([1], kernel_initializer="ones")(x0), [[9.0], [0.25]])

  def test_weight_count_and_output_width(self):
    layer = CIN([4, 2])
    layer.build((None, 3, 5))
    self.assertEqual([tuple(w.shape) for w in layer.weights], [(9, 4), (4,), (6, 2), (2,)])
    self.assertEqual(layer.count_params(), 9 * 4 + 4 + 6 * 2 + 2)
    self.assertEqual(layer.compute_output_shape((None, 3, 5)).as_list(), [None, 2 + 2])
    no_split = CIN([4, 2], split_half=False)
    no_split.build((None, 3, 5))
    self.assertEqual(no_split.compute_output_shape((None, 3, 5)).as_list(), [None, 6])
    self.assertEqual(tuple(no_split.kernels[1].shape), (12, 2))

  def test_errors_name_the_bad_value(self):
    with self.assertRaisesRegex(ValueError, r"even layer_sizes.*got \[3, 2\]"):
      CIN([3, 2])
    with self.assertRaisesRegex(ValueError, r"layer_sizes.*got \[\]"):
      CIN([])
    with self.assertRaisesRegex(ValueError, r"got shape \(2, 3\)"):
      CIN([2])(tf.ones((2, 3)))

  def test_config_round_trip(self):
    layer = CIN([6, 4], split_half=False, activation="relu")
    self.assertEqual(CIN.from_config(layer.get_config()).get_config(), layer.get_config())

  def test_save_and_reload(self):
    inputs = tf.keras.Input((4, 3))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1)(CIN([4, 2])(inputs)))
    self.assertSameAfterReload(model, self.rng.normal(size=(2, 4, 3)).astype(np.float32))

  def test_gradients_reach_every_weight(self):
    layer = CIN([4, 2])
    x0 = tf.constant(self.rng.normal(size=(3, 4, 5)).astype(np.float32))
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
