"""Tiny model and data for the training tests (not a test module itself).

The model is deliberately not a zoo model: the trainer must work with any
Keras model mapping the spec's feature dict to a probability (B, 1) and
exposing `embedding_variables` / `dense_variables`.
"""

import numpy as np

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf

from ctr_zoo.feature_columns import spec as spec_lib

NUM_IDS = 12


def tiny_spec() -> spec_lib.FeatureSpec:
  cats = [spec_lib.CategoricalFeature(f"C{i}", hash_buckets=NUM_IDS - 2, embedding_dim=4)
          for i in range(1, 4)]
  dense = [spec_lib.DenseFeature(f"I{i}", transform="none") for i in range(1, 3)]
  return spec_lib.FeatureSpec(features=tuple(dense + cats), name="tiny")


class TinyModel(tf.keras.Model):
  """Embeddings (tables named embedding_*) + dense -> MLP with dropout -> sigmoid."""

  def __init__(self, spec, dropout=0.2, hidden=8):
    inputs = spec.keras_inputs()
    parts = []
    for name, num_ids, dim in spec.embedding_tables():
      parts.append(tf.keras.layers.Embedding(num_ids, dim, name=f"embedding_{name}")(inputs[name]))
    for f in spec.dense_features:
      parts.append(tf.keras.layers.Reshape((1,))(inputs[f.name]))
    x = tf.keras.layers.Concatenate()(parts)  # (B, 3*4 + 2)
    x = tf.keras.layers.Dense(hidden, activation="relu", name="hidden")(x)
    x = tf.keras.layers.Dropout(dropout)(x)
    out = tf.keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
    super().__init__(inputs=inputs, outputs=out, name="tiny")

  @property
  def embedding_variables(self):
    return [v for v in self.trainable_variables if "embedding_" in v.name]

  @property
  def dense_variables(self):
    return [v for v in self.trainable_variables if "embedding_" not in v.name]


def tiny_arrays(n: int, seed: int):
  """Features dict and 0/1 labels from a known logistic model (with a cross)."""
  rng = np.random.default_rng(seed)
  ids = {f"C{i}": rng.integers(2, NUM_IDS, size=n).astype(np.int64) for i in range(1, 4)}
  dense = {f"I{i}": rng.normal(size=n).astype(np.float32) for i in range(1, 3)}
  effect = np.where(ids["C1"] % 2 == 0, 1.0, -1.0) * np.where(ids["C2"] % 3 == 0, 1.5, -0.5)
  logit = effect + 0.8 * dense["I1"] - 0.5
  labels = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
  return {**ids, **dense}, labels


def dataset(features, labels, batch_size: int, shuffle_seed=None) -> tf.data.Dataset:
  ds = tf.data.Dataset.from_tensor_slices((features, labels))
  if shuffle_seed is not None:
    ds = ds.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=False)
  return ds.batch(batch_size)


def optimizer_for(model):
  """Sparse Adagrad on the tables, Adam on the rest (the project's split optimizer)."""
  from ctr_zoo.optimizers import split  # pylint: disable=g-import-not-at-top
  return split.SplitOptimizer.for_model(model, tf.keras.optimizers.legacy.Adagrad(0.1),
                                        tf.keras.optimizers.legacy.Adam(0.01))
