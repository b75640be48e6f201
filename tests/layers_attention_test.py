"""MultiHeadSelfAttention (AutoInt) against NumPy."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.layers.attention import MultiHeadSelfAttention


def numpy_autoint(e, layer):
  h, a = layer.num_heads, layer.head_dim
  wq, wk, wv = (layer.query_kernel.numpy(), layer.key_kernel.numpy(), layer.value_kernel.numpy())
  heads = []
  for i in range(h):
    cols = slice(i * a, (i + 1) * a)
    q, k, v = e @ wq[:, cols], e @ wk[:, cols], e @ wv[:, cols]  # (B, n, a)
    logits = np.einsum("bna,bma->bnm", q, k)
    if layer.use_scale:
      logits /= np.sqrt(a)
    att = np.exp(logits - logits.max(-1, keepdims=True))
    att /= att.sum(-1, keepdims=True)
    heads.append(np.einsum("bnm,bma->bna", att, v))
  out = np.concatenate(heads, axis=-1)
  if layer.use_residual:
    out = out + e @ layer.residual_kernel.numpy()
  return np.maximum(out, 0)


class MultiHeadSelfAttentionTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(("residual", True, False), ("no_residual_scaled", False, True))
  def test_matches_numpy(self, use_residual, use_scale):
    e = self.rng.normal(size=(3, 5, 4)).astype(np.float32)
    layer = MultiHeadSelfAttention(num_heads=2, head_dim=3, use_residual=use_residual,
                                   use_scale=use_scale)
    self.assertAllClose(layer(e), numpy_autoint(e, layer), rtol=1e-5, atol=1e-5)

  def test_attention_rows_sum_to_one(self):
    e = self.rng.normal(size=(2, 5, 4)).astype(np.float32)
    layer = MultiHeadSelfAttention(3, 2)
    layer(e)
    self.assertAllClose(layer.attention_weights(e).numpy().sum(-1), np.ones((2, 3, 5)))

  def test_exact_values_from_constant_initializers(self):
    # Constant kernels: every field gets the same attention mix; ones value/residual kernels.
    e = np.array([[[1.0, 0.0], [0.0, 2.0]]], np.float32)
    layer = MultiHeadSelfAttention(1, 1, kernel_initializer="zeros")
    layer.build(e.shape)
    layer.value_kernel.assign(np.ones((2, 1), np.float32))
    layer.residual_kernel.assign(np.ones((2, 1), np.float32))
    # zero queries -> uniform attention: mean of v = (1 + 2) / 2 = 1.5; residual 1 and 2.
    self.assertAllClose(layer(e), [[[2.5], [3.5]]])

  def test_weight_count(self):
    layer = MultiHeadSelfAttention(2, 3)
    layer.build((None, 5, 4))
    self.assertEqual(layer.count_params(), 4 * 4 * 6)
    self.assertEqual(sorted(w.name.split("/")[-1] for w in layer.weights),
                     ["key_kernel:0", "query_kernel:0", "residual_kernel:0", "value_kernel:0"])
    self.assertNotAllClose(layer.query_kernel, layer.key_kernel)

  def test_errors_name_the_bad_value(self):
    with self.assertRaisesRegex(ValueError, r"num_heads.*got 0"):
      MultiHeadSelfAttention(0)
    with self.assertRaisesRegex(ValueError, r"got shape \(2, 4\)"):
      MultiHeadSelfAttention()(tf.ones((2, 4)))

  def test_config_round_trip(self):
    layer = MultiHeadSelfAttention(4, 8, use_residual=False, use_scale=True)
    self.assertEqual(MultiHeadSelfAttention.from_config(layer.get_config()).get_config(),
                     layer.get_config())

  def test_save_and_reload(self):
    inputs = tf.keras.Input((5, 4))
    x = tf.keras.layers.Flatten()(MultiHeadSelfAttention(2, 3)(inputs))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1)(x))
    self.assertSameAfterReload(model, self.rng.normal(size=(2, 5, 4)).astype(np.float32))

  def test_gradients_reach_every_weight(self):
    layer = MultiHeadSelfAttention(2, 3)
    e = tf.constant(self.rng.normal(size=(3, 5, 4)).astype(np.float32))
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.square(layer(e)))
    grads = tape.gradient(loss, layer.trainable_weights)
    self.assertLen(grads, 4)
    for w, g in zip(layer.trainable_weights, grads):
      self.assertIsNotNone(g, w.name)
      self.assertTrue(np.all(np.isfinite(g)), w.name)
      self.assertGreater(np.abs(g).sum(), 0, w.name)


if __name__ == "__main__":
  tf.test.main()
