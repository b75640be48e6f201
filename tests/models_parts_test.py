"""models/parts: per-field tables by default; the fused option computes the same numbers."""

import dataclasses

import numpy as np

from tests import testing
from tests.models_zoo_test import random_inputs, sequence_spec, small_criteo_spec, small_overrides

import ctr_zoo  # noqa: F401
import tensorflow as tf

from ctr_zoo import models
from ctr_zoo.layers import embedding as embedding_lib
from ctr_zoo.layers import mlp as mlp_lib
from ctr_zoo.layers import numeric_fields
from ctr_zoo.models import parts as parts_lib


def feature_embeddings(model):
  """The FeatureEmbedding layers of a functional model, in layer order."""
  return [l for l in model._flatten_layers(include_self=False)  # pylint: disable=protected-access
          if isinstance(l, embedding_lib.FeatureEmbedding)]


def copy_tables(per_field_layer, fused_layers):
  """Writes the per-field tables into fused layers (grouped by width or not)."""
  tables = dict(zip([t[0] for t in per_field_layer.tables],
                    [v.numpy() for v in per_field_layer.table_variables]))
  for layer in fused_layers:
    if layer.fused:
      layer.fused_table.assign(np.concatenate([tables[name] for name, _, _ in layer.tables]))
    else:
      for (name, _, _), var in zip(layer.tables, layer.table_variables):
        var.assign(tables[name])


def make_parts(spec, l2=0.0, fused=False):
  """The Parts of a model under construction on fresh inputs (spec widths kept)."""
  return parts_lib.Parts(spec.keras_inputs(), spec,
                         parts_lib.EmbeddingConfig(dim=None, l2=l2, fused=fused))


def as_tensors(spec, x):
  return {k: tf.constant(v, spec.input_dtype(spec[k])) for k, v in x.items()}


