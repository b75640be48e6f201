"""A saved `.keras` model loads in a new process with only `import ctr_zoo` (no custom_objects)."""

import json
import os
import subprocess
import sys

import numpy as np

from tests import testing
from tests import models_zoo_test

import ctr_zoo  # noqa: F401
import tensorflow as tf

from ctr_zoo import models

_LOADER = r"""
import json, sys
import numpy as np
import ctr_zoo  # registers ctr_zoo's layers and models; nothing else is passed
import tensorflow as tf
inputs_path, paths = sys.argv[1], sys.argv[2:]
inputs = {k: np.asarray(v) for k, v in np.load(inputs_path).items()}
out = {}
for path in paths:
  model = tf.keras.models.load_model(path)
  out[path] = model(inputs, training=False).numpy().ravel().tolist()
print(json.dumps(out))
"""


class FreshProcessLoadTest(testing.TestCase):

  def test_every_model_loads_in_a_fresh_process(self):
    spec = models_zoo_test.small_criteo_spec()
    directory = self.make_temp_dir()
    inputs = {}
    for f in spec.features:
      if spec.input_dtype(f) == tf.int64:
        inputs[f.name] = self.rng.integers(0, spec.num_ids(f.name), size=(8,) + spec.input_shape(f))
      else:
        inputs[f.name] = self.rng.normal(size=(8,)).astype(np.float32)
    inputs_path = os.path.join(directory, "inputs.npz")
    np.savez(inputs_path, **inputs)
    expected = {}
    for name in models.names():
      if name == "can":
        continue  # needs a sequence spec for its default pairs; covered in models_zoo_test
      model = models.build(name, spec, **models_zoo_test.small_overrides(name))
      path = os.path.join(directory, f"{name}.keras")
      model.save(path)
      expected[name] = (path, model(inputs, training=False).numpy().ravel())
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)  # ctr_zoo must set it itself
    paths = [path for path, _ in expected.values()]
    proc = subprocess.run([sys.executable, "-c", _LOADER, inputs_path] + paths, env=env,
                          capture_output=True, text=True, timeout=600)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    self.assertEqual(sorted(got), sorted(paths))
    for name, (path, want) in expected.items():
      self.assertAllClose(want, np.asarray(got[path]), rtol=0, atol=1e-6, msg=name)
