"""LazyAdam: NumPy lazy Adam on touched rows, legacy Keras Adam when all rows are touched, save/reload."""

from unittest import mock

from absl.testing import parameterized
import numpy as np

from tests import testing

import tensorflow as tf

from ctr_zoo.optimizers import lazy_adam
from ctr_zoo.optimizers import registry
from ctr_zoo.optimizers import sparse_rows

legacy = tf.keras.optimizers.legacy


def numpy_lazy_adam(w0, steps, lr, beta_1=0.9, beta_2=0.999, eps=1e-7):
  """Lazy Adam in float64 over `steps` [(ids, grads (n, d))]; returns (w, m, v) of the whole table.

  Repeated ids have their gradients summed; at step t (1-based) each touched
  row r gets m_r = b1 m_r + (1 - b1) g_r, v_r = b2 v_r + (1 - b2) g_r^2,
  w_r -= lr sqrt(1 - b2^t) / (1 - b1^t) m_r / (sqrt(v_r) + eps); other rows
  are left alone. beta_1 and beta_2 are taken as the optimizer holds them
  (float32 hyperparameters: 1 - float32(0.999) is 1.3e-5 off 0.001).
  """
  beta_1, beta_2 = float(np.float32(beta_1)), float(np.float32(beta_2))
  w = np.array(w0, np.float64)
  m, v = np.zeros_like(w), np.zeros_like(w)
  for t, (ids, grads) in enumerate(steps, start=1):
    g = {}
    for i, row in zip(ids, np.asarray(grads, np.float64)):
      g[int(i)] = g.get(int(i), 0.0) + row
    lr_t = lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    for r, g_r in g.items():
      m[r] = beta_1 * m[r] + (1 - beta_1) * g_r
      v[r] = beta_2 * v[r] + (1 - beta_2) * g_r * g_r
      w[r] = w[r] - lr_t * m[r] / (np.sqrt(v[r]) + eps)
  return w, m, v


