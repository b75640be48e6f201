"""The leaders after DCN-V2 as zoo models: DCNv3 (Tri-BCE), GDCN (and its FDO), FinalMLP."""

import numpy as np

from tests import testing
from tests.models_zoo_test import DIM, random_inputs, small_criteo_spec, small_overrides

import ctr_zoo  # noqa: F401
import tensorflow as tf

from ctr_zoo import layers
from ctr_zoo import models
from ctr_zoo.models import field_dimensions as fdo


def bce(y, z):
  """Mean binary cross-entropy of logits z, computed stably in NumPy."""
  return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


class DCNv3Test(testing.TestCase):

  def setUp(self):
    super().setUp()
    self.spec = small_criteo_spec()
    self.x = random_inputs(self.spec, 32, self.rng)
    self.y = (self.rng.random(32) < 0.3).astype(np.float32)

  def heads(self, model, training):
    probe = tf.keras.Model(model.inputs, [model.get_layer(n).output
                                          for n in ("logit", "deep_head", "shallow_head")])
    return [t.numpy()[:, 0].astype(np.float64) for t in probe(self.x, training=training)]

  def test_the_logit_is_the_mean_of_the_two_networks(self):
    model = models.build("dcnv3", self.spec, **small_overrides("dcnv3"))
    logit, deep, shallow = self.heads(model, training=False)
    self.assertAllClose(logit, (deep + shallow) / 2, rtol=1e-5, atol=1e-6)
    self.assertIsInstance(model.get_layer("exponential_cross"), layers.SelfMaskCrossNet)
    self.assertEqual(model.get_layer("exponential_cross").kind, "exponential")
    self.assertEqual(model.get_layer("linear_cross").kind, "linear")

  def test_authors_code_options_batch_norm_and_uniform_biases(self):
    model = models.build("dcnv3", self.spec, **small_overrides(
        "dcnv3", batch_norm=True, bias_initializer="uniform"))
    for name in ("exponential_cross", "linear_cross"):
      cross = model.get_layer(name)
      self.assertTrue(cross.batch_norm)
      self.assertLen(cross.batch_norm_layers, cross.num_layers)
      b = np.concatenate([v.numpy() for v in cross.biases])
      self.assertTrue(np.all((b >= 0) & (b < 1)) and b.std() > 0.1, name)
    plain = models.build("dcnv3", self.spec, **small_overrides("dcnv3", batch_norm=False))
    self.assertFalse(plain.get_layer("linear_cross").batch_norm)
    self.assertFalse(models.build("dcnv3", self.spec, **small_overrides("dcnv3")).get_layer(
        "linear_cross").batch_norm)  # the default
    self.assertAllEqual(plain.get_layer("linear_cross").biases[0].numpy(),
                        np.zeros_like(plain.get_layer("linear_cross").biases[0].numpy()))
    self.assertSameAfterReload(model, self.x)
    # A file saved before `batch_norm` existed (no such key) rebuilds without batch norm.
    config = plain.get_config()
    del config["config"]["batch_norm"]
    self.assertFalse(type(plain).from_config(config).get_layer("exponential_cross").batch_norm)
    with self.assertRaisesRegex(ValueError, "bias_initializer"):
      models.build("dcnv3", self.spec, **small_overrides("dcnv3", bias_initializer="ones"))

  def test_numeric_fields_enter_x0_as_x_times_v_and_older_files_keep_raw_values(self):
    model = models.build("dcnv3", self.spec, **small_overrides("dcnv3"))  # numeric_input "fields"
    id_fields = [l.name for l in model.layers if l.name.startswith("field_")]  # (B, 1, d) each
    probe = tf.keras.Model(model.inputs, [model.get_layer(n).output for n in
                                          ["x0", "dense_features"] + id_fields])
    x0, dense, *ids = (t.numpy() for t in probe(self.x, training=False))
    ids = np.concatenate([e[:, 0] for e in ids], axis=1)  # (B, n_id d)
    v = model.get_layer("dense_field_embedding").weights[0].numpy()  # (m, d)
    m = dense.shape[1]
    self.assertEqual(v.shape, (m, DIM))
    want = np.concatenate([ids, (dense[:, :, None] * v[None]).reshape(len(dense), m * DIM)], 1)
    self.assertEqual(x0.shape[1], ids.shape[1] + m * DIM)
    self.assertAllClose(x0, want, rtol=1e-6, atol=1e-7)
    self.assertSameAfterReload(model, self.x)
    raw = models.build("dcnv3", self.spec, **small_overrides("dcnv3", numeric_input="raw"))
    self.assertEqual(raw.get_layer("exponential_cross").input.shape[1], ids.shape[1] + m)
    # A file saved before `numeric_input` existed had the raw values in x0, and reloads so.
    config = raw.get_config()
    del config["config"]["numeric_input"]
    old = type(raw).from_config(config)
    self.assertEqual(old.model_config.numeric_input, "raw")
    old.set_weights(raw.get_weights())
    self.assertAllClose(old(self.x, training=False), raw(self.x, training=False))
    with self.assertRaisesRegex(ValueError, "numeric_input"):
      models.build("dcnv3", self.spec, **small_overrides("dcnv3", numeric_input="embedded"))

  def test_tri_bce_matches_numpy(self):
    model = models.build("dcnv3", self.spec, **small_overrides(
        "dcnv3", deep_dropout=0.0, shallow_dropout=0.0))  # no dropout: same heads twice
    loss, probs = model.training_loss(self.x, self.y)
    logit, deep, shallow = self.heads(model, training=True)
    l, ld, ls = bce(self.y, logit), bce(self.y, deep), bce(self.y, shallow)
    want = l + ld * max(ld - l, 0.0) + ls * max(ls - l, 0.0)
    self.assertAllClose(float(loss), want, rtol=1e-5, atol=1e-6)
    self.assertAllClose(probs.numpy()[:, 0], 1 / (1 + np.exp(-logit)), rtol=1e-5, atol=1e-6)
    plain = models.build("dcnv3", self.spec, **small_overrides("dcnv3", tri_bce=False,
                                                               deep_dropout=0.0,
                                                               shallow_dropout=0.0))
    plain.set_weights(model.get_weights())
    loss, _ = plain.training_loss(self.x, self.y)
    self.assertAllClose(float(loss), l, rtol=1e-4, atol=1e-5)  # Keras clips p to [1e-7, 1 - 1e-7]

  def test_tri_bce_gradients_reach_both_networks(self):
    model = models.build("dcnv3", self.spec, **small_overrides("dcnv3"))
    with tf.GradientTape() as tape:
      loss, _ = model.training_loss(self.x, self.y)
    grads = dict(zip([v.name for v in model.trainable_variables],
                     tape.gradient(loss, model.trainable_variables)))
    for name in ("exponential_cross", "linear_cross", "deep_head", "shallow_head"):
      touched = [n for n, g in grads.items() if name in n and g is not None]
      self.assertTrue(touched, name)


