"""DCNv3's cross networks with self-mask: linear (LCN) and exponential (ECN) growth."""

from typing import Any

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import initializers
from ctr_zoo.layers import shapes
from ctr_zoo.serialization import register

KINDS = ("linear", "exponential")
LAYER_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.9  # PyTorch's BatchNorm1d momentum 0.1, in Keras's convention
BATCH_NORM_EPSILON = 1e-5


@register
class SelfMaskCrossNet(graph_layer.GraphLayer):
  """A DCNv3 cross network: `num_layers` crossing layers with a self-mask.

  Layer l (0-based), on x0, x_l in R^{B x d}, h = ceil(d / 2):

    c_l = x_l W_l                                   (B, h), W_l in R^{d x h}
    c_l = BN(c_l)                                   (with `batch_norm`)
    m_l = ReLU(LN(c_l))                             the self-mask, (B, h)
    H_l = [c_l ; c_l (.) m_l]_{:d}                  (B, d) (the first d columns)
    linear:       x_{l+1} = x0  (.) (H_l + b_l) + x_l     (order l + 2 after l + 1 layers)
    exponential:  x_{l+1} = x_l (.) (H_l + b_l) + x_l     (order 2^{l+1})

  then dropout on x_{l+1} in training. LN is layer normalisation over the h
  columns with a learned scale and shift (epsilon 1e-5); with
  `layer_norm=False`, m_l = ReLU(c_l). BN (the authors' code, off by default)
  standardises c_l with one mean and variance over the batch and all h columns
  (a scalar scale and shift; in inference the moving averages, momentum 0.9,
  epsilon 1e-5), so the Hadamard factor H_l + b_l keeps a stable scale
  whatever the size of x_l. The mask keeps roughly half of the
  cross terms per example, halving the parameters of a full-rank DCN-V2
  layer (d h instead of d^2). For odd d the last column of the masked half
  is dropped so H_l has d columns.

  Weights, per layer l: "kernel_{l}" = W_l (d, h), "bias_{l}" = b_l (d,),
  with layer norm "norm_scale_{l}" and "norm_shift_{l}" (h,), and with batch
  norm the sublayer "batch_norm_{l}" (gamma, beta and moving mean and
  variance, each (1,)).

  Args:
    num_layers: int. Number of layers (>= 1).
    kind: str. "linear" (x0 in the Hadamard term, as DCN-V2) or
      "exponential" (x_l in it, so the interaction order doubles per
      layer). Defaults to "linear".
    layer_norm: bool. Layer-normalise c_l before the mask. Defaults to True.
    batch_norm: bool. Batch-normalise c_l (one channel) first. Defaults to
      False.
    dropout: float in [0, 1). Dropout after every layer. Defaults to 0.
    kernel_initializer: initializer of W (cloned per layer). Defaults to
      "glorot_uniform".
    bias_initializer: initializer of b (cloned per layer). Defaults to
      "zeros" (the authors' code draws b from uniform [0, 1)).
    kernel_regularizer: regularizer of W. Defaults to None.

  Input shape: (B, d). Output shape: (B, d).

  Example:
    >>> SelfMaskCrossNet(2, kind="exponential")(tf.ones((2, 8))).shape
    TensorShape([2, 8])

  Paper: H. Li et al., "DCNv3: Towards Next Generation Deep Cross Network for
  CTR Prediction" (arXiv 2407.13349), Eqs. 2-4 (LCN) and 5 (ECN).
  """

  def __init__(self,
               num_layers: int,
               kind: str = "linear",
               layer_norm: bool = True,
               dropout: float = 0.0,
               batch_norm: bool = False,
               kernel_initializer: Any = "glorot_uniform",
               bias_initializer: Any = "zeros",
               kernel_regularizer: Any = None,
               **kwargs):
    super().__init__(**kwargs)
    self.num_layers = checks.positive_int(num_layers, "SelfMaskCrossNet num_layers")
    self.kind = checks.choice(kind, "SelfMaskCrossNet kind", KINDS)
    self.layer_norm = checks.boolean(layer_norm, "SelfMaskCrossNet layer_norm")
    self.batch_norm = checks.boolean(batch_norm, "SelfMaskCrossNet batch_norm")
    self.dropout = float(checks.fraction(dropout, "SelfMaskCrossNet dropout"))
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.bias_initializer = tf.keras.initializers.get(bias_initializer)
    self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)
    self.dropout_layers = [tf.keras.layers.Dropout(self.dropout, name=f"dropout_{l}")
                           for l in range(self.num_layers)] if self.dropout else []
    self.batch_norm_layers = [
        tf.keras.layers.BatchNormalization(axis=-1, momentum=BATCH_NORM_MOMENTUM,
                                           epsilon=BATCH_NORM_EPSILON, name=f"batch_norm_{l}")
        for l in range(self.num_layers)] if self.batch_norm else []

  def build(self, input_shape):
    d = int(shapes.check_shape("SelfMaskCrossNet", input_shape, "(batch, d)", 2)[-1])
    h = (d + 1) // 2
    self.kernels, self.biases, self.norm_scales, self.norm_shifts = [], [], [], []
    for l in range(self.num_layers):
      self.kernels.append(self.add_weight(
          name=f"kernel_{l}", shape=(d, h),
          initializer=initializers.clone_initializer(self.kernel_initializer, l),
          regularizer=self.kernel_regularizer, trainable=True))
      self.biases.append(self.add_weight(
          name=f"bias_{l}", shape=(d,),
          initializer=initializers.clone_initializer(self.bias_initializer, l), trainable=True))
      if self.layer_norm:
        self.norm_scales.append(self.add_weight(name=f"norm_scale_{l}", shape=(h,),
                                                initializer="ones", trainable=True))
        self.norm_shifts.append(self.add_weight(name=f"norm_shift_{l}", shape=(h,),
                                                initializer="zeros", trainable=True))
    for norm in self.batch_norm_layers:
      norm.build((None, h, 1))  # one channel: statistics over the batch and the h columns
    super().build(input_shape)

  def _normalize(self, c, l):
    mean, variance = tf.nn.moments(c, axes=[-1], keepdims=True)  # (B, 1) each
    normed = (c - mean) * tf.math.rsqrt(variance + LAYER_NORM_EPSILON)
    return normed * self.norm_scales[l] + self.norm_shifts[l]  # (B, h)

  def call(self, inputs, training=None):
    x0 = tf.convert_to_tensor(inputs)  # (B, d)
    d = x0.shape[-1]
    x = x0
    for l in range(self.num_layers):
      c = tf.matmul(x, self.kernels[l])  # (B, h)
      if self.batch_norm_layers:
        c = self.batch_norm_layers[l](c[:, :, None], training=training)[:, :, 0]  # (B, h)
      mask = tf.nn.relu(self._normalize(c, l) if self.layer_norm else c)  # (B, h)
      hidden = tf.concat([c, c * mask], axis=-1)[:, :d]  # (B, d)
      x = (x0 if self.kind == "linear" else x) * (hidden + self.biases[l]) + x  # (B, d)
      if self.dropout_layers:
        x = self.dropout_layers[l](x, training=training)
    return x

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_layers": self.num_layers,
        "kind": self.kind,
        "layer_norm": self.layer_norm,
        "dropout": self.dropout,
        "batch_norm": self.batch_norm,
        "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
        "bias_initializer": tf.keras.initializers.serialize(self.bias_initializer),
        "kernel_regularizer": tf.keras.regularizers.serialize(self.kernel_regularizer),
    })
    return config
