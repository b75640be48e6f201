"""Per-row int8 quantization against a NumPy transcription, and the fake-quantized lookup.

The transcription below restates the storage equations of
`ctr_zoo.layers.quantization` independently: per row the largest magnitude
m_r, the table step A = max_r m_r / 127, the code c_r (the coarsest grid
step 2^(-c/16) A that is still >= m_r / 127), round half to even, clip to
[-127, 127], dequantize. Every dequantized value must be within half a step
of the original.
"""

import math

import numpy as np

from tests import testing

import tensorflow as tf

from ctr_zoo.layers import embedding as embedding_lib
from ctr_zoo.layers import quantization


def numpy_quantize(table):
  """(q int8, step per row float32, dequantized) by the equations, row by row."""
  x = np.asarray(table, np.float32)
  m = np.abs(x).max(axis=1).astype(np.float64)
  top = m.max()
  base = np.float32(top / 127)
  q = np.zeros(x.shape, np.int8)
  steps = np.zeros(x.shape[0], np.float32)
  for r in range(x.shape[0]):
    if m[r] == 0:
      code = 255
    else:
      code = min(255, max(0, math.floor(16 * math.log2(float(base) * 127 / m[r]))))
      while code > 0 and float(np.float32(base) * np.float32(2.0 ** (-code / 16))) * 127 < m[r]:
        code -= 1
    steps[r] = np.float32(base) * np.float32(2.0 ** (-code / 16))
    q[r] = np.clip(np.round(x[r] / steps[r]), -127, 127).astype(np.int8)
  return q, steps, q.astype(np.float32) * steps[:, None]


def numpy_fake_quant(rows):
  x = np.asarray(rows, np.float32)
  m = np.abs(x).max(axis=-1, keepdims=True)
  step = np.where(m > 0, m / 127, 1.0).astype(np.float32)
  return (np.clip(np.round(x / step), -127, 127) * step).astype(np.float32)


def sample_table(rng, rows=300, dim=16):
  """Rows of very different magnitudes, a zero row, an exact half-step tie and an outlier."""
  t = rng.normal(size=(rows, dim)).astype(np.float32) * np.exp(rng.uniform(-8, 2, size=(rows, 1)))
  t[3] = 0.0
  t[5, 0] = 40.0  # the table's largest value
  return t.astype(np.float32)


class QuantizeRowsTest(testing.TestCase):

  def test_matches_numpy_transcription_and_half_step_bound(self):
    table = sample_table(self.rng)
    got = quantization.quantize_rows(table)
    q, steps, dequantized = numpy_quantize(table)
    self.assertAllEqual(got.values, q)
    scales = quantization.code_scales(got.codes, got.base)
    self.assertAllClose(scales, steps, rtol=1e-6, atol=0)
    self.assertAllClose(quantization.dequantize_rows(got), dequantized, rtol=1e-6, atol=1e-30)
    # No value is clipped: the step is at least m_r / 127, at most 2^(1/16) coarser (unless
    # the row is below the grid's last code).
    m = np.abs(table).max(axis=1)
    self.assertTrue(np.all(scales * 127 >= m * (1 - 1e-6)))
    above_grid = got.codes < 255
    self.assertTrue(np.all(scales[above_grid] <= m[above_grid] / 127 * 2 ** (1 / 16) * (1 + 1e-6)))
    # Every dequantized value within half a step of its row.
    error = np.abs(quantization.dequantize_rows(got) - table)
    self.assertTrue(np.all(error <= scales[:, None] / 2 * (1 + 1e-5) + 1e-30),
                    float(np.max(error / scales[:, None])))
    self.assertEqual(got.values.dtype, np.int8)
    self.assertEqual(got.codes.dtype, np.uint8)
    self.assertEqual(got.nbytes, 300 * 16 + 300 + 4)

  def test_zero_rows_tables_and_ties(self):
    zeros = quantization.quantize_rows(np.zeros((4, 3), np.float32))
    self.assertAllEqual(quantization.dequantize_rows(zeros), np.zeros((4, 3)))
    table = np.array([[127.0, 0.5, -0.5, 1.5], [0.0, 0.0, 0.0, 0.0]], np.float32)
    got = quantization.quantize_rows(table)
    self.assertEqual(int(got.codes[0]), 0)  # the largest row: step A = 1 exactly
    self.assertAllEqual(got.values[0], [127, 0, 0, 2])  # round half to even
    self.assertAllEqual(got.values[1], [0, 0, 0, 0])
    with self.assertRaisesRegex(ValueError, r"needs a \(V, d\) table, got shape \(3,\)"):
      quantization.quantize_rows(np.ones(3))

  def test_width_one_tables_share_one_scale(self):
    table = sample_table(self.rng, rows=40, dim=1)
    got = quantization.quantize_table(table)
    self.assertEqual(got.codes.shape, (1,))
    self.assertEqual(got.nbytes, 40 + 1 + 4)
    q, steps, dequantized = numpy_quantize(table.T)  # the column as one row
    self.assertAllEqual(got.values, q.T)
    self.assertAllClose(quantization.dequantize_rows(got), dequantized.T, rtol=1e-6, atol=1e-30)
    error = np.abs(quantization.dequantize_rows(got) - table)
    self.assertTrue(np.all(error <= np.abs(table).max() / 254 * (1 + 1e-5)))
    wide = quantization.quantize_table(sample_table(self.rng, rows=40, dim=3))
    self.assertEqual(wide.codes.shape, (40,))  # wider tables: a code per row

  def test_graph_dequantize_equals_numpy(self):
    table = sample_table(self.rng, rows=50, dim=5)
    got = quantization.quantize_rows(table)
    ids = self.rng.integers(0, 50, size=(7, 3))
    rows = quantization.dequantize_gathered(tf.gather(got.values, ids), tf.gather(got.codes, ids),
                                            quantization.scale_table(got.base))
    self.assertAllEqual(rows, quantization.dequantize_rows(got)[ids])  # bit for bit


