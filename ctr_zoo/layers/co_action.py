"""CAN co-action unit: an induction feature's lookup used as micro-MLP weights."""

from typing import Any, Sequence

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.serialization import register


def _check_dims(mlp_dims: Sequence[int]) -> tuple:
  dims = tuple(mlp_dims)
  if len(dims) < 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in dims):
    raise ValueError(f"CoActionUnit mlp_dims must be >= 2 ints >= 1 (input width first), "
                     f"got {mlp_dims!r}")
  return dims


def co_action_param_width(mlp_dims: Sequence[int] = (16, 8, 4),
                          use_bias: bool = False,
                          orders: int = 3,
                          order_independent: bool = False) -> int:
  """D_w: the induction-table width that `CoActionUnit` needs.

  D_w = m * sum_l (d_l d_{l+1} + [use_bias] d_{l+1}), with m = `orders` when
  order independent (separate micro-MLP weights per order) and 1 otherwise.
  The official defaults (16, 8, 4), no bias, give 16*8 + 8*4 = 160.

  Args:
    mlp_dims: sequence of int. [d_0 (feed width), d_1, ..., d_L]. Defaults to (16, 8, 4).
    use_bias: bool. Whether each micro-layer has a bias. Defaults to False.
    orders: int. C, the number of orders (powers). Defaults to 3.
    order_independent: bool. Separate weights per order. Defaults to False.

  Returns:
    int. D_w.
  """
  dims = _check_dims(mlp_dims)
  per_order = sum(a * b + (b if use_bias else 0) for a, b in zip(dims[:-1], dims[1:]))
  return per_order * (orders if order_independent else 1)


