"""ctr_zoo's Adagrad: NumPy AdaGrad, legacy Keras Adagrad bit for bit, sparse and dense paths."""

from unittest import mock

from absl.testing import parameterized
import numpy as np

from tests import testing

import tensorflow as tf

from ctr_zoo.optimizers import adagrad
from ctr_zoo.optimizers import registry

legacy = tf.keras.optimizers.legacy


def numpy_adagrad(w0, grads, lr, a0=0.1, eps=1e-7):
  """a += g^2; w -= lr g / (sqrt(a) + eps), in float64."""
  w = np.array(w0, np.float64)
  a = np.full_like(w, a0)
  for g in grads:
    g = np.asarray(g, np.float64)
    a = a + g * g
    w = w - lr * g / (np.sqrt(a) + eps)
  return w, a


def slices(values, ids, shape):
  return tf.IndexedSlices(tf.constant(values), tf.constant(ids), tf.constant(shape))


class AdagradTest(testing.TestCase, parameterized.TestCase):

  def _batches(self, vocab, dim, n, steps, id_range=None):
    return [(self.rng.integers(0, id_range or vocab, n), self.rng.normal(size=(n, dim)).astype(np.float32))
            for _ in range(steps)]

  def _run(self, opt, table0, batches, use_function):
    var = tf.Variable(table0, name="embedding/table")
    shape = list(table0.shape)

    def apply(values, ids):
      opt.apply_gradients([(tf.IndexedSlices(values, ids, tf.constant(shape)), var)])

    step = tf.function(apply) if use_function else apply
    for ids, values in batches:
      step(tf.constant(values), tf.constant(ids))
    return var.numpy(), opt.get_slot(var, "accumulator").numpy()

  def test_matches_numpy_on_touched_rows(self):
    table0 = self.rng.normal(size=(30, 4)).astype(np.float32)
    ids = np.array([2, 9, 17])
    grads = [self.rng.normal(size=(3, 4)).astype(np.float32) for _ in range(4)]
    for factor in (0.0, 100.0):  # sparse path, dense path
      got, acc = self._run(adagrad.Adagrad(0.1, dense_row_factor=factor), table0, [(ids, g) for g in grads], False)
      expected_w, expected_a = numpy_adagrad(table0[ids], grads, lr=0.1)
      self.assertAllClose(got[ids], expected_w, rtol=1e-5, atol=1e-6)
      self.assertAllClose(acc[ids], expected_a, rtol=1e-5, atol=1e-6)
      untouched = np.setdiff1d(np.arange(30), ids)
      np.testing.assert_array_equal(got[untouched], table0[untouched])
      np.testing.assert_array_equal(acc[untouched], np.float32(0.1))

  @parameterized.named_parameters(
      ("sparse_path_eager", 5000, 0.0, False),
      ("sparse_path_function", 5000, adagrad.DEFAULT_DENSE_ROW_FACTOR, True),
      ("dense_path_eager", 60, adagrad.DEFAULT_DENSE_ROW_FACTOR, False),
      ("dense_path_function", 60, adagrad.DEFAULT_DENSE_ROW_FACTOR, True),
  )
  def test_bit_identical_to_legacy_adagrad(self, vocab, factor, use_function):
    # 200 ids (with duplicates) from the first 50 rows: rows 50.. are untouched.
    table0 = self.rng.normal(size=(vocab, 8)).astype(np.float32)
    batches = self._batches(vocab, 8, 200, 4, id_range=50)
    ours_w, ours_a = self._run(adagrad.Adagrad(0.05, dense_row_factor=factor), table0, batches, use_function)
    ref_w, ref_a = self._run(legacy.Adagrad(0.05), table0, batches, use_function)
    np.testing.assert_array_equal(ours_w, ref_w)
    np.testing.assert_array_equal(ours_a, ref_a)
    np.testing.assert_array_equal(ours_w[50:], table0[50:])
    self.assertFalse(np.array_equal(ours_w[:50], table0[:50]))

  def test_dense_path_equals_sparse_path(self):
    table0 = self.rng.normal(size=(40, 3)).astype(np.float32)
    batches = self._batches(40, 3, 30, 5, id_range=25)
    dense = adagrad.Adagrad(0.2, initial_accumulator_value=0.01, dense_row_factor=100.0)
    sparse = adagrad.Adagrad(0.2, initial_accumulator_value=0.01, dense_row_factor=0.0)
    with mock.patch.object(sparse, "_dense_path", side_effect=AssertionError("dense path taken")):
      sparse_w, sparse_a = self._run(sparse, table0, batches, True)
    with mock.patch.object(dense, "_sparse_path", side_effect=AssertionError("sparse path taken")):
      dense_w, dense_a = self._run(dense, table0, batches, True)
    np.testing.assert_array_equal(dense_w, sparse_w)
    np.testing.assert_array_equal(dense_a, sparse_a)
    np.testing.assert_array_equal(dense_w[25:], table0[25:])

  def test_path_threshold_and_large_tables_stay_sparse(self):
    ids = np.arange(100) % 7

    def path_taken(vocab, factor, zero_denominator=False):
      opt = adagrad.Adagrad(0.1, dense_row_factor=factor)
      if zero_denominator:
        opt.epsilon = 0.0  # Keras turns epsilon=0 into its default 1e-7; force a true 0
        opt._initial_accumulator_value = 0.0  # pylint: disable=protected-access
      var = tf.Variable(tf.zeros((vocab, 2)), name="embedding/t")
      grad = slices(np.ones((100, 2), np.float32), ids, [vocab, 2])
      with mock.patch.object(opt, "_dense_path", wraps=opt._dense_path) as dense:  # pylint: disable=protected-access
        opt.apply_gradients([(grad, var)])
      return "dense" if dense.called else "sparse"

    self.assertEqual(path_taken(400, 4.0), "dense")  # V = 4 n
    self.assertEqual(path_taken(401, 4.0), "sparse")
    self.assertEqual(path_taken(10_000_000 // 1000, 4.0), "sparse")
    self.assertEqual(path_taken(50, 0.0), "sparse")  # disabled
    # a denominator sqrt(0) + 0 on untouched rows would give NaN: sparse only.
    self.assertEqual(path_taken(50, 4.0, zero_denominator=True), "sparse")

  def test_zero_epsilon_and_accumulator_untouched_rows_stay_finite(self):
    table0 = self.rng.normal(size=(20, 2)).astype(np.float32)
    opt = adagrad.Adagrad(0.1, initial_accumulator_value=0.0, epsilon=0.0)
    opt.epsilon = 0.0  # Keras turns epsilon=0 into its default 1e-7; force a true 0
    got, _ = self._run(opt, table0, [(np.array([1, 1, 3]), np.ones((3, 2), np.float32))], True)
    self.assertTrue(np.all(np.isfinite(got)))
    np.testing.assert_array_equal(np.delete(got, [1, 3], axis=0), np.delete(table0, [1, 3], axis=0))

  def test_unknown_batch_size_chooses_per_step(self):
    vocab = 60
    table0 = self.rng.normal(size=(vocab, 4)).astype(np.float32)
    ours_var, ref_var = tf.Variable(table0), tf.Variable(table0)
    ours, ref = adagrad.Adagrad(0.05), legacy.Adagrad(0.05)
    specs = (tf.TensorSpec((None, 4), tf.float32), tf.TensorSpec((None,), tf.int64))

    @tf.function(input_signature=specs)
    def step(values, ids):
      for opt, var in ((ours, ours_var), (ref, ref_var)):
        opt.apply_gradients([(tf.IndexedSlices(values, ids, tf.constant([vocab, 4], tf.int64)), var)])

    for n in (5, 200, 3, 100):  # 60 <= 4 n: dense for n >= 15, sparse below
      step(tf.constant(self.rng.normal(size=(n, 4)).astype(np.float32)),
           tf.constant(self.rng.integers(0, 40, n), tf.int64))
    np.testing.assert_array_equal(ours_var.numpy(), ref_var.numpy())
    np.testing.assert_array_equal(ours.get_slot(ours_var, "accumulator").numpy(),
                                  ref.get_slot(ref_var, "accumulator").numpy())
    np.testing.assert_array_equal(ours_var.numpy()[40:], table0[40:])

  def test_dense_gradient_is_keras_adagrad(self):
    w0 = self.rng.normal(size=(5, 3)).astype(np.float32)
    ours_var, ref_var = tf.Variable(w0), tf.Variable(w0)
    ours, ref = adagrad.Adagrad(0.1), legacy.Adagrad(0.1)
    for _ in range(3):
      g = tf.constant(self.rng.normal(size=(5, 3)).astype(np.float32))
      ours.apply_gradients([(g, ours_var)])
      ref.apply_gradients([(g, ref_var)])
    np.testing.assert_array_equal(ours_var.numpy(), ref_var.numpy())

  def test_registry_config_and_keras_deserialize(self):
    opt = registry.get({"name": "adagrad", "learning_rate": 0.2, "dense_row_factor": 2.0})
    self.assertIsInstance(opt, adagrad.Adagrad)
    self.assertIsInstance(opt, legacy.Adagrad)
    config = opt.get_config()
    self.assertEqual(config["dense_row_factor"], 2.0)
    self.assertEqual(adagrad.Adagrad.from_config(config).get_config(), config)
    restored = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(opt), use_legacy_optimizer=True)
    self.assertIsInstance(restored, adagrad.Adagrad)
    self.assertEqual(restored.get_config(), config)
    with self.assertRaisesRegex(ValueError, "dense_row_factor must be a number >= 0, got -1"):
      adagrad.Adagrad(dense_row_factor=-1)

  def test_checkpoint_interchangeable_with_legacy_adagrad(self):
    table0 = self.rng.normal(size=(30, 4)).astype(np.float32)
    batches = self._batches(30, 4, 20, 4)
    ref_w, ref_a = self._run(legacy.Adagrad(0.1), table0, batches, False)
    var, opt = tf.Variable(table0), legacy.Adagrad(0.1)
    for ids, values in batches[:2]:
      opt.apply_gradients([(slices(values, ids, [30, 4]), var)])
    path = tf.train.Checkpoint(var=var, optimizer=opt).save(self.make_temp_dir() + "/ckpt")
    var2, opt2 = tf.Variable(np.zeros_like(table0)), adagrad.Adagrad(0.1)
    tf.train.Checkpoint(var=var2, optimizer=opt2).restore(path).assert_existing_objects_matched()
    for ids, values in batches[2:]:
      opt2.apply_gradients([(slices(values, ids, [30, 4]), var2)])
    np.testing.assert_array_equal(var2.numpy(), ref_w)
    np.testing.assert_array_equal(opt2.get_slot(var2, "accumulator").numpy(), ref_a)


if __name__ == "__main__":
  tf.test.main()
