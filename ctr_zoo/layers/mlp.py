"""MLP: the deep tower of the CTR models."""

from typing import Any, Sequence

import tensorflow as tf

from ctr_zoo.layers import initializers
from ctr_zoo.serialization import register


@register
class MLP(tf.keras.layers.Layer):
  """A stack of dense layers: per layer h = dropout(act(BN(h W_l + b_l))).

  Layer l maps (B, d_{l-1}) -> (B, d_l) with "dense_{l}" (kernel (d_{l-1}, d_l),
  bias (d_l,)), then optional batch norm "batch_norm_{l}" (before the
  activation), the activation (a "prelu_{l}" layer when activation="prelu"),
  then dropout. With `activate_last=False` the last layer is linear (no BN,
  activation or dropout), e.g. to end in a logit.

  Args:
    dims: sequence of int. Output widths d_1..d_L.
    activation: str or callable, or "prelu". Defaults to "relu".
    dropout: float in [0, 1). Dropout rate after each activation. Defaults to 0.
    batch_norm: bool. Batch norm before each activation. Defaults to False.
    activate_last: bool. Apply BN/activation/dropout after the last layer too.
      Defaults to True.
    use_bias: bool. Defaults to True.
    kernel_initializer: initializer (cloned per layer). Defaults to "glorot_uniform".
    kernel_regularizer: regularizer on the kernels. Defaults to None.

  Input shape: (B, d_0). Output shape: (B, d_L).

  Example:
    >>> MLP([8, 4])(tf.ones((2, 3))).shape
    TensorShape([2, 4])
  """

  def __init__(self,
               dims: Sequence[int],
               activation: Any = "relu",
               dropout: float = 0.0,
               batch_norm: bool = False,
               activate_last: bool = True,
               use_bias: bool = True,
               kernel_initializer: Any = "glorot_uniform",
               kernel_regularizer: Any = None,
               **kwargs):
    super().__init__(**kwargs)
    dims = list(dims) if isinstance(dims, (list, tuple)) else dims
    if (not isinstance(dims, list) or not dims or
        any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in dims)):
      raise ValueError(f"MLP dims must be a non-empty list of ints >= 1, got {dims!r}")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
      raise ValueError(f"MLP dropout must be in [0, 1), got {dropout!r}")
    self.dims = dims
    self.activation = activation if activation == "prelu" else tf.keras.activations.get(activation)
    self.dropout = float(dropout)
    self.batch_norm = bool(batch_norm)
    self.activate_last = bool(activate_last)
    self.use_bias = bool(use_bias)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)
    self.dense_layers, self.norm_layers, self.act_layers, self.dropout_layers = [], [], [], []
    for l, dim in enumerate(dims):
      last = l == len(dims) - 1
      self.dense_layers.append(tf.keras.layers.Dense(
          dim, use_bias=use_bias,
          kernel_initializer=initializers.clone_initializer(self.kernel_initializer, l),
          kernel_regularizer=self.kernel_regularizer, name=f"dense_{l}"))
      post = self.activate_last or not last
      self.norm_layers.append(tf.keras.layers.BatchNormalization(name=f"batch_norm_{l}")
                              if self.batch_norm and post else None)
      if not post:
        self.act_layers.append(None)
      elif activation == "prelu":
        self.act_layers.append(tf.keras.layers.PReLU(name=f"prelu_{l}"))
      else:
        self.act_layers.append(tf.keras.layers.Activation(self.activation, name=f"activation_{l}"))
      self.dropout_layers.append(tf.keras.layers.Dropout(self.dropout, name=f"dropout_{l}")
                                 if self.dropout and post else None)

  def call(self, inputs, training=None):
    h = tf.convert_to_tensor(inputs)
    if h.shape.rank is not None and (h.shape.rank < 2 or h.shape[-1] is None):
      raise ValueError(f"MLP expects input of shape (batch, ..., d) with a known d, got shape {h.shape}")
    for dense, norm, act, drop in zip(self.dense_layers, self.norm_layers, self.act_layers,
                                      self.dropout_layers):
      h = dense(h)  # (B, d_l)
      if norm is not None:
        h = norm(h, training=training)
      if act is not None:
        h = act(h)
      if drop is not None:
        h = drop(h, training=training)
    return h

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)[:-1].concatenate(self.dims[-1])

  def get_config(self):
    config = super().get_config()
    config.update({
        "dims": list(self.dims),
        "activation": (self.activation if self.activation == "prelu"
                       else tf.keras.activations.serialize(self.activation)),
        "dropout": self.dropout,
        "batch_norm": self.batch_norm,
        "activate_last": self.activate_last,
        "use_bias": self.use_bias,
        "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
        "kernel_regularizer": tf.keras.regularizers.serialize(self.kernel_regularizer),
    })
    return config
