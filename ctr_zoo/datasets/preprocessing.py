"""`fit` (raw -> fitted FeatureSpec) and `transform` (raw -> Parquet shards).

Both make one streaming pass over the raw source (see `readers`), so memory is
bounded by the batch size plus the vocabularies being counted; all per-row
work is vectorised with pyarrow / NumPy.

Fitting rules (the rows of `fit_split` only, when a split is given):

- Categorical / bucketized dense / sequence vocabularies: count every
  non-missing value (every token of a sequence); keep values seen at least
  `min_count` times; order by descending count, ties by ascending value
  (byte order of the UTF-8 string), so ids are stable across runs; keep at
  most `max_vocab_size` values when set. A sequence that shares another
  feature's vocabulary adds its tokens to that feature's counts and keeps no
  vocabulary of its own. Hashed features need no fitting.
- "standardize": mean and population std of the non-missing float64 values
  (std 1.0 if the values are constant or absent); "log1p_standardize": the
  same of log(1 + max(x, 0)).
- "quantile": boundaries from the exact histogram of the non-missing values
  of the fitted split (`encoding.quantile_boundaries`; memory grows with the
  number of distinct values).
- An id feature whose vocabulary comes out empty (min_count above every
  count, or a column that is always empty) is valid: every value maps to
  OOV_ID. `fit` logs a warning naming the field and lists it in
  `FitSummary.empty_vocabularies`.

Output of `transform`: `output_dir/<split>/part-NNNNN.parquet` with one column
per feature (int64 ids, float32 values, fixed_size_list<int64>[max_len] for
sequences) and the label as float32, plus `output_dir/spec.json` (the fitted
spec) and `output_dir/summary.json` (the `TransformSummary`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
from typing import Any, Dict, Optional

from absl import logging
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ctr_zoo.datasets import background
from ctr_zoo.datasets import encoding
from ctr_zoo.datasets import readers
from ctr_zoo.datasets import splits as splits_lib
from ctr_zoo.feature_columns import spec as spec_lib

_MERGE_EVERY = 1 << 21  # pending (value, count) rows before a merge


class _ValueCounter:
  """Streaming value counts of one field, merged with pyarrow group_by."""

  def __init__(self, value_type):
    self.value_type = value_type
    self.pending = []
    self.pending_rows = 0
    self.merged = None  # pa.Table(value, count)
    self._merged_rows = 0

  def add(self, values: pa.Array) -> None:
    values = values.drop_null()
    if len(values) == 0:
      return
    vc = pc.value_counts(values)  # struct<values, counts>
    self._add_counts(vc.field("values"), pc.cast(vc.field("counts"), pa.int64()))

  def add_dictionary(self, values: pa.DictionaryArray, mask: Optional[np.ndarray]) -> None:
    """Counts a dictionary array's values (rows where `mask`, all if None) by index."""
    indices = values.indices
    idx = pc.fill_null(indices, -1).to_numpy() if indices.null_count else indices.to_numpy()
    if mask is not None:
      idx = idx[mask]
    if indices.null_count:
      idx = idx[idx >= 0]
    counts = np.bincount(idx, minlength=len(values.dictionary))  # (len(dictionary),)
    seen = np.flatnonzero(counts)
    if len(seen) == 0:
      return
    self._add_counts(values.dictionary.take(pa.array(seen)), pa.array(counts[seen], pa.int64()))

  def _add_counts(self, values: pa.Array, counts: pa.Array) -> None:
    self.pending.append(pa.table({"value": values, "count": counts}))
    self.pending_rows += len(values)
    # A merge costs O(merged + pending) rows. Merging every fixed number of
    # pending rows would cost O(distinct) per merge, quadratic over a file
    # whose field has millions of distinct values (Criteo's C3: 10M); waiting
    # until the pending rows reach half the merged table keeps the total
    # linear (each merge costs at most 3x its pending rows), at most 1.5x the
    # merged table's memory.
    if self.pending_rows >= max(_MERGE_EVERY, self._merged_rows // 2):
      self._merge()

  def _merge(self) -> None:
    tables = ([self.merged] if self.merged is not None else []) + self.pending
    self.pending, self.pending_rows = [], 0
    if not tables:
      return
    t = pa.concat_tables(tables)
    agg = t.group_by("value").aggregate([("count", "sum")])
    self.merged = agg.select(["value", "count_sum"]).rename_columns(["value", "count"])
    self._merged_rows = self.merged.num_rows

  def histogram(self) -> tuple:
    """(distinct values, their counts) as NumPy arrays."""
    self._merge()
    if self.merged is None:
      return np.zeros(0, np.float64), np.zeros(0, np.int64)
    return (self.merged.column("value").to_numpy(), self.merged.column("count").to_numpy())

  def vocabulary(self, min_count: int, max_vocab_size: Optional[int]) -> tuple:
    self._merge()
    if self.merged is None:
      return ()
    t = self.merged.filter(pc.greater_equal(self.merged.column("count"), min_count))
    if pa.types.is_integer(t.column("value").type):
      t = t.set_column(0, "value", pc.cast(t.column("value"), pa.string()))
    order = pc.sort_indices(t, sort_keys=[("count", "descending"), ("value", "ascending")])
    values = t.column("value").take(order).to_pylist()
    if max_vocab_size is not None:
      values = values[:max_vocab_size]
    return tuple(values)

  @property
  def distinct(self) -> int:
    self._merge()
    return 0 if self.merged is None else self.merged.num_rows


class _ProvisionalIds:
  """A categorical field's distinct values, numbered, for `fit_transform`'s one parse.

  Every value read (in any split) gets a provisional id; `counts` holds its
  count in the fitted rows. Batch dictionaries wait in `pending` and are
  merged when the pending entries reach half the known values (a linear
  total cost, as `_ValueCounter`); the merge writes each batch dictionary's
  provisional ids (int32) to `map_path`, in batch order. Once the vocabulary
  is chosen, `final` maps provisional ids to ids, and the transforming pass
  maps a staged batch with two gathers (`batch_ids`): no value is hashed or
  searched again.

  Two ways to merge:
  - keys (integer fields, and strings of at most 8 bytes, `encoding.string_keys`):
    the known keys are kept sorted with their provisional ids; a merge
    factorizes the pending keys, sorts the distinct ones, finds them by
    binary search and inserts the new ones (O(known) memory moves, no
    hashing of the known values);
  - values (any other string): one `dictionary_encode` of [values, pending
    dictionaries]; Arrow numbers distinct values in order of first
    appearance, so known values keep their ids and new ones are appended.
  A string field starts with keys and moves to values for good at its first
  dictionary that has no keys.
  """

  def __init__(self, map_path: str, value_type=pa.large_string()):
    self.map_path = map_path
    self.value_type = value_type
    self.is_int = pa.types.is_integer(value_type)
    key_type = np.int64 if self.is_int else np.uint64
    self.keys = np.zeros(0, key_type)  # by provisional id (keys mode)
    self.sorted_keys = np.zeros(0, key_type)
    self.sorted_ids = np.zeros(0, np.int64)  # provisional id of each sorted key
    self.values = None  # pa.Array by provisional id (values mode)
    self.counts = np.zeros(0, np.int64)
    self.pending = []  # (keys or dictionary, counts in the fitted rows)
    self.pending_rows = 0
    self.sizes = []  # dictionary length of each batch
    self.final = None  # provisional id -> id (after vocabulary())
    self._map = open(map_path, "wb")  # pylint: disable=consider-using-with
    self._read = None
    self._batch = 0

  @property
  def known(self) -> int:
    return len(self.keys) if self.values is None else len(self.values)

  def add_dictionary(self, values: pa.DictionaryArray, mask: Optional[np.ndarray]) -> np.ndarray:
    """Takes one batch's dictionary array; counts its rows where `mask` (all if None).

    Returns its indices as NumPy, -1 where null (what `_write_indices` stages).
    """
    indices = values.indices
    all_idx = pc.fill_null(indices, -1).to_numpy() if indices.null_count else indices.to_numpy()
    idx = all_idx if mask is None else all_idx[mask]
    if indices.null_count:
      idx = idx[idx >= 0]
    dictionary = values.dictionary
    n = len(dictionary)
    entry = dictionary
    if self.values is None:  # keys mode
      entry = dictionary.to_numpy() if self.is_int else encoding.string_keys(dictionary)
      if entry is None:
        self._merge()
        self.values = encoding.key_strings(self.keys)  # values mode from now on
        entry = dictionary
    self.pending.append((entry, np.bincount(idx, minlength=n)))
    self.sizes.append(n)
    self.pending_rows += n
    if self.pending_rows >= max(_MERGE_EVERY, self.known // 2):
      self._merge()
    return all_idx

  def _merge(self) -> None:
    if not self.pending:
      return
    known = self.known
    if self.values is None:
      # np.unique(keys, return_inverse=True), 2.4x faster: hash, then sort the distinct keys only.
      codes, uniq = pd.factorize(np.concatenate([k for k, _ in self.pending]))
      by_key = np.argsort(uniq)
      rank = np.empty(len(uniq), np.int64)
      rank[by_key] = np.arange(len(uniq))
      uniq, inverse = uniq[by_key], rank[codes]
      pos = np.searchsorted(self.sorted_keys, uniq)
      found = pos < known
      found[found] = self.sorted_keys[pos[found]] == uniq[found]
      uniq_ids = np.empty(len(uniq), np.int64)
      uniq_ids[found] = self.sorted_ids[pos[found]]
      new = ~found
      uniq_ids[new] = known + np.arange(np.count_nonzero(new))
      self.keys = np.concatenate([self.keys, uniq[new]])
      self.sorted_keys = np.insert(self.sorted_keys, pos[new], uniq[new])
      self.sorted_ids = np.insert(self.sorted_ids, pos[new], uniq_ids[new])
      ids = uniq_ids[inverse]
    else:
      parts = [self.values] + [pc.cast(d, self.value_type) for d, _ in self.pending]
      encoded = pc.dictionary_encode(pa.concat_arrays(parts))
      ids = encoded.indices.to_numpy()[known:]
      self.values = encoded.dictionary
    counts = np.zeros(self.known, np.int64)
    counts[:known] = self.counts
    seen = np.concatenate([c for _, c in self.pending])
    counts += np.bincount(ids, weights=seen, minlength=len(counts)).astype(np.int64)
    self.counts = counts
    ids.astype(np.int32).tofile(self._map)
    self.pending, self.pending_rows = [], 0

  def vocabulary(self, min_count: int, max_vocab_size: Optional[int]) -> tuple:
    """The vocabulary (as `_ValueCounter.vocabulary`); also sets `final`."""
    self._merge()
    self._map.close()
    kept = np.flatnonzero(self.counts >= max(min_count, 1))  # count 0: only outside the fit split
    counts = self.counts[kept]
    if self.values is None and not self.is_int:  # key order is byte order: no strings to sort
      order = np.lexsort((self.keys[kept], -counts))[:max_vocab_size]
      vocab = encoding.key_strings(self.keys[kept[order]])
    else:
      values = pa.array(self.keys[kept]) if self.values is None else \
          self.values.take(pa.array(kept))
      if pa.types.is_integer(values.type):  # bucketized integers: tokens (and ties) as strings
        values = pc.cast(values, pa.string())
      t = pa.table({"value": values, "count": counts})
      order = pc.sort_indices(t, sort_keys=[("count", "descending"), ("value", "ascending")])
      order = order.to_numpy()[:max_vocab_size]
      vocab = t.column("value").take(pa.array(order))
    self.final = np.full(self.known, spec_lib.OOV_ID, np.int64)
    self.final[kept[order]] = spec_lib.NUM_RESERVED_IDS + np.arange(len(order), dtype=np.int64)
    return tuple(vocab.to_pylist())

  @property
  def distinct(self) -> int:
    """Distinct values in the fitted rows."""
    self._merge()
    return int(np.count_nonzero(self.counts))

  def batch_ids(self, indices: np.ndarray) -> np.ndarray:
    """Ids (int64) of the next staged batch's dictionary indices (-1: missing -> MISSING_ID)."""
    if self._read is None:
      self._read = open(self.map_path, "rb")  # pylint: disable=consider-using-with
    provisional = np.fromfile(self._read, np.int32, count=self.sizes[self._batch])
    self._batch += 1
    lookup = np.append(self.final[provisional], np.int64(spec_lib.MISSING_ID))  # [-1]: missing
    return lookup[indices]

  def close(self) -> None:
    self._map.close()
    if self._read is not None:
      self._read.close()


@dataclasses.dataclass
class FitSummary:
  """What `fit` saw.

  Attributes:
    rows: int. Rows fitted on (after the split filter).
    positives: int. Rows with label 1.
    ctr: float. positives / rows.
    distinct_values: dict. Distinct non-missing values per counted field.
    vocabulary_sizes: dict. Kept vocabulary size per fitted field.
    empty_vocabularies: list. Fields whose vocabulary is empty (all values OOV).
    read: dict. The `ReadSummary` of the pass (skipped rows, files).
    seconds: float. Wall time.
  """
  rows: int = 0
  positives: int = 0
  ctr: float = 0.0
  distinct_values: dict = dataclasses.field(default_factory=dict)
  vocabulary_sizes: dict = dataclasses.field(default_factory=dict)
  empty_vocabularies: list = dataclasses.field(default_factory=list)
  read: dict = dataclasses.field(default_factory=dict)
  seconds: float = 0.0


class _Fitter:
  """Accumulates `fit`'s counts and moments over record batches."""

  def __init__(self, spec: spec_lib.FeatureSpec):
    self.spec = spec
    self.counters: Dict[str, _ValueCounter] = {}
    self.moments: Dict[str, list] = {}
    self.histograms: Dict[str, _ValueCounter] = {}
    for f in spec.features:
      if isinstance(f, spec_lib.DenseFeature):
        if f.transform == "quantile":
          self.histograms[f.name] = _ValueCounter(pa.float64())
        elif f.is_categorical:
          self.counters[f.name] = _ValueCounter(pa.int64())
        elif f.transform in ("standardize", "log1p_standardize"):
          self.moments[f.name] = [0, 0.0, 0.0]  # n, sum, sum of squares
      elif isinstance(f, spec_lib.SequenceFeature) and f.shares_vocabulary_with:
        continue
      elif f.hash_buckets is None:
        self.counters[f.name] = _ValueCounter(pa.string())
    self.summary = FitSummary()

  def add(self, table: pa.Table, mask: Optional[np.ndarray] = None) -> None:
    """Counts the rows of `table` where `mask` (np.bool_ (n,); all rows if None).

    Categorical columns may be dictionary arrays (counted by index, unfiltered).
    """
    spec = self.spec
    if mask is not None and mask.all():
      mask = None
    rows = table
    if mask is not None:
      dict_names = [n for n, t in zip(table.column_names, table.schema.types)
                    if pa.types.is_dictionary(t)]
      rows = table.drop_columns(dict_names).filter(pa.array(mask))
      if rows.num_rows == 0:
        return
    self.summary.rows += rows.num_rows
    self.summary.positives += int(pc.sum(pc.cast(rows.column(spec.label), pa.int64())).as_py() or 0)
    for f in spec.features:
      if isinstance(self.counters.get(f.name), _ProvisionalIds):
        continue  # fed by fit_transform, every batch
      col = rows.column(f.name) if f.name in rows.column_names else None
      if isinstance(f, spec_lib.DenseFeature):
        if f.name in self.histograms:
          self.histograms[f.name].add(pc.cast(col.combine_chunks(), pa.float64()))
        elif f.is_categorical:
          self.counters[f.name].add(encoding.bucketize(col.combine_chunks()))
        elif f.name in self.moments:
          x = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False) if col.null_count == 0 else \
              pc.cast(col.drop_null(), pa.float64()).to_numpy(zero_copy_only=False)
          if f.transform == "log1p_standardize":
            x = np.log1p(np.maximum(x, 0.0))
          m = self.moments[f.name]
          m[0] += len(x)
          m[1] += float(np.sum(x))
          m[2] += float(np.sum(x * x))
      elif isinstance(f, spec_lib.SequenceFeature):
        target = f.shares_vocabulary_with or f.name
        if target in self.counters:
          flat, _ = encoding.split_tokens(col.combine_chunks(), f.separator)
          self.counters[target].add(flat)
      elif f.name in self.counters:
        full = table.column(f.name)
        arr = full.combine_chunks() if full.num_chunks != 1 else full.chunk(0)
        if pa.types.is_dictionary(arr.type):
          self.counters[f.name].add_dictionary(arr, mask)
        else:
          self.counters[f.name].add(col.combine_chunks())

  def result(self, read_summary: readers.ReadSummary, fit_split: str, start: float) -> tuple:
    """(fitted FeatureSpec, FitSummary)."""
    spec, summary = self.spec, self.summary
    if summary.rows == 0:
      raise readers.DataError(f"fit: no rows to fit on (split {fit_split!r}); files "
                              f"{read_summary.files}")
    fitted = []
    for f in spec.features:
      if f.name in self.counters:
        counter = self.counters[f.name]
        vocab = counter.vocabulary(f.min_count, getattr(f, "max_vocab_size", None))
        summary.distinct_values[f.name] = counter.distinct
        summary.vocabulary_sizes[f.name] = len(vocab)
        if not vocab:
          why = (f"the column is always empty in the {summary.rows} fitted rows"
                 if counter.distinct == 0 else
                 f"none of its {counter.distinct} distinct values is seen min_count="
                 f"{f.min_count} times")
          logging.warning("fit: feature %r has an empty vocabulary (%s): every value maps to "
                          "the OOV id", f.name, why)
          summary.empty_vocabularies.append(f.name)
        f = dataclasses.replace(f, vocabulary=vocab)
      elif f.name in self.histograms:
        values, counts = self.histograms[f.name].histogram()
        summary.distinct_values[f.name] = len(values)
        f = dataclasses.replace(f, boundaries=encoding.quantile_boundaries(values, counts,
                                                                             f.num_buckets))
      elif f.name in self.moments:
        n, s, ss = self.moments[f.name]
        mean = s / n if n else 0.0
        var = max(ss / n - mean * mean, 0.0) if n else 0.0
        std = float(np.sqrt(var)) if var > 1e-24 else 1.0
        f = dataclasses.replace(f, mean=float(mean), std=std)
      fitted.append(f)
    summary.ctr = summary.positives / summary.rows
    summary.read = read_summary.to_dict()
    summary.seconds = time.perf_counter() - start
    return spec.with_features(fitted), summary


def _check_split(split, fit_split: str):
  if split is not None:
    splits_lib.check_fit_split(split, fit_split)


def fit(source: Any, spec: spec_lib.FeatureSpec, *, split=None, fit_split: str = "train",
        on_bad_rows: str = "error", file_format: str = "auto",
        block_size: int = readers.DEFAULT_BLOCK_SIZE, batch_rows: int = readers.DEFAULT_BATCH_ROWS,
        progress=None, return_summary: bool = False, field_map=None):
  """Fits vocabularies and statistics in one streaming pass.

  Args:
    source: a path, glob, list of paths, pandas DataFrame or pyarrow Table of
      raw rows (see `readers`).
    spec: FeatureSpec. The unfitted (or previously fitted) spec; its
      min_count / max_vocab_size / transforms say what to fit.
    split: RandomSplit, FileSplit or None. When set, only rows assigned to
      `fit_split` are used. Defaults to None (all rows).
    fit_split: str. Which split to fit on. Defaults to "train".
    on_bad_rows: str. "error" or "skip" (see `readers`). Defaults to "error".
    file_format: str. "auto", "tsv", "csv" or "parquet". Defaults to "auto".
    block_size: int. Text bytes per batch. Defaults to 2 MiB.
    batch_rows: int. Rows per Parquet / in-memory batch. Defaults to 65536.
    progress: callable(path, done, total) or None.
    return_summary: bool. Also return a `FitSummary`. Defaults to False.
    field_map: libFM feature-id -> field map (path or dict), or None (fields
      by position); see `readers.read_batches`. Defaults to None.

  Returns:
    The fitted FeatureSpec (and the FitSummary if `return_summary`).
  """
  _check_split(split, fit_split)
  start = time.perf_counter()
  fitter = _Fitter(spec)
  read_summary = readers.ReadSummary()
  with background.Prefetch(readers.read_batches(
      source, spec, on_bad_rows=on_bad_rows, file_format=file_format, block_size=block_size,
      batch_rows=batch_rows, summary=read_summary, progress=progress,
      field_map=field_map)) as batches:  # parsing overlaps counting
    for batch in batches:
      mask = None
      if split is not None:
        mask = split.assign(batch.file_index, batch.row_keys) == split.names.index(fit_split)
      fitter.add(batch.table, mask)
  out, summary = fitter.result(read_summary, fit_split, start)
  return (out, summary) if return_summary else out


@dataclasses.dataclass
class TransformSummary:
  """What `transform` wrote.

  Attributes:
    rows: dict. Rows per split.
    positives: dict. Label-1 rows per split.
    ctr: dict. CTR per split.
    oov_rate: dict. Per id feature: fraction of non-missing values (tokens for
      sequences) mapped to OOV_ID, over all splits.
    missing_rate: dict. Per id feature: fraction of rows mapped to MISSING_ID.
    vocabulary_sizes: dict. num_ids per id feature (reserved ids included).
    shards: dict. Parquet files per split.
    read: dict. The `ReadSummary` (rows read, rows skipped by reason, examples).
    seconds: float. Wall time.
  """
  rows: dict = dataclasses.field(default_factory=dict)
  positives: dict = dataclasses.field(default_factory=dict)
  ctr: dict = dataclasses.field(default_factory=dict)
  oov_rate: dict = dataclasses.field(default_factory=dict)
  missing_rate: dict = dataclasses.field(default_factory=dict)
  vocabulary_sizes: dict = dataclasses.field(default_factory=dict)
  shards: dict = dataclasses.field(default_factory=dict)
  read: dict = dataclasses.field(default_factory=dict)
  seconds: float = 0.0

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def output_schema(spec: spec_lib.FeatureSpec) -> pa.Schema:
  """Arrow schema of the transformed shards."""
  fields = [pa.field(spec.label, pa.float32())]
  for f in spec.features:
    if isinstance(f, spec_lib.SequenceFeature):
      fields.append(pa.field(f.name, pa.list_(pa.int64(), f.max_len)))
    elif f in spec.dense_features:
      fields.append(pa.field(f.name, pa.float32()))
    else:
      fields.append(pa.field(f.name, pa.int64()))
  return pa.schema(fields)


def encoded_to_table(features: Dict[str, np.ndarray], labels: np.ndarray,
                     spec: spec_lib.FeatureSpec) -> pa.Table:
  """Encoded arrays -> an Arrow table with `output_schema(spec)`."""
  schema = output_schema(spec)
  arrays = [pa.array(labels, pa.float32())]
  for f in spec.features:
    v = features[f.name]
    if isinstance(f, spec_lib.SequenceFeature):
      arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1), pa.int64()), f.max_len))
    else:
      arrays.append(pa.array(v))
  return pa.Table.from_arrays(arrays, schema=schema)


