"""FactorizationMachine: all pairwise dot products in O(n d)."""

import tensorflow as tf

from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import shapes
from ctr_zoo.serialization import register


def _shape_groups(input_shape) -> list:
  """[shape] for one (B, n, d) shape, the list itself for a list of shapes."""
  if isinstance(input_shape, (list, tuple)) and input_shape and not isinstance(
      input_shape[0], (int, type(None))):
    return list(input_shape)
  return [input_shape]


@register
class FactorizationMachine(graph_layer.GraphLayer):
  """Second-order FM term in the square-of-sum form.

  For field embeddings V in R^{B x n x d}:

    sum_{i<j} <v_i, v_j> = 1/2 sum_k ((sum_i v_ik)^2 - sum_i v_ik^2)

  computed in O(n d) per example. No weights (the embeddings and the linear
  part live in `FeatureEmbedding` and `LinearLogit`).

  Args:
    reduce_sum: bool. Sum over k (output (B, 1)); False keeps the per-dimension
      terms (B, d) (the "bi-interaction" of NFM). Defaults to True.

  Input shape: (B, n, d), or a list of field groups [(B, n_1, d), (B, n_2, d),
  ..] taken as their concatenation on axis 1 (all pairs across groups
  included) without forming it: the sums run per group (DeepFM passes its id
  fields and its numeric fields x_j v_j this way). Output shape: (B, 1) or (B, d).

  Example:
    >>> FactorizationMachine()(tf.ones((2, 3, 4))).shape
    TensorShape([2, 1])

  Paper: S. Rendle, "Factorization Machines", ICDM'10, Eq. 1 and Lemma 3.1;
  H. Guo et al., "DeepFM", IJCAI'17.
  """

  def __init__(self, reduce_sum: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.reduce_sum = bool(reduce_sum)

  def build(self, input_shape):
    groups = _shape_groups(input_shape)
    dims = set()
    for i, shape in enumerate(groups):
      what = "input" if len(groups) == 1 else f"field group {i}"
      dims.add(shapes.check_shape("FactorizationMachine", shape, "(batch, n_fields, d)", 3,
                                  what=what)[-1])
    if len(dims) != 1:
      raise ValueError(f"FactorizationMachine field groups need one width d, got shapes "
                       f"{[tuple(tf.TensorShape(s)) for s in groups]}")
    super().build(input_shape)

  def call(self, inputs):
    groups = ([tf.convert_to_tensor(v) for v in inputs] if isinstance(inputs, (list, tuple))
              else [tf.convert_to_tensor(inputs)])  # (B, n_g, d) each
    square_of_sum = tf.square(tf.add_n([tf.reduce_sum(v, axis=1) for v in groups]))  # (B, d)
    sum_of_square = tf.add_n([tf.reduce_sum(tf.square(v), axis=1) for v in groups])  # (B, d)
    out = 0.5 * (square_of_sum - sum_of_square)  # (B, d)
    if self.reduce_sum:
      out = tf.reduce_sum(out, axis=1, keepdims=True)  # (B, 1)
    return out

  def compute_output_shape(self, input_shape):
    shape = tf.TensorShape(_shape_groups(input_shape)[0])
    return tf.TensorShape((shape[0], 1 if self.reduce_sum else shape[2]))

  def get_config(self):
    config = super().get_config()
    config.update({"reduce_sum": self.reduce_sum})
    return config
