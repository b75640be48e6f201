"""Files saved by earlier ctr_zoo versions still load, and every graph version computes the same."""

import json
import os

from absl.testing import parameterized
import numpy as np

from tests import testing
from tests.models_zoo_test import random_inputs, small_criteo_spec, small_overrides

import ctr_zoo  # noqa: F401
import tensorflow as tf

from ctr_zoo import models
from ctr_zoo.layers import mlp as mlp_lib
from ctr_zoo.models import base

TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata")
GOLDEN = os.path.join(TESTDATA, "golden_0dd960b")
FIELD_MODELS = ("deepfm", "fm", "xdeepfm", "autoint")


def as_tensors(spec, x):
  return {k: tf.constant(v, spec.input_dtype(spec[k])) for k, v in x.items()}


def golden_manifest():
  with open(os.path.join(GOLDEN, "manifest.json")) as fh:
    return json.load(fh)


class SavedBeforeTheAssemblyTest(testing.TestCase, parameterized.TestCase):
  """Files written at 0dd960b (flat configs, hand-built graphs) load and predict the same."""

  @parameterized.named_parameters(*[(n, n) for n in sorted(golden_manifest())])
  def test_keras_file_loads_with_the_same_layers_and_predictions(self, name):
    entry = golden_manifest()[name]
    data = np.load(os.path.join(GOLDEN, f"{name}.npz"))
    model = tf.keras.models.load_model(os.path.join(GOLDEN, f"{name}.keras"))
    self.assertEqual([[l.name, type(l).__name__] for l in model.layers], entry["layers"])
    self.assertEqual([[w.name, list(w.shape)] for w in model.weights], entry["weights"])
    x = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("input/")}
    got = model(as_tensors(model.spec, x), training=False)
    self.assertAllClose(got, data["probability"], rtol=0, atol=1e-6)
    # The same config today builds the same graph (nested sections from the flat names).
    fresh = models.get(name)(model.spec, entry["config"], graph_version=model.graph_version)
    self.assertEqual([[l.name, type(l).__name__] for l in fresh.layers], entry["layers"])

  @parameterized.named_parameters(("dcn_v2", "dcn_v2"), ("deepfm", "deepfm"))
  def test_saved_model_loads_and_predicts_the_same(self, name):
    data = np.load(os.path.join(GOLDEN, f"{name}.npz"))
    model = tf.keras.models.load_model(os.path.join(GOLDEN, f"{name}_savedmodel"))
    x = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("input/")}
    got = model(as_tensors(model.spec, x), training=False)
    self.assertAllClose(got, data["probability"], rtol=0, atol=1e-6)


class GraphVersionTest(testing.TestCase):

  def test_a_deepfm_keras_file_from_graph_version_1_loads_and_predicts_the_same(self):
    # Written at commit 1ef5cf2 by tests/testdata/make_graph_v1_golden.py.
    data = np.load(os.path.join(TESTDATA, "deepfm_graph_v1.npz"))
    model = tf.keras.models.load_model(os.path.join(TESTDATA, "deepfm_graph_v1.keras"))
    self.assertEqual(model.graph_version, 1)
    self.assertIn("fields", [l.name for l in model.layers])  # the layout it was saved with
    x = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("input/")}
    got = model(as_tensors(model.spec, x), training=False)
    self.assertAllClose(got, data["probability"], rtol=0, atol=1e-6)

  def test_get_config_records_the_version_and_old_configs_mean_version_1(self):
    spec = small_criteo_spec()
    model = models.build("deepfm", spec, **small_overrides("deepfm"))
    config = model.get_config()
    self.assertEqual(config["graph_version"], base.GRAPH_VERSION)
    self.assertEqual(type(model).from_config(config).graph_version, base.GRAPH_VERSION)
    del config["graph_version"]
    old = type(model).from_config(config)
    self.assertEqual(old.graph_version, 1)
    self.assertIsInstance(old.get_layer("dnn").dense_layers[0], tf.keras.layers.Dense)
    with self.assertRaisesRegex(base.ModelConfigError, r"graph_version must be one of \(1, 2\), got 3"):
      type(model).from_config(dict(config, graph_version=3))
    # The version is an argument of the model, not process state: a new model is version 2.
    self.assertEqual(models.build("deepfm", spec, **small_overrides("deepfm")).graph_version,
                     base.GRAPH_VERSION)

  def test_versions_share_variables_and_compute_the_same(self):
    spec = small_criteo_spec()
    x = as_tensors(spec, random_inputs(spec, 16, self.rng))
    for name in FIELD_MODELS:
      new = models.build(name, spec, **small_overrides(name))
      old = models.get(name)(spec, small_overrides(name), graph_version=1)
      self.assertEqual(old.graph_version, 1, name)
      self.assertEqual([(v.name, v.shape) for v in old.weights],
                       [(v.name, v.shape) for v in new.weights], name)
      new.set_weights(old.get_weights())
      self.assertAllClose(new(x, training=False), old(x, training=False), rtol=1e-5, atol=1e-6,
                          msg=name)
      if name in ("deepfm", "xdeepfm", "autoint"):
        self.assertIsInstance(new.get_layer("dnn").dense_layers[0], mlp_lib.NumericFieldDense)
      self.assertSameAfterReload(old, {k: v.numpy() for k, v in x.items()})


if __name__ == "__main__":
  tf.test.main()