class _ShardWriter:
  """Writes one split's rows to part-NNNNN.parquet files of bounded size."""

  def __init__(self, directory: str, schema: pa.Schema, rows_per_shard: int, compression: str):
    self.directory = directory
    self.schema = schema
    self.rows_per_shard = rows_per_shard
    self.compression = compression
    self.writer = None
    self.rows_in_shard = 0
    self.paths = []

  def write(self, table: pa.Table) -> None:
    while table.num_rows:
      if self.writer is None:
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, f"part-{len(self.paths):05d}.parquet")
        self.paths.append(path)
        self.writer = pq.ParquetWriter(path, self.schema, compression=self.compression)
        self.rows_in_shard = 0
      take = min(table.num_rows, self.rows_per_shard - self.rows_in_shard)
      self.writer.write_table(table.slice(0, take), row_group_size=take)
      self.rows_in_shard += take
      table = table.slice(take)
      if self.rows_in_shard >= self.rows_per_shard:
        self.close()

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()
      self.writer = None


def transform(source: Any, spec: spec_lib.FeatureSpec, output_dir: str, *, split=None,
              on_bad_rows: str = "error", file_format: str = "auto",
              block_size: int = readers.DEFAULT_BLOCK_SIZE,
              batch_rows: int = readers.DEFAULT_BATCH_ROWS, rows_per_shard: int = 1 << 20,
              compression: str = "snappy", progress=None, field_map=None) -> TransformSummary:
  """Maps raw rows to ids / floats and writes Parquet shards per split.

  Args:
    source: raw rows, as for `fit`.
    spec: FeatureSpec. Must be fitted (`fit`).
    output_dir: str. Where `<split>/part-NNNNN.parquet`, `spec.json` and
      `summary.json` go. Existing shards of the same splits are replaced.
    split: RandomSplit, FileSplit or None. Defaults to None: one split, "train".
    on_bad_rows: str. "error" or "skip". Defaults to "error".
    file_format: str. "auto", "tsv", "csv" or "parquet". Defaults to "auto".
    block_size: int. Text bytes per batch. Defaults to 2 MiB.
    batch_rows: int. Rows per Parquet / in-memory batch. Defaults to 65536.
    rows_per_shard: int. Rows per output file. Defaults to 2**20.
    compression: str. Parquet codec. Defaults to "snappy".
    progress: callable(path, done, total) or None.
    field_map: libFM field map, as for `fit`. Defaults to None.

  Returns:
    TransformSummary (also written to output_dir/summary.json).
  """
  start = time.perf_counter()
  transformer = _Transformer(spec, output_dir, split, rows_per_shard, compression)
  read_summary = readers.ReadSummary()
  try:
    with background.Prefetch(readers.read_batches(
        source, spec, on_bad_rows=on_bad_rows, file_format=file_format, block_size=block_size,
        batch_rows=batch_rows, summary=read_summary, progress=progress,
        field_map=field_map)) as batches:
      for batch in batches:
        which = None if split is None else split.assign(batch.file_index, batch.row_keys)
        transformer.add(batch.table, which)
  finally:
    transformer.close()
  return transformer.finish(read_summary, start)


