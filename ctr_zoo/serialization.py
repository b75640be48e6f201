"""One decorator that registers ctr_zoo's Keras objects for plain load_model."""

import tensorflow as tf

PACKAGE = "ctr_zoo"


def register(cls):
  """Registers a layer, model or optimizer class as ``ctr_zoo>ClassName``.

  After ``import ctr_zoo``, ``tf.keras.models.load_model`` finds every class
  registered here with no ``custom_objects``.
  """
  return tf.keras.utils.register_keras_serializable(package=PACKAGE)(cls)
