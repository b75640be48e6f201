"""MultiHeadSelfAttention: AutoInt's interacting layer."""

import math
from typing import Any

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import initializers
from ctr_zoo.layers import shapes
from ctr_zoo.serialization import register


@register
class MultiHeadSelfAttention(graph_layer.GraphLayer):
  """AutoInt interacting layer: multi-head self-attention over the fields.

  For field embeddings E in R^{B x n x d}, head h (paper Eqs. 5-8):

    Q_h = E W_Q^h, K_h = E W_K^h, V_h = E W_V^h           (B, n, a) each
    A_h = softmax_k(Q_h K_h^T [/ sqrt(a)])               (B, n, n)
    out = ReLU([A_1 V_1; ..; A_H V_H] + E W_Res)          (B, n, H a)

  (without `use_residual`, out = ReLU([A_1 V_1; ..])). AutoInt's attention
  has no 1/sqrt(a) scaling (`use_scale=False`).

  Weights: "query_kernel", "key_kernel", "value_kernel" (d, H a) holding the
  heads side by side (head h = columns h a .. (h+1) a - 1), and
  "residual_kernel" (d, H a) with `use_residual`.

  Args:
    num_heads: int. H. Defaults to 2.
    head_dim: int. a, per-head width. Defaults to 16.
    use_residual: bool. Defaults to True.
    use_scale: bool. Divide the logits by sqrt(a). Defaults to False.
    kernel_initializer: initializer (cloned per kernel). Defaults to "glorot_uniform".

  Input shape: (B, n, d). Output shape: (B, n, H a).

  Example:
    >>> MultiHeadSelfAttention(2, 4)(tf.ones((2, 3, 5))).shape
    TensorShape([2, 3, 8])

  Paper: W. Song et al., "AutoInt: Automatic Feature Interaction Learning via
  Self-Attentive Neural Networks", CIKM'19 (arXiv 1810.11921), Eqs. 5-8.
  """

  def __init__(self,
               num_heads: int = 2,
               head_dim: int = 16,
               use_residual: bool = True,
               use_scale: bool = False,
               kernel_initializer: Any = "glorot_uniform",
               **kwargs):
    super().__init__(**kwargs)
    for name, value in (("num_heads", num_heads), ("head_dim", head_dim)):
      checks.positive_int(value, f"MultiHeadSelfAttention {name}")
    self.num_heads = num_heads
    self.head_dim = head_dim
    self.use_residual = bool(use_residual)
    self.use_scale = bool(use_scale)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)

  def build(self, input_shape):
    shape = shapes.check_shape("MultiHeadSelfAttention", input_shape, "(batch, n_fields, d)", 3)
    d, width = int(shape[-1]), self.num_heads * self.head_dim
    names = ["query_kernel", "key_kernel", "value_kernel"]
    if self.use_residual:
      names.append("residual_kernel")
    for i, name in enumerate(names):
      setattr(self, name, self.add_weight(
          name=name, shape=(d, width),
          initializer=initializers.clone_initializer(self.kernel_initializer, i), trainable=True))
    super().build(input_shape)

  def _heads(self, x):
    n = x.shape[1]
    x = tf.reshape(x, (-1, n, self.num_heads, self.head_dim))  # (B, n, H, a)
    return tf.transpose(x, (0, 2, 1, 3))  # (B, H, n, a)

  def attention_weights(self, inputs):
    """A (B, H, n, n): the per-head attention over fields."""
    e = tf.convert_to_tensor(inputs)
    q = self._heads(tf.einsum("bnd,dw->bnw", e, self.query_kernel))  # (B, H, n, a)
    k = self._heads(tf.einsum("bnd,dw->bnw", e, self.key_kernel))  # (B, H, n, a)
    logits = tf.matmul(q, k, transpose_b=True)  # (B, H, n, n)
    if self.use_scale:
      logits = logits / math.sqrt(self.head_dim)
    return tf.nn.softmax(logits, axis=-1)

  def call(self, inputs):
    e = tf.convert_to_tensor(inputs)  # (B, n, d)
    n = e.shape[1]
    v = self._heads(tf.einsum("bnd,dw->bnw", e, self.value_kernel))  # (B, H, n, a)
    heads = tf.matmul(self.attention_weights(e), v)  # (B, H, n, a)
    out = tf.reshape(tf.transpose(heads, (0, 2, 1, 3)),
                     (-1, n, self.num_heads * self.head_dim))  # (B, n, H a)
    if self.use_residual:
      out = out + tf.einsum("bnd,dw->bnw", e, self.residual_kernel)
    return tf.nn.relu(out)

  def compute_output_shape(self, input_shape):
    shape = tf.TensorShape(input_shape)
    return tf.TensorShape((shape[0], shape[1], self.num_heads * self.head_dim))

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_heads": self.num_heads,
        "head_dim": self.head_dim,
        "use_residual": self.use_residual,
        "use_scale": self.use_scale,
        "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
    })
    return config
