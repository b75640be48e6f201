"""Matmul FLOPs of a model, counted from its own traced forward graph.

The FLOP count of a benchmarked model is derived from the model itself, so
there is one description of every architecture (the model's code), not a
second hand-written formula per model. The forward pass is traced with
`tf.function` at a known batch size, every op of the graph is visited (and the
graphs of any functions it calls), and the FLOPs of the matmul-like ops are
summed from their static shapes:

- MatMul (M, K) @ (K, N), transposes as the op says:    2 M K N
- BatchMatMul(V2/V3) (..., M, K) @ (..., K, N):         2 batch M K N
  (batch = the broadcast product of the leading dimensions)
- Einsum of two operands:                               2 prod(all index sizes)
  (one multiply and one add per term of every output element; with no
  summed index it is an element-wise product: prod(all index sizes))
- Conv1D/2D/3D (as Conv2D / Conv3D ops):                2 prod(output) prod(filter[:-1])
- DepthwiseConv2dNative:                                2 prod(output) kh kw

Element-wise work (activations, Hadamard products, the FM sum of squares,
the optimizer) is not counted: the roofline it is compared with is a matmul
rate.

Per example: the graph is traced at two batch sizes B1 < B2 and
F = (F(B2) - F(B1)) / (B2 - B1), which leaves out the work done once per batch
whatever its size (e.g. DeepFM's numeric-field matrix V (.) K formed once per
batch). Training FLOPs per example are 3 F: the backward pass costs two
matmuls per forward matmul (the gradient with respect to each operand).
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf

MATMUL_OPS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "Conv2D",
              "Conv3D", "DepthwiseConv2dNative")
# Ops that call a function of the graph's library; its body is counted too.
_CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")
# Control-flow ops: their bodies would run a data-dependent number of times.
_CONTROL_FLOW_OPS = ("While", "StatelessWhile", "If", "StatelessIf", "Case", "StatelessCase")


class FlopCountError(ValueError):
  """The graph has a matmul whose shape is not static, or control flow that cannot be counted."""


def _static(op, index: int) -> List[int]:
  shape = op.inputs[index].shape
  if shape.rank is None or any(d is None for d in shape.as_list()):
    raise FlopCountError(f"{op.type} op {op.name!r}: input {index} has a non-static shape "
                         f"{shape}; trace the model with a fixed batch size")
  return shape.as_list()


def _output_static(op) -> List[int]:
  shape = op.outputs[0].shape
  if shape.rank is None or any(d is None for d in shape.as_list()):
    raise FlopCountError(f"{op.type} op {op.name!r}: output has a non-static shape {shape}")
  return shape.as_list()


def _prod(values: Iterable[int]) -> int:
  out = 1
  for v in values:
    out *= int(v)
  return out


def _einsum_flops(op) -> int:
  equation = op.get_attr("equation")
  equation = equation.decode() if isinstance(equation, bytes) else equation
  if len(op.inputs) != 2:
    return 0  # a one-operand einsum (a transpose or a sum) multiplies nothing
  lhs, out = equation.replace(" ", "").split("->")
  terms = lhs.split(",")
  if any("." in t for t in terms + [out]):
    raise FlopCountError(f"Einsum op {op.name!r}: ellipsis equations are not counted "
                         f"({equation!r})")
  sizes: Dict[str, int] = {}
  for i, term in enumerate(terms):
    shape = _static(op, i)
    if len(term) != len(shape):
      raise FlopCountError(f"Einsum op {op.name!r}: term {term!r} does not match shape {shape}")
    for letter, size in zip(term, shape):
      # A broadcast dimension of 1 takes the other operand's size.
      sizes[letter] = max(sizes.get(letter, 1), size)
  terms_product = _prod(sizes.values())
  summed = set("".join(terms)) - set(out)
  return 2 * terms_product if summed else terms_product


def op_flops(op) -> int:
  """FLOPs of one matmul-like op from its static shapes; 0 for any other op type.

  Raises:
    FlopCountError: a matmul-like op with a non-static shape.
  """
  kind = op.type
  if kind == "MatMul":
    a, b = _static(op, 0), _static(op, 1)
    m, k = (a[1], a[0]) if op.get_attr("transpose_a") else (a[0], a[1])
    n = b[0] if op.get_attr("transpose_b") else b[1]
    return 2 * m * k * n
  if kind in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
    a, b = _static(op, 0), _static(op, 1)
    m, k = (a[-1], a[-2]) if op.get_attr("adj_x") else (a[-2], a[-1])
    n = b[-2] if op.get_attr("adj_y") else b[-1]
    lead_a, lead_b = a[:-2], b[:-2]
    width = max(len(lead_a), len(lead_b))
    lead_a = [1] * (width - len(lead_a)) + lead_a
    lead_b = [1] * (width - len(lead_b)) + lead_b
    batch = _prod(max(x, y) for x, y in zip(lead_a, lead_b))
    return 2 * batch * m * k * n
  if kind == "Einsum":
    return _einsum_flops(op)
  if kind in ("Conv2D", "Conv3D"):
    filt = _static(op, 1)  # (kh, kw, in / groups, out) or (kd, kh, kw, in / groups, out)
    return 2 * _prod(_output_static(op)) * _prod(filt[:-1])
  if kind == "DepthwiseConv2dNative":
    filt = _static(op, 1)  # (kh, kw, in, multiplier)
    return 2 * _prod(_output_static(op)) * filt[0] * filt[1]
  return 0


def _called_graph(graph, op):
  """The FuncGraph of the function a call op runs."""
  name = op.get_attr("f").name
  fn = graph._get_function(name)  # pylint: disable=protected-access
  body = getattr(fn, "graph", None)
  if body is None:
    raise FlopCountError(f"{op.type} op {op.name!r}: cannot read the graph of function {name!r}")
  return body


def graph_matmul_flops(graph, breakdown: Optional[Dict[str, int]] = None) -> int:
  """The matmul FLOPs of every op of `graph` (and of the functions it calls).

  Args:
    graph: a tf.Graph / FuncGraph (e.g. `concrete_function.graph`).
    breakdown: dict or None. If given, op type -> FLOPs is added to it.

  Raises:
    FlopCountError: a matmul with a non-static shape, or control flow (while,
      cond), whose number of matmuls the graph does not fix.
  """
  total = 0
  for op in graph.get_operations():
    if op.type in _CALL_OPS:
      total += graph_matmul_flops(_called_graph(graph, op), breakdown)
      continue
    if op.type in _CONTROL_FLOW_OPS:
      raise FlopCountError(f"{op.type} op {op.name!r}: FLOPs inside control flow are not counted")
    flops = op_flops(op)
    if flops and breakdown is not None:
      breakdown[op.type] = breakdown.get(op.type, 0) + flops
    total += flops
  return total


def forward_graph(call: Callable, inputs) -> "tf.Graph":
  """The graph of `call(inputs)` traced by tf.function at the inputs' static shapes."""
  return tf.function(call).get_concrete_function(inputs).graph


