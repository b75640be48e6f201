"""GraphLayer: the zoo's layers run their `call` as written, without AutoGraph."""

import inspect

from tests import testing

import tensorflow as tf

from ctr_zoo import layers
from ctr_zoo.layers import graph_layer


class _PythonIf(tf.keras.layers.Layer):
  """Branches with a Python `if` on a tensor: only AutoGraph turns that into a graph branch."""

  def call(self, inputs):
    if tf.reduce_sum(inputs) > 0:
      return inputs
    return -inputs


class _PythonIfGraph(graph_layer.GraphLayer, _PythonIf):
  pass


class GraphLayerTest(testing.TestCase):

  def test_every_zoo_layer_is_a_graph_layer(self):
    classes = [c for c in vars(layers).values()
               if inspect.isclass(c) and issubclass(c, tf.keras.layers.Layer)]
    self.assertGreaterEqual(len(classes), 18)
    for cls in classes:
      self.assertTrue(issubclass(cls, graph_layer.GraphLayer), cls.__name__)

  def test_the_keras_hook_exists_and_turns_conversion_off(self):
    # The hook GraphLayer overrides; if tf_keras renames it, this fails (and layers would be
    # converted again: same values, slower builds and traces).
    self.assertTrue(hasattr(tf.keras.layers.Layer, "_should_use_autograph"))
    x = tf.keras.Input((3,))
    converted = _PythonIf()(x)  # AutoGraph makes the Python `if` a tf.cond
    self.assertEqual(converted.shape.as_list(), [None, 3])
    with self.assertRaises(TypeError):  # a symbolic tensor used as a Python bool
      _PythonIfGraph()(x)

  def test_values_match_in_eager_graph_and_functional_calls(self):
    layer = layers.CrossNet(num_layers=2)
    x = tf.random.stateless_normal((4, 6), seed=(1, 2))
    eager = layer(x)
    graph = tf.function(layer)(x)
    inp = tf.keras.Input((6,))
    functional = tf.keras.Model(inp, layer(inp))(x)
    self.assertAllClose(eager, graph)
    self.assertAllClose(eager, functional)


if __name__ == "__main__":
  tf.test.main()