class _Transformer:
  """Encodes record batches and writes them to Parquet shards per split."""

  def __init__(self, spec: spec_lib.FeatureSpec, output_dir: str, split, rows_per_shard: int,
               compression: str):
    if not spec.is_fitted:
      unfitted = [f.name for f in spec.features if not f.is_fitted]
      raise spec_lib.SpecError(f"transform needs a fitted spec; not fitted: {unfitted} "
                               "(run fit first)")
    self.spec = spec
    self.output_dir = output_dir
    self.names = splits_lib.split_names(split)
    for name in self.names:
      d = os.path.join(output_dir, name)
      if os.path.isdir(d):
        for old in os.listdir(d):
          if old.startswith("part-") and old.endswith(".parquet"):
            os.remove(os.path.join(d, old))
    schema = output_schema(spec)
    self.writers = [_ShardWriter(os.path.join(output_dir, n), schema, rows_per_shard, compression)
                    for n in self.names]
    self.id_features = [f for f in spec.features if f not in spec.dense_features]
    self.oov = {f.name: 0 for f in self.id_features}
    self.present = {f.name: 0 for f in self.id_features}
    self.missing = {f.name: 0 for f in self.id_features}
    self.rows = np.zeros(len(self.names), np.int64)
    self.positives = np.zeros(len(self.names), np.int64)
    # Parquet encoding and compression of batch i overlap the encoding of batch i + 1.
    self.writes = background.SerialWorker(depth=2, name="shard-writer")

  def add(self, table: pa.Table, which: Optional[np.ndarray],
          ids: Optional[Dict[str, np.ndarray]] = None) -> None:
    """Encodes `table` (typed raw rows) and writes row i to split `which[i]` (all: split 0).

    `ids`: features whose ids are already known (see `encoding.encode_table`).
    """
    spec = self.spec
    features, labels = encoding.encode_table(table, spec, ids=ids)
    for f in self.id_features:
      ids = features[f.name]
      self.oov[f.name] += int(np.count_nonzero(ids == spec_lib.OOV_ID))
      if ids.ndim == 2:
        self.present[f.name] += int(np.count_nonzero(ids != 0))
        self.missing[f.name] += int(np.count_nonzero(~ids.any(axis=1)))
      else:
        n_missing = int(np.count_nonzero(ids == spec_lib.MISSING_ID))
        self.missing[f.name] += n_missing
        self.present[f.name] += len(ids) - n_missing
    out = encoded_to_table(features, labels, spec)
    for i, writer in enumerate(self.writers):
      part = out if which is None else out.filter(pa.array(which == i))
      if part.num_rows:
        self.rows[i] += part.num_rows
        self.positives[i] += int(np.sum(part.column(spec.label).to_numpy()))
        self.writes.submit(functools.partial(writer.write, part))

  def close(self) -> None:
    """Finishes the queued writes and closes every shard (raises a write's error)."""
    try:
      self.writes.close()
    finally:
      for w in self.writers:
        w.close()

  def finish(self, read_summary: readers.ReadSummary, start: float) -> TransformSummary:
    """Writes spec.json and summary.json; returns the summary."""
    spec, names, rows, positives = self.spec, self.names, self.rows, self.positives
    total = int(rows.sum())
    summary = TransformSummary(
        rows={n: int(r) for n, r in zip(names, rows)},
        positives={n: int(p) for n, p in zip(names, positives)},
        ctr={n: (float(p) / r if r else 0.0) for n, p, r in zip(names, positives, rows)},
        oov_rate={k: (self.oov[k] / self.present[k] if self.present[k] else 0.0) for k in self.oov},
        missing_rate={k: (self.missing[k] / total if total else 0.0) for k in self.missing},
        vocabulary_sizes={f.name: spec.num_ids(f.name) for f in self.id_features},
        shards={n: w.paths for n, w in zip(names, self.writers)},
        read=read_summary.to_dict(),
        seconds=time.perf_counter() - start)
    os.makedirs(self.output_dir, exist_ok=True)
    spec.save(os.path.join(self.output_dir, "spec.json"))
    with open(os.path.join(self.output_dir, "summary.json"), "w") as fh:
      json.dump(summary.to_dict(), fh, indent=1)
    return summary


