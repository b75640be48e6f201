"""DCN-V2 cross network (full rank and low rank)."""

from typing import Any, Optional

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import initializers
from ctr_zoo.layers import shapes
from ctr_zoo.serialization import register


@register
class CrossNet(graph_layer.GraphLayer):
  """DCN-V2 cross network: `num_layers` explicit feature-crossing layers.

  Layer l (0-based), on x0, x_l in R^{B x d}, with per-example column vectors:

    full rank (paper Eq. 1):  x_{l+1} = x0 (.) (W_l x_l + b_l + s x_l) + x_l
    low rank  (paper Eq. 2):  x_{l+1} = x0 (.) (U_l (V_l^T x_l) + b_l + s x_l) + x_l

  where (.) is the element-wise product, W_l in R^{d x d}, U_l, V_l in
  R^{d x r}, b_l in R^d and s = `diag_scale` (i.e. W + sI). The Hadamard term
  always uses x0. In row form (what `call` computes) W_l x_l is
  x_l @ W_l^T and U_l V_l^T x_l is (x_l @ V_l) @ U_l^T.

  Weights, per layer l: full rank "kernel_{l}" = W_l (d, d); low rank
  "u_kernel_{l}" = U_l (d, r) and "v_kernel_{l}" = V_l (d, r); "bias_{l}" =
  b_l (d,) when `use_bias`. Parameter count per layer: d^2 + d (full rank),
  2dr + d (low rank).

  Args:
    num_layers: int. Number of cross layers (>= 1).
    projection_dim: int or None. Rank r of the low-rank kernel U V^T; None is
      full rank. Defaults to None.
    diag_scale: float. s >= 0 added to the kernel's diagonal (TFRS option).
      Defaults to 0.0.
    use_bias: bool. Whether each layer has a bias b_l. Defaults to True.
    kernel_initializer: initializer for W, U and V (cloned per kernel).
      Defaults to "glorot_uniform".
    bias_initializer: initializer for b (cloned per layer). Defaults to "zeros".
    kernel_regularizer: regularizer for W, U and V. Defaults to None.
    bias_regularizer: regularizer for b. Defaults to None.

  Input shape: (B, d). Output shape: (B, d).

  Example:
    >>> x0 = tf.ones((2, 8))
    >>> CrossNet(num_layers=2, projection_dim=2)(x0).shape
    TensorShape([2, 8])

  Paper: R. Wang et al., "DCN V2: Improved Deep & Cross Network and Practical
  Lessons for Web-scale Learning to Rank Systems", WWW'21 (arXiv 2008.13535),
  Eqs. 1-2. Same math as `tfrs.layers.dcn.Cross` (tested against NumPy here).
  """

  def __init__(self,
               num_layers: int,
               projection_dim: Optional[int] = None,
               diag_scale: float = 0.0,
               use_bias: bool = True,
               kernel_initializer: Any = "glorot_uniform",
               bias_initializer: Any = "zeros",
               kernel_regularizer: Any = None,
               bias_regularizer: Any = None,
               **kwargs):
    super().__init__(**kwargs)
    checks.positive_int(num_layers, "CrossNet num_layers")
    checks.optional_positive_int(projection_dim, "CrossNet projection_dim")
    checks.non_negative(diag_scale, "CrossNet diag_scale")
    self.num_layers = num_layers
    self.projection_dim = projection_dim
    self.diag_scale = float(diag_scale)
    self.use_bias = bool(use_bias)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.bias_initializer = tf.keras.initializers.get(bias_initializer)
    self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)
    self.bias_regularizer = tf.keras.regularizers.get(bias_regularizer)

  def build(self, input_shape):
    d = int(shapes.check_shape("CrossNet", input_shape, "(batch, d)", 2)[-1])
    self.kernels, self.u_kernels, self.v_kernels, self.biases = [], [], [], []
    for l in range(self.num_layers):
      if self.projection_dim is None:
        self.kernels.append(self.add_weight(
            name=f"kernel_{l}", shape=(d, d),
            initializer=initializers.clone_initializer(self.kernel_initializer, l),
            regularizer=self.kernel_regularizer, trainable=True))
      else:
        r = self.projection_dim
        self.u_kernels.append(self.add_weight(
            name=f"u_kernel_{l}", shape=(d, r),
            initializer=initializers.clone_initializer(self.kernel_initializer, 2 * l),
            regularizer=self.kernel_regularizer, trainable=True))
        self.v_kernels.append(self.add_weight(
            name=f"v_kernel_{l}", shape=(d, r),
            initializer=initializers.clone_initializer(self.kernel_initializer, 2 * l + 1),
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
      if self.projection_dim is None:
        prod = tf.matmul(x, self.kernels[l], transpose_b=True)  # (B, d) = x W^T
      else:
        prod = tf.matmul(tf.matmul(x, self.v_kernels[l]),  # (B, r)
                         self.u_kernels[l], transpose_b=True)  # (B, d)
      if self.use_bias:
        prod = prod + self.biases[l]
      if self.diag_scale:
        prod = prod + self.diag_scale * x
      x = x0 * prod + x  # (B, d)
    return x

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_layers": self.num_layers,
        "projection_dim": self.projection_dim,
        "diag_scale": self.diag_scale,
        "use_bias": self.use_bias,
        "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
        "bias_initializer": tf.keras.initializers.serialize(self.bias_initializer),
        "kernel_regularizer": tf.keras.regularizers.serialize(self.kernel_regularizer),
        "bias_regularizer": tf.keras.regularizers.serialize(self.bias_regularizer),
    })
    return config
