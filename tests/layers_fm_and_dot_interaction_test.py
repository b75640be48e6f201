"""FactorizationMachine and DotInteraction against explicit pairwise sums."""

from absl.testing import parameterized
import numpy as np

from tests import testing
import tensorflow as tf

from ctr_zoo.layers.dot_interaction import DotInteraction
from ctr_zoo.layers.fm import FactorizationMachine


def pairwise(v, self_interaction=False):
  """[<v_i, v_j>] for i < j (i <= j), row-major, per example."""
  n = v.shape[1]
  return np.stack([[v[b, i] @ v[b, j] for i in range(n) for j in range(n)
                    if j > i or (self_interaction and j == i)] for b in range(v.shape[0])])


class FactorizationMachineTest(testing.TestCase, parameterized.TestCase):

  def test_equals_sum_of_pairwise_dots(self):
    v = self.rng.normal(size=(4, 6, 3)).astype(np.float32)
    self.assertAllClose(FactorizationMachine()(v), pairwise(v).sum(axis=1, keepdims=True),
                        rtol=1e-5, atol=1e-5)

  def test_per_dimension_terms(self):
    v = self.rng.normal(size=(4, 6, 3)).astype(np.float32)
    expected = np.stack([sum(v[:, i, :] * v[:, j, :] for i in range(6) for j in range(i + 1, 6))])[0]
    self.assertAllClose(FactorizationMachine(reduce_sum=False)(v), expected, rtol=1e-5, atol=1e-5)

  @parameterized.named_parameters(("summed", True), ("per_dimension", False))
  def test_field_groups_are_the_concatenated_stack(self, reduce_sum):
    ids = self.rng.normal(size=(4, 5, 3)).astype(np.float32)
    numeric = self.rng.normal(size=(4, 2, 3)).astype(np.float32)
    stack = np.concatenate([ids, numeric], axis=1)  # all 7 * 6 / 2 pairs, across groups too
    expected = pairwise(stack).sum(axis=1, keepdims=True) if reduce_sum else np.stack(
        [sum(stack[:, i] * stack[:, j] for i in range(7) for j in range(i + 1, 7))])[0]
    layer = FactorizationMachine(reduce_sum=reduce_sum)
    self.assertAllClose(layer([ids, numeric]), expected, rtol=1e-5, atol=1e-5)
    self.assertEqual(layer.compute_output_shape([(None, 5, 3), (None, 2, 3)]).as_list(),
                     [None, 1 if reduce_sum else 3])
    a, b = tf.constant(ids), tf.constant(numeric)
    with tf.GradientTape(persistent=True) as tape:
      tape.watch([a, b])
      grouped = tf.reduce_sum(tf.sin(layer([a, b])))
      whole = tf.reduce_sum(tf.sin(layer(tf.concat([a, b], axis=1))))
    for g_grouped, g_whole in zip(tape.gradient(grouped, [a, b]), tape.gradient(whole, [a, b])):
      self.assertAllClose(g_grouped, g_whole, rtol=1e-5, atol=1e-5)

  def test_field_group_errors_name_the_shapes(self):
    with self.assertRaisesRegex(ValueError, r"one width d, got shapes \[\(2, 5, 3\), \(2, 2, 4\)\]"):
      FactorizationMachine()([tf.ones((2, 5, 3)), tf.ones((2, 2, 4))])
    with self.assertRaisesRegex(ValueError, r"field group 1 of shape .* got shape \(2, 4\)"):
      FactorizationMachine()([tf.ones((2, 5, 3)), tf.ones((2, 4))])

  def test_exact_values(self):
    v = np.array([[[1.0, 2.0], [3.0, 4.0], [0.5, -1.0]]], np.float32)
    # <v1,v2> = 11, <v1,v3> = -1.5, <v2,v3> = -2.5 -> 7.
    self.assertAllClose(FactorizationMachine()(v), [[7.0]])
    self.assertAllClose(DotInteraction()(v), [[11.0, -1.5, -2.5]])
    self.assertAllClose(DotInteraction(self_interaction=True)(v), [[5.0, 11.0, -1.5, 25.0, -2.5, 1.25]])

  @parameterized.named_parameters(("pairs", False), ("with_self", True))
  def test_dot_interaction_matches_numpy(self, self_interaction):
    v = self.rng.normal(size=(3, 5, 4)).astype(np.float32)
    layer = DotInteraction(self_interaction=self_interaction)
    self.assertAllClose(layer(v), pairwise(v, self_interaction), rtol=1e-5, atol=1e-5)
    self.assertAllClose(layer([v[:, i] for i in range(5)]), pairwise(v, self_interaction),
                        rtol=1e-5, atol=1e-5)

  def test_no_weights(self):
    fm, dot = FactorizationMachine(), DotInteraction()
    fm(np.ones((1, 3, 2), np.float32))
    dot(np.ones((1, 3, 2), np.float32))
    self.assertEmpty(fm.weights + dot.weights)

  def test_errors_name_the_bad_value(self):
    with self.assertRaisesRegex(ValueError, r"FactorizationMachine.*got shape \(2, 3\)"):
      FactorizationMachine()(tf.ones((2, 3)))
    with self.assertRaisesRegex(ValueError, r"DotInteraction.*got shape \(2, 3\)"):
      DotInteraction()(tf.ones((2, 3)))
    with self.assertRaisesRegex(ValueError, r"one width d.*\(None, 3\).*\(None, 4\)"):
      DotInteraction()([tf.keras.Input((3,)), tf.keras.Input((4,))])

  def test_config_round_trip(self):
    for layer in (FactorizationMachine(reduce_sum=False), DotInteraction(self_interaction=True)):
      self.assertEqual(type(layer).from_config(layer.get_config()).get_config(), layer.get_config())

  def test_save_and_reload(self):
    inputs = tf.keras.Input((5, 3))
    out = tf.keras.layers.Concatenate()([FactorizationMachine()(inputs), DotInteraction()(inputs)])
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(1)(out))
    self.assertSameAfterReload(model, self.rng.normal(size=(2, 5, 3)).astype(np.float32))

  def test_gradients_are_finite_and_match_numpy(self):
    v = tf.constant(self.rng.normal(size=(2, 4, 3)).astype(np.float32))
    with tf.GradientTape() as tape:
      tape.watch(v)
      loss = tf.reduce_sum(FactorizationMachine()(v))
    grad = tape.gradient(loss, v).numpy()
    # d/dv_i sum_{j<k} <v_j, v_k> = sum_{j != i} v_j.
    expected = v.numpy().sum(axis=1, keepdims=True) - v.numpy()
    self.assertAllClose(grad, expected, rtol=1e-5, atol=1e-5)


if __name__ == "__main__":
  tf.test.main()