_STAGE_FILE = ".fit_transform_stage.arrows"
_STAGE_IDS_FILE = ".fit_transform_stage.ids"
_IDS_FILE_PREFIX = ".fit_transform_ids."
_SPLIT_COLUMN = "__split__"
DEFAULT_MAX_STAGE_BYTES = 16 << 30


def _estimated_stage_bytes(source: Any) -> Optional[int]:
  """Rough size of the staged (parsed) rows, or None when it cannot be told."""
  total = 0
  for item in readers.expand_source(source):
    if isinstance(item, str):
      try:
        size = os.path.getsize(item)
      except OSError:
        return None  # the reader raises the proper DataError
      total += size * (5 if readers._compression_of(item) else 1)  # pylint: disable=protected-access
    else:
      total += int(getattr(item, "nbytes", 0) or item.memory_usage(deep=True).sum())
  return total


def _write_indices(sink, idx: np.ndarray, n: int) -> None:
  """A batch's dictionary indices `idx` (null: -1) into a dictionary of `n` values, in the
  smallest signed type, after a size byte."""
  dtype = np.dtype(np.int8 if n <= 127 else np.int16 if n <= 32767 else np.int32)
  sink.write(bytes([dtype.itemsize]))
  sink.write(memoryview(idx.astype(dtype, copy=False)).cast("B"))


