"""Every registered model: builds from a fitted spec, trains, round-trips, splits its variables.

The tests are parameterized over `models.names()`, so a newly registered model
gets all of them. Specs are tiny (small vocabularies, embedding dim 4) and the
towers small, to keep the file fast.
"""

import dataclasses

from absl import logging
from absl.testing import parameterized
import numpy as np
import pytest

from tests import testing

import ctr_zoo  # noqa: F401
import tensorflow as tf

from ctr_zoo import models
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.feature_columns import criteo_spec
from ctr_zoo.layers import cross_net_v1

BATCH = 64
DIM = 4
VOCAB = 6

# Small towers and width DIM for speed; each override is applied only where the config has
# the field.
SMALL = {
    "embedding": {"dim": DIM}, "tower": {"dims": (16,), "dropout": 0.0}, "bottom_dims": (8,),
    "cin_layer_sizes": (4, 4), "num_cross_layers": 2, "low_rank": 4, "num_experts": 2,
    "num_attention_layers": 1, "head_dim": 4, "num_projections": 3, "second_num_projections": 2,
    "stream1": {"dims": (8,), "dropout": 0.0}, "stream2": {"dims": (12,), "dropout": 0.0},
    "gate_hidden_dims": (8,), "num_deep_cross_layers": 2, "num_shallow_cross_layers": 2,
}


def small_overrides(name, **extra):
  """SMALL's fields that model `name` has, updated with `extra` (sections merged)."""
  fields = {f.name for f in dataclasses.fields(models.config_class(name))}
  out = {k: v for k, v in SMALL.items() if k in fields}
  for key, value in extra.items():
    out[key] = {**out[key], **value} if isinstance(value, dict) and key in out else value
  return out


def fit_by_hand(spec, vocab_size=VOCAB):
  """A fitted copy of `spec`: every unfitted id feature gets tokens "0".."n-1"."""
  out = []
  for f in spec.features:
    if f.is_categorical and not f.is_fitted:
      f = dataclasses.replace(f, vocabulary=tuple(str(i) for i in range(vocab_size)))
    out.append(f)
  return spec.with_features(out)


def small_criteo_spec():
  """A criteo-like spec: 3 log1p ints, 1 bucketized int, 4 vocabulary cats, 1 hashed cat."""
  return fit_by_hand(spec_lib.FeatureSpec(features=(
      spec_lib.DenseFeature("I1", embedding_dim=DIM),
      spec_lib.DenseFeature("I2", embedding_dim=DIM),
      spec_lib.DenseFeature("I3", transform="standardize", mean=1.0, std=2.0),
      spec_lib.DenseFeature("I4", transform="bucketize", embedding_dim=DIM),
      spec_lib.CategoricalFeature("C1", embedding_dim=DIM),
      spec_lib.CategoricalFeature("C2", embedding_dim=DIM),
      spec_lib.CategoricalFeature("C3", embedding_dim=DIM),
      spec_lib.CategoricalFeature("C4", embedding_dim=DIM),
      spec_lib.CategoricalFeature("C5", hash_buckets=11, embedding_dim=DIM),
  ), name="small_criteo"))


def sequence_spec():
  """A CAN-style spec: user, target item and category, and their histories."""
  return fit_by_hand(spec_lib.FeatureSpec(features=(
      spec_lib.CategoricalFeature("user", embedding_dim=DIM),
      spec_lib.CategoricalFeature("item", embedding_dim=DIM),
      spec_lib.CategoricalFeature("category", embedding_dim=DIM),
      spec_lib.SequenceFeature("item_history", max_len=5, shares_vocabulary_with="item",
                               embedding_dim=DIM),
      spec_lib.SequenceFeature("category_history", max_len=5, shares_vocabulary_with="category",
                               embedding_dim=DIM),
      spec_lib.DenseFeature("age", transform="log1p"),
  ), name="sequences"), vocab_size=8)


def random_inputs(spec, n, rng):
  x = {}
  for f in spec.features:
    if isinstance(f, spec_lib.SequenceFeature):
      ids = rng.integers(1, spec.num_ids(f.name), size=(n, f.max_len))
      lengths = rng.integers(0, f.max_len + 1, size=n)
      ids[np.arange(f.max_len)[None, :] >= lengths[:, None]] = spec_lib.PAD_ID
      x[f.name] = ids.astype(np.int64)
    elif f.is_categorical:
      x[f.name] = rng.integers(0, f.num_ids, size=n).astype(np.int64)
    else:
      x[f.name] = rng.exponential(1.0, size=n).astype(np.float32)
  return x


def synthetic_task(spec, n, rng):
  """Inputs plus labels from a fixed logistic world with per-id effects and one interaction."""
  x = random_inputs(spec, n, rng)
  logit = np.full(n, -0.5)
  ids = [f for f in spec.features if f.is_categorical and not isinstance(f, spec_lib.SequenceFeature)]
  for f in ids:
    effect = rng.normal(0, 1.0, size=f.num_ids)
    logit += effect[x[f.name]]
  if len(ids) >= 2:
    logit += 1.5 * ((x[ids[0].name] % 2) == (x[ids[1].name] % 2))
  for f in spec.sequence_features:
    logit += 0.3 * (x[f.name] % 3 == 0).sum(axis=1)
  for f in spec.dense_features:
    logit += 0.5 * x[f.name]
  y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
  return x, y


