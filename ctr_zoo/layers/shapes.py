"""Input-shape checks shared by the layers: errors name the layer and the shape."""

from typing import Sequence

import tensorflow as tf


def check_shape(layer_name: str, shape, expected: str, rank: int,
                known_axes: Sequence[int] = (-1,), what: str = "input") -> tf.TensorShape:
  """Checks that `shape` has `rank` dimensions and that `known_axes` are known.

  Args:
    layer_name: str. Used in the error message.
    shape: anything `tf.TensorShape` accepts.
    expected: str. The expected layout for the message, e.g. "(batch, d)".
    rank: int. Required rank.
    known_axes: sequence of int. Axes whose size must be static. Defaults to (-1,).
    what: str. Which input, for the message. Defaults to "input".

  Returns:
    The shape as a `tf.TensorShape`.

  Raises:
    ValueError: naming the received shape.
  """
  shape = tf.TensorShape(shape)
  if shape.rank != rank or any(shape[a] is None for a in known_axes):
    raise ValueError(f"{layer_name} expects {what} of shape {expected} "
                     f"(rank {rank}, static sizes on axes {list(known_axes)}), got shape {shape}")
  return shape