def _read_indices(src, rows: int) -> np.ndarray:
  """The next `_write_indices` block of `rows` indices."""
  dtype = np.dtype({1: np.int8, 2: np.int16, 4: np.int32}[src.read(1)[0]])
  return np.frombuffer(src.read(rows * dtype.itemsize), dtype)


def _bucket_dictionary(values: pa.Array) -> pa.DictionaryArray:
  """`pc.dictionary_encode(encoding.bucketize(values))`, bucketizing only the distinct values."""
  raw = pc.dictionary_encode(values)
  buckets, inverse = np.unique(
      encoding.bucketize(raw.dictionary).to_numpy(zero_copy_only=False), return_inverse=True)
  indices = raw.indices
  idx = pc.fill_null(indices, 0).to_numpy() if indices.null_count else indices.to_numpy()
  mask = None if not indices.null_count else ~pc.is_valid(indices).to_numpy(zero_copy_only=False)
  remapped = inverse.astype(np.int32)[idx] if len(inverse) else np.zeros(len(idx), np.int32)
  return pa.DictionaryArray.from_arrays(pa.array(remapped, pa.int32(), mask=mask),
                                        pa.array(buckets, pa.int64()))


def _staged_batches(batches, dict_names, split, bucket_names=frozenset()):
  """(record batch to stage, split ids or None) per raw batch.

  Categorical strings become dictionary arrays, and so do the `bucket_names`
  integer columns, bucketized (`encoding.bucketize`) first.
  """
  for batch in batches:
    table = batch.table
    columns = []
    for name, col in zip(table.column_names, table.columns):
      arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
      if name in bucket_names:
        arr = _bucket_dictionary(arr)
      elif name in dict_names:  # (the readers type categorical columns as strings)
        arr = pc.dictionary_encode(arr if pa.types.is_string(arr.type) else
                                   pc.cast(arr, pa.string()))  # (n,) int32 indices + values
      columns.append(arr)
    which = None
    if split is not None:
      which = split.assign(batch.file_index, batch.row_keys)
      columns.append(pa.array(which))
    yield pa.RecordBatch.from_arrays(
        columns, table.column_names + ([_SPLIT_COLUMN] if split is not None else [])), which


