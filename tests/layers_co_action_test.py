"""CoActionUnit (CAN) against a NumPy transcription of the micro-MLP."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.layers.co_action import CoActionUnit, co_action_param_width
from ctr_zoo.layers.embedding import FeatureEmbedding


def numpy_co_action(p, h, mask=None, dims=(16, 8, 4), orders=3, order_independent=False,
                    use_bias=False, act=np.tanh):
  """Loops over examples, positions and units with explicit row-major offsets."""
  b, t, _ = h.shape
  widths = sum(dims[1:])
  out = np.zeros((b, orders * widths))
  for e in range(b):
    for c in range(1, orders + 1):
      offset = (c - 1) * co_action_param_width(dims, use_bias, 1) if order_independent else 0
      layers = []
      for d_in, d_out in zip(dims[:-1], dims[1:]):
        w = np.zeros((d_in, d_out))
        for i in range(d_in):
          for j in range(d_out):
            w[i, j] = p[e, offset + d_out * i + j]  # input unit i, output unit j
        offset += d_in * d_out
        bias = np.zeros(d_out)
        if use_bias:
          bias = p[e, offset:offset + d_out]
          offset += d_out
        layers.append((w, bias))
      for pos in range(t):
        if mask is not None and not mask[e, pos]:
          continue
        x = h[e, pos] ** c
        parts = []
        for l, (w, bias) in enumerate(layers):
          x = x @ w + bias
          if l < len(layers) - 1:
            x = act(x)
          parts.append(x)
        out[e, (c - 1) * widths:c * widths] += np.concatenate(parts)
  return out


class CoActionUnitTest(testing.TestCase, parameterized.TestCase):

  def inputs(self, b=3, t=5, dims=(16, 8, 4), **kwargs):
    width = co_action_param_width(dims, **kwargs)
    p = (self.rng.normal(size=(b, width)) * 0.3).astype(np.float32)
    h = (self.rng.normal(size=(b, t, dims[0])) * 0.5).astype(np.float32)
    mask = np.ones((b, t), bool)
    mask[0, 3:] = False
    mask[1, 1:] = False
    return p, h, mask

  def test_param_width_helper(self):
    self.assertEqual(co_action_param_width(), 160)  # official 16 -> 8 -> 4, no bias
    self.assertEqual(co_action_param_width(use_bias=True), 160 + 8 + 4)
    self.assertEqual(co_action_param_width(orders=3, order_independent=True), 480)
    self.assertEqual(co_action_param_width((4, 2), use_bias=True, orders=2, order_independent=True),
                     2 * (8 + 2))

  @parameterized.named_parameters(
      ("defaults", {}),
      ("bias", dict(use_bias=True)),
      ("order_independent", dict(order_independent=True)),
      ("three_layers_two_orders", dict(dims=(6, 5, 3, 2), orders=2, use_bias=True)))
  def test_matches_numpy(self, kwargs):
    dims = kwargs.pop("dims", (16, 8, 4))
    orders = kwargs.pop("orders", 3)
    p, h, mask = self.inputs(dims=dims, orders=orders, **kwargs)
    layer = CoActionUnit(mlp_dims=dims, orders=orders, **kwargs)
    got = layer([p, h, mask])
    self.assertEqual(got.shape, (3, orders * sum(dims[1:])))
    expected = numpy_co_action(p, h, mask, dims=dims, orders=orders, **kwargs)
    self.assertAllClose(got, expected, rtol=1e-5, atol=1e-5)

  def test_one_order_one_linear_layer_is_sum_of_h_w(self):
    p, h, _ = self.inputs(dims=(6, 3), orders=1)
    got = CoActionUnit(mlp_dims=(6, 3), orders=1)([p, h])
    w = p.reshape(-1, 6, 3)
    self.assertAllClose(got, np.einsum("btd,bdk->bk", h, w), rtol=1e-5, atol=1e-5)

  def test_exact_values_with_hand_built_params(self):
    # dims (2, 1), C = 2, linear: W = [[1], [2]]; h = [3, 1] -> c=1: 3 + 2 = 5, c=2: 9 + 2 = 11.
    p = np.array([[1.0, 2.0]], np.float32)
    h = np.array([[3.0, 1.0]], np.float32)  # (B, d): a non-sequence feed, T = 1
    self.assertAllClose(CoActionUnit(mlp_dims=(2, 1), orders=2)([p, h]), [[5.0, 11.0]])

  def test_masked_positions_contribute_exactly_zero(self):
    p, h, mask = self.inputs()
    layer = CoActionUnit()
    garbage = h.copy()
    garbage[~mask] = 1e6  # raw powers of this overflow to inf
    a = layer([p, h, mask])
    b = layer([p, garbage, mask])
    self.assertAllClose(a, b, rtol=0, atol=0)
    self.assertTrue(np.all(np.isfinite(b)))
    # Example 1 keeps only position 0: same as a length-1 sequence.
    self.assertAllClose(a[1], layer([p[1:2], h[1:2, :1]])[0], rtol=1e-6, atol=1e-6)
    # Without the mask the padding does count.
    self.assertNotAllClose(a, layer([p, h]))

  def test_permuting_the_sequence_leaves_the_output_unchanged(self):
    p, h, mask = self.inputs()
    perm = self.rng.permutation(5)
    layer = CoActionUnit()
    self.assertAllClose(layer([p, h, mask]), layer([p, h[:, perm], mask[:, perm]]),
                        rtol=1e-5, atol=1e-5)

  def test_gradients_reach_both_co_action_tables_and_not_the_main_embeddings(self):
    main = FeatureEmbedding([("item", 20, 4)], feature_to_table={"hist": "item"}, name="main")
    can = FeatureEmbedding([("can_induction", 20, 160), ("can_feed", 20, 16)],
                           embeddings_initializer=tf.keras.initializers.RandomUniform(-0.1, 0.1),
                           name="co_action_tables")
    unit = CoActionUnit()
    item = tf.constant([3, 4], tf.int64)
    hist = tf.constant([[1, 5, 0], [7, 0, 0]], tf.int64)
    with tf.GradientTape(persistent=True) as tape:
      main_out = main({"item": item, "hist": hist})
      can_out = can({"can_induction": item, "can_feed": hist})
      co = unit([can_out["can_induction"], can_out["can_feed"], tf.not_equal(hist, 0)])
      loss = tf.reduce_sum(tf.square(co))
    grads = tape.gradient(loss, can.trainable_weights)
    self.assertLen(grads, 2)
    for g in grads:
      self.assertIsInstance(g, tf.IndexedSlices)
      self.assertTrue(np.all(np.isfinite(g.values)))
      self.assertGreater(np.abs(g.values).sum(), 0)
    self.assertNotEmpty(main.trainable_weights)
    self.assertAllEqual([tape.gradient(loss, w) for w in main.trainable_weights],
                        [None] * len(main.trainable_weights))
    del main_out

  def test_has_no_weights(self):
    layer = CoActionUnit()
    p, h, mask = self.inputs()
    layer([p, h, mask])
    self.assertEmpty(layer.weights)
    self.assertEqual(layer.output_width, 36)

  def test_errors_name_the_bad_value(self):
    p, h, mask = self.inputs()
    with self.assertRaisesRegex(ValueError, r"params must have shape \(batch, 160\).*got shape \(3, 150\)"):
      CoActionUnit()([p[:, :150], h])
    with self.assertRaisesRegex(ValueError, r"feed must have shape \(batch, T, 16\).*got shape \(3, 5, 8\)"):
      CoActionUnit()([p, h[:, :, :8]])
    with self.assertRaisesRegex(ValueError, r"mask must have shape.*got shape \(3, 4\)"):
      CoActionUnit()([p, h, mask[:, :4]])
    with self.assertRaisesRegex(ValueError, r"mlp_dims.*got \(16,\)"):
      CoActionUnit(mlp_dims=(16,))
    with self.assertRaisesRegex(ValueError, r"orders.*got 0"):
      CoActionUnit(orders=0)
    with self.assertRaisesRegex(ValueError, r"\[params, feed\]"):
      CoActionUnit()(tf.constant(p))

  def test_config_round_trip(self):
    layer = CoActionUnit(mlp_dims=(8, 4, 2), orders=2, order_independent=True, activation="relu",
                         use_bias=True)
    self.assertEqual(CoActionUnit.from_config(layer.get_config()).get_config(), layer.get_config())

  def test_save_and_reload(self):
    params = tf.keras.Input((160,))
    feed = tf.keras.Input((5, 16))
    mask = tf.keras.Input((5,))
    out = tf.keras.layers.Dense(1)(CoActionUnit()([params, feed, mask]))
    model = tf.keras.Model([params, feed, mask], out)
    p, h, m = self.inputs()
    self.assertSameAfterReload(model, [p, h, m.astype(np.float32)])

  def test_gradients_are_finite_and_reach_params_and_feed(self):
    p, h, mask = self.inputs()
    p, h = tf.constant(p), tf.constant(h)
    with tf.GradientTape() as tape:
      tape.watch([p, h])
      loss = tf.reduce_sum(CoActionUnit()([p, h, mask]))
    gp, gh = tape.gradient(loss, [p, h])
    self.assertTrue(np.all(np.isfinite(gp)) and np.all(np.isfinite(gh)))
    self.assertGreater(np.abs(gp).sum(), 0)
    self.assertAllClose(gh.numpy()[~mask], np.zeros_like(gh.numpy()[~mask]), rtol=0, atol=0)


if __name__ == "__main__":
  tf.test.main()
