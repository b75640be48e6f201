"""`make_dataset`: transformed shards (or a small DataFrame) -> tf.data.

The pipeline never does per-row work in TensorFlow: whole Parquet row groups
are read as NumPy columns, shuffled as blocks in NumPy, sliced into batches and
handed to `tf.data` one batch at a time, then prefetched.

Order (deterministic for a given seed): without shuffling, files in sorted
order and row groups in file order. With `shuffle=True`, epoch e uses
`np.random.default_rng([seed, e])` to permute the row groups, and the rows of
each window of about `shuffle_buffer_rows` rows (whole row groups) are
permuted before they are cut into batches.

Elements: `(features, label)`, features a dict keyed by feature name with
the spec's dtypes and shapes (int64 (B,) ids, float32 (B,) values, int64
(B, max_len) sequences), label float32 (B,).
"""

from __future__ import annotations

import glob
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ctr_zoo import checks
from ctr_zoo.datasets import encoding
from ctr_zoo.datasets import readers
from ctr_zoo.feature_columns import spec as spec_lib

Chunk = Tuple[Dict[str, np.ndarray], np.ndarray]


def list_shards(source: Any) -> List[str]:
  """Parquet shard paths of a directory (recursively), glob, file or list, sorted."""
  if isinstance(source, (list, tuple)):
    out = []
    for s in source:
      out.extend(list_shards(s))
    return out
  source = os.fspath(source)
  if os.path.isdir(source):
    paths = sorted(glob.glob(os.path.join(source, "**", "*.parquet"), recursive=True))
  elif any(ch in source for ch in "*?["):
    paths = sorted(glob.glob(source))
  elif os.path.exists(source):
    paths = [source]
  else:
    raise readers.DataError(f"cannot read {source}: no such file or directory", path=source)
  if not paths:
    raise readers.DataError(f"no Parquet shards under {source}", path=source)
  return paths


def _check_schema(schema: pa.Schema, spec: spec_lib.FeatureSpec, path: str) -> None:
  for name in [spec.label] + spec.feature_names:
    if name not in schema.names:
      raise readers.DataError(f"{path}: shard has no column {name!r} (columns: {schema.names}); "
                              f"was it written with another spec?", path=path, field=name)
  for f in spec.sequence_features:
    t = schema.field(f.name).type
    if not pa.types.is_fixed_size_list(t) or t.list_size != f.max_len:
      raise readers.DataError(f"{path}: column {f.name!r} has type {t}, expected "
                              f"fixed_size_list<int64>[{f.max_len}]", path=path, field=f.name)


def _table_to_chunk(table: pa.Table, spec: spec_lib.FeatureSpec) -> Chunk:
  features = {}
  for f in spec.features:
    col = table.column(f.name).combine_chunks()
    if isinstance(f, spec_lib.SequenceFeature):
      features[f.name] = np.asarray(col.flatten().to_numpy(zero_copy_only=False),
                                    np.int64).reshape(-1, f.max_len)  # (n, max_len)
    elif f in spec.dense_features:
      features[f.name] = np.asarray(col.to_numpy(zero_copy_only=False), np.float32)
    else:
      features[f.name] = np.asarray(col.to_numpy(zero_copy_only=False), np.int64)
  labels = np.asarray(table.column(spec.label).to_numpy(), np.float32)
  return features, labels


def _parquet_units(paths: List[str], spec: spec_lib.FeatureSpec) -> List[Callable[[], Chunk]]:
  units = []
  columns = [spec.label] + spec.feature_names
  for path in paths:
    try:
      pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as e:
      raise readers.DataError(f"cannot read shard {path}: {e}", path=path) from e
    _check_schema(pf.schema_arrow, spec, path)
    for rg in range(pf.num_row_groups):
      def load(path=path, rg=rg):
        return _table_to_chunk(pq.ParquetFile(path).read_row_group(rg, columns=columns), spec)
      units.append(load)
  return units


def _memory_units(features: Dict[str, np.ndarray], labels: np.ndarray,
                  chunk_rows: int) -> List[Callable[[], Chunk]]:
  n = len(labels)
  units = []
  for start in range(0, n, chunk_rows):
    sl = slice(start, min(start + chunk_rows, n))
    units.append(lambda sl=sl: ({k: v[sl] for k, v in features.items()}, labels[sl]))
  return units


def encode_frame(frame: Any, spec: spec_lib.FeatureSpec) -> Chunk:
  """Encodes a raw DataFrame / pyarrow Table with a fitted spec (all rows).

  Returns:
    (features dict of np arrays, labels float32 (n,)). Bad rows raise `DataError`.
  """
  if not spec.is_fitted:
    raise spec_lib.SpecError("encode_frame needs a fitted spec (run datasets.fit first)")
  parts = [encoding.encode_table(b.table, spec)
           for b in readers.read_batches(frame, spec, on_bad_rows="error")]
  features = {f.name: np.concatenate([p[0][f.name] for p in parts]) for f in spec.features}
  labels = np.concatenate([p[1] for p in parts])
  return features, labels


