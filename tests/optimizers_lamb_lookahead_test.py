"""Lamb and Lookahead against NumPy transcriptions on a quadratic."""

import numpy as np

from tests import testing

import tensorflow as tf

from ctr_zoo.optimizers import lamb
from ctr_zoo.optimizers import lookahead

A = np.array([[3.0, 0.5], [0.5, 1.0]])  # loss = 0.5 w^T A w - b^T w, gradient A w - b
B = np.array([1.0, -2.0])


def grad(w):
  return A @ w - B


def numpy_lamb(w, steps, lr, beta_1=0.9, beta_2=0.999, eps=1e-6, wd=0.0):
  w = np.array(w, np.float64)
  m = np.zeros_like(w)
  v = np.zeros_like(w)
  for t in range(1, steps + 1):
    g = grad(w)
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g * g
    u = (m / (1 - beta_1**t)) / (np.sqrt(v / (1 - beta_2**t)) + eps) + wd * w
    wn, un = np.linalg.norm(w), np.linalg.norm(u)
    r = wn / un if wn > 0 and un > 0 else 1.0
    w = w - lr * r * u
  return w


def numpy_lookahead_sgd(w, steps, lr, k, alpha, momentum=0.0):
  fast = np.array(w, np.float64)
  slow = fast.copy()
  velocity = np.zeros_like(fast)
  for t in range(1, steps + 1):
    velocity = momentum * velocity - lr * grad(fast)
    fast = fast + velocity
    if t % k == 0:
      slow = slow + alpha * (fast - slow)
      fast = slow.copy()
  return fast, slow


def run_tf(opt, w0, steps):
  w = tf.Variable(np.array(w0, np.float32))
  for _ in range(steps):
    g = tf.constant(A, tf.float32) @ w[:, None]
    opt.apply_gradients([(g[:, 0] - tf.constant(B, tf.float32), w)])
  return w


class LambTest(testing.TestCase):

  def test_matches_numpy_on_quadratic(self):
    for wd in (0.0, 0.01):
      w = run_tf(lamb.Lamb(learning_rate=0.05, weight_decay=wd), [0.5, 1.5], 20)
      expected = numpy_lamb([0.5, 1.5], 20, 0.05, wd=wd)
      self.assertAllClose(w.numpy(), expected, rtol=1e-4, atol=1e-5)

  def test_trust_ratio_differs_from_adam(self):
    # ||w|| / ||u|| != 1 here, so Lamb and Adam (same moments) must differ.
    w_lamb = run_tf(lamb.Lamb(learning_rate=0.05, epsilon=1e-7), [0.5, 1.5], 5)
    w_adam = run_tf(tf.keras.optimizers.legacy.Adam(learning_rate=0.05), [0.5, 1.5], 5)
    self.assertGreater(np.abs(w_lamb.numpy() - w_adam.numpy()).max(), 1e-3)

  def test_zero_weights_use_ratio_one_and_exclusion(self):
    w = tf.Variable([0.0, 0.0], name="bias")
    lamb.Lamb(learning_rate=0.1).apply_gradients([(tf.constant([1.0, -1.0]), w)])
    # First Adam step: m_hat / sqrt(v_hat) = sign(g) (up to eps); ratio 1.
    self.assertAllClose(w.numpy(), [-0.1, 0.1], rtol=1e-5, atol=1e-6)
    k = tf.Variable([3.0, 4.0], name="kernel")
    lamb.Lamb(learning_rate=0.1, exclude_from_layer_adaptation=["kernel"]).apply_gradients(
        [(tf.constant([1.0, -1.0]), k)])
    self.assertAllClose(k.numpy(), [2.9, 4.1], rtol=1e-5, atol=1e-6)

  def test_sparse_gradient_is_densified(self):
    a, b = tf.Variable(np.ones((4, 2), np.float32)), tf.Variable(np.ones((4, 2), np.float32))
    values = tf.constant([[1.0, 2.0], [3.0, 4.0], [0.5, 0.5]])
    lamb.Lamb(0.1).apply_gradients([(tf.IndexedSlices(values, tf.constant([0, 2, 0]), tf.constant([4, 2])), a)])
    dense = np.zeros((4, 2), np.float32)
    dense[0] = [1.5, 2.5]
    dense[2] = [3.0, 4.0]
    lamb.Lamb(0.1).apply_gradients([(tf.constant(dense), b)])
    self.assertAllClose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)

  def test_config_and_errors(self):
    opt = lamb.Lamb(0.01, weight_decay=0.1, exclude_from_weight_decay=["bias"])
    restored = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(opt), use_legacy_optimizer=True)
    self.assertEqual(restored.get_config(), opt.get_config())
    with self.assertRaisesRegex(ValueError, r"beta_1 must be a number in \[0, 1\), got 1\.5"):
      lamb.Lamb(beta_1=1.5)


