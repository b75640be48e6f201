"""Raw values -> model inputs, vectorised over a record batch.

This module is the reference for how a raw value becomes an id or a float. An
in-graph TensorFlow implementation (the serving export) must reproduce it
exactly; the rules, per feature kind (see `ctr_zoo.feature_columns.spec` for
the reserved ids MISSING_ID = 0, OOV_ID = 1, NUM_RESERVED_IDS = 2):

Label: "0"/"1" -> float32 0.0/1.0.

DenseFeature, raw value parsed as int64 from a base-10 integer string
(`tf.strings.to_number(s, tf.int64)`), then converted to float64 x (exact for
|x| < 2**53). Float Parquet/DataFrame columns give float64 x directly. All the
arithmetic below is float64; the result is rounded ONCE to float32:

- "none":        float32(x); missing -> 0.0.
- "log1p":       float32(log1p(max(x, 0))); missing -> 0.0.
- "standardize": float32((x - mean) / std), mean/std as stored in the spec
                 (float64); missing -> 0.0 (the mean).
- "bucketize":   integer bucket b = floor(ln(x)**2) if x > 2 else trunc(x)
                 (float64 ln; int64 b); the token is str(b) (e.g. "-1", "0",
                 "12"), then a vocabulary id exactly like a categorical value:
                 token in the vocabulary at index i -> 2 + i, other -> OOV_ID,
                 missing -> MISSING_ID. `spec.bucketize_value` gives the token
                 of one value.

CategoricalFeature, raw value = the exact string (no trimming, case sensitive;
an integer column gives its decimal string), empty or null = missing:

- vocabulary: value == vocabulary[i] -> 2 + i; missing -> 0; any other value
  (rare in the fitted split, or unseen) -> 1.
- hash_buckets: 2 + tf.strings.to_hash_bucket_fast(value, hash_buckets)
  (FarmHash Fingerprint64 of the UTF-8 bytes, mod hash_buckets); missing -> 0.

SequenceFeature, raw value = tokens joined by `separator` (oldest first, most
recent last); empty tokens are dropped ("a||b" == "a|b"), an empty or missing
string is an empty sequence. The LAST max_len tokens are kept in order, each
mapped exactly like a categorical value (with the vocabulary or hash buckets
of `shares_vocabulary_with` when set), placed at positions 0..len-1 and
right-padded with PAD_ID = 0: int64 (max_len,). Mask = ids != 0.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ctr_zoo.feature_columns import spec as spec_lib

MISSING_ID = spec_lib.MISSING_ID
OOV_ID = spec_lib.OOV_ID
NUM_RESERVED_IDS = spec_lib.NUM_RESERVED_IDS


def id_source(spec: spec_lib.FeatureSpec, feature) -> Tuple[Optional[tuple], Optional[int]]:
  """(vocabulary, hash_buckets) that map `feature`'s tokens to ids.

  Follows `shares_vocabulary_with` for sequences.
  """
  if isinstance(feature, spec_lib.SequenceFeature) and feature.shares_vocabulary_with:
    partner = spec[feature.shares_vocabulary_with]
    return partner.vocabulary, partner.hash_buckets
  return feature.vocabulary, feature.hash_buckets


def _vocab_array(vocabulary: tuple, as_int: bool) -> pa.Array:
  if as_int:
    return pa.array([int(v) for v in vocabulary], pa.int64())
  return pa.array(vocabulary, pa.string())


# Vocabularies at least this long are looked up by binary search in a sorted copy
# built once, not with pc.index_in, which rebuilds its hash table of the whole
# vocabulary on every call (a cost per batch that grows with the vocabulary).
_SORTED_LOOKUP_MIN = 1 << 16
_FIXED_WIDTH_CHUNK = 1 << 20


def _fixed_width(arr: pa.Array, width: int) -> Tuple[np.ndarray, np.ndarray]:
  """(bytes of each string NUL-padded to `width` as dtype S<width>, too long or NUL-holding).

  Nulls give b"". A string longer than `width` or holding a NUL byte cannot be
  compared exactly as fixed-width bytes (NumPy strips trailing NULs): flagged.
  """
  n = len(arr)
  out = np.zeros((n, max(width, 1)), np.uint8)
  bad = np.zeros((n,), bool)
  for start in range(0, n, _FIXED_WIDTH_CHUNK):
    part = pc.cast(arr.slice(start, _FIXED_WIDTH_CHUNK), pa.large_binary())
    part = pa.concat_arrays([part])  # offset 0: buffers line up with the rows
    bufs = part.buffers()
    offsets = np.frombuffer(bufs[1], np.int64)[:len(part) + 1]
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    rows = np.repeat(np.arange(len(part)), lengths)
    cols = np.arange(offsets[-1] - offsets[0]) - np.repeat(offsets[:-1] - offsets[0], lengths)
    chunk = data[offsets[0]:offsets[-1]]
    keep = cols < width
    out[start + rows[keep], cols[keep]] = chunk[keep]
    too_long = lengths > width
    has_nul = np.zeros((len(part),), bool)
    if chunk.size and (chunk == 0).any():
      np.logical_or.at(has_nul, rows, chunk == 0)
    bad[start:start + len(part)] = too_long | has_nul
  return out.view(f"S{max(width, 1)}").ravel(), bad


def string_keys(values: pa.Array) -> Optional[np.ndarray]:
  """uint64 keys of a null-free string array of values of at most 8 bytes without NUL, or None.

  A key is the value's bytes NUL-padded to 8, read big-endian: keys order as
  the strings' bytes do, and `key_strings` inverts them. (Every Criteo and
  Avazu token is 8 bytes: those keys come straight from the array's data.)
  """
  if values.type != pa.string() or values.null_count:
    return None
  n = len(values)
  if n == 0:
    return np.zeros(0, np.uint64)
  bufs = values.buffers()
  offsets = np.frombuffer(bufs[1], np.int32, count=n + 1, offset=4 * values.offset)
  if offsets[-1] - offsets[0] == 8 * n and (np.diff(offsets) == 8).all():
    data = np.frombuffer(bufs[2], np.uint8)[offsets[0]:offsets[-1]]
    return None if (data == 0).any() else data.view(">u8").astype(np.uint64)
  padded, bad = _fixed_width(values, 8)
  return None if bad.any() else padded.view(">u8").astype(np.uint64)


def key_strings(keys: np.ndarray) -> pa.Array:
  """The strings of `string_keys` keys (large_string)."""
  b = keys.astype(">u8").view(np.uint8).reshape(-1, 8)
  nonzero = b != 0  # a value holds no NUL: its bytes are the non-zero ones, then padding
  offsets = np.concatenate([[0], np.cumsum(nonzero.sum(axis=1))]).astype(np.int64)
  return pa.LargeStringArray.from_buffers(len(keys), pa.py_buffer(offsets),
                                          pa.py_buffer(np.ascontiguousarray(b[nonzero])))


class _SortedVocabulary:
  """A string vocabulary sorted once as fixed-width bytes: index_in by binary search."""

  def __init__(self, vocab: pa.Array):
    lengths = pc.binary_length(vocab).to_numpy(zero_copy_only=False)
    self.width = int(lengths.max()) if len(lengths) else 1
    keys, bad = _fixed_width(vocab, self.width)
    self.usable = not bad.any()
    self.order = np.argsort(keys, kind="stable")
    self.keys = keys[self.order]

  def index(self, values: pa.Array) -> Optional[np.ndarray]:
    """Index of each value in the vocabulary (-1 absent); None if a value holds a NUL byte."""
    probe, bad = _fixed_width(values, self.width)
    too_long = pc.fill_null(pc.greater(pc.binary_length(values), self.width), False).to_numpy(
        zero_copy_only=False)
    if (bad & ~too_long).any():
      return None
    # The probes in key order: successive binary searches then share their
    # cache lines. Measured with 40k probes of width 12: 3.1x less CPU into a
    # 1M-key table, 2.0x into 10M, 1.1x into 100k (the argsort included).
    order = np.argsort(probe)
    pos = np.empty(len(probe), np.intp)
    pos[order] = np.searchsorted(self.keys, probe[order])
    pos = np.minimum(pos, len(self.keys) - 1)
    found = (self.keys[pos] == probe) & ~too_long
    return np.where(found, self.order[pos], -1)


_LOOKUPS: Dict[tuple, tuple] = {}  # (id(vocabulary), as_int) -> (vocabulary, array, sorted)


def _lookup(vocabulary: tuple, as_int: bool) -> tuple:
  """(vocabulary as a pa.Array, its _SortedVocabulary or None), built once per vocabulary object.

  Keyed by the tuple's identity (hashing a tuple of millions of tokens on every
  batch would cost as much as the lookup); the entry holds the tuple itself, so
  an identity is never reused while its entry lives.
  """
  key = (id(vocabulary), as_int)
  entry = _LOOKUPS.get(key)
  if entry is None or entry[0] is not vocabulary:
    if len(_LOOKUPS) >= 256:
      _LOOKUPS.clear()
    array = _vocab_array(vocabulary, as_int)
    ordered = None
    if not as_int and len(vocabulary) >= _SORTED_LOOKUP_MIN:
      ordered = _SortedVocabulary(array)
      ordered = ordered if ordered.usable else None
    entry = _LOOKUPS[key] = (vocabulary, array, ordered)
  return entry[1], entry[2]


def vocab_ids(values: pa.Array, vocabulary: tuple, as_int: bool = False) -> np.ndarray:
  """Ids of string (or int64 bucket) values: 2 + index, OOV 1, missing 0.

  Args:
    values: pa.Array of string (or int64 if `as_int`), nulls = missing; or a
      dictionary array of those (its dictionary is mapped once, then gathered).
    vocabulary: tuple of str. The fitted vocabulary.
    as_int: bool. Values and vocabulary tokens are integers. Defaults to False.

  Returns:
    np.ndarray int64 of shape (n,).
  """
  if vocabulary is None:
    raise spec_lib.SpecError("the feature is not fitted (no vocabulary): run datasets.fit first")
  if pa.types.is_dictionary(values.type):
    return _gather_dictionary(values, vocab_ids(values.dictionary, vocabulary, as_int))
  array, ordered = _lookup(vocabulary, as_int)
  found = ordered.index(values) if ordered is not None and pa.types.is_string(values.type) \
      else None
  if found is not None:
    ids = np.where(found >= 0, found, OOV_ID - NUM_RESERVED_IDS).astype(np.int64)
  else:
    index = pc.index_in(values, value_set=array)  # int32, null = absent
    ids = pc.fill_null(index, OOV_ID - NUM_RESERVED_IDS).to_numpy().astype(np.int64)
  ids += NUM_RESERVED_IDS
  if values.null_count:
    ids[~pc.is_valid(values).to_numpy(zero_copy_only=False)] = MISSING_ID
  return ids


def _gather_dictionary(values: pa.DictionaryArray, dictionary_ids: np.ndarray) -> np.ndarray:
  """ids[i] = dictionary_ids[values.indices[i]]; a null index -> MISSING_ID."""
  indices = values.indices
  ids = dictionary_ids[pc.fill_null(indices, 0).to_numpy()] if len(dictionary_ids) else \
      np.zeros((len(values),), np.int64)
  if indices.null_count:
    ids[~pc.is_valid(indices).to_numpy(zero_copy_only=False)] = MISSING_ID
  return ids


def hash_ids(values: pa.Array, hash_buckets: int) -> np.ndarray:
  """2 + tf.strings.to_hash_bucket_fast(value, hash_buckets); missing -> 0.

  A dictionary array is hashed once per dictionary value, then gathered.
  """
  if pa.types.is_dictionary(values.type):
    return _gather_dictionary(values, hash_ids(values.dictionary, hash_buckets))
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  missing = pc.is_null(values).to_numpy(zero_copy_only=False)
  strings = pc.fill_null(values, "").to_numpy(zero_copy_only=False)
  if len(strings) == 0:
    return np.zeros((0,), np.int64)
  buckets = tf.strings.to_hash_bucket_fast(tf.constant(strings, tf.string), hash_buckets).numpy()
  return np.where(missing, MISSING_ID, buckets.astype(np.int64) + NUM_RESERVED_IDS)


def bucketize(values: pa.Array) -> pa.Array:
  """Criteo-style buckets as int64: floor(ln(x)^2) if x > 2 else trunc(x); nulls stay null."""
  x = values.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> nan
  missing = np.isnan(x)
  with np.errstate(invalid="ignore", divide="ignore"):
    big = np.floor(np.log(np.where(x > 2, x, 3.0)) ** 2)
  b = np.where(x > 2, big, np.trunc(np.where(missing, 0.0, x))).astype(np.int64)
  return pa.array(b, pa.int64(), mask=missing)


def quantile_ids(values: pa.Array, boundaries: tuple) -> np.ndarray:
  """Ids of "quantile" buckets: 2 + #{j : boundaries[j] <= x}; missing -> 0. int64 (n,)."""
  if boundaries is None:
    raise spec_lib.SpecError("the feature is not fitted (no quantile boundaries): run "
                             "datasets.fit first")
  x = values.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> nan
  missing = np.isnan(x)
  ids = np.searchsorted(np.asarray(boundaries, np.float64), x, side="right").astype(np.int64)
  return np.where(missing, MISSING_ID, ids + NUM_RESERVED_IDS)