def train(model, x, y, steps, rng, learning_rate=0.01):
  """Adam on every variable (the trainer's optimizer split is tested elsewhere)."""
  optimizer = tf.keras.optimizers.legacy.Adam(learning_rate)
  loss_fn = tf.keras.losses.BinaryCrossentropy()

  @tf.function
  def step(batch, labels):
    with tf.GradientTape() as tape:
      loss = loss_fn(labels[:, None], model(batch, training=True))
      total = loss + tf.add_n(model.losses) if model.losses else loss
    grads = tape.gradient(total, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  n = len(y)
  for _ in range(steps):
    idx = rng.integers(0, n, size=BATCH)
    step({k: v[idx] for k, v in x.items()}, y[idx])


def full_loss(model, x, y):
  p = model.predict(x, batch_size=1024, verbose=0)[:, 0]
  p = np.clip(p, 1e-7, 1 - 1e-7)
  return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def spec_for(name):
  return sequence_spec() if name == "can" else small_criteo_spec()


NAMED = [(n, n) for n in models.names()]


class ModelZooTest(testing.TestCase, parameterized.TestCase):

  @pytest.mark.slow
  @parameterized.named_parameters(*NAMED)
  def test_trains_round_trips_and_splits_variables(self, name):
    spec = spec_for(name)
    model = models.build(name, spec, **small_overrides(name))
    self.assertIsInstance(model, models.CTRModel)
    x, y = synthetic_task(spec, 2048, self.rng)

    # Variable split: disjoint, covering every trainable variable; tables are sparse.
    emb = {v.ref() for v in model.embedding_variables}
    dense = {v.ref() for v in model.dense_variables}
    self.assertTrue(emb, f"{name} exposes no embedding variables")
    self.assertEmpty(emb & dense)
    self.assertEqual(emb | dense, {v.ref() for v in model.trainable_variables})
    with tf.GradientTape() as tape:
      out = model({k: v[:8] for k, v in x.items()})
    for g in tape.gradient(out, model.embedding_variables):
      if g is not None:
        self.assertIsInstance(g, tf.IndexedSlices)

    counts = model.parameter_counts()
    self.assertEqual(counts["total"], sum(int(np.prod(v.shape)) for v in model.trainable_variables))
    logging.info("%s: %d parameters (%d embedding, %d dense)", name, counts["total"],
                 counts["embedding"], counts["dense"])

    before = full_loss(model, x, y)
    train(model, x, y, steps=50, rng=self.rng)
    after = full_loss(model, x, y)
    self.assertLess(after, before - 0.01, f"{name}: loss {before:.4f} -> {after:.4f}")

    # Both formats, each with its own numeric check. The SavedModel is written
    # without per-layer traces (load_model rebuilds registered layers from their
    # configs either way): predict above and the training step already trace
    # the whole model in graph mode, and models_mixed_precision_test keeps a
    # traced SavedModel round trip.
    probe = {k: v[:BATCH] for k, v in x.items()}
    expected = self.assertSameAfterReload(model, probe, save_traces=False)
    self.assertEqual(expected.shape, (BATCH, 1))
    self.assertAllInRange(expected, 0.0, 1.0)

    # The logit model shares the layers: sigmoid(logit) == probability.
    logit = model.logit_model(probe, training=False)
    self.assertAllClose(tf.sigmoid(logit), expected, rtol=1e-5, atol=1e-6)

  @parameterized.named_parameters(*NAMED)
  def test_config_round_trip(self, name):
    spec = spec_for(name)
    model = models.build(name, spec, **small_overrides(name))
    config = model.get_config()
    self.assertEqual(spec_lib.FeatureSpec.from_json(config["spec"]), spec)
    clone = type(model).from_config(config)
    self.assertEqual(clone.model_config, model.model_config)
    self.assertEqual(clone.get_config(), config)
    clone.set_weights(model.get_weights())
    probe = random_inputs(spec, 16, self.rng)
    self.assertAllClose(clone(probe), model(probe), rtol=0, atol=1e-6)

  @parameterized.named_parameters(*[(n, n) for n in models.names() if n != "can"])
  def test_builds_from_full_criteo_spec(self, name):
    spec = fit_by_hand(criteo_spec(embedding_dim=DIM), vocab_size=3)
    model = models.build(name, spec, **small_overrides(name))
    out = model(random_inputs(spec, 8, self.rng))
    self.assertEqual(out.shape, (8, 1))
    self.assertLen(model.inputs, 39)

  def test_can_on_criteo_uses_field_pairs(self):
    spec = fit_by_hand(criteo_spec(embedding_dim=DIM), vocab_size=3)
    model = models.build("can", spec, tower={"dims": (8,)})
    self.assertEqual(models.can.co_action_pairs(spec, model.model_config),
                     (("C1", "C2"), ("C3", "C4"), ("C5", "C6")))
    self.assertEqual(model(random_inputs(spec, 8, self.rng)).shape, (8, 1))

  def test_can_sequence_pairs_and_separate_tables(self):
    spec = sequence_spec()
    model = models.build("can", spec, tower={"dims": (8,)})
    self.assertEqual(models.can.co_action_pairs(spec, model.model_config),
                     (("item", "item_history"), ("category", "category_history")))
    x = random_inputs(spec, 8, self.rng)
    with tf.GradientTape() as tape:
      out = model(x)
    names = [v.name for v in model.embedding_variables]
    self.assertTrue(any("co_action_0_induction" in n for n in names), names)
    self.assertTrue(any("co_action_1_feed" in n for n in names), names)
    grads = tape.gradient(out, model.embedding_variables)
    self.assertTrue(all(g is not None for g in grads))

  def test_composes_into_a_user_functional_model(self):
    spec = small_criteo_spec()
    inner = models.build("dcn_v2", spec, **small_overrides("dcn_v2"))
    inputs = spec.keras_inputs()
    outer = tf.keras.Model(inputs, tf.keras.layers.Dense(1, name="calibration")(inner(inputs)))
    probe = random_inputs(spec, 8, self.rng)
    restored = self.save_and_reload(outer, "keras")
    self.assertAllClose(restored(probe), outer(probe), rtol=0, atol=1e-6)

  def test_registry_and_config_errors(self):
    self.assertIn("dcn_v2", models.names())
    self.assertIs(models.get("dcn_v2"), models.DCNV2)
    with self.assertRaisesRegex(KeyError, "unknown model 'nope'.*known models"):
      models.get("nope")
    spec = small_criteo_spec()
    with self.assertRaisesRegex(models.ModelConfigError, r"unknown fields \['depth'\]"):
      models.build("dcn_v2", spec, depth=3)
    with self.assertRaisesRegex(models.ModelConfigError, "structure must be one of.*'diagonal'"):
      models.build("dcn_v2", spec, structure="diagonal")
    with self.assertRaisesRegex(models.ModelConfigError,
                                r"DNNConfig.tower.dropout must be a number in \[0, 1\), got 1.5"):
      models.build("dnn", spec, tower={"dropout": 1.5})
    with self.assertRaisesRegex(models.ModelConfigError, r"DNNConfig.tower: unknown fields \['width'\]"):
      models.build("dnn", spec, tower={"width": 3})
    with self.assertRaisesRegex(models.ModelConfigError, r"embedding.dim must be None or an int >= 1"):
      models.build("dnn", spec, embedding={"dim": 0})
    with self.assertRaisesRegex(spec_lib.SpecError, r"features \['C1'.*not fitted|no vocabulary"):
      models.build("dnn", criteo_spec())
    with self.assertRaisesRegex(models.ModelConfigError, "names 'nope'"):
      models.build("can", spec, pairs=(("C1", "nope"),))
    mixed = spec.with_features([dataclasses.replace(spec["C1"], embedding_dim=8)] +
                               [f for f in spec.features if f.name != "C1"])
    with self.assertRaisesRegex(ValueError, "needs one embedding_dim.*'C1': 8"):
      models.build("fm", mixed, embedding={"dim": None})  # None keeps the spec's widths
    self.assertEqual(models.build("fm", mixed).spec["C1"].embedding_dim, 16)  # the config's width

  def test_dcn_v2_structures_and_rank(self):
    spec = small_criteo_spec()
    d0 = 5 * DIM + DIM + 3  # 4 vocab cats + hashed + bucketized, 3 dense
    small = dict(embedding={"dim": DIM}, tower={"dims": (8,)})
    full = models.build("dcn_v2", spec, num_cross_layers=2, **small)
    self.assertEqual(full.get_layer("cross").count_params(), 2 * (d0 * d0 + d0))
    low = models.build("dcn_v2", spec, num_cross_layers=2, projection_dim=3, **small)
    self.assertEqual(low.get_layer("cross").count_params(), 2 * (2 * d0 * 3 + d0))
    parallel = models.build("dcn_v2", spec, structure="parallel", num_cross_layers=1, **small)
    self.assertEqual(parallel.get_layer("head").input_shape, (None, d0 + 8))

  def test_dcn_parallel_vector_cross(self):
    spec = small_criteo_spec()
    d0 = 5 * DIM + DIM + 3  # 4 vocab cats + hashed + bucketized, 3 dense
    model = models.build("dcn", spec, num_cross_layers=2, embedding={"dim": DIM},
                         tower={"dims": (8,)})
    self.assertIsInstance(model.get_layer("cross"), cross_net_v1.VectorCrossNet)
    self.assertEqual(model.get_layer("cross").count_params(), 2 * 2 * d0)  # w_l, b_l in R^D
    self.assertEqual(model.get_layer("head").input_shape, (None, d0 + 8))  # [x_L; MLP(x0)]
    cross_only = models.build("dcn", spec, num_cross_layers=1, embedding={"dim": DIM},
                              tower={"dims": ()})
    self.assertEqual(cross_only.get_layer("head").input_shape, (None, d0))


if __name__ == "__main__":
  tf.test.main()
