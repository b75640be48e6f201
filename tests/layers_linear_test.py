"""LinearLogit (the wide / FTRL-LR part) against NumPy."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.feature_columns import CategoricalFeature, DenseFeature, FeatureSpec, SequenceFeature
from ctr_zoo.layers.linear import LinearLogit

TABLES = [("user", 6), ("item", 9)]


class LinearLogitTest(testing.TestCase, parameterized.TestCase):

  def data(self, b=4):
    hist = self.rng.integers(1, 9, size=(b, 4))
    hist[:, 2:] = 0
    return {"user": self.rng.integers(0, 6, size=(b,)), "item": self.rng.integers(0, 9, size=(b,)),
            "hist": hist, "age": self.rng.normal(size=(b,)).astype(np.float32),
            "score": self.rng.normal(size=(b,)).astype(np.float32)}

  @parameterized.named_parameters(("per_field", False), ("fused", True))
  def test_matches_numpy(self, fused):
    data = self.data()
    layer = LinearLogit(TABLES, feature_to_table={"hist": "item"}, dense_features=["age", "score"],
                        fused=fused, kernel_initializer="random_normal")
    layer.build(None)
    layer.bias.assign([0.3])
    got = layer(data)
    tables = layer.embedding_variables
    if fused:
      w = tables[0].numpy()[:, 0]
      w_user, w_item = w[:6], w[6:]
    else:
      w_user, w_item = tables[0].numpy()[:, 0], tables[1].numpy()[:, 0]
    hist_term = np.where(data["hist"] != 0, w_item[data["hist"]], 0.0).sum(axis=1)
    dense = np.stack([data["age"], data["score"]], 1) @ layer.dense_kernel.numpy()[:, 0]
    expected = w_user[data["user"]] + w_item[data["item"]] + hist_term + dense + 0.3
    self.assertAllClose(got, expected[:, None], rtol=1e-5, atol=1e-6)

  @parameterized.named_parameters(("single_ids", False), ("with_sequence", True))
  def test_fused_with_regularizer_equals_per_field(self, with_sequence):
    data = self.data()
    mapping = {"hist": "item"} if with_sequence else {}
    if not with_sequence:
      data.pop("hist")
    kwargs = dict(feature_to_table=mapping, dense_features=["age"],
                  kernel_regularizer=tf.keras.regularizers.L2(0.3))
    per_field = LinearLogit(TABLES, kernel_initializer="random_normal", **kwargs)
    want = per_field(data)
    fused = LinearLogit(TABLES, fused=True, **kwargs)
    fused.build(None)
    fused.embedding_variables[0].assign(
        np.concatenate([v.numpy() for v in per_field.embedding_variables]))
    fused.dense_kernel.assign(per_field.dense_kernel)
    got = fused(data)
    self.assertAllClose(got, want, rtol=1e-6, atol=1e-6)
    w_user, w_item = (v.numpy()[:, 0] for v in per_field.embedding_variables)
    terms = [w_user[data["user"]], w_item[data["item"]]]
    if with_sequence:
      terms.append(np.where(data["hist"] != 0, w_item[data["hist"]], 0.0).sum(axis=1))
    w = per_field.dense_kernel.numpy()
    expected_reg = 0.3 * (sum(np.sum(t ** 2) for t in terms) + np.sum(w ** 2))
    for layer in (per_field, fused):
      self.assertAllClose(tf.add_n(layer.losses), expected_reg, rtol=1e-5, atol=1e-7)

  def test_exact_values_from_constant_initializer(self):
    layer = LinearLogit(TABLES, dense_features=["age"],
                        kernel_initializer=tf.keras.initializers.Constant(0.5))
    # 0.5 (user) + 0.5 (item) + 0.5 * age + bias 0.
    got = layer({"user": [1, 2], "item": [3, 4], "age": [2.0, -1.0]})
    self.assertAllClose(got, [[2.0], [0.5]])

  def test_weight_shapes_and_embedding_variables(self):
    layer = LinearLogit(TABLES, dense_features=["age"])
    layer({"user": [1], "item": [2], "age": [0.0]})
    self.assertEqual(layer.count_params(), 6 + 9 + 1 + 1)
    self.assertEqual([tuple(v.shape) for v in layer.embedding_variables], [(6, 1), (9, 1)])
    for v in layer.embedding_variables:
      self.assertIn("embedding/", v.name)
    dense_names = {v.name for v in layer.trainable_weights} - {v.name for v in layer.embedding_variables}
    self.assertEqual(dense_names, {"linear_logit/dense_kernel:0", "linear_logit/bias:0"})

  def test_from_spec(self):
    spec = FeatureSpec((
        CategoricalFeature("item", vocabulary=("a", "b")),
        DenseFeature("price", transform="log1p"),
        SequenceFeature("hist", shares_vocabulary_with="item", max_len=3),
    ))
    layer = LinearLogit.from_spec(spec, kernel_initializer="ones")
    self.assertEqual(layer.dense_features, ["price"])
    # item 1 + hist (2 non-pad ids) 2 + price 3 = 6.
    self.assertAllClose(layer({"item": [2], "hist": [[2, 3, 0]], "price": [3.0]}), [[6.0]])

  def test_gradients_are_sparse_for_tables_and_reach_every_weight(self):
    layer = LinearLogit(TABLES, feature_to_table={"hist": "item"}, dense_features=["age"],
                        kernel_regularizer=tf.keras.regularizers.L2(0.1))
    data = self.data()
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
          tf.ones((4, 1)), layer(data))) + tf.add_n(layer.losses)
    grads = tape.gradient(loss, layer.trainable_weights)
    for w, g in zip(layer.trainable_weights, grads):
      self.assertIsNotNone(g, w.name)
      values = g.values if isinstance(g, tf.IndexedSlices) else g
      self.assertTrue(np.all(np.isfinite(values)), w.name)
      self.assertGreater(np.abs(values).sum(), 0, w.name)
    names = [w.name for w in layer.trainable_weights]
    for v in layer.embedding_variables:
      self.assertIsInstance(grads[names.index(v.name)], tf.IndexedSlices)

  def test_errors_name_the_bad_value(self):
    with self.assertRaisesRegex(ValueError, r"\(name, num_ids\[, dim\]\).*got 'user'"):
      LinearLogit(["user"])
    layer = LinearLogit(TABLES, dense_features=["age"])
    with self.assertRaisesRegex(ValueError, r"missing dense input\(s\) \['age'\]"):
      layer({"user": [1], "item": [2]})

  def test_config_round_trip(self):
    layer = LinearLogit(TABLES, feature_to_table={"hist": "item"}, dense_features=["age"], fused=True,
                        kernel_regularizer=tf.keras.regularizers.L2(0.1))
    self.assertEqual(LinearLogit.from_config(layer.get_config()).get_config(), layer.get_config())

  def test_save_and_reload(self):
    inputs = {"user": tf.keras.Input((), dtype=tf.int64, name="user"),
              "item": tf.keras.Input((), dtype=tf.int64, name="item"),
              "hist": tf.keras.Input((4,), dtype=tf.int64, name="hist"),
              "age": tf.keras.Input((), dtype=tf.float32, name="age")}
    out = LinearLogit(TABLES, feature_to_table={"hist": "item"}, dense_features=["age"],
                      kernel_initializer="random_normal")(inputs)
    model = tf.keras.Model(inputs, out)
    data = self.data()
    feed = {k: tf.constant(data[k], tf.int64) for k in ("user", "item", "hist")}
    feed["age"] = tf.constant(data["age"])
    self.assertSameAfterReload(model, feed)


if __name__ == "__main__":
  tf.test.main()