def _concat(chunks: List[Chunk]) -> Chunk:
  if len(chunks) == 1:
    return chunks[0]
  feats = {k: np.concatenate([c[0][k] for c in chunks]) for k in chunks[0][0]}
  return feats, np.concatenate([c[1] for c in chunks])


def _take(chunk: Chunk, index) -> Chunk:
  return {k: v[index] for k, v in chunk[0].items()}, chunk[1][index]


def batch_iterator(units: List[Callable[[], Chunk]], batch_size: int, shuffle: bool, seed: int,
                   epochs: Optional[int], skip_batches: int, drop_remainder: bool,
                   shuffle_buffer_rows: int) -> Iterator[Chunk]:
  """Yields (features, labels) NumPy batches; the generator behind make_dataset."""
  emitted = 0
  epoch = 0
  while epochs is None or epoch < epochs:
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(units)) if shuffle else np.arange(len(units))
    window: List[Chunk] = []
    window_rows = 0
    carry: Optional[Chunk] = None
    for pos, u in enumerate(order):
      chunk = units[u]()
      window.append(chunk)
      window_rows += len(chunk[1])
      last = pos == len(order) - 1
      if window_rows < (shuffle_buffer_rows if shuffle else batch_size) and not last:
        continue
      block = _concat(([carry] if carry is not None else []) + window)
      window, window_rows = [], 0
      n = len(block[1])
      if shuffle:
        block = _take(block, rng.permutation(n))
      full = n // batch_size * batch_size
      for start in range(0, full, batch_size):
        if emitted >= skip_batches:
          yield _take(block, slice(start, start + batch_size))
        emitted += 1
      carry = _take(block, slice(full, n)) if full < n else None
    if carry is not None and not drop_remainder:
      if emitted >= skip_batches:
        yield carry
      emitted += 1
    epoch += 1


def make_dataset(source: Any, spec: spec_lib.FeatureSpec, batch_size: int, shuffle: bool = False,
                 seed: int = 0, *, epochs: Optional[int] = 1, skip_batches: int = 0,
                 drop_remainder: bool = False, shuffle_buffer_rows: int = 1 << 18,
                 prefetch: Optional[int] = None):
  """A `tf.data.Dataset` of (features, label) batches.

  Args:
    source: transformed Parquet shards (a directory such as
      `output_dir/train`, a glob, a file or a list of files); or, for small
      data, a pandas DataFrame / pyarrow Table of RAW rows (encoded here with
      the fitted spec); or a tuple (features dict, labels) of encoded arrays.
    spec: FeatureSpec. Fitted; gives names, dtypes and shapes.
    batch_size: int. Rows per batch.
    shuffle: bool. Shuffle row groups and rows within windows. Defaults to False.
    seed: int. Shuffle seed (epoch e uses [seed, e]). Defaults to 0.
    epochs: int or None. Passes over the data; None repeats forever.
      Defaults to 1.
    skip_batches: int. Batches to skip at the start (to resume a run at the
      same position). Defaults to 0.
    drop_remainder: bool. Drop each epoch's last partial batch. Defaults to False.
    shuffle_buffer_rows: int. Rows per shuffle window. Defaults to 2**18.
    prefetch: int or None. Prefetch depth; None = tf.data.AUTOTUNE.

  Returns:
    tf.data.Dataset of ({name: Tensor}, label float32 (B,)).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  checks.positive_int(batch_size, "batch_size")
  checks.positive_int(skip_batches, "skip_batches", allow_zero=True)
  checks.optional_positive_int(epochs, "epochs")
  if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], dict):
    features, labels = source
    missing = [n for n in spec.feature_names if n not in features]
    if missing:
      raise ValueError(f"make_dataset: encoded arrays lack features {missing}")
    units = _memory_units(features, np.asarray(labels, np.float32), 1 << 16)
  elif readers._is_dataframe(source) or isinstance(source, pa.Table):  # pylint: disable=protected-access
    features, labels = encode_frame(source, spec)
    units = _memory_units(features, labels, 1 << 16)
  else:
    units = _parquet_units(list_shards(source), spec)
  batch_dim = batch_size if drop_remainder else None
  feature_sig = {f.name: tf.TensorSpec((batch_dim,) + spec.input_shape(f), spec.input_dtype(f))
                 for f in spec.features}
  signature = (feature_sig, tf.TensorSpec((batch_dim,), tf.float32))

  def gen():
    for feats, labels in batch_iterator(units, batch_size, shuffle, seed, epochs, skip_batches,
                                        drop_remainder, shuffle_buffer_rows):
      yield {f.name: feats[f.name] for f in spec.features}, labels

  ds = tf.data.Dataset.from_generator(gen, output_signature=signature)
  return ds.prefetch(tf.data.AUTOTUNE if prefetch is None else prefetch)


def read_encoded(source: Any, spec: spec_lib.FeatureSpec) -> Chunk:
  """All rows of transformed shards as NumPy (features dict, labels), in order."""
  units = _parquet_units(list_shards(source), spec)
  return _concat([u() for u in units])
