"""FinalMLP's multi-head bilinear fusion of two stream outputs into one logit."""

from typing import Any

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import initializers
from ctr_zoo.layers import shapes
from ctr_zoo.serialization import register


@register
class BilinearFusion(graph_layer.GraphLayer):
  """logit = u^T w_u + v^T w_v + b + sum_{j=1..H} u_j^T W_j v_j.

  u (B, a) and v (B, b) are the outputs of two streams; u_j (B, a / H) and
  v_j (B, b / H) their j-th of H equal chunks ("heads"), W_j in
  R^{(a/H) x (b/H)}. One head is a full bilinear form of u and v; H heads
  cut its parameters (and cost) by H while keeping the first-order terms of
  both streams.

  Weights: "kernel_u" (a, 1), "kernel_v" (b, 1), "bias" (1,),
  "bilinear_kernel" (H, a / H, b / H). Parameter count a + b + 1 + a b / H.

  Args:
    num_heads: int. H; must divide a and b. Defaults to 1.
    kernel_initializer: initializer of w_u, w_v (cloned). Defaults to
      "glorot_uniform".
    bilinear_initializer: initializer of the W_j. Defaults to "glorot_normal".

  Inputs: [u (B, a), v (B, b)]. Output: (B, 1).

  Example:
    >>> BilinearFusion(2)([tf.ones((3, 4)), tf.ones((3, 6))]).shape
    TensorShape([3, 1])

  Paper: K. Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR
  Prediction", AAAI'23 (arXiv 2304.00902), Eqs. 5-6 (multi-head bilinear
  fusion).
  """

  def __init__(self, num_heads: int = 1, kernel_initializer: Any = "glorot_uniform",
               bilinear_initializer: Any = "glorot_normal", **kwargs):
    super().__init__(**kwargs)
    self.num_heads = checks.positive_int(num_heads, "BilinearFusion num_heads")
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.bilinear_initializer = tf.keras.initializers.get(bilinear_initializer)

  def build(self, input_shape):
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
      raise ValueError(f"BilinearFusion takes [u (B, a), v (B, b)], got {input_shape}")
    a = int(shapes.check_shape("BilinearFusion", input_shape[0], "(batch, a)", 2, what="u")[-1])
    b = int(shapes.check_shape("BilinearFusion", input_shape[1], "(batch, b)", 2, what="v")[-1])
    h = self.num_heads
    if a % h or b % h:
      raise ValueError(f"BilinearFusion num_heads={h} must divide both stream widths, got "
                       f"{a} and {b}")
    self.kernel_u = self.add_weight(
        name="kernel_u", shape=(a, 1),
        initializer=initializers.clone_initializer(self.kernel_initializer, 0), trainable=True)
    self.kernel_v = self.add_weight(
        name="kernel_v", shape=(b, 1),
        initializer=initializers.clone_initializer(self.kernel_initializer, 1), trainable=True)
    self.bias = self.add_weight(name="bias", shape=(1,), initializer="zeros", trainable=True)
    self.bilinear_kernel = self.add_weight(
        name="bilinear_kernel", shape=(h, a // h, b // h),
        initializer=initializers.clone_initializer(self.bilinear_initializer, 2), trainable=True)
    super().build(input_shape)

  def call(self, inputs):
    u, v = (tf.convert_to_tensor(t) for t in inputs)
    h = self.num_heads
    heads_u = tf.reshape(u, (-1, h, u.shape[-1] // h))  # (B, H, a/H)
    heads_v = tf.reshape(v, (-1, h, v.shape[-1] // h))  # (B, H, b/H)
    projected = tf.einsum("bhi,hij->bhj", heads_u, self.bilinear_kernel)  # (B, H, b/H)
    bilinear = tf.reduce_sum(projected * heads_v, axis=[1, 2])  # (B,) = sum_j u_j^T W_j v_j
    return (tf.matmul(u, self.kernel_u) + tf.matmul(v, self.kernel_v) + self.bias
            + bilinear[:, tf.newaxis])  # (B, 1)

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape[0])[:-1].concatenate(1)

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_heads": self.num_heads,
        "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
        "bilinear_initializer": tf.keras.initializers.serialize(self.bilinear_initializer),
    })
    return config