class GDCNTest(testing.TestCase):

  def test_stacked_and_parallel_share_the_cross_network_assembly(self):
    spec = small_criteo_spec()
    d0 = 5 * DIM + DIM + 3  # 4 vocab cats + hashed + bucketized, 3 dense
    small = dict(embedding={"dim": DIM}, tower={"dims": (8,)}, num_cross_layers=2)
    stacked = models.build("gdcn", spec, **small)
    self.assertIsInstance(stacked, models.dcn_v2.CrossNetworkModel)
    self.assertEqual(stacked.get_layer("gated_cross").count_params(), 2 * (2 * d0 * d0 + d0))
    self.assertEqual(stacked.get_layer("head").input_shape, (None, 8))
    parallel = models.build("gdcn", spec, structure="parallel", **small)
    self.assertEqual(parallel.get_layer("head").input_shape, (None, d0 + 8))


class FieldDimensionsTest(testing.TestCase):

  def test_pca_dimension_finds_the_rank_of_a_table(self):
    basis = self.rng.normal(size=(2, 8))
    table = self.rng.normal(size=(500, 2)) @ basis + 1e-4 * self.rng.normal(size=(500, 8))
    self.assertEqual(fdo.pca_dimension(table, 0.99), 2)
    self.assertEqual(fdo.pca_dimension(np.zeros((10, 4))), 1)
    one_direction = np.outer(self.rng.normal(size=300), basis[0])
    self.assertEqual(fdo.pca_dimension(one_direction, 0.8), 1)

  def test_widths_from_a_model_and_retraining_with_them(self):
    spec = small_criteo_spec()
    model = models.build("gdcn", spec, **small_overrides("gdcn"))
    layer = model.get_layer("embedding")
    basis = self.rng.normal(size=(1, DIM))
    for (name, rows, _), variable in zip(layer.tables, layer.table_variables):
      rank = 1 if name == "C1" else DIM
      table = self.rng.normal(size=(rows, rank)) @ (basis if rank == 1 else np.eye(DIM))
      variable.assign(table.astype(np.float32))
    dims = fdo.field_dimensions(model, variance_ratio=0.8)
    self.assertEqual(dims["C1"], 1)
    self.assertGreater(dims["C2"], 1)
    smaller = fdo.with_field_dimensions(model.spec, dims)
    retrained = models.build("gdcn", smaller, **small_overrides("gdcn", embedding={"dim": None}))
    widths = {n: d for n, _, d in retrained.spec.embedding_tables()}
    self.assertEqual(widths["C1"], 1)
    self.assertEqual(retrained(random_inputs(spec, 4, self.rng)).shape, (4, 1))


class FinalMLPTest(testing.TestCase):

  def test_two_gated_streams_fused(self):
    spec = small_criteo_spec()
    model = models.build("finalmlp", spec, **small_overrides("finalmlp"))
    self.assertIsInstance(model.get_layer("gate_1"), layers.FeatureGate)
    self.assertIsInstance(model.get_layer("fusion"), layers.BilinearFusion)
    self.assertEqual(model.get_layer("stream_2").dims, [12])
    plain = models.build("finalmlp", spec, **small_overrides("finalmlp", feature_gates=False))
    self.assertNotIn("gate_1", [l.name for l in plain.layers])

  def test_context_features_drive_the_gates(self):
    spec = small_criteo_spec()
    model = models.build("finalmlp", spec, **small_overrides(
        "finalmlp", stream1_context=("C1",), stream2_context=("C2", "C3")))
    self.assertIsNone(model.get_layer("gate_1").context)
    self.assertEqual(model.get_layer("gate_2").kernels[0].shape[0], 2 * DIM)
    x = random_inputs(spec, 16, self.rng)
    other = dict(x, C1=(x["C1"] + 1) % spec.num_ids("C1"))
    gate_in = tf.keras.Model(model.inputs, model.get_layer("gate_1").output)
    self.assertNotAllClose(gate_in(x)[:, :DIM], gate_in(other)[:, :DIM])  # C1 moved the gate too
    with self.assertRaisesRegex(models.ModelConfigError, r"names \['I1'\], which are not id"):
      models.build("finalmlp", spec, **small_overrides("finalmlp", stream1_context=("I1",)))


if __name__ == "__main__":
  tf.test.main()
