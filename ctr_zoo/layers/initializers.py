"""Per-weight initializer cloning, so that no two kernels share their values."""

from typing import Any

import tensorflow as tf


def clone_initializer(initializer: Any, index: int = 0) -> tf.keras.initializers.Initializer:
  """Returns a fresh copy of `initializer` for one weight.

  Keras 2 initializers without a seed return the same values each time the same
  instance is called, and a seeded initializer returns the same values for
  every copy. Either way, two kernels built from one initializer would be
  identical (a DCN-Mix mixture of identical experts collapses). The copy made
  here is a new instance; when the initializer has an integer seed, the copy's
  seed is `seed + index`, so weight `index` gets its own reproducible values.

  Args:
    initializer: str, dict or `tf.keras.initializers.Initializer`. Anything
      `tf.keras.initializers.get` accepts.
    index: int. Which weight this copy is for (offsets a fixed seed).
      Defaults to 0.

  Returns:
    A new initializer instance of the same class and configuration.
  """
  initializer = tf.keras.initializers.get(initializer)
  config = initializer.get_config()
  if config.get("seed") is not None:
    config = dict(config, seed=int(config["seed"]) + index)
  return initializer.__class__.from_config(config)

