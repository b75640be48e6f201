"""Every public layer of ctr_zoo.layers is registered as "ctr_zoo>ClassName"."""

from tests import testing
import tensorflow as tf

from ctr_zoo import layers


class LayersRegistryTest(testing.TestCase):

  def test_every_exported_layer_is_registered(self):
    classes = [getattr(layers, name) for name in layers.__all__
               if isinstance(getattr(layers, name), type)]
    self.assertLen(classes, 13)
    for cls in classes:
      self.assertTrue(issubclass(cls, tf.keras.layers.Layer), cls)
      self.assertIs(tf.keras.utils.get_registered_object(f"ctr_zoo>{cls.__name__}"), cls)
      self.assertEqual(tf.keras.utils.get_registered_name(cls), f"ctr_zoo>{cls.__name__}")


if __name__ == "__main__":
  tf.test.main()