def fit_transform(source: Any, spec: spec_lib.FeatureSpec, output_dir: str, *, split=None,
                  fit_split: str = "train", on_bad_rows: str = "error", file_format: str = "auto",
                  block_size: int = readers.DEFAULT_BLOCK_SIZE,
                  batch_rows: int = readers.DEFAULT_BATCH_ROWS, rows_per_shard: int = 1 << 20,
                  compression: str = "snappy", progress=None,
                  max_stage_bytes: int = DEFAULT_MAX_STAGE_BYTES, field_map=None) -> tuple:
  """`fit` then `transform` of the same source, parsing the raw text once.

  The result is identical to `transform(source, fit(source, spec, ...), ...)`.
  The fitting pass dictionary-encodes each parsed batch's categorical
  columns (int32 indices + the batch's distinct values) and keeps the batch
  in an uncompressed Arrow IPC stream `output_dir/.fit_transform_stage.arrows`;
  counting works on the indices. The batch dictionaries of a vocabulary
  field (and of a bucketized integer field) are numbered in one table of
  the field's distinct values (`_ProvisionalIds`: provisional ids, each
  batch's map written to `.fit_transform_ids.<i>.int32`); such a field's
  indices go to `.fit_transform_stage.ids` (1-4 bytes each) instead of the
  stream, and the transforming pass, reading both back a batch at a time
  (memory stays bounded by the batch size), maps them with two gathers:
  provisional id -> id, a table built once from the vocabulary. Hashed
  fields keep their batch dictionary in the stream and hash it once per
  batch. The files are deleted at the end. When the source's size (x5 for
  compressed files) exceeds `max_stage_bytes` or half the free disk space
  of `output_dir`, it falls back to two reading passes.

  Args:
    source, spec, split, fit_split, on_bad_rows, file_format, block_size,
    batch_rows, field_map, progress: as for `fit` (progress is called in the
      first pass only when staging).
    output_dir, rows_per_shard, compression: as for `transform`.
    max_stage_bytes: int. Largest estimated staging size. Defaults to 16 GiB.

  Returns:
    (fitted FeatureSpec, FitSummary, TransformSummary).
  """
  _check_split(split, fit_split)
  read_args = dict(on_bad_rows=on_bad_rows, file_format=file_format, block_size=block_size,
                   batch_rows=batch_rows, field_map=field_map)
  os.makedirs(output_dir, exist_ok=True)
  estimate = _estimated_stage_bytes(source)
  free = shutil.disk_usage(output_dir).free
  if estimate is None or estimate > min(max_stage_bytes, free // 2):
    fitted, fit_summary = fit(source, spec, split=split, fit_split=fit_split, progress=progress,
                              return_summary=True, **read_args)
    return fitted, fit_summary, transform(source, fitted, output_dir, split=split,
                                          rows_per_shard=rows_per_shard, compression=compression,
                                          progress=progress, **read_args)
  start = time.perf_counter()
  stage_path = os.path.join(output_dir, _STAGE_FILE)
  dict_names = {f.name for f in spec.features if isinstance(f, spec_lib.CategoricalFeature)}
  shared = {f.shares_vocabulary_with for f in spec.features
            if isinstance(f, spec_lib.SequenceFeature) and f.shares_vocabulary_with}
  bucket_names = {f.name for f in spec.features if isinstance(f, spec_lib.DenseFeature)
                  and f.transform == "bucketize"}
  fitter = _Fitter(spec)
  provisional = {}
  ids_path = os.path.join(output_dir, _STAGE_IDS_FILE)
  read_summary = readers.ReadSummary()
  writer = None
  try:
    for i, f in enumerate(spec.features):
      if f.name in bucket_names or (f.name in dict_names and f.hash_buckets is None
                                    and f.name not in shared):
        provisional[f.name] = fitter.counters[f.name] = _ProvisionalIds(
            os.path.join(output_dir, f"{_IDS_FILE_PREFIX}{i}.int32"),
            pa.int64() if f.name in bucket_names else pa.large_string())
    # Three stages on their own threads: parsing; dictionary-encoding (and the
    # split column); counting and staging.
    with pa.OSFile(stage_path, "wb") as sink, open(ids_path, "wb") as ids_sink, \
        background.Prefetch(readers.read_batches(
            source, spec, summary=read_summary, progress=progress, **read_args)) as batches, \
        background.Prefetch(_staged_batches(batches, dict_names, split,
                                            bucket_names)) as staged_batches:
      for staged, which in staged_batches:
        mask = None if which is None else which == split.names.index(fit_split)
        fitter.add(pa.Table.from_batches([staged]).drop_columns(
            [_SPLIT_COLUMN] if split is not None else []), mask)
        for name, p in provisional.items():  # every batch, fitted rows or not (ids for all)
          # Their ids come from the provisional ids: the indices suffice.
          column = staged.column(name)
          _write_indices(ids_sink, p.add_dictionary(column, mask), len(column.dictionary))
        if provisional:
          staged = staged.select([n for n in staged.schema.names if n not in provisional])
        if writer is None:
          writer = pa.ipc.new_stream(sink, staged.schema)
        writer.write_batch(staged)
      if writer is not None:
        writer.close()
        writer = None
    fitted, fit_summary = fitter.result(read_summary, fit_split, start)
    transform_start = time.perf_counter()
    transformer = _Transformer(fitted, output_dir, split, rows_per_shard, compression)
    try:
      # Plain reads, not a memory map: RSS stays bounded.
      with pa.OSFile(stage_path, "rb") as src, open(ids_path, "rb") as ids_src, \
          background.Prefetch(pa.ipc.open_stream(src)) as staged_batches:
        for staged in staged_batches:
          which = None
          if split is not None:
            which = staged.column(_SPLIT_COLUMN).to_numpy()
            staged = staged.drop_columns([_SPLIT_COLUMN])
          ids = {name: p.batch_ids(_read_indices(ids_src, staged.num_rows))
                 for name, p in provisional.items()}
          transformer.add(pa.Table.from_batches([staged]), which, ids)
    finally:
      transformer.close()
    transform_summary = transformer.finish(read_summary, transform_start)
  finally:
    if writer is not None:
      writer.close()
    for p in provisional.values():
      p.close()
    for path in [stage_path, ids_path] + [p.map_path for p in provisional.values()]:
      if os.path.exists(path):
        os.remove(path)
  return fitted, fit_summary, transform_summary
