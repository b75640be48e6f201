"""LinearLogit: the wide / logistic-regression part on sparse ids (+ dense features)."""

from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf

from ctr_zoo.feature_columns.spec import PAD_ID
from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import initializers
from ctr_zoo.layers.embedding import FeatureEmbedding
from ctr_zoo.layers.embedding import is_additive_regularizer
from ctr_zoo.layers.embedding import regularize_rows
from ctr_zoo.serialization import register


@register
class LinearLogit(graph_layer.GraphLayer):
  """Logistic-regression logit: a scalar weight per id, plus dense weights and a bias.

    logit = sum_f w_{t(f)}[id_f] + sum_j v_j x_j + b          (B, 1)

  with one (V_t, 1) weight table per table t (or one fused table with
  offsets). A sequence feature (B, T) contributes sum_t w[id_t] over its
  non-padding positions (id != PAD_ID = 0). This is the model of the KDD'13
  FTRL logistic regression (McMahan et al., "Ad Click Prediction: a View
  from the Trenches"). The id tables are a `FeatureEmbedding` of width 1, so
  their gradients are IndexedSlices and `embedding_variables` lists them
  (names contain "embedding/") for the sparse optimizer.

  Weights: the tables ("embedding/<table>" (V_t, 1) or "embedding/fused"),
  "dense_kernel" (n_dense, 1) when there are dense features, "bias" (1,).

  Args:
    tables: list of (name, num_ids) or (name, num_ids, dim) (dim ignored),
      e.g. `FeatureSpec.embedding_tables()`.
    feature_to_table: mapping feature -> table, as in `FeatureEmbedding`.
      Defaults to None.
    dense_features: list of str. Float (B,) features with a weight each.
      Defaults to ().
    fused: bool. One fused weight table. Defaults to False.
    use_bias: bool. Defaults to True.
    kernel_initializer: initializer of all weights. Defaults to "zeros".
    kernel_regularizer: regularizer on looked-up weights and the dense kernel.
      Defaults to None.

  Input: dict of features. Output: (B, 1).

  Example:
    >>> lr = LinearLogit([("user", 10)], dense_features=["age"])
    >>> lr({"user": tf.constant([1, 2]), "age": tf.constant([0.5, 1.0])}).shape
    TensorShape([2, 1])
  """

  def __init__(self,
               tables: Sequence[Any],
               feature_to_table: Optional[Mapping[str, str]] = None,
               dense_features: Sequence[str] = (),
               fused: bool = False,
               use_bias: bool = True,
               kernel_initializer: Any = "zeros",
               kernel_regularizer: Any = None,
               **kwargs):
    super().__init__(**kwargs)
    norm = []
    for t in tables if isinstance(tables, (list, tuple)) else [tables]:
      if isinstance(t, (list, tuple)) and len(t) in (2, 3):
        norm.append((t[0], t[1], 1))
      else:
        raise ValueError(f"LinearLogit tables are (name, num_ids[, dim]) entries, got {t!r}")
    self.tables = [(n, v) for n, v, _ in norm]
    self.feature_to_table = dict(feature_to_table or {})
    if isinstance(dense_features, str) or not all(isinstance(f, str) for f in dense_features):
      raise ValueError(f"LinearLogit dense_features must be a list of names, got {dense_features!r}")
    self.dense_features = list(dense_features)
    self.fused = bool(fused)
    self.use_bias = bool(use_bias)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)
    self.weights_lookup = FeatureEmbedding(
        norm, feature_to_table=self.feature_to_table, fused=self.fused,
        embeddings_initializer=initializers.clone_initializer(self.kernel_initializer, 0),
        name="weights_lookup")

  @classmethod
  def from_spec(cls, spec, **kwargs) -> "LinearLogit":
    """All id features of a fitted `FeatureSpec` plus its float dense features."""
    mapping = {f.name: f.shares_vocabulary_with for f in spec.sequence_features
               if f.shares_vocabulary_with}
    return cls(spec.embedding_tables(), feature_to_table=mapping,
               dense_features=[f.name for f in spec.dense_features], **kwargs)

  @property
  def embedding_variables(self) -> list:
    return self.weights_lookup.embedding_variables

  def build(self, input_shape):
    self.weights_lookup.build(input_shape)
    self.dense_kernel = None
    if self.dense_features:
      self.dense_kernel = self.add_weight(
          name="dense_kernel", shape=(len(self.dense_features), 1),
          initializer=initializers.clone_initializer(self.kernel_initializer, 1),
          regularizer=self.kernel_regularizer, trainable=True)
    self.bias = None
    if self.use_bias:
      self.bias = self.add_weight(name="bias", shape=(1,), initializer="zeros", trainable=True)
    super().build(input_shape)

  def _id_logit(self, inputs) -> tf.Tensor:
    """sum_f w_{t(f)}[id_f] (B, 1), adding the regularizer on the looked-up weights."""
    lookup = self.weights_lookup
    ids = lookup._ids(inputs)  # pylint: disable=protected-access  (validated ids)
    additive = is_additive_regularizer(self.kernel_regularizer)
    if self.fused and all(x.shape.rank == 1 for x in ids.values()):
      rows = lookup._fused_stack_lookup(ids)  # pylint: disable=protected-access  (B, n, 1): one gather
      if self.kernel_regularizer is not None:
        self.add_loss(regularize_rows(self.kernel_regularizer, rows) if additive else tf.add_n(
            [regularize_rows(self.kernel_regularizer, rows[:, i]) for i in range(rows.shape[1])]))
      return tf.reduce_sum(rows, axis=1)  # (B, 1)
    weights = lookup.lookup(ids)
    terms = []
    for f, w in weights.items():  # w: (B, 1) or (B, T, 1)
      if w.shape.rank == 3:
        keep = tf.cast(tf.not_equal(ids[f], PAD_ID), w.dtype)[:, :, tf.newaxis]  # (B, T, 1)
        w = tf.reduce_sum(w * keep, axis=1)  # (B, 1)
      terms.append(w)
    if self.kernel_regularizer is not None:  # looked-up weights only
      if additive:
        # (B, n): one op.
        self.add_loss(regularize_rows(self.kernel_regularizer, tf.concat(terms, axis=1)))
      else:
        self.add_loss(tf.add_n([regularize_rows(self.kernel_regularizer, w) for w in terms]))
    return tf.add_n(terms)  # (B, 1)

  def call(self, inputs):
    logit = self._id_logit(inputs)  # (B, 1)
    if self.dense_features:
      missing = [f for f in self.dense_features if f not in inputs]
      if missing:
        raise ValueError(f"LinearLogit is missing dense input(s) {missing}; got keys {sorted(inputs)}")
      x = tf.stack([tf.cast(tf.reshape(inputs[f], (-1,)), logit.dtype)
                    for f in self.dense_features], axis=1)  # (B, n_dense)
      logit = logit + tf.matmul(x, self.dense_kernel)  # (B, 1)
    if self.use_bias:
      logit = logit + self.bias
    return logit

  def get_config(self):
    config = super().get_config()
    config.update({
        "tables": [list(t) for t in self.tables],
        "feature_to_table": dict(self.feature_to_table),
        "dense_features": list(self.dense_features),
        "fused": self.fused,
        "use_bias": self.use_bias,
        "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
        "kernel_regularizer": tf.keras.regularizers.serialize(self.kernel_regularizer),
    })
    return config
