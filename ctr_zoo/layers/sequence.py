"""Sequence features: masked pooling of their embeddings, and their padding mask."""

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.layers import graph_layer
from ctr_zoo.serialization import register

POOLING_MODES = ("mean", "sum")


@register
class SequencePooling(graph_layer.GraphLayer):
  """Masked pooling of sequence embeddings over positions with id != PAD_ID.

    mean: out = sum_t M_t e_t / max(sum_t M_t, 1);  sum: out = sum_t M_t e_t,
    M_t = [ids_t != PAD_ID]

  Args:
    mode: str. "mean" or "sum". Defaults to "mean".

  Inputs: [embeddings (B, T, d), ids (B, T)]. Output: (B, d); an empty
  sequence gives zeros.

  Example:
    >>> pool = SequencePooling("sum")
    >>> pool([tf.ones((2, 3, 4)), tf.constant([[5, 6, 0], [0, 0, 0]])]).numpy()[:, 0]
    array([2., 0.], dtype=float32)
  """

  def __init__(self, mode: str = "mean", **kwargs):
    super().__init__(**kwargs)
    self.mode = checks.choice(mode, "SequencePooling mode", POOLING_MODES)

  def call(self, inputs):
    emb, ids = inputs
    mask = tf.cast(tf.not_equal(ids, spec_lib.PAD_ID), emb.dtype)[:, :, tf.newaxis]  # (B, T, 1)
    total = tf.reduce_sum(emb * mask, axis=1)  # (B, d)
    if self.mode == "sum":
      return total
    return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)  # (B, d)

  def get_config(self):
    return {**super().get_config(), "mode": self.mode}


@register
class SequenceMask(graph_layer.GraphLayer):
  """ids (B, T) -> float mask (B, T): 1 where id != PAD_ID, else 0."""

  def call(self, ids):
    return tf.cast(tf.not_equal(ids, spec_lib.PAD_ID), tf.float32)  # (B, T)
