"""The base class of the zoo's layers: `call` runs as written, without AutoGraph.

tf.keras converts a user-defined layer's `call` with AutoGraph each time the
layer is called symbolically (every functional model construction) or traced
into a graph (train, evaluate and export functions), so that Python `if`s and
loops over tensors become graph control flow. The zoo's layers have no such
control flow: their Python branches and loops are over configuration and
static shapes, and tensor-valued choices are written with tf ops. The
conversion only re-parsed their source (and that of every function they
call) for each model built and each function traced; `GraphLayer` turns it
off through tf_keras's per-layer hook (`Layer._should_use_autograph`). Where
that hook is absent (another Keras), layers are converted as before, which
computes the same values.
"""

import tensorflow as tf


class GraphLayer(tf.keras.layers.Layer):
  """A `tf.keras.layers.Layer` whose `call` Keras runs without AutoGraph conversion.

  A subclass's `call` must express tensor-dependent choices with tf ops
  (`tf.where`, `tf.cond`, ...), not Python `if`/`while` on tensors.
  """

  def _should_use_autograph(self):  # tf_keras engine/base_layer.py's hook
    return False
