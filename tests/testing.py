"""Shared test base: seeded, clean Keras session, tolerances, save/reload helpers."""

import os
import random
import tempfile
import unittest

import numpy as np

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf

from experiments import paths

# Real data lives in $CTR_ZOO_SHARED_DATA or ../shared/data (absent on a user's fresh machine).
PROJECT_ROOT = paths.REPO_ROOT
SHARED_DATA = paths.shared_data()
CRITEO_SAMPLE = paths.criteo_sample()
MOVIELENS_100K = paths.shared_data("movielens_100k")


def require_file(path: str) -> str:
  """Skips the calling test, naming the path, when real data is absent."""
  if not os.path.exists(path):
    raise unittest.SkipTest(f"real data not found at {path} (../shared/data is absent on this machine)")
  return path


class TestCase(tf.test.TestCase):
  """Base class: every test starts from a cleared Keras session and fixed seeds."""

  seed = 1234
  test_session = None  # tf.test.TestCase's deprecated helper is not a test for pytest

  def setUp(self):
    super().setUp()
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(self.seed)  # python, numpy and tf
    random.seed(self.seed)
    np.random.seed(self.seed)
    self.rng = np.random.default_rng(self.seed)

  def assertAllClose(self, a, b, rtol=1e-6, atol=1e-6, msg=None):  # pylint: disable=invalid-name
    """Explicit default tolerances (float32 math); pass looser ones on purpose."""
    super().assertAllClose(a, b, rtol=rtol, atol=atol, msg=msg)

  def make_temp_dir(self) -> str:
    return tempfile.mkdtemp(dir=self.get_temp_dir())

  def save_and_reload(self, model, fmt: str = "keras", save_traces: bool = True):
    """Saves `model` as `.keras` or SavedModel ("tf") and reloads it with plain load_model.

    No custom_objects are passed: registration in ctr_zoo must be enough.
    `save_traces=False` writes a SavedModel without the traced call functions
    of every layer (load_model rebuilds the layers from their configs either
    way, as the classes are registered); it applies to "tf" only.
    """
    directory = self.make_temp_dir()
    if fmt == "keras":
      path = os.path.join(directory, "model.keras")
      model.save(path)
    elif fmt in ("tf", "saved_model"):
      path = os.path.join(directory, "saved_model")
      model.save(path, save_format="tf", save_traces=save_traces)
    else:
      raise ValueError(f"fmt must be 'keras' or 'tf', got {fmt!r}")
    return tf.keras.models.load_model(path)

  def assertSameAfterReload(self, model, inputs, fmts=("keras", "tf"), atol=1e-6,  # pylint: disable=invalid-name
                             save_traces=True):
    """Saves and reloads in each format and checks the predictions are equal."""
    expected = model(inputs, training=False)
    for fmt in fmts:
      restored = self.save_and_reload(model, fmt, save_traces=save_traces)
      got = restored(inputs, training=False)
      self.assertAllClose(expected, got, rtol=0, atol=atol, msg=f"after {fmt} reload")
    return expected