class LazyAdamTest(testing.TestCase, parameterized.TestCase):

  def _run(self, opt, table0, steps, use_function=False):
    """Applies [(ids, grads)] as IndexedSlices; returns (w, m, v) as NumPy."""
    var = tf.Variable(table0, name="embedding/table")
    shape = tf.constant(table0.shape, tf.int64)

    def apply(values, ids):
      opt.apply_gradients([(tf.IndexedSlices(values, ids, shape), var)])

    step = tf.function(apply) if use_function else apply
    for ids, grads in steps:
      step(tf.constant(grads, tf.float32), tf.constant(ids, tf.int64))
    return var.numpy(), opt.get_slot(var, "m").numpy(), opt.get_slot(var, "v").numpy()

  @parameterized.named_parameters(("eager", False), ("function", True))
  def test_matches_numpy_with_duplicates_untouched_rows_bit_identical(self, use_function):
    vocab, dim = 40, 4
    table0 = self.rng.normal(size=(vocab, dim)).astype(np.float32)
    # ids from rows 0..14 only (with repeats); rows 15.. are never touched.
    steps = [(self.rng.integers(0, 15, 12), self.rng.normal(size=(12, dim)).astype(np.float32)) for _ in range(5)]
    self.assertTrue(any(len(np.unique(ids)) < len(ids) for ids, _ in steps))  # duplicates present
    got_w, got_m, got_v = self._run(lazy_adam.LazyAdam(0.05), table0, steps, use_function)
    want_w, want_m, want_v = numpy_lazy_adam(table0, steps, lr=0.05)
    touched = np.unique(np.concatenate([ids for ids, _ in steps]))
    self.assertAllClose(got_w[touched], want_w[touched], rtol=1e-5, atol=1e-6)
    self.assertAllClose(got_m[touched], want_m[touched], rtol=1e-5, atol=1e-7)
    self.assertAllClose(got_v[touched], want_v[touched], rtol=1e-5, atol=1e-9)
    self.assertFalse(np.allclose(got_w[touched], table0[touched]))
    untouched = np.setdiff1d(np.arange(vocab), touched)
    self.assertGreater(len(untouched), 0)
    np.testing.assert_array_equal(got_w[untouched], table0[untouched])
    np.testing.assert_array_equal(got_m[untouched], np.zeros((len(untouched), dim), np.float32))
    np.testing.assert_array_equal(got_v[untouched], np.zeros((len(untouched), dim), np.float32))

  @parameterized.named_parameters(("eager", False), ("function", True))
  def test_equals_keras_adam_when_every_row_is_touched(self, use_function):
    vocab, dim = 25, 3
    table0 = self.rng.normal(size=(vocab, dim)).astype(np.float32)
    steps = [(self.rng.permutation(vocab), self.rng.normal(size=(vocab, dim)).astype(np.float32)) for _ in range(5)]
    ours = self._run(lazy_adam.LazyAdam(0.02), table0, steps, use_function)
    ref = self._run(legacy.Adam(0.02), table0, steps, use_function)
    for name, got, want in zip("wmv", ours, ref):
      self.assertAllClose(got, want, rtol=1e-6, atol=1e-7, msg=name)
    self.assertFalse(np.allclose(ours[0], table0))

  def test_skipped_row_decays_its_moments_only_when_touched(self):
    # Row 0 is in steps 1 and 3, not 2; row 1 is in every step.
    dim, b1, b2 = 2, float(np.float32(0.9)), float(np.float32(0.999))  # as the float32 hyperparameters
    table0 = self.rng.normal(size=(6, dim)).astype(np.float32)
    g = self.rng.normal(size=(3, dim)).astype(np.float32)
    steps = [(np.array([0, 1]), np.stack([g[0], g[0]])), (np.array([1]), g[1:2]),
             (np.array([0, 1]), np.stack([g[2], g[2]]))]
    w, m, v = self._run(lazy_adam.LazyAdam(0.1, beta_1=b1, beta_2=b2), table0, steps)
    g0, g2 = g[0].astype(np.float64), g[2].astype(np.float64)
    # m, v of row 0: one decay between its two steps (Keras Adam: two).
    self.assertAllClose(m[0], b1 * (1 - b1) * g0 + (1 - b1) * g2, rtol=1e-5, atol=1e-7)
    self.assertAllClose(v[0], b2 * (1 - b2) * g0 ** 2 + (1 - b2) * g2 ** 2, rtol=1e-5, atol=1e-9)
    want_w, _, _ = numpy_lazy_adam(table0, steps, lr=0.1, beta_1=b1, beta_2=b2)
    self.assertAllClose(w, want_w, rtol=1e-5, atol=1e-6)
    ref_w, ref_m, ref_v = self._run(legacy.Adam(0.1, beta_1=b1, beta_2=b2), table0, steps)
    self.assertAllClose(ref_m[0], b1 ** 2 * (1 - b1) * g0 + (1 - b1) * g2, rtol=1e-5, atol=1e-7)
    self.assertFalse(np.allclose(m[0], ref_m[0], rtol=1e-3, atol=0))
    self.assertFalse(np.allclose(v[0], ref_v[0], rtol=1e-4, atol=0))
    self.assertFalse(np.allclose(w[0], ref_w[0], rtol=1e-4, atol=0))
    # Row 1, touched at every step, gets Keras' update; rows 2.. (never touched) stay put in both.
    self.assertAllClose(w[1], ref_w[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(w[2:], table0[2:])

  @parameterized.named_parameters(("eager", False), ("function", True))
  def test_dense_gradient_is_keras_adam_bit_for_bit(self, use_function):
    w0 = self.rng.normal(size=(5, 3)).astype(np.float32)
    ours_var, ref_var = tf.Variable(w0), tf.Variable(w0)
    ours, ref = lazy_adam.LazyAdam(0.1), legacy.Adam(0.1)

    def apply(g):
      ours.apply_gradients([(g, ours_var)])
      ref.apply_gradients([(g, ref_var)])

    step = tf.function(apply) if use_function else apply
    for _ in range(3):
      step(tf.constant(self.rng.normal(size=(5, 3)).astype(np.float32)))
    np.testing.assert_array_equal(ours_var.numpy(), ref_var.numpy())
    for slot in ("m", "v"):
      np.testing.assert_array_equal(ours.get_slot(ours_var, slot).numpy(), ref.get_slot(ref_var, slot).numpy())
    self.assertFalse(np.array_equal(ours_var.numpy(), w0))

  def test_registry_config_and_errors(self):
    self.assertIsInstance(registry.get("lazy_adam"), lazy_adam.LazyAdam)
    self.assertIsInstance(registry.get("Lazy_Adam"), lazy_adam.LazyAdam)
    opt = registry.get({"name": "lazy_adam", "learning_rate": 0.003, "beta_1": 0.8})
    self.assertIsInstance(opt, lazy_adam.LazyAdam)
    self.assertIsInstance(opt, legacy.Adam)
    config = opt.get_config()
    self.assertAllClose(config["learning_rate"], 0.003, rtol=1e-6, atol=0)
    self.assertAllClose(config["beta_1"], 0.8, rtol=1e-6, atol=0)
    self.assertFalse(config["amsgrad"])
    self.assertEqual(lazy_adam.LazyAdam.from_config(config).get_config(), config)
    self.assertEqual(set(config), set(legacy.Adam().get_config()))  # same keys: configs interchangeable
    restored = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(opt), use_legacy_optimizer=True)
    self.assertIsInstance(restored, lazy_adam.LazyAdam)
    self.assertEqual(restored.get_config(), config)
    with self.assertRaisesRegex(ValueError, "LazyAdam does not support amsgrad=True"):
      lazy_adam.LazyAdam(amsgrad=True)
    with self.assertRaisesRegex(ValueError, "amsgrad"):
      registry.get({"name": "lazy_adam", "amsgrad": True})

  def test_refuses_tables_on_a_parameter_server(self):
    var = tf.Variable(tf.zeros((10, 2)), name="item_embedding")
    opt = lazy_adam.LazyAdam(0.1)
    grad = tf.IndexedSlices(tf.ones((2, 2)), tf.constant([1, 1], tf.int64), tf.constant([10, 2], tf.int64))
    with mock.patch.object(sparse_rows, "on_parameter_server", return_value=True):
      with self.assertRaisesRegex(ValueError, r"LazyAdam cannot update the table 'item_embedding.*parameter "
                                  r"server.*'adam'.*'adagrad'"):
        opt.apply_gradients([(grad, var)])
      # Dense gradients use the locking dense kernel: allowed.
      dense_var = tf.Variable([1.0, 2.0], name="dense")
      opt.apply_gradients([(tf.constant([0.5, 0.5]), dense_var)])
    self.assertFalse(np.array_equal(dense_var.numpy(), [1.0, 2.0]))
    np.testing.assert_array_equal(var.numpy(), np.zeros((10, 2), np.float32))

  def test_checkpoint_interchangeable_with_keras_adam(self):
    table0 = self.rng.normal(size=(30, 4)).astype(np.float32)
    steps = [(self.rng.integers(0, 30, 20), self.rng.normal(size=(20, 4)).astype(np.float32)) for _ in range(4)]
    shape = tf.constant([30, 4], tf.int64)
    for first, second in ((lazy_adam.LazyAdam, legacy.Adam), (legacy.Adam, lazy_adam.LazyAdam)):
      var, opt = tf.Variable(table0), first(0.1)
      for ids, grads in steps[:2]:
        opt.apply_gradients([(tf.IndexedSlices(tf.constant(grads), tf.constant(ids), shape), var)])
      path = tf.train.Checkpoint(var=var, optimizer=opt).save(self.make_temp_dir() + "/ckpt")
      var2, opt2 = tf.Variable(np.zeros_like(table0)), second(0.1)
      opt2._create_all_weights([var2])  # pylint: disable=protected-access  (slots to restore into)
      tf.train.Checkpoint(var=var2, optimizer=opt2).restore(path).assert_existing_objects_matched()
      self.assertEqual(int(opt2.iterations.numpy()), 2)
      np.testing.assert_array_equal(var2.numpy(), var.numpy())
      for slot in ("m", "v"):
        np.testing.assert_array_equal(opt2.get_slot(var2, slot).numpy(), opt.get_slot(var, slot).numpy())

  def _model(self):
    ids = tf.keras.Input((3,), dtype=tf.int64)
    x = tf.keras.layers.Embedding(50, 4, name="embedding")(ids)
    logit = tf.keras.layers.Dense(1, name="dense")(tf.keras.layers.Flatten()(x))
    model = tf.keras.Model(ids, logit)
    model.compile(optimizer=lazy_adam.LazyAdam(0.01), loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
    return model

  @parameterized.named_parameters(("keras", "keras"), ("saved_model", "tf"))
  def test_save_reload_predicts_and_checkpoint_resumes(self, fmt):
    # load_model rebuilds the compiled LazyAdam from its config; Keras does not
    # store a legacy optimizer's slots in either format, so training resumes from
    # a tf.train.Checkpoint of model and optimizer, as the Trainer writes.
    model = self._model()
    x = self.rng.integers(0, 20, (16, 3))  # rows 20.. untouched
    y = self.rng.integers(0, 2, (16, 1)).astype(np.float32)
    for _ in range(2):
      model.train_on_batch(x, y)
    table = model.get_layer("embedding").embeddings
    np.testing.assert_array_equal(model.optimizer.get_slot(table, "m").numpy()[20:], 0.0)
    self.assertGreater(np.abs(model.optimizer.get_slot(table, "m").numpy()[:20]).max(), 0.0)
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(self.make_temp_dir() + "/ckpt")
    restored = self.save_and_reload(model, fmt)
    self.assertIsInstance(restored.optimizer, lazy_adam.LazyAdam)
    self.assertEqual(restored.optimizer.get_config(), model.optimizer.get_config())
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    tf.train.Checkpoint(model=restored, optimizer=restored.optimizer).restore(path)
    self.assertEqual(int(restored.optimizer.iterations.numpy()), 2)
    # One more step from the same state: the same weights and slots.
    x2 = self.rng.integers(0, 20, (16, 3))
    model.train_on_batch(x2, y)
    restored.train_on_batch(x2, y)
    for got, want in zip(restored.weights, model.weights):
      np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=want.name)
    restored_table = restored.get_layer("embedding").embeddings
    for slot in ("m", "v"):
      np.testing.assert_array_equal(restored.optimizer.get_slot(restored_table, slot).numpy(),
                                    model.optimizer.get_slot(table, slot).numpy(), err_msg=slot)
    np.testing.assert_array_equal(restored_table.numpy()[20:], table.numpy()[20:])


if __name__ == "__main__":
  tf.test.main()
