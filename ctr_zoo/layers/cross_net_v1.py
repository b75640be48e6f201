"""DCN (v1) cross network: one weight vector per cross layer."""

from typing import Any

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import initializers
from ctr_zoo.layers import shapes
from ctr_zoo.serialization import register


@register
class VectorCrossNet(graph_layer.GraphLayer):
  """DCN (v1) cross network: `num_layers` rank-one feature-crossing layers.

  Layer l (0-based), on x0, x_l in R^{B x d}, with per-example column vectors
  (paper Eq. 3):

    x_{l+1} = x0 x_l^T w_l + b_l + x_l = x0 (w_l^T x_l) + b_l + x_l

  with w_l, b_l in R^d: the scalar w_l^T x_l rescales x0. In row form (what
  `call` computes) x_{l+1} = x0 * (x_l @ w_l)[:, None] + b_l + x_l. Unlike
  DCN-V2's `CrossNet` (x0 (.) (W_l x_l + b_l) + x_l), the bias is added
  outside the product with x0; with b = 0 the two agree for W_l = 1 w_l^T
  (a rank-one `CrossNet` with U = 1, V = w_l). With d = 1 and b = 0, x_l is a
  polynomial of degree l + 1 in x0 (paper Section 2.2).

  Weights, per layer l: "kernel_{l}" = w_l (d,), "bias_{l}" = b_l (d,) when
  `use_bias`. Parameter count per layer: 2d (d without bias).

  Args:
    num_layers: int. Number of cross layers (>= 1).
    use_bias: bool. Whether each layer has a bias b_l. Defaults to True.
    kernel_initializer: initializer for w (cloned per layer). Defaults to
      "glorot_uniform".
    bias_initializer: initializer for b (cloned per layer). Defaults to "zeros".
    kernel_regularizer: regularizer for w. Defaults to None.
    bias_regularizer: regularizer for b. Defaults to None.

  Input shape: (B, d). Output shape: (B, d).

  Example:
    >>> x0 = tf.ones((2, 8))
    >>> VectorCrossNet(num_layers=2)(x0).shape
    TensorShape([2, 8])

  Paper: R. Wang, B. Fu, G. Fu, M. Wang, "Deep & Cross Network for Ad Click
  Predictions", ADKDD'17 (arXiv 1708.05123), Eq. 3.
  """

  def __init__(self,
               num_layers: int,
               use_bias: bool = True,
               kernel_initializer: Any = "glorot_uniform",
               bias_initializer: Any = "zeros",
               kernel_regularizer: Any = None,
               bias_regularizer: Any = None,
               **kwargs):
    super().__init__(**kwargs)
    self.num_layers = checks.positive_int(num_layers, "VectorCrossNet num_layers")
    self.use_bias = bool(use_bias)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.bias_initializer = tf.keras.initializers.get(bias_initializer)
    self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)
    self.bias_regularizer = tf.keras.regularizers.get(bias_regularizer)

  def build(self, input_shape):
    d = int(shapes.check_shape("VectorCrossNet", input_shape, "(batch, d)", 2)[-1])
    self.kernels, self.biases = [], []
    for l in range(self.num_layers):
      self.kernels.append(self.add_weight(
          name=f"kernel_{l}", shape=(d,),
          initializer=initializers.clone_initializer(self.kernel_initializer, l),
          regularizer=self.kernel_regularizer, trainable=True))
      if self.use_bias:
        self.biases.append(self.add_weight(
            name=f"bias_{l}", shape=(d,),
            initializer=initializers.clone_initializer(self.bias_initializer, l),
            regularizer=self.bias_regularizer, trainable=True))
    super().build(input_shape)

  def call(self, inputs):
    x0 = tf.convert_to_tensor(inputs)  # (B, d)
    x = x0
    for l in range(self.num_layers):
      scale = tf.tensordot(x, self.kernels[l], axes=1)[:, tf.newaxis]  # (B, 1) = x_l^T w_l
      out = x0 * scale + x  # (B, d)
      if self.use_bias:
        out = out + self.biases[l]
      x = out
    return x

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_layers": self.num_layers,
        "use_bias": self.use_bias,
        "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
        "bias_initializer": tf.keras.initializers.serialize(self.bias_initializer),
        "kernel_regularizer": tf.keras.regularizers.serialize(self.kernel_regularizer),
        "bias_regularizer": tf.keras.regularizers.serialize(self.bias_regularizer),
    })
    return config
