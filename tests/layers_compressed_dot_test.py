"""CompressedDotProduct (CDot family) against NumPy; no n x n tensor in its graph."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.layers.compressed_dot import CompressedDotProduct
from ctr_zoo.layers.dot_interaction import DotInteraction


def numpy_cdot(x, y):
  """Z = Y^T X (B, k, d), D = (X X^T) Y (B, n, k) (the n x n form, fine in a test)."""
  if y.ndim == 2:
    y = np.broadcast_to(y, (x.shape[0],) + y.shape)
  z = np.einsum("bnk,bnd->bkd", y, x)
  gram = np.einsum("bnd,bmd->bnm", x, x)
  dots = np.einsum("bnm,bmk->bnk", gram, y)
  return z, dots


def flat_output(z, dots):
  return np.concatenate([z.reshape(z.shape[0], -1), dots.reshape(dots.shape[0], -1)], axis=1)


def numpy_instance_y(x, q):
  logits = np.einsum("bnd,kd->bnk", x, q) / np.sqrt(x.shape[-1])
  e = np.exp(logits - logits.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)  # softmax over the fields


def max_square_dim(concrete_function, n):
  """The number of graph tensors with two axes of size n."""
  count = 0
  for op in concrete_function.graph.get_operations():
    for t in op.outputs:
      dims = t.shape.as_list() if t.shape.rank is not None else []
      if sum(1 for v in dims if v == n) >= 2:
        count += 1
  return count


class CompressedDotProductTest(testing.TestCase, parameterized.TestCase):

  def x(self, b=3, n=7, d=4):
    return self.rng.normal(size=(b, n, d)).astype(np.float32)

  @parameterized.named_parameters(("random", "random"), ("learned", "learned"))
  def test_matches_numpy(self, projection):
    x = self.x()
    layer = CompressedDotProduct(3, projection=projection, seed=5)
    got = layer(x)
    y = layer.projections[0].numpy()
    self.assertEqual(got.shape, (3, 3 * 4 + 7 * 3))
    self.assertAllClose(got, flat_output(*numpy_cdot(x, y)), rtol=1e-5, atol=1e-5)

  def test_instance_projection_matches_numpy(self):
    x = self.x()
    layer = CompressedDotProduct(2, projection="instance")
    got = layer(x)
    y = numpy_instance_y(x, layer.projections[0].numpy())
    self.assertAllClose(y.sum(axis=1), np.ones((3, 2)))
    self.assertAllClose(got, flat_output(*numpy_cdot(x, y)), rtol=1e-5, atol=1e-5)

  def test_identity_projection_gives_all_dot_products(self):
    x = self.x(n=5)
    layer = CompressedDotProduct(5, projection="learned", kernel_initializer="identity")
    z, dots = layer.compress(x)
    self.assertAllClose(z, x)
    self.assertAllClose(dots, np.einsum("bnd,bmd->bnm", x, x), rtol=1e-5, atol=1e-5)

  def test_exact_values_from_ones_projection(self):
    # Y = ones (n=2, k=1): Z = x_1 + x_2, D_i = <x_i, x_1 + x_2>.
    x = np.array([[[1.0, 2.0], [3.0, -1.0]]], np.float32)
    layer = CompressedDotProduct(1, projection="learned", kernel_initializer="ones")
    self.assertAllClose(layer(x), [[4.0, 1.0, 1 * 4 + 2 * 1, 3 * 4 - 1 * 1]])

  def test_random_projection_preserves_inner_products_in_expectation(self):
    # E[Y Y^T] = I for Y_ij ~ N(0, 1/k): the mean of D Y^T over draws is X X^T.
    x = self.x(b=2, n=6, d=4)
    gram = np.einsum("bnd,bmd->bnm", x, x)
    estimates = []
    for seed in range(40):
      layer = CompressedDotProduct(64, seed=seed)
      _, dots = layer.compress(x)
      estimates.append(np.einsum("bnk,mk->bnm", dots.numpy(), layer.projections[0].numpy()))
    mean_error = np.abs(np.mean(estimates, axis=0) - gram).max() / np.abs(gram).max()
    one_draw_error = np.abs(estimates[0] - gram).max() / np.abs(gram).max()
    self.assertLess(mean_error, 0.06)
    self.assertLess(mean_error, one_draw_error)

  def test_random_projection_is_fixed_by_seed_and_not_trainable(self):
    a, b, c = (CompressedDotProduct(3, seed=s) for s in (11, 11, 12))
    for layer in (a, b, c):
      layer.build((None, 5, 2))
    self.assertEmpty(a.trainable_weights)
    self.assertAllClose(a.projections[0], b.projections[0], rtol=0, atol=0)
    self.assertNotAllClose(a.projections[0], c.projections[0])
    big = CompressedDotProduct(400, seed=3)
    big.build((None, 100, 2))
    self.assertAllClose(np.std(big.projections[0].numpy()), 1 / np.sqrt(400), rtol=0.05, atol=0)

  def test_permuting_fields_with_rows_of_y_permutes_d_and_keeps_z(self):
    x = self.x()
    perm = self.rng.permutation(7)
    layer = CompressedDotProduct(3, projection="learned")
    z, dots = layer.compress(x)
    permuted = CompressedDotProduct(3, projection="learned")
    permuted.build((None, 7, 4))
    permuted.projections[0].assign(layer.projections[0].numpy()[perm])
    z_p, dots_p = permuted.compress(x[:, perm])
    self.assertAllClose(z_p, z, rtol=1e-5, atol=1e-5)
    self.assertAllClose(dots_p, dots.numpy()[:, perm], rtol=1e-5, atol=1e-5)

  def test_block_diagonal_y_equals_grouped(self):
    x = self.x(n=5)
    groups = [[0, 2], [1, 3, 4]]
    grouped = CompressedDotProduct([2, 1], projection="learned", groups=groups)  # CDotFlex
    out = grouped(x)
    y = np.zeros((5, 3), np.float32)
    y[np.ix_(groups[0], [0, 1])] = grouped.projections[0].numpy()
    y[np.ix_(groups[1], [2])] = grouped.projections[1].numpy()
    dense = CompressedDotProduct(3, projection="learned")
    dense.build((None, 5, 4))
    dense.projections[0].assign(y)
    self.assertAllClose(out, dense(x), rtol=1e-5, atol=1e-5)
    self.assertAllClose(out, flat_output(*numpy_cdot(x, y)), rtol=1e-5, atol=1e-5)

  def test_no_n_by_n_tensor_in_the_graph(self):
    n, k, d = 400, 8, 16
    spec = tf.TensorSpec((None, n, d), tf.float32)
    for projection in ("random", "learned", "instance"):
      layer = CompressedDotProduct(k, projection=projection)
      fn = tf.function(layer).get_concrete_function(spec)
      self.assertEqual(max_square_dim(fn, n), 0, projection)
    # The check can fail: the all-pairs interaction does build (B, n, n).
    fn = tf.function(DotInteraction()).get_concrete_function(spec)
    self.assertGreater(max_square_dim(fn, n), 0)

  def test_stacking_raises_the_order(self):
    x = self.x(b=2, n=4, d=3)
    first = CompressedDotProduct(2, projection="learned", return_compressed=True)
    second = CompressedDotProduct(2, projection="learned")
    out1, z = first(x)
    self.assertEqual(out1.shape, (2, 2 * 3 + 4 * 2))
    xz = np.concatenate([x, z.numpy()], axis=1)  # (B, n + k, d)
    out2 = second(xz)
    self.assertAllClose(out2, flat_output(*numpy_cdot(xz, second.projections[0].numpy())),
                        rtol=1e-5, atol=1e-5)
    # Order: scaling X by t scales Z by t and the second block's dots (fields of Z) by t^4.
    _, dots2 = second.compress(np.concatenate([2 * x, 2 * z.numpy()], axis=1))
    _, dots1 = second.compress(xz)
    self.assertAllClose(dots2, 4 * dots1.numpy(), rtol=1e-5, atol=1e-4)

  def test_list_of_fields_input_and_width_error(self):
    x = self.x(n=3)
    layer = CompressedDotProduct(2, projection="learned")
    self.assertAllClose(layer([x[:, 0], x[:, 1], x[:, 2]]), layer(x))
    with self.assertRaisesRegex(ValueError, r"one width.*\(None, 4\).*\(None, 5\)|one width.*widths \[4, 5\]"):
      CompressedDotProduct(2)([tf.keras.Input((4,)), tf.keras.Input((5,))])

  def test_errors_name_the_bad_value(self):
    with self.assertRaisesRegex(ValueError, r"projection must be one of.*got 'pca'"):
      CompressedDotProduct(2, projection="pca")
    with self.assertRaisesRegex(ValueError, r"num_projections.*got 0"):
      CompressedDotProduct(0)
    with self.assertRaisesRegex(ValueError, r"field\(s\) \[1\]"):
      CompressedDotProduct(2, groups=[[0, 1], [1, 2]])
    with self.assertRaisesRegex(ValueError, r"gives 3 values for 2 group"):
      CompressedDotProduct([1, 2, 3], groups=[[0], [1]])
    with self.assertRaisesRegex(ValueError, r"out of range \[5\], not covered \[1\]"):
      CompressedDotProduct(1, groups=[[0, 5], [2]])(tf.ones((2, 3, 4)))
    with self.assertRaisesRegex(ValueError, r"got shape \(2, 12\)"):
      CompressedDotProduct(2)(tf.ones((2, 12)))

  def test_weight_shapes(self):
    layer = CompressedDotProduct([2, 3], projection="learned", groups=[[0, 1, 2], [3, 4]])
    layer.build((None, 5, 4))
    self.assertEqual([(w.name.split("/")[-1], tuple(w.shape)) for w in layer.trainable_weights],
                     [("projection_0:0", (3, 2)), ("projection_1:0", (2, 3))])
    instance = CompressedDotProduct(3, projection="instance")
    instance.build((None, 5, 4))
    self.assertEqual(instance.count_params(), 3 * 4)
    self.assertEqual(instance.compute_output_shape((None, 5, 4)).as_list(), [None, 3 * 4 + 5 * 3])

  def test_config_round_trip(self):
    layer = CompressedDotProduct([2, 1], projection="random", groups=[[0, 1], [2]], seed=9,
                                 return_compressed=True)
    config = layer.get_config()
    self.assertEqual(config["seed"], 9)
    self.assertEqual(CompressedDotProduct.from_config(config).get_config(), config)

  @parameterized.named_parameters(
      ("random", dict(projection="random", seed=3)),
      ("learned", dict(projection="learned")),
      ("instance", dict(projection="instance")),
      ("grouped", dict(projection="learned", groups=[[0, 3], [1, 2, 4]], num_projections=[2, 1])))
  def test_save_and_reload(self, kwargs):
    kwargs = dict(kwargs)
    k = kwargs.pop("num_projections", 2)
    inputs = tf.keras.Input((5, 3))
    out = tf.keras.layers.Dense(1)(CompressedDotProduct(k, **kwargs)(inputs))
    model = tf.keras.Model(inputs, out)
    self.assertSameAfterReload(model, self.x(b=4, n=5, d=3))

  @parameterized.named_parameters(("learned", "learned"), ("instance", "instance"))
  def test_gradients_reach_every_weight(self, projection):
    layer = CompressedDotProduct(2, projection=projection)
    x = tf.constant(self.x())
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(tf.square(layer(x)))
    grads = tape.gradient(loss, layer.trainable_weights + [x])
    self.assertLen(grads, 2)
    for g in grads:
      self.assertIsNotNone(g)
      self.assertTrue(np.all(np.isfinite(g)))
      self.assertGreater(np.abs(g).sum(), 0)


if __name__ == "__main__":
  tf.test.main()