@register
class CoActionUnit(graph_layer.GraphLayer):
  """CAN co-action unit: feeds b's embeddings through a micro-MLP made of a's lookup.

  For induction params p in R^{B x D_w} (a row of the induction table P_ind,
  looked up for the induction feature a) and feed embeddings H in
  R^{B x T x d_0} (feed feature b, e.g. a behaviour sequence; (B, d_0) is T=1),
  with mask M in {0, 1}^{B x T}:

    W_l = reshape(p[:, o_l : o_l + d_l d_{l+1}], (B, d_l, d_{l+1}))  (row-major:
          input unit i, output unit j at offset o_l + d_{l+1} i + j), then
          b_l = p[:, .. + d_{l+1}] when use_bias; layer blocks laid out in order.
    for c = 1..C:  h_0 = H^c (element-wise power)
                   h_l = act(h_{l-1} W_l + b_l) for l < L,  h_L = h_{L-1} W_L + b_L
                   o_c = [h_1; ..; h_L]                    (B, T, sum_l d_l)
    output = sum_t M_t [o_1; ..; o_C]_t                    (B, C sum_{l>=1} d_l)

  Masked positions contribute exactly 0 (the mask multiplies after the MLP).
  With `order_independent`, p holds C consecutive blocks of weights, block c
  for order c (D_w = C * per-order width); see `co_action_param_width`.
  This layer has no weights of its own: P_ind and the feed table (separate
  from the model's main embeddings) live in the caller's embedding layer.

  Args:
    mlp_dims: sequence of int. [d_0, d_1, ..., d_L], d_0 the feed width.
      Defaults to (16, 8, 4).
    orders: int. C. Defaults to 3.
    order_independent: bool. Separate micro-MLP weights per order.
      Defaults to False.
    activation: str or callable. act on every micro-layer but the last.
      Defaults to "tanh".
    use_bias: bool. Micro-layers have biases (in p). Defaults to False.

  Inputs: [params (B, D_w), feed (B, T, d_0) or (B, d_0)] or
    [params, feed, mask (B, T) bool/0-1]. Output: (B, C * sum(mlp_dims[1:])).

  Example:
    >>> unit = CoActionUnit()
    >>> unit([tf.zeros((2, 160)), tf.ones((2, 5, 16))]).shape
    TensorShape([2, 36])

  Paper: G. Bian, G. Zhou et al., "CAN: Feature Co-Action Network for
  Click-Through Rate Prediction", WSDM'22 (arXiv 2011.05625).
  """

  def __init__(self,
               mlp_dims: Sequence[int] = (16, 8, 4),
               orders: int = 3,
               order_independent: bool = False,
               activation: Any = "tanh",
               use_bias: bool = False,
               **kwargs):
    super().__init__(**kwargs)
    self.mlp_dims = list(_check_dims(mlp_dims))
    self.orders = checks.positive_int(orders, "CoActionUnit orders")
    self.order_independent = bool(order_independent)
    self.activation = tf.keras.activations.get(activation)
    self.use_bias = bool(use_bias)
    self.param_width = co_action_param_width(self.mlp_dims, self.use_bias, orders,
                                             self.order_independent)

  @property
  def output_width(self) -> int:
    return self.orders * sum(self.mlp_dims[1:])

  def _split(self, inputs):
    if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
      raise ValueError("CoActionUnit expects [params, feed] or [params, feed, mask], got "
                       f"{type(inputs).__name__} of length "
                       f"{len(inputs) if isinstance(inputs, (list, tuple)) else 'n/a'}")
    return inputs[0], inputs[1], (inputs[2] if len(inputs) == 3 else None)

  def _check_shapes(self, params_shape, feed_shape, mask_shape):
    params_shape, feed_shape = tf.TensorShape(params_shape), tf.TensorShape(feed_shape)
    if params_shape.rank != 2 or params_shape[-1] != self.param_width:
      raise ValueError(
          f"CoActionUnit params must have shape (batch, {self.param_width}) for mlp_dims "
          f"{self.mlp_dims}, use_bias={self.use_bias}, orders={self.orders}, "
          f"order_independent={self.order_independent}; got shape {params_shape}")
    if feed_shape.rank not in (2, 3) or feed_shape[-1] != self.mlp_dims[0]:
      raise ValueError(f"CoActionUnit feed must have shape (batch, T, {self.mlp_dims[0]}) or "
                       f"(batch, {self.mlp_dims[0]}) (mlp_dims[0]); got shape {feed_shape}")
    if mask_shape is not None:
      mask_shape = tf.TensorShape(mask_shape)
      expected = feed_shape[:2] if feed_shape.rank == 3 else feed_shape[:1]
      if mask_shape.rank != expected.rank or not mask_shape.is_compatible_with(expected):
        raise ValueError(f"CoActionUnit mask must have shape {expected} (the feed's batch"
                         f"{' and T' if feed_shape.rank == 3 else ''}); got shape {mask_shape}")

  def build(self, input_shape):
    params_shape, feed_shape, mask_shape = self._split(input_shape)
    self._check_shapes(params_shape, feed_shape, mask_shape)
    super().build(input_shape)

  def micro_mlp_weights(self, params):
    """Slices p (B, D_w) into [[(W_1, b_1), ..] per weight block]; b_l is None without bias."""
    blocks, offset = [], 0
    for _ in range(self.orders if self.order_independent else 1):
      layers = []
      for d_in, d_out in zip(self.mlp_dims[:-1], self.mlp_dims[1:]):
        w = tf.reshape(params[:, offset:offset + d_in * d_out], (-1, d_in, d_out))  # (B, d_in, d_out)
        offset += d_in * d_out
        b = None
        if self.use_bias:
          b = params[:, tf.newaxis, offset:offset + d_out]  # (B, 1, d_out)
          offset += d_out
        layers.append((w, b))
      blocks.append(layers)
    return blocks

  def call(self, inputs):
    params, feed, mask = self._split(inputs)
    params = tf.convert_to_tensor(params)
    feed = tf.convert_to_tensor(feed)
    self._check_shapes(params.shape, feed.shape, None if mask is None else mask.shape)
    if feed.shape.rank == 2:
      feed = feed[:, tf.newaxis, :]  # (B, 1, d_0)
      if mask is not None:
        mask = tf.reshape(mask, (-1, 1))  # (B, 1)
    blocks = self.micro_mlp_weights(params)
    outputs = []
    for c in range(1, self.orders + 1):
      layers = blocks[c - 1] if self.order_independent else blocks[0]
      h = feed if c == 1 else tf.pow(feed, c)  # (B, T, d_0)
      for l, (w, b) in enumerate(layers):
        h = tf.matmul(h, w)  # (B, T, d_l)
        if b is not None:
          h = h + b
        if l < len(layers) - 1:
          h = self.activation(h)
        outputs.append(h)
    out = tf.concat(outputs, axis=-1)  # (B, T, C sum_l d_l)
    if mask is not None:
      keep = tf.cast(mask, tf.bool)[:, :, tf.newaxis]  # (B, T, 1)
      out = tf.where(keep, out, tf.zeros_like(out))  # masked rows -> exactly 0 (even if inf)
    return tf.reduce_sum(out, axis=1)  # (B, C sum_l d_l)

  def compute_output_shape(self, input_shape):
    params_shape = tf.TensorShape(self._split(input_shape)[0])
    return tf.TensorShape((params_shape[0], self.output_width))

  def get_config(self):
    config = super().get_config()
    config.update({
        "mlp_dims": list(self.mlp_dims),
        "orders": self.orders,
        "order_independent": self.order_independent,
        "activation": tf.keras.activations.serialize(self.activation),
        "use_bias": self.use_bias,
    })
    return config