def quantile_boundaries(values: np.ndarray, counts: np.ndarray, num_buckets: int) -> tuple:
  """Boundaries of `num_buckets` about equal-count buckets of a value histogram.

  `values` (distinct, any order) and their `counts`. For q = 1 .. num_buckets
  - 1 the boundary is the value v whose share of rows strictly below it is
  nearest to q / num_buckets (ties: the larger v); repeated boundaries (heavy
  ties) are merged and one at the minimum value dropped, so there may be fewer
  buckets. No values -> () (one bucket).
  """
  if len(values) == 0:
    return ()
  order = np.argsort(values, kind="stable")
  v = np.asarray(values, np.float64)[order]
  c = np.asarray(counts, np.float64)[order]
  below = np.cumsum(c) - c  # rows strictly below each value
  targets = float(np.sum(c)) * np.arange(1, num_buckets) / num_buckets
  upper = np.minimum(np.searchsorted(below, targets, side="left"), len(v) - 1)
  lower = np.maximum(upper - 1, 0)
  pick = np.where(np.abs(below[lower] - targets) < np.abs(below[upper] - targets), lower, upper)
  out = np.unique(v[pick])
  out = out[out > v[0]]  # a boundary at the minimum would leave bucket 0 empty
  return tuple(float(b) for b in out)