class BlocksTest(testing.TestCase):

  def test_flat_input_is_one_fused_gather_equal_to_per_field_tables(self):
    spec = small_criteo_spec()
    parts = make_parts(spec, l2=0.01, fused=True)
    fused = tf.keras.Model(parts.inputs, parts.flat_input())
    inputs = spec.keras_inputs()
    per_field = tf.keras.Model(inputs, parts_lib.concat(
        parts_lib.embed(inputs, spec, 0.01, name="per_field", fused=False) +
        [parts_lib.dense_matrix(inputs, spec)], name="x0"))
    (fused_layer,), (per_field_layer,) = feature_embeddings(fused), feature_embeddings(per_field)
    self.assertTrue(fused_layer.fused and fused_layer.stack)
    self.assertLen(fused_layer.embedding_variables, 1)
    self.assertLen(per_field_layer.embedding_variables, len(spec.embedding_tables()))
    copy_tables(per_field_layer, [fused_layer])
    x = as_tensors(spec, random_inputs(spec, 16, self.rng))
    self.assertAllClose(fused(x), per_field(x), rtol=0, atol=0)
    # The L2 on looked-up rows: one loss term instead of one per field, same value.
    self.assertLen(fused.losses, 1)
    self.assertAllClose(tf.add_n(fused.losses), tf.add_n(per_field.losses), rtol=1e-5, atol=1e-8)

  def test_field_stack_equals_per_field_tables(self):
    spec = small_criteo_spec()
    parts = make_parts(spec, l2=0.01, fused=True)
    fused = tf.keras.Model(parts.inputs, parts.field_stack().stack)
    inputs = spec.keras_inputs()
    d = parts_lib.embedding_dim(spec, "test")
    fields = [tf.keras.layers.Reshape((1, d))(e)
              for e in parts_lib.embed(inputs, spec, 0.01, name="per_field", fused=False)]
    dense_layer = numeric_fields.DenseFieldEmbedding(d, regularizer=tf.keras.regularizers.l2(0.01))
    fields.append(dense_layer(parts_lib.dense_matrix(inputs, spec)))
    per_field = tf.keras.Model(inputs, tf.keras.layers.Concatenate(axis=1)(fields))
    copy_tables(feature_embeddings(per_field)[0], feature_embeddings(fused))
    fused.get_layer("dense_field_embedding").kernel.assign(dense_layer.kernel)
    x = as_tensors(spec, random_inputs(spec, 16, self.rng))
    self.assertAllClose(fused(x), per_field(x), rtol=0, atol=0)
    self.assertAllClose(tf.add_n(fused.losses), tf.add_n(per_field.losses), rtol=1e-5, atol=1e-8)

  def test_sequences_and_two_widths_fuse_per_width_group(self):
    spec = sequence_spec()
    wide = {"item": 8, "item_history": 8}  # item and its history: width 8; user, category: 4
    spec = spec.with_features([dataclasses.replace(f, embedding_dim=wide.get(f.name, f.embedding_dim))
                               for f in spec.features])
    self.assertEqual(sorted(parts_lib.width_groups(spec)), [4, 8])
    parts = make_parts(spec, l2=0.01, fused=True)
    fused = tf.keras.Model(parts.inputs, parts.embeddings())
    inputs = spec.keras_inputs()
    per_field = tf.keras.Model(inputs, parts_lib.embed(inputs, spec, 0.01, name="pf", fused=False))
    layers = feature_embeddings(fused)
    self.assertEqual(sorted(l.name for l in layers), ["embedding_d4", "embedding_d8"])
    by_name = {l.name: l for l in layers}
    self.assertEqual(by_name["embedding_d8"].feature_names, ["item", "item_history"])
    self.assertTrue(by_name["embedding_d4"].fused)
    self.assertFalse(by_name["embedding_d8"].fused)  # one table: nothing to fuse
    copy_tables(feature_embeddings(per_field)[0], layers)
    x = as_tensors(spec, random_inputs(spec, 16, self.rng))
    for got, want in zip(fused(x), per_field(x)):
      self.assertAllClose(got, want, rtol=0, atol=0)
    self.assertAllClose(tf.add_n(fused.losses), tf.add_n(per_field.losses), rtol=1e-5, atol=1e-8)

  def test_fused_linear_logit_equals_per_field(self):
    spec = small_criteo_spec()
    parts = make_parts(spec, fused=True)
    fused = tf.keras.Model(parts.inputs, parts.linear_logit(l2=0.1))
    parts = make_parts(spec, fused=False)
    per_field = tf.keras.Model(parts.inputs, parts.linear_logit(l2=0.1, name="pf"))
    fused_linear, per_field_linear = fused.get_layer("linear"), per_field.get_layer("pf")
    self.assertTrue(fused_linear.fused)
    self.assertLen(fused_linear.embedding_variables, 1)
    rng = np.random.default_rng(3)
    for v in per_field_linear.trainable_weights:
      v.assign(rng.normal(size=v.shape).astype(np.float32))
    fused_linear.embedding_variables[0].assign(
        np.concatenate([v.numpy() for v in per_field_linear.embedding_variables]))
    fused_linear.dense_kernel.assign(per_field_linear.dense_kernel)
    fused_linear.bias.assign(per_field_linear.bias)
    x = as_tensors(spec, random_inputs(spec, 16, self.rng))
    self.assertAllClose(fused(x), per_field(x), rtol=1e-6, atol=1e-6)
    self.assertAllClose(tf.add_n(fused.losses), tf.add_n(per_field.losses), rtol=1e-5, atol=1e-7)

  def test_per_field_stack_adds_one_regularizer_term(self):
    spec = small_criteo_spec()
    inputs = spec.keras_inputs()
    stacked = tf.keras.Model(inputs, parts_lib.stacked_embeddings(inputs, spec, 0.01, fused=False))
    inputs = spec.keras_inputs()
    listed = tf.keras.Model(inputs, parts_lib.embed(inputs, spec, 0.01, name="pf"))
    copy_tables(feature_embeddings(listed)[0], feature_embeddings(stacked))
    x = as_tensors(spec, random_inputs(spec, 16, self.rng))
    got, want = stacked(x), listed(x)
    for i, e in enumerate(want):
      self.assertAllClose(got[:, i], e, rtol=0, atol=0)
    self.assertLen(stacked.losses, 1)
    self.assertAllClose(stacked.losses[0], tf.add_n(listed.losses), rtol=1e-5, atol=1e-8)

  def test_models_default_to_per_field_tables_and_reload(self):
    spec = small_criteo_spec()
    n = len(spec.embedding_tables())
    x = as_tensors(spec, random_inputs(spec, 32, self.rng))
    for name, tables in (("dcn_v2", n), ("deepfm", 2 * n)):  # deepfm: embeddings + linear weights
      model = models.build(name, spec, **small_overrides(name))
      self.assertLen(model.embedding_variables, tables, name)
      with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(x, training=True)) + tf.add_n(model.losses)
      for g in tape.gradient(loss, model.embedding_variables):
        self.assertIsInstance(g, tf.IndexedSlices)
      self.assertSameAfterReload(model, x)


if __name__ == "__main__":
  tf.test.main()


