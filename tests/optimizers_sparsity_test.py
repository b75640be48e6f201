"""embedding_sparsity / prune_table on hand-built tables."""

import numpy as np

from tests import testing

import tensorflow as tf

from ctr_zoo.optimizers import sparsity


class TwoTables(tf.keras.Model):

  def __init__(self, a, b, **kwargs):
    super().__init__(**kwargs)
    self.a = tf.Variable(a, name="embedding/a")
    self.b = tf.Variable(b, name="embedding/b")
    self.dense = tf.keras.layers.Dense(1)

  def call(self, ids):
    return self.dense(tf.gather(self.a, ids) + tf.gather(self.b, ids))

  @property
  def embedding_variables(self):
    return [self.a, self.b]


class SparsityTest(testing.TestCase):

  def test_prune_table(self):
    table = np.zeros((6, 3), np.float32)
    table[1] = [1.0, 0.0, 0.0]
    table[4] = [0.0, -2.0, 3.0]
    kept, rows = sparsity.prune_table(tf.Variable(table))
    np.testing.assert_array_equal(kept, [1, 4])
    self.assertEqual(kept.dtype, np.int64)
    self.assertEqual(rows.dtype, np.float32)
    np.testing.assert_array_equal(rows, table[[1, 4]])
    # Serving: missing ids map to zero -> reconstructs the table exactly.
    rebuilt = np.zeros_like(table)
    rebuilt[kept] = rows
    np.testing.assert_array_equal(rebuilt, table)

  def test_embedding_sparsity_per_table(self):
    a = self.rng.normal(size=(10, 4)).astype(np.float32)
    a[[0, 3, 7, 9]] = 0.0
    b = self.rng.normal(size=(5, 2)).astype(np.float32)
    model = TwoTables(a, b)
    report = sparsity.embedding_sparsity(model)
    self.assertEqual(list(report), [model.a.name, model.b.name])
    ra, rb = report[model.a.name], report[model.b.name]
    self.assertEqual((ra.rows, ra.dim, ra.zero_rows), (10, 4, 4))
    self.assertAllClose(ra.zero_row_fraction, 0.4, rtol=0, atol=1e-12)
    self.assertEqual(ra.dense_bytes, 10 * 4 * 4)
    self.assertEqual(ra.pruned_bytes, 6 * 4 * 4 + 6 * 8)
    self.assertEqual((rb.zero_rows, rb.pruned_bytes), (0, 5 * 2 * 4 + 5 * 8))

  def test_name_fallback_without_embedding_variables(self):
    model = tf.keras.Sequential([tf.keras.layers.Embedding(7, 3, name="embedding_x"), tf.keras.layers.Dense(1)])
    model.build((None, 2))
    report = sparsity.embedding_sparsity(model)
    self.assertEqual(len(report), 1)
    self.assertEqual(next(iter(report.values())).rows, 7)

  def test_bad_shape_names_it(self):
    with self.assertRaisesRegex(ValueError, r"\(4,\)"):
      sparsity.prune_table(np.zeros(4))


if __name__ == "__main__":
  tf.test.main()