def dense_values(values: pa.Array, feature: spec_lib.DenseFeature) -> np.ndarray:
  """float32 (n,) model input of a non-bucketized DenseFeature (see module doc)."""
  x = values.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> nan
  missing = np.isnan(x)
  if feature.transform == "none":
    y = x
  elif feature.transform == "log1p":
    y = np.log1p(np.maximum(x, 0.0))
  elif feature.transform == "standardize":
    y = (x - float(feature.mean)) / float(feature.std)
  elif feature.transform == "log1p_standardize":
    y = (np.log1p(np.maximum(x, 0.0)) - float(feature.mean)) / float(feature.std)
  else:
    raise ValueError(f"dense_values: {feature.name!r} has transform {feature.transform!r}")
  return np.where(missing, 0.0, y).astype(np.float32)


def token_ids(values: pa.Array, vocabulary, hash_buckets, as_int: bool = False) -> np.ndarray:
  if hash_buckets is not None:
    return hash_ids(values, hash_buckets)
  return vocab_ids(values, vocabulary, as_int)


def split_tokens(values: pa.Array, separator: str) -> Tuple[pa.Array, np.ndarray]:
  """Splits "a|b|c" strings: (flat non-empty tokens, row index of each token)."""
  lists = pc.split_pattern(pc.fill_null(values, ""), separator)
  flat = pc.list_flatten(lists)
  parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
  nonempty = pc.not_equal(flat, "")
  flat = flat.filter(nonempty)
  parents = parents[nonempty.to_numpy(zero_copy_only=False)]
  return flat, parents


