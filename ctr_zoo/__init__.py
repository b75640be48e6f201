"""ctr_zoo: a click-through-rate model zoo in Keras (the Keras 2 API, tf-keras).

Importing this package selects Keras 2 for TensorFlow (``TF_USE_LEGACY_KERAS=1``)
before TensorFlow is imported, because tensorflow-recommenders refuses Keras 3.
Import ``ctr_zoo`` before ``tensorflow`` (or export ``TF_USE_LEGACY_KERAS=1``).
"""

import os
import sys

__version__ = "0.1.0"


def _select_keras_2() -> None:
  """Sets TF_USE_LEGACY_KERAS=1, or fails clearly if it is too late for that."""
  tf_module = sys.modules.get("tensorflow")
  if tf_module is not None and os.environ.get("TF_USE_LEGACY_KERAS") not in ("1", "true", "True"):
    # TensorFlow was imported first. tf.keras is resolved lazily, so this is
    # still fine if nothing has touched tf.keras yet; check what it resolves to.
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    keras_module = getattr(tf_module, "keras", None)
    name = getattr(keras_module, "__name__", "")
    if not name.startswith("tf_keras"):
      raise ImportError(
          "ctr_zoo needs the Keras 2 API (tf-keras), but TensorFlow was imported "
          f"before ctr_zoo and tf.keras is {name or 'unknown'!r} (Keras 3). "
          "Import ctr_zoo before tensorflow, or run with TF_USE_LEGACY_KERAS=1 "
          "in the environment (export TF_USE_LEGACY_KERAS=1).")
  os.environ["TF_USE_LEGACY_KERAS"] = "1"


_select_keras_2()

import tensorflow as tf  # noqa: E402  (must follow _select_keras_2)


def keras_version() -> str:
  """Returns the version of the Keras that ``tf.keras`` resolves to (2.x)."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  return tf_keras.__version__


# Importing the subpackages registers every layer, model and optimizer with
# Keras, so tf.keras.models.load_model needs no custom_objects.
from ctr_zoo import feature_columns  # noqa: E402,F401
from ctr_zoo import layers  # noqa: E402,F401
from ctr_zoo import optimizers  # noqa: E402,F401
from ctr_zoo import models  # noqa: E402,F401
