"""MLP: the deep tower of the CTR models, and its numeric-field first layer."""

from typing import Any, Optional, Sequence

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import initializers
from ctr_zoo.serialization import register


@register
class MLP(graph_layer.GraphLayer):
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
    numeric_embedding: None, or the `DenseFieldEmbedding` (V (m, d)) of a
      field stack whose last m fields are x_j v_j. Then the MLP is called on
      [e (B, a), x (B, m)] (e: the other fields flattened, x: the raw numeric
      values) and computes exactly MLP([e ; x_1 v_1 ; .. ; x_m v_m]) with the
      same variables, its first layer being a `NumericFieldDense` (no (B, m d)
      block). Such an MLP is rebuilt by its model's code: `get_config` raises.
      Defaults to None.

  Input shape: (B, d_0), or [(B, a), (B, m)] with `numeric_embedding`.
  Output shape: (B, d_L).

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
               numeric_embedding: Optional[Any] = None,
               **kwargs):
    super().__init__(**kwargs)
    self.dims = list(checks.positive_ints(dims, "MLP dims", allow_empty=False))
    checks.fraction(dropout, "MLP dropout")
    self.activation = activation if activation == "prelu" else tf.keras.activations.get(activation)
    self.dropout = float(dropout)
    self.batch_norm = bool(batch_norm)
    self.activate_last = bool(activate_last)
    self.use_bias = bool(use_bias)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)
    self.numeric_fields = numeric_embedding is not None
    self.dense_layers, self.norm_layers, self.act_layers, self.dropout_layers = [], [], [], []
    for l, dim in enumerate(dims):
      last = l == len(dims) - 1
      dense_kwargs = dict(use_bias=use_bias,
                          kernel_initializer=initializers.clone_initializer(self.kernel_initializer, l),
                          kernel_regularizer=self.kernel_regularizer, name=f"dense_{l}")
      self.dense_layers.append(NumericFieldDense(dim, numeric_embedding, **dense_kwargs)
                               if l == 0 and self.numeric_fields
                               else tf.keras.layers.Dense(dim, **dense_kwargs))
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
    if self.numeric_fields:
      if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        raise ValueError(f"MLP {self.name!r} with numeric_embedding takes [e (B, a), x (B, m)], "
                         f"got {inputs!r}")
      h = [tf.convert_to_tensor(t) for t in inputs]
    else:
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
    if self.numeric_fields:
      input_shape = input_shape[0]
    return tf.TensorShape(input_shape)[:-1].concatenate(self.dims[-1])

  def get_config(self):
    if self.numeric_fields:
      raise NotImplementedError(
          f"MLP {self.name!r} shares V with a numeric-field layer (numeric_embedding); it is rebuilt "
          "by the model code that made it, not from a config")
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