def forward_matmul_flops(call: Callable, inputs_of_batch: Callable[[int], object],
                         batch_sizes: Tuple[int, int] = (2, 4)) -> int:
  """Forward matmul FLOPs per example of `call`, counted from its traced graph.

  F = (F(B2) - F(B1)) / (B2 - B1) over the graphs traced at `batch_sizes`.

  Args:
    call: callable. The forward pass, e.g. `lambda x: model(x, training=False)`.
    inputs_of_batch: callable. Batch size -> the inputs `call` takes (tensors or
      arrays with that leading dimension).
    batch_sizes: (B1, B2), B1 < B2. Defaults to (2, 4).

  Returns:
    int. Matmul FLOPs per example (one multiply and one add per term).

  Raises:
    FlopCountError: see `graph_matmul_flops`; also when the count does not
      grow by a whole number of FLOPs per example.
  """
  b1, b2 = batch_sizes
  if not 0 < b1 < b2:
    raise ValueError(f"batch_sizes must be (B1, B2) with 0 < B1 < B2, got {batch_sizes!r}")
  f1 = graph_matmul_flops(forward_graph(call, inputs_of_batch(b1)))
  f2 = graph_matmul_flops(forward_graph(call, inputs_of_batch(b2)))
  per_example, remainder = divmod(f2 - f1, b2 - b1)
  if remainder or per_example < 0:
    raise FlopCountError(f"matmul FLOPs are not linear in the batch size: {f1} at batch {b1}, "
                         f"{f2} at batch {b2}")
  return per_example


def train_flops_per_example(forward_flops: float) -> float:
  """Training FLOPs per example: 3x the forward matmul FLOPs (forward + 2 backward)."""
  return 3 * forward_flops


def dtype_share(graph, dtype: tf.DType) -> Tuple[int, int]:
  """(matmul FLOPs computed in `dtype`, all matmul FLOPs) of `graph`'s own ops.

  How much of a model's matmul work a precision policy actually moved to
  `dtype` (the dtype of each op's output).
  """
  in_dtype = total = 0
  for op in graph.get_operations():
    if op.type in _CALL_OPS:
      a, b = dtype_share(_called_graph(graph, op), dtype)
      in_dtype, total = in_dtype + a, total + b
      continue
    flops = op_flops(op) if op.type in MATMUL_OPS else 0
    total += flops
    if flops and op.outputs[0].dtype == dtype:
      in_dtype += flops
  return in_dtype, total


def keras_forward(model) -> Callable:
  """The inference-mode forward pass of a Keras model, for `forward_matmul_flops`."""
  return lambda inputs: model(inputs, training=False)


def batch_of(arrays: Mapping[str, object], batch_size: int) -> Dict[str, tf.Tensor]:
  """The first `batch_size` rows of each array of `arrays`, as tensors."""
  return {k: tf.constant(v[:batch_size]) for k, v in arrays.items()}

