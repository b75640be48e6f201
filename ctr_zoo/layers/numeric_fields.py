"""DenseFieldEmbedding: numeric fields as embedded fields, e_j = x_j v_j."""

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.serialization import register


@register
class DenseFieldEmbedding(graph_layer.GraphLayer):
  """Numeric fields as embedded fields: e_j = x_j v_j.

    out[b, j, :] = x[b, j] * V[j, :],   V in R^{m x d}

  Field-wise models (FM, DeepFM, xDeepFM, AutoInt, CDot) treat each numeric
  field as one more field this way. V is initialised like the embedding
  tables (uniform in [-0.05, 0.05]) and regularised like them: the numeric
  values (log1p counts reach ~10) multiply V, so a Glorot-sized V would start
  every pairwise dot of a field-wise model at a logit of tens and diverge on
  small data.

  Args:
    dim: int. d, the embedding width. Must be >= 1.
    initializer: initializer of V. Defaults to "uniform" (as embeddings).
    regularizer: regularizer of V (e.g. the model's embedding L2). Defaults to None.

  Input: (B, m) floats. Output: (B, m, d).

  Example:
    >>> DenseFieldEmbedding(4)(tf.ones((2, 3))).shape
    TensorShape([2, 3, 4])
  """

  def __init__(self, dim: int, initializer="uniform", regularizer=None, **kwargs):
    super().__init__(**kwargs)
    self.dim = checks.positive_int(dim, "DenseFieldEmbedding dim")
    self.initializer = tf.keras.initializers.get(initializer)
    self.regularizer = tf.keras.regularizers.get(regularizer)

  def build(self, input_shape):
    m = tf.TensorShape(input_shape)[-1]
    if m is None:
      raise ValueError(f"DenseFieldEmbedding needs a static number of fields, got shape {input_shape}")
    self.kernel = self.add_weight(name="kernel", shape=(int(m), self.dim),
                                  initializer=self.initializer, regularizer=self.regularizer,
                                  trainable=True)
    super().build(input_shape)

  def call(self, x):
    return x[:, :, tf.newaxis] * self.kernel[tf.newaxis]  # (B, m, d)

  def get_config(self):
    return {**super().get_config(), "dim": self.dim,
            "initializer": tf.keras.initializers.serialize(self.initializer),
            "regularizer": tf.keras.regularizers.serialize(self.regularizer)
                           if self.regularizer is not None else None}