@register
class NumericFieldDense(graph_layer.GraphLayer):
  r"""A Dense layer on [e ; x_1 v_1 ; .. ; x_m v_m] that never forms the x_j v_j block.

  Field-wise models (DeepFM, xDeepFM, AutoInt) embed numeric value x_j as the
  field x_j v_j (V (m, d), a `DenseFieldEmbedding`'s kernel) and feed the
  flattened field stack [e ; x_1 v_1 ; .. ; x_m v_m] (B, a + m d) to a DNN.
  Splitting the first layer's kernel K ((a + m d), h) into K_E (a rows) and
  K_j (d rows for field j):

      h = e K_E + sum_j x_j v_j^T K_j + b = e K_E + x M + b,
      M[j, :] = sum_k V[j, k] K_j[k, :]                        M (m, h)

  So the m d columns of the input cost an (m, h) matrix M per step and a
  (B, m) x (m, h) matmul, instead of a (B, m d) x (m d, h) one (13 numeric
  fields of d = 16: 208 of DeepFM's 624 input columns, a third of its first
  layer). The kernel, the bias and their shapes are those of the Dense layer
  on the concatenation, and so are the outputs and the gradients (for K, b,
  e and V), up to float summation order.

  V is read from `numeric_embedding` (not owned or tracked here: that layer
  owns it, is called in the same model and must be built first).

  Args:
    units: int >= 1. h.
    numeric_embedding: a built layer whose `kernel` is V (m, d), e.g.
      `ctr_zoo.layers.DenseFieldEmbedding`.
    use_bias: bool. Defaults to True.
    kernel_initializer: initializer of K. Defaults to "glorot_uniform".
    bias_initializer: initializer of b. Defaults to "zeros".
    kernel_regularizer: regularizer on K. Defaults to None.

  Inputs: [e (B, a), x (B, m)]. Output: (B, h).

  A layer sharing another layer's weight is rebuilt by the code that built
  it (a `CTRModel` rebuilds itself from its config), so `get_config` raises.
  """

  def __init__(self, units: int, numeric_embedding, use_bias: bool = True,
               kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
               kernel_regularizer: Any = None, **kwargs):
    super().__init__(**kwargs)
    checks.positive_int(units, "NumericFieldDense units")
    if numeric_embedding is None:
      raise ValueError("NumericFieldDense needs the numeric_embedding layer that owns V")
    self.units = units
    # Untracked on purpose: V belongs to (and is saved with) its own layer.
    object.__setattr__(self, "_numeric_embedding", numeric_embedding)
    self.use_bias = bool(use_bias)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.bias_initializer = tf.keras.initializers.get(bias_initializer)
    self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

  @property
  def numeric_embedding(self):
    return self._numeric_embedding

  def _v(self):
    v = getattr(self._numeric_embedding, "kernel", None)
    if v is None or v.shape.rank != 2:
      raise ValueError(f"NumericFieldDense {self.name!r}: numeric_embedding "
                       f"{getattr(self._numeric_embedding, 'name', self._numeric_embedding)!r} "
                       "has no built (m, d) `kernel`; call it in the model before this layer")
    return v

  def build(self, input_shape):
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
      raise ValueError(f"NumericFieldDense {self.name!r} takes [e (B, a), x (B, m)], got {input_shape}")
    e_shape, x_shape = (tf.TensorShape(s) for s in input_shape)
    if e_shape.rank != 2 or x_shape.rank != 2 or e_shape[-1] is None or x_shape[-1] is None:
      raise ValueError(f"NumericFieldDense {self.name!r} needs e (B, a) and x (B, m) with known a "
                       f"and m, got {e_shape} and {x_shape}")
    m, d = self._v().shape
    if x_shape[-1] != m:
      raise ValueError(f"NumericFieldDense {self.name!r}: x has {x_shape[-1]} values but V has "
                       f"{m} rows")
    self._a, self._m, self._d = int(e_shape[-1]), int(m), int(d)
    self.kernel = self.add_weight(name="kernel", shape=(self._a + self._m * self._d, self.units),
                                  initializer=self.kernel_initializer,
                                  regularizer=self.kernel_regularizer, trainable=True)
    self.bias = (self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer,
                                 trainable=True) if self.use_bias else None)
    super().build(input_shape)

  def call(self, inputs):
    e, x = inputs
    dtype = self.compute_dtype
    k = tf.cast(self.kernel, dtype)
    v = tf.cast(self._v(), dtype)  # (m, d)
    k_num = tf.reshape(k[self._a:], (self._m, self._d, self.units))  # (m, d, h)
    mix = tf.einsum("jd,jdh->jh", v, k_num)  # (m, h)
    h = tf.matmul(tf.cast(e, dtype), k[:self._a]) + tf.matmul(tf.cast(x, dtype), mix)  # (B, h)
    if self.bias is not None:
      h = tf.nn.bias_add(h, tf.cast(self.bias, dtype))
    return h

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape[0])[:-1].concatenate(self.units)

  def get_config(self):
    raise NotImplementedError(
        f"NumericFieldDense {self.name!r} shares V with layer "
        f"{getattr(self._numeric_embedding, 'name', '?')!r}; it is rebuilt by the model code "
        "that made it, not from a config")
