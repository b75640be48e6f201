"""Every registered model under precision="mixed_bfloat16": same numbers as float32 within
bfloat16 rounding, float32 variables and outputs, sparse float32 table gradients, reload."""

from absl.testing import parameterized
import numpy as np

from tests import testing
from tests import models_zoo_test as zoo_test

import ctr_zoo  # noqa: F401
import tensorflow as tf

from ctr_zoo import models
from ctr_zoo.models import base

NAMED = zoo_test.NAMED


class MixedPrecisionTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*NAMED)
  def test_matches_float32_and_keeps_float32_state(self, name):
    spec = zoo_test.spec_for(name)
    overrides = zoo_test.small_overrides(name)
    full = models.build(name, spec, precision="float32", **overrides)
    mixed = models.build(name, spec, precision="mixed_bfloat16", **overrides)
    # Building under a precision leaves the global policy as it was.
    self.assertEqual(tf.keras.mixed_precision.global_policy().name, "float32")
    self.assertEqual((full.precision, mixed.precision), ("float32", "mixed_bfloat16"))
    # Random weights (zero-initialised ones, e.g. lr's, would make every output equal).
    full.set_weights([w + self.rng.normal(0.0, 0.1, w.shape).astype(w.dtype)
                      for w in full.get_weights()])
    mixed.set_weights(full.get_weights())

    x, y = zoo_test.synthetic_task(spec, 256, self.rng)
    p32 = full(x, training=False).numpy()
    with tf.GradientTape() as tape:
      p16 = mixed(x, training=False)
      loss = tf.reduce_mean(tf.keras.losses.binary_crossentropy(y[:, None], p16))
      if mixed.losses:
        loss += tf.add_n([tf.cast(l, tf.float32) for l in mixed.losses])
    self.assertEqual(p16.dtype, tf.float32)
    self.assertEqual(mixed.get_layer("logit").output.dtype, tf.float32)
    # Some layer really computes in bfloat16 (else the policy did nothing).
    self.assertTrue(any(l.compute_dtype == "bfloat16" for l in mixed.layers))
    # bfloat16 keeps 8 mantissa bits: about 0.4% per rounding, a few roundings deep.
    self.assertAllClose(p16, p32, rtol=0.0, atol=0.03)
    self.assertGreater(np.corrcoef(p16.numpy()[:, 0], p32[:, 0])[0, 1], 0.98)
    self.assertNotAllClose(p16, p32, rtol=0.0, atol=1e-7)  # it is not float32 in disguise

    self.assertTrue(all(v.dtype == tf.float32 for v in mixed.trainable_variables))
    grads = tape.gradient(loss, mixed.embedding_variables)
    for v, g in zip(mixed.embedding_variables, grads):
      if g is not None:
        self.assertIsInstance(g, tf.IndexedSlices, v.name)
        self.assertEqual(g.values.dtype, tf.float32, v.name)

  @parameterized.named_parameters(("dcn_v2", "dcn_v2"), ("deepfm", "deepfm"))
  def test_trains_and_reloads_in_the_same_precision(self, name):
    spec = zoo_test.spec_for(name)
    model = models.build(name, spec, precision="mixed_bfloat16",
                         **zoo_test.small_overrides(name))
    x, y = zoo_test.synthetic_task(spec, 2048, self.rng)
    before = zoo_test.full_loss(model, x, y)
    zoo_test.train(model, x, y, steps=50, rng=self.rng)
    after = zoo_test.full_loss(model, x, y)
    self.assertLess(after, before - 0.01, f"{name}: loss {before:.4f} -> {after:.4f}")
    probe = {k: v[:zoo_test.BATCH] for k, v in x.items()}
    expected = model(probe, training=False).numpy()
    for fmt in ("keras", "tf"):
      reloaded = self.save_and_reload(model, fmt)
      self.assertEqual(reloaded.get_config()["precision"], "mixed_bfloat16", fmt)
      self.assertAllClose(reloaded(probe, training=False), expected, rtol=0, atol=1e-6)

  def test_rejects_unknown_precision(self):
    with self.assertRaisesRegex(base.ModelConfigError, "precision must be one of"):
      models.build("lr", zoo_test.small_criteo_spec(), precision="mixed_float16")

  def test_global_policy_is_used_when_precision_is_none(self):
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
      model = models.build("dnn", zoo_test.small_criteo_spec(), **zoo_test.small_overrides("dnn"))
    finally:
      tf.keras.mixed_precision.set_global_policy("float32")
    self.assertEqual(model.precision, "mixed_bfloat16")
    self.assertEqual(model.get_config()["precision"], "mixed_bfloat16")


if __name__ == "__main__":
  tf.test.main()
