"""Ftrl against a NumPy transcription of McMahan et al. (KDD'13), Algorithm 1."""

from absl.testing import parameterized
import numpy as np

from tests import testing

import tensorflow as tf

from ctr_zoo.optimizers import ftrl


def numpy_ftrl(w0, grads, alpha, beta=0.0, l1=0.0, l2=0.0, n0=0.0):
  """Paper's per-coordinate FTRL; w0 enters through z after the first step."""
  w = np.array(w0, np.float64)
  z = np.zeros_like(w)
  n = np.full_like(w, n0)
  trajectory = []
  for g in grads:
    g = np.asarray(g, np.float64)
    sigma = (np.sqrt(n + g * g) - np.sqrt(n)) / alpha
    z = z + g - sigma * w
    n = n + g * g
    denominator = (beta + np.sqrt(n)) / alpha + l2
    with np.errstate(divide="ignore", invalid="ignore"):
      w = np.where(np.abs(z) <= l1, 0.0, -(z - np.sign(z) * l1) / denominator)
    trajectory.append(w.copy())
  return np.array(trajectory), z, n


class FtrlTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("plain", dict(learning_rate=0.1)),
      ("l2_maps_to_half", dict(learning_rate=0.1, l2=0.3)),
      ("beta_l1_l2", dict(learning_rate=0.05, beta=1.0, l1=0.02, l2=0.5)),
      ("n0", dict(learning_rate=0.2, initial_accumulator_value=0.1, l2=0.1)),
  )
  def test_1d_trajectory_matches_numpy(self, kwargs):
    grads = [0.3, -0.1, 0.25, 0.05, -0.4, 0.2, 0.0, 0.15]
    var = tf.Variable([0.5], dtype=tf.float32)
    opt = ftrl.Ftrl(**kwargs)
    got = []
    for g in grads:
      opt.apply_gradients([(tf.constant([g]), var)])
      got.append(var.numpy()[0])
    expected, z, n = numpy_ftrl(
        [0.5], [[g] for g in grads], alpha=kwargs["learning_rate"], beta=kwargs.get("beta", 0.0),
        l1=kwargs.get("l1", 0.0), l2=kwargs.get("l2", 0.0), n0=kwargs.get("initial_accumulator_value", 0.0))
    self.assertAllClose(got, expected[:, 0], rtol=1e-5, atol=1e-6)
    self.assertAllClose(opt.get_slot(var, "linear").numpy(), z, rtol=1e-5, atol=1e-6)
    self.assertAllClose(opt.get_slot(var, "accumulator").numpy(), n, rtol=1e-5, atol=1e-7)

  def test_l2_is_not_passed_unhalved(self):
    # The paper's l2 and TF's l2_regularization_strength differ by a factor 2:
    # Keras' Ftrl with l2_regularization_strength = l2 / 2 matches, = l2 does not.
    grads = [0.3, -0.2, 0.1]
    ours, half, full = (tf.Variable([0.5]) for _ in range(3))
    opts = [(ftrl.Ftrl(learning_rate=0.1, l2=1.0), ours),
            (tf.keras.optimizers.legacy.Ftrl(0.1, initial_accumulator_value=0.0, l2_regularization_strength=0.5), half),
            (tf.keras.optimizers.legacy.Ftrl(0.1, initial_accumulator_value=0.0, l2_regularization_strength=1.0), full)]
    for g in grads:
      for opt, var in opts:
        opt.apply_gradients([(tf.constant([g]), var)])
    self.assertAllClose(ours.numpy(), half.numpy(), rtol=1e-6, atol=1e-7)
    self.assertGreater(np.abs(ours.numpy() - full.numpy()).max(), 1e-3)

  def test_small_z_gives_exact_zero(self):
    # Two coordinates: after the steps, |z| <= l1 on the first, > l1 on the second.
    l1 = 0.5
    var = tf.Variable([0.0, 0.0])
    opt = ftrl.Ftrl(learning_rate=0.1, l1=l1)
    for g in ([0.2, 0.7], [0.1, 0.3]):
      opt.apply_gradients([(tf.constant(g), var)])
    z = opt.get_slot(var, "linear").numpy()
    self.assertLessEqual(abs(z[0]), l1)
    self.assertGreater(abs(z[1]), l1)
    self.assertEqual(var.numpy()[0], 0.0)  # exactly zero, not just small
    self.assertNotEqual(var.numpy()[1], 0.0)

  def test_sparse_equals_dense_on_touched_rows_untouched_bit_identical(self):
    table0 = self.rng.normal(size=(20, 4)).astype(np.float32)
    ids = np.array([3, 7, 11, 15])
    values = self.rng.normal(size=(4, 4)).astype(np.float32)
    dense_grad = np.zeros_like(table0)
    dense_grad[ids] = values
    sparse_var, dense_var = tf.Variable(table0, name="embedding/a"), tf.Variable(table0, name="embedding/b")
    sparse_opt, dense_opt = ftrl.Ftrl(0.1, l1=0.01, l2=0.1), ftrl.Ftrl(0.1, l1=0.01, l2=0.1)
    for _ in range(3):
      sparse_opt.apply_gradients([(tf.IndexedSlices(tf.constant(values), tf.constant(ids), tf.constant([20, 4])),
                                   sparse_var)])
      dense_opt.apply_gradients([(tf.constant(dense_grad), dense_var)])
    got, dense = sparse_var.numpy(), dense_var.numpy()
    self.assertAllClose(got[ids], dense[ids], rtol=1e-6, atol=1e-7)
    untouched = np.setdiff1d(np.arange(20), ids)
    np.testing.assert_array_equal(got[untouched], table0[untouched])
    np.testing.assert_array_equal(sparse_opt.get_slot(sparse_var, "accumulator").numpy()[untouched], 0.0)
    expected, _, _ = numpy_ftrl(table0[ids], [values] * 3, alpha=0.1, l1=0.01, l2=0.1)
    self.assertAllClose(got[ids], expected[-1], rtol=1e-5, atol=1e-6)

  @parameterized.named_parameters(
      ("rows_of_8", 8, dict(learning_rate=0.05)),
      ("rows_of_8_l1_l2_beta", 8, dict(learning_rate=0.05, l1=0.01, l2=0.1, beta=0.5)),
      ("rows_of_8_n0", 8, dict(learning_rate=0.05, l1=1e-3, initial_accumulator_value=0.1)),
      ("rows_of_1_kernel", 1, dict(learning_rate=0.05, l1=0.01)),
  )
  def test_sparse_rows_bit_identical_to_tf_sparse_kernel(self, dim, kwargs):
    # The vectorised gather/update/scatter path against ResourceSparseApplyFtrl.
    vocab = 300
    table0 = self.rng.normal(size=(vocab, dim)).astype(np.float32)
    ours_var, ref_var = tf.Variable(table0), tf.Variable(table0)
    ours, ref = ftrl.Ftrl(**kwargs), ftrl.Ftrl(**kwargs)
    ref._create_all_weights([ref_var])  # pylint: disable=protected-access
    c = ref._fallback_apply_state(ref_var.device, ref_var.dtype)  # pylint: disable=protected-access

    @tf.function
    def step(values, ids):
      ours.apply_gradients([(tf.IndexedSlices(values, ids, tf.constant([vocab, dim], tf.int64)), ours_var)])
      unique, positions = tf.unique(ids)
      summed = tf.math.unsorted_segment_sum(values, positions, tf.shape(unique)[0])
      tf.raw_ops.ResourceSparseApplyFtrl(
          var=ref_var.handle, accum=ref.get_slot(ref_var, "accumulator").handle,
          linear=ref.get_slot(ref_var, "linear").handle, grad=summed, indices=unique, lr=c["lr_t"],
          l1=c["l1"], l2=c["kernel_l2"], lr_power=c["lr_power"])

    for _ in range(5):
      step(tf.constant(self.rng.normal(size=(200, dim)).astype(np.float32)),
           tf.constant(self.rng.integers(0, 100, 200), tf.int64))
    np.testing.assert_array_equal(ours_var.numpy(), ref_var.numpy())
    for slot in ("accumulator", "linear"):
      np.testing.assert_array_equal(ours.get_slot(ours_var, slot).numpy(), ref.get_slot(ref_var, slot).numpy())
    np.testing.assert_array_equal(ours_var.numpy()[100:], table0[100:])

  def test_duplicate_ids_equal_summed_gradient(self):
    table0 = self.rng.normal(size=(10, 3)).astype(np.float32)
    dup, summed = tf.Variable(table0, name="embedding/dup"), tf.Variable(table0, name="embedding/sum")
    v = self.rng.normal(size=(3, 3)).astype(np.float32)
    opt_dup, opt_sum = ftrl.Ftrl(0.1), ftrl.Ftrl(0.1)
    opt_dup.apply_gradients([(tf.IndexedSlices(tf.constant(v), tf.constant([2, 5, 2]), tf.constant([10, 3])), dup)])
    opt_sum.apply_gradients([(tf.IndexedSlices(tf.constant(np.stack([v[0] + v[2], v[1]])), tf.constant([2, 5]),
                                               tf.constant([10, 3])), summed)])
    self.assertAllClose(dup.numpy(), summed.numpy(), rtol=0, atol=0)

  def test_gather_gradient_in_tf_function(self):
    table = tf.Variable(self.rng.normal(size=(50, 4)).astype(np.float32), name="embedding/table")
    before = table.numpy()
    opt = ftrl.Ftrl(0.1)

    @tf.function
    def step(ids):
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(tf.gather(table, ids)))
      grad = tape.gradient(loss, table)
      assert isinstance(grad, tf.IndexedSlices)
      opt.apply_gradients([(grad, table)])

    step(tf.constant([1, 4, 4, 9]))
    changed = np.flatnonzero(np.any(table.numpy() != before, axis=1))
    np.testing.assert_array_equal(changed, [1, 4, 9])

  def test_default_n0_keeps_embedding_initial_value(self):
    # Pitfall: n0 = 0.1 (Keras' default) erases w0; n0 = 0 gives w0 - alpha sgn(g).
    w0 = np.array([0.03, -0.02, 0.01], np.float32)
    g = np.array([1e-3, 2e-3, -1e-3], np.float32)
    ours, keras = tf.Variable(w0), tf.Variable(w0)
    ftrl.Ftrl(learning_rate=0.01).apply_gradients([(tf.constant(g), ours)])
    tf.keras.optimizers.legacy.Ftrl(0.01).apply_gradients([(tf.constant(g), keras)])
    self.assertAllClose(ours.numpy(), w0 - 0.01 * np.sign(g), rtol=1e-5, atol=1e-7)
    self.assertLess(np.abs(keras.numpy()).max(), 1e-4)  # initial values erased

  def test_zero_gradient_on_fresh_row_is_zero_not_nan(self):
    table = tf.Variable([[0.5, -0.3]], name="embedding/t")
    ftrl.Ftrl(0.1).apply_gradients([(tf.IndexedSlices(tf.constant([[0.2, 0.0]]), tf.constant([0]),
                                                      tf.constant([1, 2])), table)])
    self.assertAllClose(table.numpy(), [[0.4, 0.0]], rtol=1e-6, atol=1e-7)

  def test_bad_arguments_name_the_value(self):
    with self.assertRaisesRegex(ValueError, r"l1=-0\.1"):
      ftrl.Ftrl(l1=-0.1)
    with self.assertRaisesRegex(ValueError, r"initial_accumulator_value=-1"):
      ftrl.Ftrl(initial_accumulator_value=-1)

  def test_config_round_trip_and_keras_deserialize(self):
    opt = ftrl.Ftrl(learning_rate=0.2, beta=1.0, l1=0.01, l2=0.3, initial_accumulator_value=1e-6)
    config = opt.get_config()
    again = ftrl.Ftrl.from_config(config)
    self.assertEqual(again.get_config(), config)
    restored = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(opt), use_legacy_optimizer=True)
    self.assertIsInstance(restored, ftrl.Ftrl)
    self.assertEqual(restored.get_config(), config)

  def test_checkpoint_restores_slots_and_continues_identically(self):
    grads = [self.rng.normal(size=(6, 2)).astype(np.float32) for _ in range(4)]
    ids = tf.constant([0, 2, 5])

    def run(var, opt, steps):
      for g in steps:
        opt.apply_gradients([(tf.IndexedSlices(tf.constant(g[:3]), ids, tf.constant([6, 2])), var)])

    init = self.rng.normal(size=(6, 2)).astype(np.float32)
    ref_var, ref_opt = tf.Variable(init), ftrl.Ftrl(0.1, l1=0.01)
    run(ref_var, ref_opt, grads)
    var, opt = tf.Variable(init), ftrl.Ftrl(0.1, l1=0.01)
    run(var, opt, grads[:2])
    path = tf.train.Checkpoint(var=var, optimizer=opt).save(self.make_temp_dir() + "/ckpt")
    var2, opt2 = tf.Variable(np.zeros_like(init)), ftrl.Ftrl(0.1, l1=0.01)
    tf.train.Checkpoint(var=var2, optimizer=opt2).restore(path)
    run(var2, opt2, grads[2:])
    np.testing.assert_array_equal(var2.numpy(), ref_var.numpy())
    np.testing.assert_array_equal(opt2.get_slot(var2, "linear").numpy(), ref_opt.get_slot(ref_var, "linear").numpy())


if __name__ == "__main__":
  tf.test.main()
