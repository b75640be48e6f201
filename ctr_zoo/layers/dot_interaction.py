"""DotInteraction: DLRM's all-pairs dot products."""

import numpy as np
import tensorflow as tf

from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import shapes
from ctr_zoo.serialization import register


@register
class DotInteraction(graph_layer.GraphLayer):
  """All pairwise dot products of the fields (DLRM's interaction).

  For X in R^{B x n x d} (or a list of n (B, d) tensors):

    out = [<x_i, x_j>]_{i<j}       (row-major upper triangle of X X^T)

  (i <= j with `self_interaction`). Output width n(n-1)/2 (n(n+1)/2). Builds
  the n x n Gram matrix: O(n^2 d) (see `CompressedDotProduct` for O(n k d)).
  Same math as `tfrs.layers.feature_interaction.DotInteraction`.

  Args:
    self_interaction: bool. Include <x_i, x_i>. Defaults to False.

  Input shape: (B, n, d) or list of n (B, d). Output shape: (B, n(n-1)/2).

  Example:
    >>> DotInteraction()(tf.ones((2, 4, 3))).shape
    TensorShape([2, 6])

  Paper: M. Naumov et al., "Deep Learning Recommendation Model for
  Personalization and Recommendation Systems", arXiv 1906.00091.
  """

  def __init__(self, self_interaction: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.self_interaction = bool(self_interaction)

  @staticmethod
  def _stacked_shape(input_shape) -> tf.TensorShape:
    if isinstance(input_shape, (list, tuple)) and input_shape and not isinstance(
        input_shape[0], (int, type(None))):
      field_shapes = [tf.TensorShape(s) for s in input_shape]
      widths = {s[-1] if s.rank else None for s in field_shapes}
      if any(s.rank != 2 for s in field_shapes) or len(widths) != 1 or None in widths:
        raise ValueError("DotInteraction needs fields (batch, d) of one width d, got shapes "
                         f"{[str(s) for s in field_shapes]}")
      return tf.TensorShape((field_shapes[0][0], len(field_shapes), widths.pop()))
    return tf.TensorShape(input_shape)

  def build(self, input_shape):
    shape = shapes.check_shape("DotInteraction", self._stacked_shape(input_shape),
                               "(batch, n_fields, d)", 3, (1, 2))
    n = int(shape[1])
    rows, cols = np.triu_indices(n, k=0 if self.self_interaction else 1)
    self._flat_indices = (rows * n + cols).astype(np.int32)
    self._n = n
    super().build(input_shape)

  def call(self, inputs):
    x = tf.stack(inputs, axis=1) if isinstance(inputs, (list, tuple)) else tf.convert_to_tensor(inputs)
    gram = tf.matmul(x, x, transpose_b=True)  # (B, n, n)
    flat = tf.reshape(gram, (-1, self._n * self._n))  # (B, n^2)
    return tf.gather(flat, self._flat_indices, axis=1)  # (B, n(n-1)/2)

  def compute_output_shape(self, input_shape):
    shape = self._stacked_shape(input_shape)
    n = int(shape[1])
    return tf.TensorShape((shape[0], n * (n + 1) // 2 if self.self_interaction else n * (n - 1) // 2))

  def get_config(self):
    config = super().get_config()
    config.update({"self_interaction": self.self_interaction})
    return config