class FakeQuantTest(testing.TestCase):

  def test_forward_numpy_reference_and_straight_through_gradient(self):
    rows = tf.constant(sample_table(self.rng, rows=20, dim=6))
    with tf.GradientTape() as tape:
      tape.watch(rows)
      out = quantization.fake_quantize_rows(rows)
      loss = tf.reduce_sum(out * tf.range(6, dtype=tf.float32))
    self.assertAllClose(out, numpy_fake_quant(rows.numpy()), rtol=0, atol=0)
    grad = tape.gradient(loss, rows)
    self.assertAllEqual(grad, np.tile(np.arange(6, dtype=np.float32), (20, 1)))

  def test_fake_quant_embedding_layer(self):
    for fused, stack in ((False, False), (True, False), (True, True), (False, True)):
      layer = embedding_lib.FeatureEmbedding([("a", 20, 4), ("b", 30, 4)], fused=fused,
                                             stack=stack, fake_quant=True,
                                             embeddings_regularizer="l2")
      ids = {"a": tf.constant(self.rng.integers(0, 20, size=8)),
             "b": tf.constant(self.rng.integers(0, 30, size=8))}
      with tf.GradientTape() as tape:
        out = layer(ids)
        loss = tf.add_n([tf.reduce_sum(o) for o in (out.values() if isinstance(out, dict)
                                                    else [out])])
      tables = layer.embedding_variables
      values = np.concatenate([v.numpy() for v in tables])
      offsets = {"a": 0, "b": 20}
      expected = {f: numpy_fake_quant(values[ids[f].numpy() + offsets[f]]) for f in ("a", "b")}
      if stack:
        self.assertAllClose(out, np.stack([expected["a"], expected["b"]], axis=1), rtol=0, atol=0)
      else:
        for f in ("a", "b"):
          self.assertAllClose(out[f], expected[f], rtol=0, atol=0, msg=f"fused={fused} {f}")
      # The regularizer sees the float32 rows: sum of squares of the unquantized rows.
      rows = np.concatenate([values[ids[f].numpy() + offsets[f]] for f in ("a", "b")])
      self.assertAllClose(tf.add_n(layer.losses), 0.01 * np.sum(rows ** 2), rtol=1e-5, atol=0)
      # Straight through: the table gradient counts each looked-up row once per lookup.
      grads = tape.gradient(loss, tables)
      dense = np.concatenate([tf.convert_to_tensor(g).numpy() for g in grads])
      counts = np.zeros(50)
      for f in ("a", "b"):
        np.add.at(counts, ids[f].numpy() + offsets[f], 1)
      self.assertAllClose(dense, np.tile(counts[:, None], (1, 4)), rtol=0, atol=1e-6)

  def test_config_round_trip_and_reload(self):
    layer = embedding_lib.FeatureEmbedding([("a", 10, 3)], fake_quant=True, name="emb")
    self.assertTrue(layer.get_config()["fake_quant"])
    self.assertNotIn("fake_quant", embedding_lib.FeatureEmbedding([("a", 10, 3)]).get_config())
    clone = embedding_lib.FeatureEmbedding.from_config(layer.get_config())
    self.assertTrue(clone.fake_quant)
    inputs = {"a": tf.keras.Input(shape=(), dtype=tf.int64, name="a")}
    model = tf.keras.Model(inputs, layer(inputs)["a"])
    self.assertSameAfterReload(model, {"a": tf.constant([1, 2, 9], tf.int64)}, atol=0)
    with self.assertRaisesRegex(ValueError, "fake_quant must be true or false, got 'yes'"):
      embedding_lib.FeatureEmbedding([("a", 10, 3)], fake_quant="yes")


if __name__ == "__main__":
  tf.test.main()
