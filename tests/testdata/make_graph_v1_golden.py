"""Writes tests/testdata/deepfm_graph_v1.{keras,npz} with the ctr_zoo of the current checkout.

The committed files were written at commit 1ef5cf2 (graph version 1, before
NumericFieldDense and FM field groups):
  git worktree add /tmp/v1 1ef5cf2 && cd /tmp/v1 && PYTHONPATH=. python <this file> <testdata dir>
"""
import os, sys
import numpy as np
import ctr_zoo  # noqa: F401
import tensorflow as tf
from tests.models_zoo_test import random_inputs, small_criteo_spec, small_overrides
from ctr_zoo import models
out = sys.argv[1]
tf.keras.utils.set_random_seed(7)
spec = small_criteo_spec()
x = {k: np.asarray(v) for k, v in random_inputs(spec, 8, np.random.default_rng(7)).items()}
model = models.build("deepfm", spec, **small_overrides("deepfm"))
probs = model({k: tf.constant(v, spec.input_dtype(spec[k])) for k, v in x.items()}, training=False)
model.save(os.path.join(out, "deepfm_graph_v1.keras"))
np.savez(os.path.join(out, "deepfm_graph_v1.npz"), probability=probs.numpy(),
         **{f"input/{k}": v for k, v in x.items()})
print("wrote", out)
