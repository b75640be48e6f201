"""CIN: xDeepFM's compressed interaction network."""

from typing import Any, Sequence

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import initializers
from ctr_zoo.layers import shapes
from ctr_zoo.serialization import register


@register
class CIN(graph_layer.GraphLayer):
  """Compressed interaction network: vector-wise explicit interactions.

  X^0 in R^{B x m x D} (m fields); layer k (1-based), feature map h:

    X^k_{h,*} = act( sum_{i=1}^{H'_{k-1}} sum_{j=1}^{m} W^{k,h}_{ij} (X^{k-1}_{i,*} (.) X^0_{j,*}) + b^k_h )

  (paper Eq. 6, plus a bias). With `split_half`, every layer but the last
  feeds H_k/2 maps to the next layer (H'_k = H_k/2) and sends the other H_k/2
  to the output; otherwise H'_k = H_k and all go to both. Output: sum pooling
  over D of each layer's output maps, concatenated (paper Eq. 8):
  (B, sum_k out_k).

  Weights, per layer k (0-based): "kernel_{k}" (H'_{k-1} m, H_k) indexed
  [i m + j, h] = W^{k,h}_{ij} (H'_0 = m), "bias_{k}" (H_k,).

  Args:
    layer_sizes: sequence of int. H_1..H_L. Even (except the last) with
      split_half. Defaults to (128, 128).
    split_half: bool. Defaults to True.
    activation: str or callable. Defaults to "linear" (paper Eq. 6).
    kernel_initializer: initializer (cloned per layer). Defaults to "glorot_uniform".
    kernel_regularizer: regularizer on the kernels. Defaults to None.

  Input shape: (B, m, D). Output shape: (B, sum of output maps).

  Example:
    >>> CIN([4, 2])(tf.ones((2, 3, 5))).shape
    TensorShape([2, 4])

  Paper: J. Lian et al., "xDeepFM: Combining Explicit and Implicit Feature
  Interactions for Recommender Systems", KDD'18 (arXiv 1803.05170), Eqs. 6-8.
  """

  def __init__(self,
               layer_sizes: Sequence[int] = (128, 128),
               split_half: bool = True,
               activation: Any = "linear",
               kernel_initializer: Any = "glorot_uniform",
               kernel_regularizer: Any = None,
               **kwargs):
    super().__init__(**kwargs)
    sizes = list(checks.positive_ints(layer_sizes, "CIN layer_sizes", allow_empty=False))
    if split_half and any(v % 2 for v in sizes[:-1]):
      raise ValueError(f"CIN with split_half=True needs even layer_sizes (except the last), "
                       f"got {layer_sizes!r}")
    self.layer_sizes = sizes
    self.split_half = bool(split_half)
    self.activation = tf.keras.activations.get(activation)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

  def _widths(self, m: int):
    """[(H'_{k-1}, H_k, next maps, output maps)] per layer."""
    out, prev = [], m
    for k, h in enumerate(self.layer_sizes):
      last = k == len(self.layer_sizes) - 1
      nxt = h // 2 if self.split_half and not last else h
      out.append((prev, h, nxt, h - nxt if self.split_half and not last else h))
      prev = nxt
    return out

  def build(self, input_shape):
    shape = shapes.check_shape("CIN", input_shape, "(batch, n_fields, d)", 3, (1, 2))
    m = int(shape[1])
    self._m = m
    self.kernels, self.biases = [], []
    for k, (prev, h, _, _) in enumerate(self._widths(m)):
      self.kernels.append(self.add_weight(
          name=f"kernel_{k}", shape=(prev * m, h),
          initializer=initializers.clone_initializer(self.kernel_initializer, k),
          regularizer=self.kernel_regularizer, trainable=True))
      self.biases.append(self.add_weight(name=f"bias_{k}", shape=(h,), initializer="zeros",
                                         trainable=True))
    super().build(input_shape)

  def call(self, inputs):
    x0 = tf.convert_to_tensor(inputs)  # (B, m, D)
    d = x0.shape[-1]
    x, pooled = x0, []
    for k, (prev, h, nxt, _) in enumerate(self._widths(self._m)):
      z = tf.einsum("bid,bjd->bijd", x, x0)  # (B, H', m, D)
      z = tf.reshape(z, (-1, prev * self._m, d))  # (B, H' m, D)
      xk = tf.einsum("bpd,ph->bhd", z, self.kernels[k]) + self.biases[k][:, tf.newaxis]  # (B, H, D)
      xk = self.activation(xk)
      if self.split_half and k < len(self.layer_sizes) - 1:
        x, out = xk[:, :nxt], xk[:, nxt:]  # (B, H/2, D) each
      else:
        x, out = xk, xk
      pooled.append(tf.reduce_sum(out, axis=-1))  # (B, out_k)
    return tf.concat(pooled, axis=1)  # (B, sum out_k)

  def compute_output_shape(self, input_shape):
    shape = tf.TensorShape(input_shape)
    return tf.TensorShape((shape[0], sum(w[3] for w in self._widths(int(shape[1])))))

  def get_config(self):
    config = super().get_config()
    config.update({
        "layer_sizes": list(self.layer_sizes),
        "split_half": self.split_half,
        "activation": tf.keras.activations.serialize(self.activation),
        "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
        "kernel_regularizer": tf.keras.regularizers.serialize(self.kernel_regularizer),
    })
    return config