class FieldWiseInitTest(testing.TestCase):
  """Numeric fields enter field-wise models as x_j v_j; at init the logit must stay small.

  log1p counts reach ~10 on Criteo; with a Glorot-sized v_j every pairwise dot of
  FM/DeepFM started at a logit of tens and training diverged (logloss > 1.3 on the
  real sample). v_j is initialised and regularised like the embedding tables.
  """

  def test_field_models_dnn_is_the_mlp_on_the_flattened_field_stack(self):
    """deepfm/xdeepfm/autoint: the DNN on [e ; x_j v_j] skips the numeric block, same numbers."""
    spec = small_criteo_spec()
    x = as_tensors(spec, random_inputs(spec, 32, self.rng))
    for name in ("deepfm", "xdeepfm", "autoint"):
      model = models.build(name, spec, **small_overrides(name, tower={"dims": (8, 5)}))
      dnn = model.get_layer("dnn")
      self.assertIsInstance(dnn.dense_layers[0], mlp_lib.NumericFieldDense, name)
      probe = tf.keras.Model(model.inputs, [model.get_layer("id_fields_flat").output,
                                            model.get_layer("dense_field_embedding").output,
                                            dnn.output])
      ids, numeric, got = (t.numpy() for t in probe(x, training=False))
      flat = np.concatenate([ids, numeric.reshape(len(numeric), -1)], axis=1)  # flatten(X)
      (w0, b0), (w1, b1) = [(l.kernel.numpy(), l.bias.numpy()) for l in dnn.dense_layers]
      self.assertEqual(w0.shape[0], flat.shape[1], name)
      want = np.maximum(np.maximum(flat @ w0 + b0, 0) @ w1 + b1, 0)
      self.assertAllClose(got, want, rtol=1e-5, atol=1e-5, msg=name)
      # Without numeric features the plain MLP on flatten(X) is used.
      ids_only = spec.with_features([f for f in spec.features if f.is_categorical])
      plain = models.build(name, ids_only, **small_overrides(name, tower={"dims": (8, 5)}))
      self.assertIsInstance(plain.get_layer("dnn").dense_layers[0], tf.keras.layers.Dense, name)

  def test_fm_models_never_form_the_concatenated_stack(self):
    """deepfm/fm: the FM takes [id fields, x_j v_j] as groups; the logit is the stack's FM."""
    spec = small_criteo_spec()
    x = as_tensors(spec, random_inputs(spec, 32, self.rng))
    for name in ("deepfm", "fm"):
      model = models.build(name, spec, **small_overrides(name))
      self.assertNotIn("fields", [l.name for l in model.layers], name)  # no (B, n, d) copy
      fm = model.get_layer("fm")
      probe = tf.keras.Model(model.inputs, [model.get_layer("id_fields").output,
                                            model.get_layer("dense_field_embedding").output,
                                            fm.output])
      ids, numeric, got = (t.numpy() for t in probe(x, training=False))
      stack = np.concatenate([ids, numeric], axis=1)
      n = stack.shape[1]
      want = sum((stack[:, i] * stack[:, j]).sum(axis=1) for i in range(n) for j in range(i + 1, n))
      self.assertAllClose(got[:, 0], want, rtol=1e-5, atol=1e-5, msg=name)

  def test_a_dnn_reading_v_of_an_unused_numeric_layer_is_refused(self):
    from ctr_zoo.models import base as base_lib  # pylint: disable=g-import-not-at-top

    class TowerOnly(base_lib.CTRModel):
      config_class = models.config_class("dnn")

      @classmethod
      def build_logit(cls, parts, config):
        fields = parts.field_stack(owner="tower_only")
        return parts_lib.head(parts.field_tower(fields, config.tower))  # stack never used

    with self.assertRaisesRegex(base_lib.ModelConfigError, "reads V from 'dense_field_embedding'"):
      TowerOnly(small_criteo_spec(), {"tower": {"dims": (4,)}, "embedding": {"dim": None}})

  def test_initial_logits_are_small_for_large_numeric_values(self):
    spec = small_criteo_spec()
    x = as_tensors(spec, random_inputs(spec, 64, self.rng))
    x = {k: (tf.fill(tf.shape(v), 10.0) if v.dtype == tf.float32 else v) for k, v in x.items()}
    for name in ("fm", "deepfm", "xdeepfm", "autoint"):
      model = models.build(name, spec, **small_overrides(name))
      logits = model.logit_model(x, training=False).numpy()
      self.assertLess(float(np.max(np.abs(logits))), 2.0, name)

  def test_numeric_field_vectors_are_regularised_like_embeddings(self):
    spec = small_criteo_spec()
    parts = make_parts(spec, l2=0.5)
    model = tf.keras.Model(parts.inputs, parts.field_stack().stack)
    layer = model.get_layer("dense_field_embedding")
    self.assertAllClose(layer.regularizer.get_config()["l2"], 0.5, rtol=1e-7, atol=0)
    # The layer's own loss term is 0.5 * ||V||^2 (evaluated eagerly).
    fresh = numeric_fields.DenseFieldEmbedding(4, regularizer=layer.regularizer)
    fresh(tf.ones((2, 3)))
    self.assertAllClose(tf.add_n(fresh.losses), 0.5 * tf.reduce_sum(tf.square(fresh.kernel)),
                        rtol=1e-6, atol=0)
