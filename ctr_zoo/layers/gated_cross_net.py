"""GDCN's gated cross network: DCN-V2's cross term times a sigmoid information gate."""

from typing import Any

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import initializers
from ctr_zoo.layers import shapes
from ctr_zoo.serialization import register


@register
class GatedCrossNet(graph_layer.GraphLayer):
  """Gated cross network: `num_layers` gated cross layers.

  Layer l (0-based), on x0, x_l in R^{B x d}, per example (column vectors):

    x_{l+1} = x0 (.) (W_l x_l + b_l) (.) sigma(W^g_l x_l) + x_l

  The cross term c_l = x0 (.) (W_l x_l + b_l) is DCN-V2's (full rank); the
  information gate g_l = sigma(W^g_l x_l) in (0, 1)^d weighs each of its d
  elements per example, so uninformative crosses are damped instead of
  accumulating as the network deepens (the paper's "deeper" claim). In row
  form (what `call` computes) W x is x @ W^T.

  Weights, per layer l: "kernel_{l}" = W_l (d, d), "gate_kernel_{l}" = W^g_l
  (d, d), "bias_{l}" = b_l (d,). Parameter count per layer: 2 d^2 + d.

  Args:
    num_layers: int. Number of gated cross layers (>= 1).
    kernel_initializer: initializer of W and W^g (cloned per kernel).
      Defaults to "glorot_uniform".
    bias_initializer: initializer of b (cloned per layer). Defaults to "zeros".
    kernel_regularizer: regularizer of W and W^g. Defaults to None.

  Input shape: (B, d). Output shape: (B, d).

  Example:
    >>> GatedCrossNet(num_layers=2)(tf.ones((2, 8))).shape
    TensorShape([2, 8])

  Paper: F. Wang et al., "Towards Deeper, Lighter and Interpretable Cross
  Network for CTR Prediction", CIKM'23 (arXiv 2311.04635), Eq. 3 (GCN).
  """

  def __init__(self,
               num_layers: int,
               kernel_initializer: Any = "glorot_uniform",
               bias_initializer: Any = "zeros",
               kernel_regularizer: Any = None,
               **kwargs):
    super().__init__(**kwargs)
    self.num_layers = checks.positive_int(num_layers, "GatedCrossNet num_layers")
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.bias_initializer = tf.keras.initializers.get(bias_initializer)
    self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

  def build(self, input_shape):
    d = int(shapes.check_shape("GatedCrossNet", input_shape, "(batch, d)", 2)[-1])
    self.kernels, self.gate_kernels, self.biases = [], [], []
    for l in range(self.num_layers):
      self.kernels.append(self.add_weight(
          name=f"kernel_{l}", shape=(d, d),
          initializer=initializers.clone_initializer(self.kernel_initializer, 2 * l),
          regularizer=self.kernel_regularizer, trainable=True))
      self.gate_kernels.append(self.add_weight(
          name=f"gate_kernel_{l}", shape=(d, d),
          initializer=initializers.clone_initializer(self.kernel_initializer, 2 * l + 1),
          regularizer=self.kernel_regularizer, trainable=True))
      self.biases.append(self.add_weight(
          name=f"bias_{l}", shape=(d,),
          initializer=initializers.clone_initializer(self.bias_initializer, l), trainable=True))
    super().build(input_shape)

  def call(self, inputs):
    x0 = tf.convert_to_tensor(inputs)  # (B, d)
    x = x0
    for l in range(self.num_layers):
      cross = x0 * (tf.matmul(x, self.kernels[l], transpose_b=True) + self.biases[l])  # (B, d)
      gate = tf.sigmoid(tf.matmul(x, self.gate_kernels[l], transpose_b=True))  # (B, d)
      x = cross * gate + x  # (B, d)
    return x

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_layers": self.num_layers,
        "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
        "bias_initializer": tf.keras.initializers.serialize(self.bias_initializer),
        "kernel_regularizer": tf.keras.regularizers.serialize(self.kernel_regularizer),
    })
    return config
