"""MLP tower and its numeric-field first layer (NumericFieldDense) against NumPy."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.layers.mlp import MLP, NumericFieldDense
from ctr_zoo.layers.numeric_fields import DenseFieldEmbedding


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


def numeric_parts(rng, batch=5, a=3, m=2, d=4):
  """e (B, a), x (B, m) and a built DenseFieldEmbedding holding V (m, d)."""
  e = rng.normal(size=(batch, a)).astype(np.float32)
  x = rng.normal(size=(batch, m)).astype(np.float32)
  numeric = DenseFieldEmbedding(d, initializer="glorot_uniform")
  numeric(x)
  return e, x, numeric


def flat_stack(e, x, v):
  """[e ; x_1 v_1 ; .. ; x_m v_m] (B, a + m d) in NumPy."""
  return np.concatenate([e, (x[:, :, None] * v[None]).reshape(len(x), -1)], axis=1)


class NumericFieldDenseTest(testing.TestCase):

  def test_matches_numpy_dense_on_the_concatenation(self):
    e, x, numeric = numeric_parts(self.rng)
    layer = NumericFieldDense(6, numeric, bias_initializer="glorot_uniform")
    got = layer([e, x])
    self.assertEqual(layer.kernel.shape, (3 + 2 * 4, 6))
    want = flat_stack(e, x, numeric.kernel.numpy()) @ layer.kernel.numpy() + layer.bias.numpy()
    self.assertAllClose(got, want, rtol=1e-5, atol=1e-5)

  def test_gradients_equal_those_of_dense_on_the_concatenation(self):
    e, x, numeric = numeric_parts(self.rng)
    e = tf.constant(e)
    layer = NumericFieldDense(6, numeric, bias_initializer="glorot_uniform")
    layer([e, x])
    target = self.rng.normal(size=(5, 6)).astype(np.float32)

    def loss_of(h):
      return tf.reduce_sum(tf.square(h - target))

    with tf.GradientTape(persistent=True) as tape:
      tape.watch(e)
      fast = loss_of(layer([e, x]))
      z = tf.concat([e, tf.reshape(x[:, :, None] * numeric.kernel[None], (5, -1))], axis=1)
      slow = loss_of(tf.matmul(z, layer.kernel) + layer.bias)
    wrt = [layer.kernel, layer.bias, numeric.kernel, e]
    for name, g_fast, g_slow in zip(("kernel", "bias", "V", "e"), tape.gradient(fast, wrt),
                                    tape.gradient(slow, wrt)):
      self.assertAllClose(g_fast, g_slow, rtol=1e-5, atol=1e-5, msg=name)
    self.assertNotAllClose(tape.gradient(fast, numeric.kernel), np.zeros((2, 4)))

  def test_mlp_with_numeric_embedding_equals_mlp_on_the_flattened_stack(self):
    e, x, numeric = numeric_parts(self.rng, batch=8)
    fast = MLP([6, 3], batch_norm=True, activate_last=False, numeric_embedding=numeric)
    plain = MLP([6, 3], batch_norm=True, activate_last=False)
    got = fast([e, x], training=False)
    plain(flat_stack(e, x, numeric.kernel.numpy()), training=False)
    # The same variables, in the same order and with the same names and shapes.
    self.assertEqual([(w.name.split("/", 1)[1], w.shape) for w in fast.weights],
                     [(w.name.split("/", 1)[1], w.shape) for w in plain.weights])
    self.assertNotIn(numeric.kernel.ref(), {w.ref() for w in fast.weights})  # V stays its owner's
    plain.set_weights(fast.get_weights())
    want = plain(flat_stack(e, x, numeric.kernel.numpy()), training=False)
    self.assertAllClose(got, want, rtol=1e-5, atol=1e-5)
    w0, b0 = fast.dense_layers[0].kernel.numpy(), fast.dense_layers[0].bias.numpy()
    w1, b1 = fast.dense_layers[1].kernel.numpy(), fast.dense_layers[1].bias.numpy()
    h = relu((flat_stack(e, x, numeric.kernel.numpy()) @ w0 + b0) / np.sqrt(1.0 + 1e-3))
    self.assertAllClose(got, h @ w1 + b1, rtol=1e-5, atol=1e-5)

  def test_mixed_bfloat16_computes_in_bfloat16_with_float32_variables(self):
    e, x, numeric = numeric_parts(self.rng)
    layer = NumericFieldDense(6, numeric, dtype="mixed_bfloat16")
    got = layer([e.astype("float32"), x])
    self.assertEqual(got.dtype, tf.bfloat16)
    self.assertEqual(layer.kernel.dtype, tf.float32)
    want = flat_stack(e, x, numeric.kernel.numpy()) @ layer.kernel.numpy()
    self.assertAllClose(tf.cast(got, tf.float32), want, rtol=0.05, atol=0.05)

  def test_errors_name_the_problem(self):
    e, x, numeric = numeric_parts(self.rng)
    with self.assertRaisesRegex(ValueError, "needs the numeric_embedding"):
      NumericFieldDense(4, None)
    with self.assertRaisesRegex(ValueError, "units must be an int >= 1, got 0"):
      NumericFieldDense(0, numeric)
    with self.assertRaisesRegex(ValueError, r"call it in the model before"):
      NumericFieldDense(4, DenseFieldEmbedding(4, name="unbuilt"))([e, x])
    with self.assertRaisesRegex(ValueError, "x has 3 values but V has 2 rows"):
      NumericFieldDense(4, numeric)([e, np.zeros((5, 3), np.float32)])
    with self.assertRaisesRegex(ValueError, r"takes \[e \(B, a\), x \(B, m\)\]"):
      MLP([4], numeric_embedding=numeric)(e)
    layer = NumericFieldDense(4, numeric, name="first")
    with self.assertRaisesRegex(NotImplementedError, "shares V with layer"):
      layer.get_config()
    with self.assertRaisesRegex(NotImplementedError, "rebuilt by the model code"):
      MLP([4], numeric_embedding=numeric).get_config()


if __name__ == "__main__":
  tf.test.main()
