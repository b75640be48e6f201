"""The package selects Keras 2 and refuses a Keras 3 tf.keras with a clear message."""

import os
import subprocess
import sys

from tests import testing

import ctr_zoo
import tensorflow as tf


class FoundationTest(testing.TestCase):

  def test_tf_keras_is_keras_2(self):
    # What tf.keras resolves to (its module object may be a lazy alias once other
    # packages have imported `tensorflow.keras`): its classes come from tf_keras.
    self.assertTrue(tf.keras.layers.Layer.__module__.startswith("tf_keras"),
                    tf.keras.layers.Layer.__module__)
    self.assertTrue(tf.keras.Model.__module__.startswith("tf_keras"), tf.keras.Model.__module__)
    self.assertTrue(ctr_zoo.keras_version().startswith("2."), ctr_zoo.keras_version())
    self.assertEqual(os.environ["TF_USE_LEGACY_KERAS"], "1")

  def test_version(self):
    self.assertRegex(ctr_zoo.__version__, r"^\d+\.\d+\.\d+")

  def test_refuses_keras_3_imported_first(self):
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    code = "import tensorflow as tf; tf.keras.layers; import ctr_zoo"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    self.assertNotEqual(proc.returncode, 0)
    self.assertIn("Import ctr_zoo before tensorflow", proc.stderr)
    self.assertIn("TF_USE_LEGACY_KERAS=1", proc.stderr)

  def test_import_order_ctr_zoo_first_in_fresh_process(self):
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    code = "import ctr_zoo, tensorflow as tf; print(tf.keras.__name__)"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertTrue(proc.stdout.strip().startswith("tf_keras"), proc.stdout)


if __name__ == "__main__":
  tf.test.main()
