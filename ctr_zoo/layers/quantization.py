"""Per-row int8 quantization of embedding tables, and its fake-quantized forward pass.

Storage (`quantize_rows`, used by the serving export). A table E (V, d) is
stored as int8 values Q (V, d), one uint8 scale code c_r per row and one
float32 base A per table:

  m_r = max_j |E_rj|                      (the row's largest magnitude)
  A   = max_r m_r / 127                   (the step of the largest row)
  c_r = min(255, floor(16 log2(A 127 / m_r)))   (255 when m_r = 0)
  s_r = A * 2^(-c_r / 16)                 (float32; s_r >= m_r / 127)
  Q_r = clip(round(E_r / s_r), -127, 127) (round half to even)
  dequantize: E'_r = Q_r * s_r

The scale of a row is the smallest step on a grid of 16 steps per octave
that is at least m_r / 127, so no value is clipped and every dequantized
value is within half a step of the original: |E_rj - E'_rj| <= s_r / 2. The
step is at most 2^(1/16) (4.4%) coarser than the exact m_r / 127 of a float32
per-row scale, and costs 1 byte per row instead of 4: a row of width d takes
d + 1 bytes (0.27x of float32 at d = 16, where a float32 scale would give
0.31x). The scheme is symmetric (no zero point): embedding rows are centred
near zero, and a zero point would cost another byte per row. Rows much
smaller than the largest (m_r < 2^-16 of it, code 255) keep the coarsest
step of the grid; their values are tiny, and the half-step bound still holds.

A table of width 1 (a weight per id, e.g. the wide part's) is stored as ONE
row of V values (`quantize_table`): one code for the table, 1 byte per id
instead of 2, every value within half the table's step (max_r |E_r| / 254).

A lookup gathers the int8 rows and the codes of the ids it reads and
dequantizes only those rows (`dequantize_gathered`); the whole table is
never dequantized.

Quantization-aware training (`fake_quantize_rows`, used by
`FeatureEmbedding(fake_quant=True)`): the looked-up rows are replaced in the
forward pass by their per-row int8 round trip, with the exact per-row step
m_r / 127, and the gradient passes straight through (Bengio et al. 2013,
"Estimating or Propagating Gradients Through Stochastic Neurons"; Jacob et
al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", Sec. 3):

  forward:  e~ = clip(round(e / s), -127, 127) * s,  s = max_j |e_j| / 127
  backward: d e~ / d e = I

The table and its updates stay float32; only the forward pass sees the
quantization noise. The export's grid step is at most 4.4% coarser than s.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

QMAX = 127  # int8 values in [-127, 127] (symmetric; -128 unused)
STEPS_PER_OCTAVE = 16  # scale codes: s = A * 2^(-c / 16)
NUM_CODES = 256  # uint8 codes


class QuantizedRows(NamedTuple):
  """A table in per-row int8 storage (see the module docstring).

  values: np.int8 (V, d). codes: np.uint8 (V,), one per row, or (1,), one for the
  whole table (`quantize_table` of a width-1 table). base: np.float32 scalar A.
  """
  values: np.ndarray
  codes: np.ndarray
  base: np.float32

  @property
  def nbytes(self) -> int:
    """Bytes stored: V d int8 values, V uint8 codes and the float32 base."""
    return int(self.values.nbytes + self.codes.nbytes + 4)


def code_scales(codes: np.ndarray, base) -> np.ndarray:
  """s_r = A * 2^(-c_r / 16) in float32, as the serving graph computes it."""
  powers = np.exp2(-np.arange(NUM_CODES, dtype=np.float32) / np.float32(STEPS_PER_OCTAVE))
  return (np.float32(base) * powers.astype(np.float32))[np.asarray(codes, np.int64)]


def quantize_rows(table) -> QuantizedRows:
  """Per-row int8 storage of a (V, d) float table (see the module docstring)."""
  x = np.asarray(table, np.float32)
  if x.ndim != 2:
    raise ValueError(f"quantize_rows needs a (V, d) table, got shape {x.shape}")
  m = np.max(np.abs(x), axis=1).astype(np.float64) if x.shape[1] else np.zeros(x.shape[0])
  top = float(m.max()) if m.size else 0.0
  if top == 0.0:
    return QuantizedRows(np.zeros(x.shape, np.int8), np.full(x.shape[0], NUM_CODES - 1, np.uint8),
                         np.float32(0.0))
  base = np.float32(top / QMAX)
  with np.errstate(divide="ignore"):
    octaves = np.log2(np.float64(base) * QMAX / np.where(m > 0, m, top * 2.0 ** -64))
  codes = np.clip(np.floor(octaves * STEPS_PER_OCTAVE), 0, NUM_CODES - 1)
  codes = np.where(m > 0, codes, NUM_CODES - 1).astype(np.uint8)
  scales = code_scales(codes, base)  # (V,) float32
  # float32 rounding may leave s_r a hair below m_r / 127: step one code coarser then.
  low = (m > 0) & (scales.astype(np.float64) * QMAX < m) & (codes > 0)
  if low.any():
    codes = np.where(low, codes - 1, codes).astype(np.uint8)
    scales = code_scales(codes, base)
  q = np.clip(np.round(x / scales[:, None]), -QMAX, QMAX).astype(np.int8)
  return QuantizedRows(q, codes, base)


def quantize_table(table) -> QuantizedRows:
  """The export's int8 storage of a (V, d) table: per row, or, for d = 1 (and V > 1),
  the V values quantized as one row (one code for the table)."""
  x = np.asarray(table, np.float32)
  if x.ndim == 2 and x.shape[1] == 1 and x.shape[0] > 1:
    one = quantize_rows(x.T)  # (1, V)
    return QuantizedRows(np.ascontiguousarray(one.values.T), one.codes, one.base)
  return quantize_rows(x)


def dequantize_rows(rows: QuantizedRows) -> np.ndarray:
  """E' = Q * s (V, d) float32: what a lookup of every row returns."""
  return rows.values.astype(np.float32) * code_scales(rows.codes, rows.base)[:, None]


def scale_table(base) -> tf.Tensor:
  """The 256 scales s(c) = A * 2^(-c / 16) of a table, in the graph: base (...) -> (..., 256).

  The powers of two are NumPy float32 constants, so s(c) equals `code_scales`.
  """
  powers = np.exp2(-np.arange(NUM_CODES, dtype=np.float32) / np.float32(STEPS_PER_OCTAVE))
  return tf.cast(base, tf.float32)[..., tf.newaxis] * tf.constant(powers.astype(np.float32))


def dequantize_gathered(values: tf.Tensor, codes: tf.Tensor, scales: tf.Tensor) -> tf.Tensor:
  """Gathered int8 rows (..., d) and their uint8 codes (...,) -> float32 rows (..., d).

  `scales` is the table's `scale_table` (256,).
  """
  row_scales = tf.gather(scales, tf.cast(codes, tf.int32))  # (...,)
  return tf.cast(values, tf.float32) * tf.expand_dims(row_scales, -1)


def fake_quantize_rows(rows: tf.Tensor) -> tf.Tensor:
  """Per-row int8 round trip in the forward pass, identity gradient; rows (..., d)."""
  x = tf.cast(rows, tf.float32)
  m = tf.reduce_max(tf.abs(x), axis=-1, keepdims=True)  # (..., 1)
  step = tf.where(m > 0, m / QMAX, tf.ones_like(m))
  quantized = tf.clip_by_value(tf.round(x / step), -QMAX, QMAX) * step
  out = x + tf.stop_gradient(quantized - x)
  return tf.cast(out, rows.dtype)
