"""Writes, for every registered model: <name>.keras, <name>_savedmodel/, <name>.npz, manifest.json.

The committed files in this folder were written at commit 0dd960b (before the
models were assembled from ctr_zoo.models.parts and their configs nested):
  git worktree add /tmp/old 0dd960b && cd /tmp/old && PYTHONPATH=. python <this file> <out dir>
Only the .keras files of every model and the SavedModels of dcn_v2 and deepfm are kept.
"""
import json, os, sys
import numpy as np
import ctr_zoo  # noqa
import tensorflow as tf
from tests.models_zoo_test import random_inputs, small_overrides, spec_for
from ctr_zoo import models
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
manifest = {}
for name in models.names():
  tf.keras.backend.clear_session()
  tf.keras.utils.set_random_seed(11)
  spec = spec_for(name)
  model = models.build(name, spec, **small_overrides(name))
  x = {k: np.asarray(v) for k, v in random_inputs(spec, 8, np.random.default_rng(7)).items()}
  probs = model({k: tf.constant(v, spec.input_dtype(spec[k])) for k, v in x.items()}, training=False).numpy()
  model.save(os.path.join(out, f"{name}.keras"))
  model.save(os.path.join(out, f"{name}_savedmodel"), save_format="tf")
  np.savez(os.path.join(out, f"{name}.npz"), probability=probs, **{f"input/{k}": v for k, v in x.items()})
  manifest[name] = {
      "layers": [[l.name, type(l).__name__] for l in model.layers],
      "weights": [[w.name, list(w.shape)] for w in model.weights],
      "config": model.get_config()["config"],
      "fresh_probability_sum": float(probs.sum()),
  }
  print(name, os.path.getsize(os.path.join(out, f"{name}.keras")))
with open(os.path.join(out, "manifest.json"), "w") as fh:
  json.dump(manifest, fh, indent=1)
