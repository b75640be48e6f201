"""Every public layer of ctr_zoo.layers is registered as "ctr_zoo>ClassName"."""

from tests import testing
import tensorflow as tf

from ctr_zoo import layers


class LayersRegistryTest(testing.TestCase):

  def test_every_exported_layer_is_registered(self):
    classes = [getattr(layers, name) for name in layers.__all__
               if isinstance(getattr(layers, name), type)]
    self.assertEqual([c.__name__ for c in classes if not issubclass(c, tf.keras.layers.Layer)],
                     ["TowerConfig"])  # the tower's config, a dataclass
    classes = [c for c in classes if issubclass(c, tf.keras.layers.Layer)]
    self.assertLen(classes, 20)
    for cls in classes:
      self.assertIs(tf.keras.utils.get_registered_object(f"ctr_zoo>{cls.__name__}"), cls)
      self.assertEqual(tf.keras.utils.get_registered_name(cls), f"ctr_zoo>{cls.__name__}")


if __name__ == "__main__":
  tf.test.main()