class LookaheadTest(testing.TestCase):

  def test_matches_numpy_sgd_on_quadratic(self):
    for momentum in (0.0, 0.9):
      opt = lookahead.Lookahead(tf.keras.optimizers.legacy.SGD(0.05, momentum=momentum), sync_period=3,
                                slow_step_size=0.5)
      w = run_tf(opt, [2.0, -1.0], 10)  # 10 steps: ends 1 step after a sync
      fast, slow = numpy_lookahead_sgd([2.0, -1.0], 10, 0.05, 3, 0.5, momentum=momentum)
      self.assertAllClose(w.numpy(), fast, rtol=1e-5, atol=1e-6)
      self.assertAllClose(opt.get_slot(w, "slow").numpy(), slow, rtol=1e-5, atol=1e-6)
      self.assertGreater(np.abs(fast - slow).max(), 1e-3)

  def test_alpha_one_is_the_inner_optimizer(self):
    w = run_tf(lookahead.Lookahead(tf.keras.optimizers.legacy.Adam(0.05), sync_period=2, slow_step_size=1.0),
               [2.0, -1.0], 7)
    w_adam = run_tf(tf.keras.optimizers.legacy.Adam(0.05), [2.0, -1.0], 7)
    self.assertAllClose(w.numpy(), w_adam.numpy(), rtol=1e-6, atol=1e-7)

  def test_checkpoint_resume_is_bit_identical(self):
    def make():
      return lookahead.Lookahead("adam", sync_period=3)

    ref = make()
    w_ref = run_tf(ref, [2.0, -1.0], 8)
    opt = make()
    w = run_tf(opt, [2.0, -1.0], 4)
    path = tf.train.Checkpoint(w=w, optimizer=opt).save(self.make_temp_dir() + "/c")
    w2, opt2 = tf.Variable([0.0, 0.0]), make()
    tf.train.Checkpoint(w=w2, optimizer=opt2).restore(path)
    for _ in range(4):
      g = tf.constant(A, tf.float32) @ w2[:, None]
      opt2.apply_gradients([(g[:, 0] - tf.constant(B, tf.float32), w2)])
    np.testing.assert_array_equal(w2.numpy(), w_ref.numpy())
    self.assertEqual(int(opt2.iterations.numpy()), 8)

  def test_config_round_trip_and_errors(self):
    opt = lookahead.Lookahead("lamb", sync_period=5, slow_step_size=0.8)
    restored = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(opt), use_legacy_optimizer=True)
    self.assertIsInstance(restored.inner_optimizer, lamb.Lamb)
    self.assertEqual(restored.get_config(), opt.get_config())
    with self.assertRaisesRegex(ValueError, r"sync_period must be an int >= 1, got 0"):
      lookahead.Lookahead("sgd", sync_period=0)
    with self.assertRaisesRegex(TypeError, "legacy"):
      lookahead.Lookahead(tf.keras.optimizers.Adam())


if __name__ == "__main__":
  tf.test.main()
