"""FeatureEmbedding: per-field and fused tables, shared vocabularies, sparse gradients."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.feature_columns import CategoricalFeature, DenseFeature, FeatureSpec, SequenceFeature
from ctr_zoo.layers.embedding import FeatureEmbedding

TABLES = [("user", 6, 3), ("item", 9, 3), ("city", 4, 3)]


def feature_inputs(rng, b=4, t=5):
  hist = rng.integers(0, 9, size=(b, t))
  hist[:, 3:] = 0  # padding
  return {"user": rng.integers(0, 6, size=(b,)), "item": rng.integers(0, 9, size=(b,)),
          "city": rng.integers(0, 4, size=(b,)), "hist": hist,
          "price": rng.normal(size=(b,)).astype(np.float32)}  # ignored (not an id feature)


def table_values(layer):
  """{table: (V, d) array} for either mode."""
  if layer.fused:
    fused = layer.fused_table.numpy()
    return {name: fused[layer.offsets[name]:layer.offsets[name] + v] for name, v, _ in layer.tables}
  return {name: var.numpy() for (name, _, _), var in zip(layer.tables, layer.table_variables)}


class ScaledAbsMax(tf.keras.regularizers.Regularizer):
  """A non-additive regularizer: c * max |x| (its value on a concat is not the sum)."""

  def __init__(self, c):
    self.c = c

  def __call__(self, x):
    return self.c * tf.reduce_max(tf.abs(x))

  def get_config(self):
    return {"c": self.c}


class FeatureEmbeddingTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(("per_field", False), ("fused", True))
  def test_matches_numpy_lookup(self, fused):
    inputs = feature_inputs(self.rng)
    layer = FeatureEmbedding(TABLES, feature_to_table={"hist": "item"}, fused=fused)
    out = layer(inputs)
    tables = table_values(layer)
    self.assertEqual(list(out), ["user", "item", "city", "hist"])
    for f, t in (("user", "user"), ("item", "item"), ("city", "city"), ("hist", "item")):
      self.assertAllClose(out[f], tables[t][inputs[f]], rtol=0, atol=0)
    self.assertEqual(out["hist"].shape, (4, 5, 3))

  def test_fused_equals_per_field_with_the_same_tables(self):
    inputs = feature_inputs(self.rng)
    per_field = FeatureEmbedding(TABLES, feature_to_table={"hist": "item"})
    fused = FeatureEmbedding(TABLES, feature_to_table={"hist": "item"}, fused=True)
    a = per_field(inputs)
    fused.build(None)
    fused.fused_table.assign(np.concatenate([v.numpy() for v in per_field.table_variables]))
    b = fused(inputs)
    for f in a:
      self.assertAllClose(a[f], b[f], rtol=0, atol=0)
    self.assertEqual(fused.offsets, {"user": 0, "item": 6, "city": 15})

  def test_stack_and_exact_values_from_constant_initializer(self):
    layer = FeatureEmbedding(TABLES, stack=True,
                             embeddings_initializer=tf.keras.initializers.Constant(0.25))
    out = layer({"user": [1, 2], "item": [0, 8], "city": [3, 3]})
    self.assertAllClose(out, np.full((2, 3, 3), 0.25), rtol=0, atol=0)

  def test_per_table_dims_and_weight_shapes(self):
    layer = FeatureEmbedding([("user", 6, 2), ("item", 9, 5)])
    out = layer({"user": [1], "item": [2]})
    self.assertEqual((out["user"].shape, out["item"].shape), ((1, 2), (1, 5)))
    self.assertEqual(layer.count_params(), 6 * 2 + 9 * 5)
    self.assertEqual([(v.name, tuple(v.shape)) for v in layer.embedding_variables],
                     [("feature_embedding/embedding/user:0", (6, 2)),
                      ("feature_embedding/embedding/item:0", (9, 5))])
    fused = FeatureEmbedding(TABLES, fused=True, name="emb")
    fused.build(None)
    self.assertEqual([(v.name.split("/", v.name.count("/") - 1)[-1], tuple(v.shape))
                      for v in fused.embedding_variables],
                     [("embedding/fused:0", (19, 3))])

  def test_from_spec_uses_shared_vocabularies(self):
    spec = FeatureSpec((
        CategoricalFeature("item", vocabulary=("a", "b", "c"), embedding_dim=4),
        DenseFeature("price", transform="log1p"),
        DenseFeature("count", transform="bucketize", vocabulary=("0", "1"), embedding_dim=4),
        SequenceFeature("hist", max_len=3, shares_vocabulary_with="item", embedding_dim=4),
    ))
    layer = FeatureEmbedding.from_spec(spec, fused=True)
    self.assertEqual(layer.tables, [("item", 5, 4), ("count", 4, 4)])
    self.assertEqual(layer.feature_names, ["item", "count", "hist"])
    out = layer({"item": [2], "count": [3], "hist": [[2, 4, 0]], "price": [1.0]})
    self.assertAllClose(out["hist"][0, 0], out["item"][0], rtol=0, atol=0)

  @parameterized.named_parameters(("per_field", False), ("fused", True))
  def test_gradients_are_indexed_slices_and_sparse_updates_touch_only_those_rows(self, fused):
    layer = FeatureEmbedding(TABLES, feature_to_table={"hist": "item"}, fused=fused)
    inputs = {"user": np.array([1, 1]), "item": np.array([2, 3]), "city": np.array([0, 0]),
              "hist": np.array([[4, 0], [4, 2]])}
    layer.build(None)
    before = [v.numpy() for v in layer.embedding_variables]
    with tf.GradientTape() as tape:
      out = layer(inputs)
      loss = tf.add_n([tf.reduce_sum(tf.square(v)) for v in out.values()])
    grads = tape.gradient(loss, layer.embedding_variables)
    for g in grads:
      self.assertIsInstance(g, tf.IndexedSlices)
      self.assertTrue(np.all(np.isfinite(g.values)))
    tf.keras.optimizers.legacy.Adagrad(0.1).apply_gradients(zip(grads, layer.embedding_variables))
    after = table_values(layer)
    start = dict(zip([t[0] for t in TABLES], before)) if not fused else {
        name: before[0][layer.offsets[name]:layer.offsets[name] + v] for name, v, _ in TABLES}
    touched = {"user": {1}, "item": {0, 2, 3, 4}, "city": {0}}
    for name, num_ids, _ in TABLES:
      for row in range(num_ids):
        if row in touched[name]:
          self.assertNotAllClose(after[name][row], start[name][row], msg=f"{name}[{row}]")
        else:
          self.assertAllClose(after[name][row], start[name][row], rtol=0, atol=0)

  def test_regularizer_applies_to_looked_up_rows_only(self):
    layer = FeatureEmbedding([("user", 50, 2)], embeddings_regularizer=tf.keras.regularizers.L2(0.5),
                             embeddings_initializer="random_normal")
    ids = np.array([3, 7, 3])
    layer({"user": ids})
    table = layer.embedding_variables[0].numpy()
    self.assertLen(layer.losses, 1)
    self.assertAllClose(layer.losses[0], 0.5 * np.sum(table[ids] ** 2), rtol=1e-5, atol=1e-7)

  @parameterized.named_parameters(
      ("l2", lambda: tf.keras.regularizers.L2(0.5)),
      ("l1l2", lambda: tf.keras.regularizers.L1L2(l1=0.1, l2=0.5)),
      ("custom", lambda: ScaledAbsMax(0.5)))  # not additive: evaluated per feature
  def test_fused_regularizer_equals_the_sum_over_features(self, make_regularizer):
    inputs = feature_inputs(self.rng)
    per_field = FeatureEmbedding(TABLES, feature_to_table={"hist": "item"},
                                 embeddings_regularizer=make_regularizer(),
                                 embeddings_initializer="random_normal")
    out = per_field(inputs)
    tables = table_values(per_field)
    reg = make_regularizer()
    expected = sum(float(reg(tables[t][inputs[f]])) for f, t in
                   (("user", "user"), ("item", "item"), ("city", "city"), ("hist", "item")))
    self.assertAllClose(tf.add_n(per_field.losses), expected, rtol=1e-5, atol=1e-7)
    fused = FeatureEmbedding(TABLES, feature_to_table={"hist": "item"}, fused=True,
                             embeddings_regularizer=make_regularizer())
    fused.build(None)
    fused.fused_table.assign(np.concatenate([tables[name] for name, _, _ in TABLES]))
    got = fused(inputs)
    self.assertLen(fused.losses, 1)
    self.assertAllClose(fused.losses[0], expected, rtol=1e-5, atol=1e-7)
    for f in out:
      self.assertAllClose(got[f], out[f], rtol=0, atol=0)

  @parameterized.named_parameters(("no_regularizer", None), ("l2", 0.25))
  def test_fused_stack_is_one_gather_equal_to_numpy(self, l2):
    reg = tf.keras.regularizers.L2(l2) if l2 else None
    layer = FeatureEmbedding(TABLES, fused=True, stack=True, embeddings_regularizer=reg,
                             embeddings_initializer="random_normal")
    data = {k: v for k, v in feature_inputs(self.rng, b=6).items() if k in ("user", "item", "city")}
    out = layer(data)
    tables = table_values(layer)
    expected = np.stack([tables[f][data[f]] for f in ("user", "item", "city")], axis=1)  # (B, 3, d)
    self.assertEqual(out.shape, (6, 3, 3))
    self.assertAllClose(out, expected, rtol=0, atol=0)
    if l2:
      self.assertLen(layer.losses, 1)
      self.assertAllClose(layer.losses[0], l2 * np.sum(expected ** 2), rtol=1e-5, atol=1e-7)
    graph = tf.function(layer).get_concrete_function(
        {f: tf.TensorSpec((None,), tf.int64) for f in data}).graph
    gathers = [op for op in graph.get_operations() if op.type == "ResourceGather"]
    self.assertLen(gathers, 1)
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(layer(data))
    grad, = tape.gradient(loss, layer.embedding_variables)
    self.assertIsInstance(grad, tf.IndexedSlices)
    self.assertEqual(grad.indices.shape[0], 6 * 3)

  def test_errors_name_the_bad_value(self):
    with self.assertRaisesRegex(ValueError, r"one embedding dim.*'user': 2, 'item': 5"):
      FeatureEmbedding([("user", 6, 2), ("item", 9, 5)], fused=True)
    with self.assertRaisesRegex(ValueError, r"maps 'hist' to table 'items'"):
      FeatureEmbedding(TABLES, feature_to_table={"hist": "items"})
    with self.assertRaisesRegex(ValueError, r"table 'user': num_ids must be an int >= 1, got 0"):
      FeatureEmbedding([("user", 0, 2)])
    with self.assertRaisesRegex(ValueError, r"duplicate table names \['user'\]"):
      FeatureEmbedding([("user", 3, 2), ("user", 4, 2)])
    layer = FeatureEmbedding(TABLES)
    with self.assertRaisesRegex(ValueError, r"missing input\(s\) \['city'\]"):
      layer({"user": [1], "item": [1]})
    with self.assertRaisesRegex(ValueError, r"'user' must hold integer ids, got dtype float32"):
      layer({"user": [1.0], "item": [1], "city": [1]})
    with self.assertRaisesRegex(ValueError, r"stack=True.*'hist' has shape \(1, 2\)"):
      FeatureEmbedding(TABLES, {"hist": "item"}, stack=True)(
          {"user": [1], "item": [1], "city": [1], "hist": [[1, 2]]})

  def test_config_round_trip(self):
    layer = FeatureEmbedding(TABLES, feature_to_table={"hist": "item"}, fused=True, stack=False,
                             embeddings_regularizer=tf.keras.regularizers.L2(1e-4))
    self.assertEqual(FeatureEmbedding.from_config(layer.get_config()).get_config(), layer.get_config())

  @parameterized.named_parameters(("per_field", False), ("fused", True))
  def test_save_and_reload(self, fused):
    inputs = {"user": tf.keras.Input((), dtype=tf.int64, name="user"),
              "item": tf.keras.Input((), dtype=tf.int64, name="item"),
              "city": tf.keras.Input((), dtype=tf.int64, name="city"),
              "hist": tf.keras.Input((5,), dtype=tf.int64, name="hist")}
    emb = FeatureEmbedding(TABLES, feature_to_table={"hist": "item"}, fused=fused)(inputs)
    pooled = tf.keras.layers.Flatten()(emb["hist"])
    x = tf.keras.layers.Concatenate()([emb["user"], emb["item"], emb["city"], pooled])
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1)(x))
    data = feature_inputs(self.rng)
    data.pop("price")
    self.assertSameAfterReload(model, {k: tf.constant(v, tf.int64) for k, v in data.items()})


if __name__ == "__main__":
  tf.test.main()
