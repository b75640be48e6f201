"""DCN-Mix: a mixture of low-rank cross experts per layer."""

from typing import Any

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import initializers
from ctr_zoo.layers import shapes
from ctr_zoo.serialization import register


@register
class CrossNetMix(graph_layer.GraphLayer):
  """DCN-Mix cross network: per layer, K low-rank experts mixed by softmax gates.

  Layer l (0-based) on x0, x_l in R^{B x d}, per example (paper Eqs. 3-4):

    E_i(x_l) = x0 (.) (U_l^i g(C_l^i g(V_l^{iT} x_l)) + b_l),   i = 1..K
    G(x_l)   = softmax_i(w_{l,i}^T x_l)                          (bias-free gates)
    x_{l+1}  = sum_i G_i(x_l) E_i(x_l) + x_l

  U^i, V^i in R^{d x r}, C^i in R^{r x r}, g = `activation` (applied twice,
  both times in the r-dim subspace), one bias b_l per layer shared by the
  experts. In row form g(x_l V) is (B, r), then g(. C^T) (B, r), then . U^T (B, d).
  `call` evaluates the K experts together, with the same math: one matmul by
  [V^1 .. V^K | w_1 .. w_K], a per-expert einsum by C, and one matmul by
  [U^1 .. U^K]^T of the gate-weighted projections, using sum_i G_i = 1 for the
  shared bias. `expert` and `gates` give the per-expert form.

  Weights, per layer l and expert i: "u_kernel_{l}_{i}" = U_l^i (d, r),
  "v_kernel_{l}_{i}" = V_l^i (d, r), "c_kernel_{l}_{i}" = C_l^i (r, r), each
  from its own cloned initializer (a shared seed would make the experts
  identical); "gate_kernel_{l}" = [w_{l,1} .. w_{l,K}] (d, K); "bias_{l}" = b_l
  (d,). Parameters per layer: K(2dr + r^2) + Kd + d.

  Args:
    num_layers: int. Number of layers (>= 1).
    num_experts: int. K, experts per layer. Defaults to 4.
    low_rank: int. r. Defaults to 32.
    activation: str or callable. g. Defaults to "tanh".
    kernel_initializer: initializer for U, V, C and the gates (cloned per
      weight). Defaults to "glorot_uniform".
    bias_initializer: initializer for b. Defaults to "zeros".
    kernel_regularizer: regularizer for U, V and C. Defaults to None.

  Input shape: (B, d). Output shape: (B, d).

  Example:
    >>> CrossNetMix(num_layers=2, num_experts=2, low_rank=4)(tf.ones((3, 8))).shape
    TensorShape([3, 8])

  Paper: R. Wang et al., "DCN V2", WWW'21 (arXiv 2008.13535), Eqs. 3-4.
  """

  def __init__(self,
               num_layers: int,
               num_experts: int = 4,
               low_rank: int = 32,
               activation: Any = "tanh",
               kernel_initializer: Any = "glorot_uniform",
               bias_initializer: Any = "zeros",
               kernel_regularizer: Any = None,
               **kwargs):
    super().__init__(**kwargs)
    for name, value in (("num_layers", num_layers), ("num_experts", num_experts),
                        ("low_rank", low_rank)):
      checks.positive_int(value, f"CrossNetMix {name}")
    self.num_layers = num_layers
    self.num_experts = num_experts
    self.low_rank = low_rank
    self.activation = tf.keras.activations.get(activation)
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.bias_initializer = tf.keras.initializers.get(bias_initializer)
    self.kernel_regularizer = tf.keras.regularizers.get(kernel_regularizer)

  def build(self, input_shape):
    d = int(shapes.check_shape("CrossNetMix", input_shape, "(batch, d)", 2)[-1])
    r, k = self.low_rank, self.num_experts
    self.u_kernels, self.v_kernels, self.c_kernels = [], [], []
    self.gate_kernels, self.biases = [], []
    index = 0

    def kernel(name, shape):
      nonlocal index
      index += 1
      return self.add_weight(
          name=name, shape=shape,
          initializer=initializers.clone_initializer(self.kernel_initializer, index),
          regularizer=self.kernel_regularizer, trainable=True)

    for l in range(self.num_layers):
      self.u_kernels.append([kernel(f"u_kernel_{l}_{i}", (d, r)) for i in range(k)])
      self.v_kernels.append([kernel(f"v_kernel_{l}_{i}", (d, r)) for i in range(k)])
      self.c_kernels.append([kernel(f"c_kernel_{l}_{i}", (r, r)) for i in range(k)])
      self.gate_kernels.append(self.add_weight(
          name=f"gate_kernel_{l}", shape=(d, k),
          initializer=initializers.clone_initializer(self.kernel_initializer, 10_000 + l),
          trainable=True))
      self.biases.append(self.add_weight(
          name=f"bias_{l}", shape=(d,),
          initializer=initializers.clone_initializer(self.bias_initializer, l), trainable=True))
    super().build(input_shape)

  def gates(self, x, layer: int):
    """G(x_l): softmax gate weights (B, K) of layer `layer` for the input x_l (B, d)."""
    return tf.nn.softmax(tf.matmul(x, self.gate_kernels[layer]), axis=-1)  # (B, K)

  def expert(self, x0, x, layer: int, index: int):
    """E_i(x_l) (B, d) of expert `index` in layer `layer`."""
    h = self.activation(tf.matmul(x, self.v_kernels[layer][index]))  # (B, r)
    h = self.activation(tf.matmul(h, self.c_kernels[layer][index], transpose_b=True))  # (B, r)
    h = tf.matmul(h, self.u_kernels[layer][index], transpose_b=True)  # (B, d)
    return x0 * (h + self.biases[layer])  # (B, d)

  def call(self, inputs):
    x0 = tf.convert_to_tensor(inputs)  # (B, d)
    x = x0
    k, r = self.num_experts, self.low_rank
    for l in range(self.num_layers):
      # All K experts at once (same math as `expert`, summed with `gates`):
      #   sum_i G_i x0 (.) (U^i h_i + b) = x0 (.) ([G_1 h_1 .. G_K h_K] [U^1 .. U^K]^T + b),
      # since the gates sum to 1. One (d, K r + K) matmul gives every V^i
      # projection and the gate logits; C acts per expert on the (B, K, r) view.
      v_and_gate = tf.concat(self.v_kernels[l] + [self.gate_kernels[l]], axis=1)  # (d, K r + K)
      h, logits = tf.split(tf.matmul(x, v_and_gate), [k * r, k], axis=1)  # (B, K r), (B, K)
      h = self.activation(h)
      if k == 1:
        h = self.activation(tf.matmul(h, self.c_kernels[l][0], transpose_b=True))  # (B, r)
        h = tf.matmul(h, self.u_kernels[l][0], transpose_b=True)  # (B, d)
      else:
        c = tf.stack(self.c_kernels[l], axis=0)  # (K, r, r)
        h = tf.reshape(h, (-1, k, r))  # (B, K, r)
        h = self.activation(tf.einsum("bki,kji->bkj", h, c))  # (B, K, r): h_i C^iT
        h = tf.reshape(h * tf.nn.softmax(logits, axis=-1)[:, :, tf.newaxis], (-1, k * r))  # (B, K r)
        u = tf.concat(self.u_kernels[l], axis=1)  # (d, K r)
        h = tf.matmul(h, u, transpose_b=True)  # (B, d)
      x = x0 * (h + self.biases[l]) + x  # (B, d)
    return x

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_layers": self.num_layers,
        "num_experts": self.num_experts,
        "low_rank": self.low_rank,
        "activation": tf.keras.activations.serialize(self.activation),
        "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
        "bias_initializer": tf.keras.initializers.serialize(self.bias_initializer),
        "kernel_regularizer": tf.keras.regularizers.serialize(self.kernel_regularizer),
    })
    return config
