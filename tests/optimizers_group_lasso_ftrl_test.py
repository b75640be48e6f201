"""GroupLassoFtrl against a NumPy transcription of Ni et al. (CIKM'19) / Yue et al."""

from absl import logging
from absl.testing import parameterized
import numpy as np

from tests import testing

import tensorflow as tf

from ctr_zoo.optimizers import ftrl
from ctr_zoo.optimizers import group_lasso_ftrl
from ctr_zoo.optimizers import sparsity


def numpy_group_lasso_ftrl(w0, grads, alpha, lam, beta=0.0, l1=0.0, l2=0.0, n0=0.0, row_wise=False):
  """Rows of a (k, d) table are the groups."""
  w = np.array(w0, np.float64)
  d = w.shape[1]
  z = np.zeros_like(w)
  n = np.full((w.shape[0], 1) if row_wise else w.shape, n0)
  for g in grads:
    g = np.asarray(g, np.float64)
    g2 = np.mean(g * g, axis=1, keepdims=True) if row_wise else g * g
    sigma = (np.sqrt(n + g2) - np.sqrt(n)) / alpha
    z = z + g - sigma * w
    n = n + g2
    q = (beta + np.sqrt(n)) / alpha + l2
    u = np.clip(z, -l1, l1) - z
    norm = np.linalg.norm(u, axis=1, keepdims=True)
    threshold = lam * np.sqrt(d)
    with np.errstate(divide="ignore", invalid="ignore"):
      w = np.where(norm > threshold, (1 - threshold / norm) * u / q, 0.0)
  return w, z, n


def sparse_grad(values, ids, shape):
  return tf.IndexedSlices(tf.constant(values, tf.float32), tf.constant(ids), tf.constant(shape))


LAMBDAS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)


class GroupLassoFtrlTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("per_coordinate", False, 0.0), ("row_wise", True, 0.0),
      ("sparse_group", False, 0.05), ("sparse_group_row_wise", True, 0.05))
  def test_matches_numpy(self, row_wise, l1):
    table0 = self.rng.normal(scale=0.1, size=(8, 4)).astype(np.float32)
    ids = np.array([1, 2, 5, 6])
    grads = [self.rng.normal(scale=s, size=(4, 4)).astype(np.float32) for s in (0.1, 0.5, 0.05, 0.3, 0.2)]
    var = tf.Variable(table0, name="embedding/t")
    opt = group_lasso_ftrl.GroupLassoFtrl(0.1, group_lasso=0.02, beta=0.5, l1=l1, l2=0.1, row_wise_accumulator=row_wise)
    for g in grads:
      opt.apply_gradients([(sparse_grad(g, ids, [8, 4]), var)])
    w, z, n = numpy_group_lasso_ftrl(table0[ids], grads, 0.1, 0.02, beta=0.5, l1=l1, l2=0.1, row_wise=row_wise)
    self.assertAllClose(var.numpy()[ids], w, rtol=1e-5, atol=1e-6)
    self.assertAllClose(opt.get_slot(var, "linear").numpy()[ids], z, rtol=1e-5, atol=1e-6)
    self.assertAllClose(opt.get_slot(var, "accumulator").numpy()[ids], n, rtol=1e-5, atol=1e-7)
    self.assertEqual(opt.get_slot(var, "accumulator").shape, (8, 1) if row_wise else (8, 4))
    self.assertGreater(np.abs(w).sum(), 0.0)  # not a trivially all-zero comparison

  @parameterized.named_parameters(("per_coordinate", False), ("row_wise", True))
  def test_threshold_zeroes_row_iff_norm_below(self, row_wise):
    d, alpha = 4, 0.1
    g = np.array([[0.3, -0.4, 0.1, 0.2]], np.float32)
    # With w0 = 0: z after one step is g (sigma * w0 = 0), so ||z_g|| = ||g||.
    lam_exact = np.linalg.norm(g) / np.sqrt(d)
    for lam, expect_zero in ((lam_exact * 1.001, True), (lam_exact * 0.99, False)):
      var = tf.Variable(np.zeros((3, d), np.float32), name="embedding/t")
      opt = group_lasso_ftrl.GroupLassoFtrl(alpha, group_lasso=lam, row_wise_accumulator=row_wise)
      opt.apply_gradients([(sparse_grad(g, [1], [3, d]), var)])
      row = var.numpy()[1]
      if expect_zero:
        np.testing.assert_array_equal(row, np.zeros(d))
        continue
      self.assertGreater(np.linalg.norm(row), 0.0)
      z = opt.get_slot(var, "linear").numpy()[1]
      n = opt.get_slot(var, "accumulator").numpy()[1]
      # Row-wise n: parallel to -z_g. Per-coordinate n: parallel to -z_i / q_i.
      direction = -z / (np.sqrt(n) / alpha)
      cosine = row @ direction / (np.linalg.norm(row) * np.linalg.norm(direction))
      self.assertAllClose(cosine, 1.0, rtol=0, atol=1e-6)
      if row_wise:
        self.assertAllClose(row @ -z / (np.linalg.norm(row) * np.linalg.norm(z)), 1.0, rtol=0, atol=1e-6)
      # Magnitude: (1 - lambda sqrt(d) / ||z||) of the unpenalised FTRL step.
      self.assertAllClose(np.linalg.norm(row), (1 - lam * np.sqrt(d) / np.linalg.norm(z))
                          * np.linalg.norm(direction), rtol=1e-4, atol=1e-7)

  def test_row_wise_output_is_parallel_to_minus_z(self):
    var = tf.Variable(self.rng.normal(size=(5, 6)).astype(np.float32), name="embedding/t")
    opt = group_lasso_ftrl.GroupLassoFtrl(0.1, group_lasso=0.05, row_wise_accumulator=True)
    for _ in range(3):
      opt.apply_gradients([(sparse_grad(self.rng.normal(size=(2, 6)), [0, 3], [5, 6]), var)])
    for i in (0, 3):
      row, z = var.numpy()[i], opt.get_slot(var, "linear").numpy()[i]
      if np.linalg.norm(row) > 0:
        self.assertAllClose(row @ -z / (np.linalg.norm(row) * np.linalg.norm(z)), 1.0, rtol=0, atol=1e-5)

  def test_d1_reduces_to_scalar_ftrl_with_l1(self):
    grads = [0.1, -0.05, 0.3, -0.2, -0.4, 0.2]
    glf_var, ftrl_var = tf.Variable([[0.0]]), tf.Variable([[0.0]])
    glf = group_lasso_ftrl.GroupLassoFtrl(0.1, group_lasso=0.15, l2=0.2)
    ref = ftrl.Ftrl(0.1, l1=0.15, l2=0.2)
    zeros_seen = 0
    for g in grads:
      glf.apply_gradients([(tf.constant([[g]]), glf_var)])
      ref.apply_gradients([(tf.constant([[g]]), ftrl_var)])
      self.assertAllClose(glf_var.numpy(), ftrl_var.numpy(), rtol=1e-5, atol=1e-7)
      zeros_seen += int(ftrl_var.numpy()[0, 0] == 0.0)
    self.assertGreater(zeros_seen, 0)  # the l1 threshold was exercised
    self.assertLess(zeros_seen, len(grads))

  def test_lambda_zero_reduces_to_plain_ftrl_sparse_and_dense(self):
    table0 = self.rng.normal(size=(10, 4)).astype(np.float32)
    ids = [0, 4, 4, 9]
    values = self.rng.normal(size=(4, 4)).astype(np.float32)
    for make_grad in (lambda: sparse_grad(values, ids, [10, 4]),
                      lambda: tf.constant(self.rng.normal(size=(10, 4)).astype(np.float32))):
      a, b = tf.Variable(table0, name="embedding/a"), tf.Variable(table0, name="embedding/b")
      glf, ref = group_lasso_ftrl.GroupLassoFtrl(0.1, beta=1.0, l1=0.01, l2=0.3), ftrl.Ftrl(0.1, beta=1.0, l1=0.01, l2=0.3)
      for _ in range(3):
        grad = make_grad()
        glf.apply_gradients([(grad, a)])
        ref.apply_gradients([(grad, b)])
      self.assertAllClose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)

  def test_untouched_rows_bit_identical_and_duplicates_summed(self):
    table0 = self.rng.normal(size=(12, 3)).astype(np.float32)
    v = self.rng.normal(size=(3, 3)).astype(np.float32)
    dup, summed = tf.Variable(table0, name="embedding/a"), tf.Variable(table0, name="embedding/b")
    o1, o2 = (group_lasso_ftrl.GroupLassoFtrl(0.1, group_lasso=0.01) for _ in range(2))
    o1.apply_gradients([(sparse_grad(v, [2, 7, 2], [12, 3]), dup)])
    o2.apply_gradients([(sparse_grad(np.stack([v[0] + v[2], v[1]]), [2, 7], [12, 3]), summed)])
    np.testing.assert_array_equal(dup.numpy(), summed.numpy())
    untouched = np.setdiff1d(np.arange(12), [2, 7])
    np.testing.assert_array_equal(dup.numpy()[untouched], table0[untouched])
    np.testing.assert_array_equal(o1.get_slot(dup, "linear").numpy()[untouched], 0.0)

  def test_zeroed_row_revives(self):
    var = tf.Variable(np.zeros((2, 2), np.float32), name="embedding/t")
    opt = group_lasso_ftrl.GroupLassoFtrl(0.1, group_lasso=0.5)  # threshold 0.5 * sqrt(2)
    opt.apply_gradients([(sparse_grad([[0.3, 0.3]], [0], [2, 2]), var)])
    np.testing.assert_array_equal(var.numpy()[0], [0.0, 0.0])
    z_before = opt.get_slot(var, "linear").numpy()[0].copy()
    self.assertGreater(np.linalg.norm(z_before), 0.0)  # z kept while the row is zero
    for _ in range(5):
      opt.apply_gradients([(sparse_grad([[0.3, 0.3]], [0], [2, 2]), var)])
    z = opt.get_slot(var, "linear").numpy()[0]
    self.assertGreater(np.linalg.norm(z), 0.5 * np.sqrt(2))
    self.assertTrue(np.all(var.numpy()[0] < 0))  # revived, opposite to the gradient

  def test_dense_kernel_groups_are_input_rows(self):
    kernel0 = self.rng.normal(size=(5, 3)).astype(np.float32)
    g = self.rng.normal(size=(5, 3)).astype(np.float32)
    g[2] *= 1e-3  # a weak input feature
    var = tf.Variable(kernel0)
    opt = group_lasso_ftrl.GroupLassoFtrl(0.1, group_lasso=0.05)
    opt.apply_gradients([(tf.constant(g), var)])
    w, _, _ = numpy_group_lasso_ftrl(kernel0, [g], 0.1, 0.05)
    self.assertAllClose(var.numpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(var.numpy()[2], 0.0)

  def test_noise_fields_are_zeroed_first(self):
    """Synthetic logistic task: 2 signal fields, 2 pure-noise fields, 20 ids each."""
    fields, vocab, d, batch, steps = 4, 20, 4, 128, 300
    rng = np.random.default_rng(0)
    effects = np.zeros((fields, vocab))
    effects[:2] = rng.normal(scale=1.5, size=(2, vocab))  # fields 2, 3: noise
    x = rng.integers(0, vocab, size=(steps * batch, fields))
    logits = effects[np.arange(fields), x].sum(axis=1)
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    offsets = np.arange(fields) * vocab
    ids = tf.constant(x + offsets)
    labels = tf.constant(y)

    def train(lam):
      tf.keras.utils.set_random_seed(0)
      table = tf.Variable(tf.random.normal((fields * vocab, d), stddev=0.05, seed=1), name="embedding/t")
      head = tf.Variable(tf.ones((d,)) * 0.5, name="head")
      opt = group_lasso_ftrl.GroupLassoFtrl(0.1, group_lasso=lam)
      head_opt = tf.keras.optimizers.legacy.SGD(0.05)

      @tf.function
      def step(batch_ids, batch_y):
        with tf.GradientTape() as tape:
          emb = tf.reduce_sum(tf.gather(table, batch_ids), axis=1)  # (B, d)
          logit = tf.linalg.matvec(emb, head)  # (B,)
          loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=batch_y, logits=logit))
        g_table, g_head = tape.gradient(loss, [table, head])
        opt.apply_gradients([(g_table, table)])
        head_opt.apply_gradients([(g_head, head)])

      for s in range(steps):
        step(ids[s * batch:(s + 1) * batch], labels[s * batch:(s + 1) * batch])
      rows = table.numpy().reshape(fields, vocab, d)
      return np.mean(np.all(rows == 0, axis=2), axis=1)  # zero-row fraction per field

    curve = {lam: train(lam) for lam in LAMBDAS}
    for lam, fractions in curve.items():
      logging.info("group_lasso=%g zero-row fraction per field (signal, signal, noise, noise): %s", lam, fractions)
    np.testing.assert_array_equal(curve[0.0], 0.0)
    # Some lambda zeroes most noise rows while signal rows survive...
    separating = [lam for lam, f in curve.items() if f[2:].mean() >= 0.8 and f[:2].mean() <= 0.2]
    self.assertTrue(separating, f"no lambda separates noise from signal: {curve}")
    # ...and at every lambda noise fields are at least as sparse as signal fields.
    for lam, f in curve.items():
      self.assertGreaterEqual(f[2:].mean(), f[:2].mean(), f"lambda={lam}: {f}")
    self.sparsity_curve = curve

  def test_config_round_trip(self):
    opt = group_lasso_ftrl.GroupLassoFtrl(0.2, group_lasso=0.1, beta=1.0, l1=0.01, l2=0.5,
                                          initial_accumulator_value=1e-6, row_wise_accumulator=True)
    config = opt.get_config()
    restored = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(opt), use_legacy_optimizer=True)
    self.assertIsInstance(restored, group_lasso_ftrl.GroupLassoFtrl)
    self.assertEqual(restored.get_config(), config)

  def test_bad_arguments_name_the_value(self):
    with self.assertRaisesRegex(ValueError, r"group_lasso=-1"):
      group_lasso_ftrl.GroupLassoFtrl(group_lasso=-1)

  def test_checkpoint_resume_is_bit_identical(self):
    init = self.rng.normal(size=(6, 3)).astype(np.float32)
    grads = [self.rng.normal(size=(2, 3)).astype(np.float32) for _ in range(4)]

    def run(var, opt, gs):
      for g in gs:
        opt.apply_gradients([(sparse_grad(g, [1, 4], [6, 3]), var)])

    def make():
      return tf.Variable(init, name="embedding/t"), group_lasso_ftrl.GroupLassoFtrl(
          0.1, group_lasso=0.05, row_wise_accumulator=True)

    ref_var, ref_opt = make()
    run(ref_var, ref_opt, grads)
    var, opt = make()
    run(var, opt, grads[:2])
    path = tf.train.Checkpoint(v=var, optimizer=opt).save(self.make_temp_dir() + "/c")
    var2, opt2 = make()
    tf.train.Checkpoint(v=var2, optimizer=opt2).restore(path)
    run(var2, opt2, grads[2:])
    np.testing.assert_array_equal(var2.numpy(), ref_var.numpy())
    np.testing.assert_array_equal(opt2.get_slot(var2, "accumulator").numpy(),
                                  ref_opt.get_slot(ref_var, "accumulator").numpy())

  def test_sparsity_report_of_trained_table(self):
    var = tf.Variable(np.ones((10, 4), np.float32), name="embedding/t")
    opt = group_lasso_ftrl.GroupLassoFtrl(0.1, group_lasso=1.0)
    opt.apply_gradients([(sparse_grad(np.full((3, 4), 0.1), [0, 1, 2], [10, 4]), var)])
    report = sparsity.table_sparsity(var)
    self.assertEqual(report.zero_rows, 3)
    self.assertEqual(report.pruned_bytes, 7 * (4 * 4 + 8))


if __name__ == "__main__":
  tf.test.main()