def sequence_ids(values: pa.Array, feature: spec_lib.SequenceFeature, vocabulary,
                 hash_buckets) -> np.ndarray:
  """int64 (n, max_len): the last max_len tokens' ids, right-padded with 0."""
  n = len(values)
  out = np.zeros((n, feature.max_len), np.int64)
  if pa.types.is_dictionary(values.type):
    values = values.dictionary_decode()
  flat, parents = split_tokens(values, feature.separator)
  if len(flat) == 0:
    return out
  ids = token_ids(flat, vocabulary, hash_buckets)
  counts = np.bincount(parents, minlength=n)  # tokens per row
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  rank = np.arange(len(parents)) - starts[parents]  # position within the row
  first_kept = np.maximum(counts - feature.max_len, 0)[parents]
  keep = rank >= first_kept
  out[parents[keep], (rank - first_kept)[keep]] = ids[keep]
  return out


def encode_table(table: pa.Table, spec: spec_lib.FeatureSpec, with_label: bool = True,
                 ids: Optional[Dict[str, np.ndarray]] = None
                 ) -> Tuple[Dict[str, np.ndarray], Optional[np.ndarray]]:
  """Encodes a typed raw table (a `readers.RawBatch.table`) with a fitted spec.

  Args:
    table: pa.Table. The label (int8) and every feature, typed by the readers;
      categorical columns may also be dictionary arrays of strings.
    spec: FeatureSpec. Must be fitted.
    with_label: bool. Also return the label. Defaults to True.
    ids: dict or None. Features whose ids are already known (name -> int64
      (n,)), used as given; their columns are not read.

  Returns:
    (features, labels): features maps names to np arrays (int64 (n,) ids,
    float32 (n,) values, int64 (n, max_len) sequences); labels float32 (n,).
  """
  out = {}
  for f in spec.features:
    if ids is not None and f.name in ids:
      out[f.name] = ids[f.name]
      continue
    col = table.column(f.name)
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if isinstance(f, spec_lib.SequenceFeature):
      vocabulary, hash_buckets = id_source(spec, f)
      out[f.name] = sequence_ids(arr, f, vocabulary, hash_buckets)
    elif isinstance(f, spec_lib.DenseFeature):
      if f.transform == "quantile":
        out[f.name] = quantile_ids(arr, f.boundaries)
      elif f.is_categorical:
        out[f.name] = vocab_ids(bucketize(arr), f.vocabulary, as_int=True)
      else:
        out[f.name] = dense_values(arr, f)
    else:
      out[f.name] = token_ids(arr, f.vocabulary, f.hash_buckets)
  labels = None
  if with_label:
    labels = table.column(spec.label).to_numpy().astype(np.float32)
  return out, labels
