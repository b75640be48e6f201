"""FinalMLP's stream-specific feature selection: a learned gate in (0, 2) per input element."""

from typing import Any, Sequence

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import initializers
from ctr_zoo.layers import shapes
from ctr_zoo.serialization import register


@register
class FeatureGate(graph_layer.GraphLayer):
  """Gates the input of one MLP stream: out = x (.) 2 sigma(MLP_g(z)).

  z is the gate's context: the embeddings of chosen context features
  (flattened, (B, c)) when a second input is given, else one learned vector
  (1, c) shared by every example. MLP_g has ReLU hidden layers `hidden_dims`
  and a last linear layer of width d (the width of x); the gate 2 sigma(.)
  lies in (0, 2), so a gate near 1 passes an element unchanged, and each of
  the two streams of a FinalMLP learns to emphasise different inputs.

    h_0 = z;  h_k = ReLU(h_{k-1} A_k + a_k)  (k = 1..K);  g = 2 sigma(h_K A_o + a_o)  (B or 1, d)
    out = x (.) g                                                                       (B, d)

  Weights: "context" (1, context_dim) without a context input; per hidden
  layer k "kernel_{k}" and "bias_{k}"; "output_kernel" (h_K, d) and
  "output_bias" (d,).

  Args:
    hidden_dims: sequence of int. Hidden widths of MLP_g (may be empty).
      Defaults to (64,).
    context_dim: int. Width of the learned context vector when no context
      input is given. Defaults to 16.
    kernel_initializer: initializer of the kernels (cloned per kernel).
      Defaults to "glorot_uniform".
    context_initializer: initializer of the learned context vector. Defaults
      to RandomNormal(stddev=0.05) (zeros would leave the ReLU layers dead).

  Inputs: x (B, d), or [x (B, d), context (B, c)]. Output: (B, d).

  Example:
    >>> FeatureGate([8])(tf.ones((2, 5))).shape
    TensorShape([2, 5])

  Paper: K. Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR
  Prediction", AAAI'23 (arXiv 2304.00902), Eq. 4 (stream-specific feature
  selection).
  """

  def __init__(self,
               hidden_dims: Sequence[int] = (64,),
               context_dim: int = 16,
               kernel_initializer: Any = "glorot_uniform",
               context_initializer: Any = None,
               **kwargs):
    super().__init__(**kwargs)
    self.hidden_dims = list(checks.positive_ints(hidden_dims, "FeatureGate hidden_dims"))
    self.context_dim = checks.positive_int(context_dim, "FeatureGate context_dim")
    self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
    self.context_initializer = tf.keras.initializers.get(
        context_initializer or tf.keras.initializers.RandomNormal(stddev=0.05))

  def build(self, input_shape):
    with_context = isinstance(input_shape, (list, tuple)) and len(input_shape) == 2 and \
        isinstance(input_shape[0], (list, tuple, tf.TensorShape))
    x_shape = input_shape[0] if with_context else input_shape
    d = int(shapes.check_shape("FeatureGate", x_shape, "(batch, d)", 2)[-1])
    if with_context:
      width = int(shapes.check_shape("FeatureGate", input_shape[1], "(batch, c)", 2,
                                     what="context")[-1])
      self.context = None
    else:
      width = self.context_dim
      self.context = self.add_weight(name="context", shape=(1, width),
                                     initializer=self.context_initializer, trainable=True)
    self.kernels, self.biases = [], []
    for k, units in enumerate(self.hidden_dims):
      self.kernels.append(self.add_weight(
          name=f"kernel_{k}", shape=(width, units),
          initializer=initializers.clone_initializer(self.kernel_initializer, k), trainable=True))
      self.biases.append(self.add_weight(name=f"bias_{k}", shape=(units,), initializer="zeros",
                                         trainable=True))
      width = units
    self.output_kernel = self.add_weight(
        name="output_kernel", shape=(width, d),
        initializer=initializers.clone_initializer(self.kernel_initializer, len(self.hidden_dims)),
        trainable=True)
    self.output_bias = self.add_weight(name="output_bias", shape=(d,), initializer="zeros",
                                       trainable=True)
    super().build(input_shape)

  def gate(self, context=None):
    """2 sigma(MLP_g(z)): (B, d) from a context (B, c), or (1, d) from the learned vector."""
    h = self.context if context is None else tf.convert_to_tensor(context)
    for kernel, bias in zip(self.kernels, self.biases):
      h = tf.nn.relu(tf.matmul(h, kernel) + bias)
    return 2.0 * tf.sigmoid(tf.matmul(h, self.output_kernel) + self.output_bias)

  def call(self, inputs):
    if isinstance(inputs, (list, tuple)):
      x, context = inputs
      return tf.convert_to_tensor(x) * self.gate(context)  # (B, d)
    return tf.convert_to_tensor(inputs) * self.gate()  # (B, d) * (1, d)

  def compute_output_shape(self, input_shape):
    if isinstance(input_shape, (list, tuple)) and len(input_shape) == 2 and \
        isinstance(input_shape[0], (list, tuple, tf.TensorShape)):
      return tf.TensorShape(input_shape[0])
    return tf.TensorShape(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update({
        "hidden_dims": list(self.hidden_dims),
        "context_dim": self.context_dim,
        "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
        "context_initializer": tf.keras.initializers.serialize(self.context_initializer),
    })
    return config
