"""SelfMaskCrossNet (DCNv3's LCN and ECN) against a NumPy transcription of its equations."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.layers.self_mask_cross_net import SelfMaskCrossNet


def layer_norm(c, scale, shift, eps=1e-5):
  mean = c.mean(axis=-1, keepdims=True)
  var = c.var(axis=-1, keepdims=True)
  return (c - mean) / np.sqrt(var + eps) * scale + shift


def batch_norm(c, norm, training, eps=1e-5):
  """One channel: training uses the mean and (biased) variance of every element of c."""
  if training:
    mean, var = c.mean(), c.var()
  else:
    mean, var = norm.moving_mean.numpy()[0], norm.moving_variance.numpy()[0]
  return (c - mean) / np.sqrt(var + eps) * norm.gamma.numpy()[0] + norm.beta.numpy()[0]


def numpy_self_mask(x0, layer, training=False):
  """c = x W [BN(c)]; m = ReLU(LN(c)); H = [c; c m][:d]; x' = (x0 or x) (.) (H + b) + x."""
  d = x0.shape[-1]
  x = x0
  for l in range(layer.num_layers):
    c = x @ layer.kernels[l].numpy()
    if layer.batch_norm:
      c = batch_norm(c, layer.batch_norm_layers[l], training)
    if layer.layer_norm:
      m = np.maximum(layer_norm(c, layer.norm_scales[l].numpy(), layer.norm_shifts[l].numpy()), 0)
    else:
      m = np.maximum(c, 0)
    hidden = np.concatenate([c, c * m], axis=-1)[:, :d]
    x = (x0 if layer.kind == "linear" else x) * (hidden + layer.biases[l].numpy()) + x
  return x


class SelfMaskCrossNetTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("linear_even", "linear", True, 8), ("linear_odd", "linear", True, 7),
      ("exponential_even", "exponential", True, 6), ("exponential_no_norm", "exponential", False, 5),
      ("linear_no_norm", "linear", False, 9))
  def test_matches_numpy(self, kind, layer_norm_on, d):
    x0 = (0.5 * self.rng.normal(size=(5, d))).astype(np.float32)
    layer = SelfMaskCrossNet(3, kind=kind, layer_norm=layer_norm_on,
                             bias_initializer="random_normal")
    layer.build((None, d))
    for v in layer.norm_scales + layer.norm_shifts:
      v.assign(self.rng.normal(size=v.shape).astype(np.float32))
    self.assertAllClose(layer(x0), numpy_self_mask(x0, layer), rtol=1e-4, atol=1e-5)

  @parameterized.named_parameters(("linear", "linear"), ("exponential", "exponential"))
  def test_batch_norm_matches_numpy_in_training_and_inference(self, kind):
    x0 = (0.5 * self.rng.normal(size=(16, 6))).astype(np.float32)
    layer = SelfMaskCrossNet(2, kind=kind, batch_norm=True,
                             bias_initializer=tf.keras.initializers.RandomUniform(0.0, 1.0))
    layer.build((None, 6))
    for norm in layer.batch_norm_layers:
      norm.gamma.assign([1.7])
      norm.beta.assign([-0.3])
      norm.moving_mean.assign([0.4])
      norm.moving_variance.assign([2.5])
    self.assertAllClose(layer(x0, training=False), numpy_self_mask(x0, layer, training=False),
                        rtol=1e-4, atol=1e-5)
    expected = numpy_self_mask(x0, layer, training=True)
    # Layer 0's statistics are those of c_0 = x0 W_0; the moving mean moves 10% towards them.
    c0 = x0 @ layer.kernels[0].numpy()
    self.assertAllClose(layer(x0, training=True), expected, rtol=1e-4, atol=1e-4)
    self.assertAllClose(layer.batch_norm_layers[0].moving_mean.numpy(),
                        [0.9 * 0.4 + 0.1 * c0.mean()], rtol=1e-5, atol=1e-6)
    self.assertLen(layer.batch_norm_layers[0].weights, 4)

  def test_exact_values_from_constant_initializers(self):
    # d = 2, h = 1, W = [[1], [1]], no layer norm: c = x1 + x2 = 3; m = ReLU(3) = 3;
    # H = [c, c m] = [3, 9]; b = 0: x' = x0 (.) H + x0 = [1*3 + 1, 2*9 + 2] = [4, 20].
    x0 = np.array([[1.0, 2.0]], np.float32)
    layer = SelfMaskCrossNet(1, layer_norm=False, kernel_initializer="ones")
    self.assertAllClose(layer(x0), [[4.0, 20.0]])

  def test_the_mask_drops_crosses_whose_normalised_value_is_negative(self):
    # h = 2: c = [1, -1] normalises to [1, -1]: m = [1, 0], so the second masked column is 0.
    x0 = np.ones((1, 4), np.float32)
    layer = SelfMaskCrossNet(1, kernel_initializer="zeros")
    layer.build((None, 4))
    layer.kernels[0].assign(np.array([[0.25, -0.25]] * 4, np.float32))
    c = np.array([1.0, -1.0])
    m = np.maximum(layer_norm(c[None], 1.0, 0.0), 0)[0]
    self.assertAllClose(layer(x0), [[1 + c[0], 1 + c[1], 1 + c[0] * m[0], 1 + 0.0]], atol=1e-5)

  @parameterized.named_parameters(("linear", "linear", 2, 3), ("exponential", "exponential", 2, 4))
  def test_interaction_order(self, kind, num_layers, degree):
    # d = 1 (h = 1, the mask side is cut): linear layers raise the degree in x0 by one,
    # exponential layers double it; b = 0.
    layer = SelfMaskCrossNet(num_layers, kind=kind, layer_norm=False,
                             kernel_initializer=tf.keras.initializers.Constant(0.7))
    x = np.linspace(-1.5, 1.5, 9).astype(np.float32)[:, None]
    y = layer(x).numpy()[:, 0].astype(np.float64)
    fit = np.polyfit(x[:, 0], y, degree, full=True)[1]
    lower = np.polyfit(x[:, 0], y, degree - 1, full=True)[1]
    self.assertLess(float(fit[0]) if len(fit) else 0.0, 1e-8)
    self.assertGreater(float(lower[0]), 1e-4)

  def test_dropout_only_in_training(self):
    layer = SelfMaskCrossNet(2, dropout=0.5)
    x0 = np.ones((64, 6), np.float32)
    self.assertAllClose(layer(x0, training=False), numpy_self_mask(x0, layer), rtol=1e-4, atol=1e-5)
    self.assertGreater(float(tf.reduce_mean(tf.cast(layer(x0, training=True) == 0, tf.float32))),
                       0.2)

  def test_weights_and_errors(self):
    layer = SelfMaskCrossNet(2)
    layer.build((None, 7))
    self.assertEqual(layer.kernels[0].shape, (7, 4))
    self.assertEqual(layer.count_params(), 2 * (7 * 4 + 7 + 2 * 4))
    with self.assertRaisesRegex(ValueError, "SelfMaskCrossNet kind must be one of"):
      SelfMaskCrossNet(1, kind="quadratic")
    with self.assertRaisesRegex(ValueError, r"SelfMaskCrossNet dropout must be a number in \[0, 1\)"):
      SelfMaskCrossNet(1, dropout=1.0)

  def test_config_round_trip_and_reload(self):
    layer = SelfMaskCrossNet(2, kind="exponential", dropout=0.1, batch_norm=True)
    self.assertEqual(SelfMaskCrossNet.from_config(layer.get_config()).get_config(),
                     layer.get_config())
    inputs = tf.keras.Input((6,))
    model = tf.keras.Model(inputs, SelfMaskCrossNet(2, kind="exponential", batch_norm=True,
                                                    name="ecn")(inputs))
    self.assertSameAfterReload(model, self.rng.normal(size=(4, 6)).astype(np.float32))


if __name__ == "__main__":
  tf.test.main()
