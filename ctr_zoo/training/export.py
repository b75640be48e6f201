"""Raw-feature serving export: a SavedModel that takes raw field strings.

`export_saved_model(model, spec, path)` writes a SavedModel whose signatures
take RAW feature values (the same strings as in the Criteo TSV, "" = missing)
and return the click probability. Everything between the raw strings and the
model inputs happens inside the graph, following the `FeatureSpec` contract
(`ctr_zoo.feature_columns.spec`):

- vocabulary features: `tf.lookup.StaticHashTable` value -> NUM_RESERVED_IDS + i,
  unseen or rare values -> OOV_ID = 1, "" -> MISSING_ID = 0;
- hashed features: id = 2 + `tf.strings.to_hash_bucket_fast(value, buckets)`,
  "" -> 0;
- dense fields: the string is parsed with the readers' grammar (value_type
  "int": base-10 `-?[0-9]+`, as int64 then float64; "float": a finite decimal
  number, as float64); a string the readers would reject ("0x10", "+5", " 5",
  "inf") fails the call with InvalidArgumentError naming the field; "log1p" =
  log(1 + max(x, 0)), "standardize" = (x - mean) / std, "log1p_standardize" =
  (log(1 + max(x, 0)) - mean) / std, "none" = x, each with missing -> 0, then
  cast to float32; "bucketize" = the token str(floor(ln(x)^2)) if x > 2 else
  str(int(x)), looked up like a categorical value (missing -> 0); "quantile" =
  2 + the number of fitted boundaries <= x (missing -> 0);
- derived categorical fields (`derive`): the hour of day or weekday of a
  YYMMDDHH string, as `ctr_zoo.datasets.readers.derive_tokens`, then looked up;
- sequences: tokens split on the feature's separator (empty tokens dropped),
  the LAST max_len kept, each looked up in the feature's (or the shared)
  vocabulary, right-padded with PAD_ID = 0.

Signatures (the predicting ones return {"probability": float32 (B,),
"logit": float32 (B,)}):

- `serving_default`: one tf.string tensor of shape (B,) per raw column the
  features read (`spec.input_columns`), keyword arguments named like those
  columns (e.g. I1..I13, C1..C26 for Criteo; `hour` for Avazu's derived
  fields); numeric fields as base-10 integer (or decimal, for float fields)
  strings, "" = missing.
- `serve_typed`: the same keyword arguments, but the numeric columns (read by
  a DenseFeature) as float64 numbers (B,) with NaN = missing; the others
  strings. Integer and float Parquet / DataFrame columns go here as they are.
- `serve_tsv`: `lines`, tf.string (B,): raw tab-separated lines in the spec's
  `raw_columns` layout without the label column (as in Kaggle test.txt):
  exactly len(raw_columns) - 1 fields.
- `serve_tsv_labeled`: `lines` in the full `raw_columns` layout, label
  included (as in Kaggle train.txt); the label is ignored.
- `preprocess`: the per-column strings of `serving_default` -> the model's
  input dict (ids and floats), for checking the in-graph transform.

Bad requests fail with `InvalidArgumentError` messages that say what was
expected: a TSV line with another field count names its index in the batch
and the expected and actual counts; a numeric field string that is not a
base-10 integer names the input and the value. A signature called with a
tensor of the wrong dtype is refused by TensorFlow itself before the graph
runs (`input #k was expected to be a string tensor`): numbers go to
`serve_typed`, strings to `serving_default`.

The SavedModel needs only TensorFlow to run: load it with plain
`tf.saved_model.load(path)` in a process that never imports ctr_zoo. The spec
is also written next to it as `assets/spec.json`.

Pruning (`prune_zero_rows=True`, for tables trained with group-lasso FTRL,
which zeroes whole rows): every `FeatureEmbedding` table among the model's
`embedding_variables` that has all-zero rows, and gets smaller by dropping
them, is exported as a pruned `ServingTable`: its k non-zero rows plus one
zero row (k + 1, d) and their ids in ascending order (k + 1,) (an int64
sentinel last). In the serving graph an id is found by binary search
(`tf.searchsorted`); the id of a dropped row maps to the zero row, so
predictions are identical to the unpruned model's. Both arrays are variables,
so the exported size is honest: (k + 1) (4 d + 8) bytes instead of 4 V d per
float32 table.

Quantization (`quantize="float16"` or `"int8"`, post-training): tables are
stored as float16 or as per-row int8 with a one-byte scale code per row
(`ctr_zoo.layers.quantization`: every value within half a step of the
trained one), and dense kernels (every float32 weight of rank >= 2 that is
not a table) as float16. Everything is computed in float32: a lookup
dequantizes only the rows it reads, a kernel is cast to float32 where the
layer reads it. Quantization combines with pruning (the kept rows are
quantized). `quantize_tables` limits it to some tables (the mixed export of
a sensitivity report, `ctr_zoo.training.quantize`).

With pruning or quantization the SavedModel holds only the serving tables,
the float16 kernels and the model's other variables (no Keras model object);
the returned dict reports per-table and on-disk sizes. The float32 export
holds the Keras model.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Optional

from absl import logging
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.layers import embedding as embedding_lib
from ctr_zoo.layers import quantization
from ctr_zoo.optimizers import sparsity

_SIGNATURE_OUTPUTS = ("probability", "logit")
# The raw number grammar of ctr_zoo.datasets.readers (full matches).
_INT_GRAMMAR = "-?[0-9]+"
_FLOAT_GRAMMAR = r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"


def _lookup_table(vocabulary) -> tf.lookup.StaticHashTable:
  """value -> NUM_RESERVED_IDS + index, anything else -> OOV_ID (`vocabulary` non-empty)."""
  keys = tf.constant(list(vocabulary), dtype=tf.string)
  values = tf.range(spec_lib.NUM_RESERVED_IDS, spec_lib.NUM_RESERVED_IDS + len(vocabulary),
                    dtype=tf.int64)
  return tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(keys, values), default_value=spec_lib.OOV_ID)


STORAGES = ("float32", "float16", "int8")
QUANTIZE_MODES = (None, "float16", "int8")
# The documented bound on |p_quantized - p_float32| per row for the zoo's models (the
# tests hold every export to it). The exact statement is stronger: a quantized export
# predicts what the Keras model predicts with its weights replaced by their stored
# values (`ctr_zoo.training.quantize.quantized_values`), to float32 rounding (1e-5).
QUANTIZED_TOLERANCE = {"float16": 0.005, "int8": 0.02}


class ServingTable(tf.Module):
  """An embedding table (V, d) in serving storage, read like the full table.

  Storage of the rows R (`storage`):
    "float32": R as is; "float16": R rounded to float16, read as float32;
    "int8": per-row int8 values, a uint8 scale code per row and a float32
    base (`ctr_zoo.layers.quantization`), dequantized row by row at lookup;
    a table of width 1 has one code for all its values (`quantize_table`).

  Pruned (`prune=True`), only the k non-zero rows are kept, plus one zero row,
  with their ids in ascending order (an int64 sentinel last):

    rows = [R_kept; 0] (k + 1, d);  kept_ids = [s_0, .., s_{k-1}, int64 max] (k + 1,)
    lookup(i) = rows[j] if kept_ids[j] == i, j = searchsorted(kept_ids, i), else rows[k] = 0

  so an id of a dropped row reads the zero vector, exactly as in the full table.

  A lookup gathers the stored rows of the ids it reads and converts only those
  to float32: a lookup never dequantizes the whole table. `sparse_read` (what
  `tf.gather(table, ids)` calls) makes it a drop-in replacement for the table
  variable inside `FeatureEmbedding.lookup`.

  Args:
    table: tf.Variable (V, d). The trained table.
    storage: str. "float32", "float16" or "int8". Defaults to "float32".
    prune: bool. Drop the all-zero rows. Defaults to False.
    name: str or None. Module name. Defaults to None.
  """

  def __init__(self, table, storage: str = "float32", prune: bool = False,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.storage = checks.choice(storage, "storage", STORAGES)
    self.pruned = bool(prune)
    self.num_rows, self.dim = (int(n) for n in table.shape)
    values = np.asarray(table.numpy() if hasattr(table, "numpy") else table, np.float32)
    if self.pruned:
      kept_ids, rows = sparsity.prune_table(values)  # (k,), (k, d)
      self.num_kept = int(kept_ids.shape[0])
      self.kept_ids = tf.Variable(np.append(kept_ids, np.iinfo(np.int64).max), trainable=False,
                                  name="kept_ids")  # (k + 1,)
      rows = np.concatenate([rows, np.zeros((1, self.dim), np.float32)])  # (k + 1, d)
    else:
      self.num_kept = self.num_rows
      rows = values  # (V, d)
    if self.storage == "int8":
      quantized = quantization.quantize_table(rows)
      self.per_table = quantized.codes.shape[0] == 1
      self.rows = tf.Variable(quantized.values, trainable=False, name="rows")  # int8 (R, d)
      self.codes = tf.Variable(quantized.codes, trainable=False, name="codes")  # uint8 (R,)
      self.base = tf.Variable(quantized.base, trainable=False, name="base")  # float32 ()
      self._stored_bytes = quantized.nbytes
    else:
      dtype = np.float16 if self.storage == "float16" else np.float32
      self.rows = tf.Variable(rows.astype(dtype), trainable=False, name="rows")  # (R, d)
      self._stored_bytes = int(rows.shape[0]) * self.dim * np.dtype(dtype).itemsize
    if self.pruned:
      self._stored_bytes += (self.num_kept + 1) * 8

  @staticmethod
  def size_bytes(num_kept: int, dim: int, value_bytes: int = 4) -> int:
    """Bytes of a pruned float table: (k + 1) int64 ids and (k + 1, d) values."""
    return (num_kept + 1) * (8 + dim * value_bytes)

  @property
  def exported_bytes(self) -> int:
    """Bytes of the stored arrays (rows, codes and base, kept ids)."""
    return self._stored_bytes

  def read_rows(self, flat: tf.Tensor) -> tf.Tensor:
    """Row positions (N,) int64 in the stored rows -> float32 rows (N, d)."""
    rows = tf.gather(self.rows, flat)  # (N, d)
    if self.storage == "int8" and self.per_table:
      scale = tf.gather(quantization.scale_table(self.base), tf.cast(self.codes[0], tf.int32))
      return tf.cast(rows, tf.float32) * scale
    if self.storage == "int8":
      return quantization.dequantize_gathered(rows, tf.gather(self.codes, flat),
                                              quantization.scale_table(self.base))
    return tf.cast(rows, tf.float32)

  def lookup(self, ids: tf.Tensor) -> tf.Tensor:
    """ids (any shape, ints in [0, V)) -> float32 rows (ids.shape + (d,)).

    Pruned, an id >= V is not an error: it reads 0.
    """
    if ids.dtype != tf.int64:
      ids = tf.cast(ids, tf.int64)
    flat = ids if ids.shape.rank == 1 else tf.reshape(ids, [-1])  # (N,)
    if self.pruned:
      pos = tf.searchsorted(self.kept_ids, flat, side="left", out_type=tf.int64)  # (N,) in [0, k]
      found = tf.equal(tf.gather(self.kept_ids, pos), flat)
      flat = tf.where(found, pos, tf.constant(self.num_kept, tf.int64))  # missing -> zero row k
    rows = self.read_rows(flat)  # (N, d)
    if ids.shape.rank == 1:
      return rows
    out = tf.reshape(rows, tf.concat([tf.shape(ids, out_type=tf.int64), [self.dim]], axis=0))
    out.set_shape(ids.shape.concatenate(self.dim))
    return out  # (..., d)

  def sparse_read(self, indices, name=None):  # pylint: disable=unused-argument
    return self.lookup(indices)


class PrunedTable(ServingTable):
  """A float32 `ServingTable` without its all-zero rows (group lasso).

  Args:
    table: tf.Variable (V, d). The trained table.
    name: str or None. Module name. Defaults to None.
    storage: str. "float32", "float16" or "int8". Defaults to "float32".
  """

  def __init__(self, table, name: Optional[str] = None, storage: str = "float32"):
    super().__init__(table, storage=storage, prune=True, name=name)


class HalfKernel(tf.Module):
  """A dense weight stored as float16 and read in the compute dtype (float32).

  Args:
    variable: tf.Variable. The trained float32 weight.
    name: str or None. Module name. Defaults to None.
  """

  def __init__(self, variable, name: Optional[str] = None):
    super().__init__(name=name)
    self.value = tf.Variable(variable.numpy().astype(np.float16), trainable=False, name="value")
    self.read_dtype = tf.as_dtype(variable.dtype)

  @property
  def exported_bytes(self) -> int:
    return int(np.prod(self.value.shape)) * 2

  def read(self, dtype=None) -> tf.Tensor:
    return tf.cast(self.value, dtype or self.read_dtype)


class LayerTables(tf.Module):
  """The tables of one per-field `FeatureEmbedding` layer in one serving storage.

  The layer's T tables E_t (V_t, d) (all of width d) are stored one after
  another, as float16 or as per-row int8 (codes per row, a base A_t per
  table), with row offsets o_t. `lookup` replaces the layer's lookup while the
  serving graph is traced: every feature is read by ONE gather,

    rows = stored[ids_f + o_t(f)]   (B, n, d) for (B,) ids, stacked

  then converted to float32 (int8: times the row's scale A_t 2^(-c / 16),
  looked up in a (T * 256,) scale table; tables of width 1 have one code
  each). The numbers are those of the per-table `ServingTable`s; only the
  number of ops per lookup differs.

  Args:
    layer: FeatureEmbedding. Built, per-field (`fused=False`).
    storage: str. "float16" or "int8".
    name: str or None. Module name. Defaults to None.
  """

  def __init__(self, layer, storage: str, name: Optional[str] = None):
    super().__init__(name=name)
    self.storage = checks.choice(storage, "storage", ("float16", "int8"))
    self._layer = _Untracked(layer=layer)
    dims = {t[2] for t in layer.tables}
    if layer.fused or len(dims) != 1:
      raise ValueError(f"LayerTables needs a per-field layer of one width, got {layer.name!r}")
    self.dim = dims.pop()
    self.table_names = [t[0] for t in layer.tables]
    offsets, total = {}, 0
    for name_, num_ids, _ in layer.tables:
      offsets[name_] = total
      total += num_ids
    self.offsets = offsets
    self.feature_tables = dict(layer._features)  # pylint: disable=protected-access
    values = [v.numpy().astype(np.float32) for v in layer.table_variables]
    self.table_bytes = {}
    if self.storage == "int8":
      quantized = [quantization.quantize_table(x) for x in values]
      self.per_table = self.dim == 1  # then every table has one code
      self.rows = tf.Variable(np.concatenate([q.values for q in quantized]), trainable=False,
                              name="rows")  # int8 (sum V_t, d)
      self.codes = tf.Variable(np.concatenate([q.codes for q in quantized]), trainable=False,
                               name="codes")  # uint8 (sum V_t,), or (T,) per table
      self.bases = tf.Variable(np.array([q.base for q in quantized], np.float32), trainable=False,
                               name="bases")  # float32 (T,)
      for v, q in zip(layer.table_variables, quantized):
        self.table_bytes[v.name] = q.nbytes
    else:
      self.rows = tf.Variable(np.concatenate(values).astype(np.float16), trainable=False,
                              name="rows")  # float16 (sum V_t, d)
      for v, x in zip(layer.table_variables, values):
        self.table_bytes[v.name] = int(x.size) * 2

  @property
  def exported_bytes(self) -> int:
    return sum(self.table_bytes.values())

  def _scales(self) -> tf.Tensor:
    """(T * 256,) float32: the scale of code c of table t at index 256 t + c."""
    return tf.reshape(quantization.scale_table(self.bases), [-1])  # (T * 256,)

  def lookup(self, inputs, regularize: bool = True) -> dict:  # pylint: disable=unused-argument
    """What `FeatureEmbedding.lookup` returns: {feature: (B, d) or (B, T, d) float32}."""
    ids = self._layer.layer._ids(inputs)  # pylint: disable=protected-access
    features = list(self.feature_tables)
    tables = [self.feature_tables[f] for f in features]
    table_index = {t: i for i, t in enumerate(self.table_names)}
    if all(ids[f].shape.rank == 1 for f in features):
      offsets = tf.constant([[self.offsets[t] for t in tables]], tf.int64)  # (1, n)
      pos = tf.stack([ids[f] for f in features], axis=1) + offsets  # (B, n)
      rows = tf.gather(self.rows, pos)  # (B, n, d)
      if self.storage == "int8":
        lut = tf.constant([[256 * table_index[t] for t in tables]], tf.int32)  # (1, n)
        codes = tf.gather(self.codes, tf.constant([[table_index[t] for t in tables]])
                          if self.per_table else pos)  # (1, n) or (B, n)
        scales = tf.gather(self._scales(), tf.cast(codes, tf.int32) + lut)
        rows = tf.cast(rows, tf.float32) * tf.expand_dims(scales, -1)  # (B, n, d)
      else:
        rows = tf.cast(rows, tf.float32)
      return dict(zip(features, tf.unstack(rows, axis=1)))
    flat = [tf.reshape(ids[f] + self.offsets[t], [-1]) for f, t in zip(features, tables)]
    sizes = [tf.size(x) for x in flat]
    pos = tf.concat(flat, axis=0)  # (N,)
    rows = tf.gather(self.rows, pos)  # (N, d)
    if self.storage == "int8":
      index = tf.repeat(tf.constant([table_index[t] for t in tables], tf.int32),
                        tf.stack(sizes))  # (N,) the table of each position
      codes = tf.gather(self.codes, index if self.per_table else pos)
      scales = tf.gather(self._scales(), tf.cast(codes, tf.int32) + 256 * index)
      rows = tf.cast(rows, tf.float32) * tf.expand_dims(scales, -1)
    else:
      rows = tf.cast(rows, tf.float32)
    out = {}
    for f, part in zip(features, tf.split(rows, tf.stack(sizes), axis=0)):
      out[f] = tf.reshape(part, tf.concat([tf.shape(ids[f]), [self.dim]], axis=0))
      out[f].set_shape(ids[f].shape.concatenate(self.dim))
    return out


@contextlib.contextmanager
def _layer_lookups(layers: dict):
  """While active, each FeatureEmbedding layer in `layers` ({id: (layer, LayerTables)})
  looks up through its LayerTables (an instance attribute shadowing the method)."""
  try:
    for layer, tables in layers.values():
      object.__setattr__(layer, "lookup", tables.lookup)
    yield
  finally:
    for layer, _ in layers.values():
      layer.__dict__.pop("lookup", None)


def _variable_slots(model, refs) -> list:
  """[(owner, attribute, index or None, variable)] for every public attribute of the
  layers and modules of `model` that holds (or lists) a variable in `refs`."""
  slots, seen = [], set()
  for owner in (model,) + tuple(model.submodules):
    if id(owner) in seen:
      continue
    seen.add(id(owner))
    for attr, value in list(vars(owner).items()):
      if attr.startswith("_"):
        continue  # Keras bookkeeping (_trainable_weights, ...): not read by call()
      if isinstance(value, tf.Variable):
        if value.ref() in refs:
          slots.append((owner, attr, None, value))
      elif isinstance(value, (list, tuple)):
        slots.extend((owner, attr, i, x) for i, x in enumerate(value)
                     if isinstance(x, tf.Variable) and x.ref() in refs)
  return slots


def _table_slots(model) -> list:
  """[(FeatureEmbedding layer, attribute, index or None, variable)] for every table of `model`."""
  slots = []
  for layer in (model,) + tuple(model.submodules):
    if not isinstance(layer, embedding_lib.FeatureEmbedding) or not layer.built:
      continue
    if layer.fused:
      slots.append((layer, "fused_table", None, layer.fused_table))
    else:
      slots.extend((layer, "table_variables", i, v) for i, v in enumerate(layer.table_variables))
  return slots


@contextlib.contextmanager
def _swapped(slots, make):
  """While active, each slot's variable is replaced by `make(variable, owner)`.

  The attributes (e.g. `kernel`, `fused_table`, entries of `table_variables`)
  are swapped with `object.__setattr__`, so Keras' attribute tracking never
  sees the replacements (the layers' weights stay as they are), and restored
  on exit.
  """
  swaps = {}  # (id(owner), attr) -> [owner, attr, original, replacement]
  for owner, attr, index, variable in slots:
    swap = swaps.setdefault((id(owner), attr), [owner, attr, owner.__dict__[attr], None])
    replacement = make(variable, owner)
    if index is None:
      swap[3] = replacement
    else:
      if swap[3] is None:
        swap[3] = list(swap[2])
      swap[3][index] = replacement
  try:
    for owner, attr, _, replacement in swaps.values():
      object.__setattr__(owner, attr, replacement)
    yield
  finally:
    for owner, attr, original, _ in swaps.values():
      object.__setattr__(owner, attr, original)


def _pruned_lookups(model, tables: dict):
  """While active, the model's FeatureEmbedding layers read `tables` ({variable ref:
  ServingTable}) instead of their table variables."""
  slots = [s for s in _table_slots(model) if s[3].ref() in tables]
  return _swapped(slots, lambda variable, owner: tables[variable.ref()])


def _read_dtype(variable, owner):
  """The dtype `owner` reads `variable` in: its compute dtype for an autocast variable."""
  if type(variable).__name__ == "AutoCastVariable":
    return tf.as_dtype(getattr(owner, "compute_dtype", None) or variable.dtype)
  return tf.as_dtype(variable.dtype)


def _table_name(name: str) -> str:
  return name[:-2] if name.endswith(":0") else name


def _plan_tables(model, quantize, prune_zero_rows: bool, quantize_tables) -> tuple:
  """({table ref: ServingTable}, {id(layer): (layer, LayerTables)}, {table name: report entry}).

  A per-field FeatureEmbedding layer whose tables are all quantized alike and
  none pruned is served by one `LayerTables`; other replaced tables by a
  `ServingTable` each.
  """
  replaceable = {v.ref() for _, _, _, v in _table_slots(model)}
  wanted = None if quantize_tables is None else {_table_name(n) for n in quantize_tables}
  tables, report = {}, {}
  for v in sparsity.embedding_tables(model):
    stats = sparsity.table_sparsity(v, v.name)
    storage = "float32"
    if quantize and (wanted is None or _table_name(v.name) in wanted):
      storage = quantize
    entry = {"rows": stats.rows, "dim": stats.dim, "zero_rows": stats.zero_rows,
             "zero_row_fraction": stats.zero_row_fraction, "dense_bytes": stats.dense_bytes,
             "exported_bytes": stats.dense_bytes, "storage": "float32", "pruned": False}
    if v.ref() not in replaceable:
      entry["reason"] = "not a FeatureEmbedding table"
      report[v.name] = entry
      continue
    name = "table_" + re.sub(r"\W", "_", _table_name(v.name))
    candidates = [ServingTable(v, storage, prune=False, name=name)] if storage != "float32" else []
    if prune_zero_rows:
      if stats.zero_rows == 0:
        entry["reason"] = "no zero rows"
      else:
        pruned = ServingTable(v, storage, prune=True, name=name)
        smallest = min([stats.dense_bytes] + [c.exported_bytes for c in candidates])
        if pruned.exported_bytes < smallest:
          candidates = [pruned]
        else:
          entry["reason"] = "too few zero rows to save space"
    if candidates:
      table = candidates[0]
      tables[v.ref()] = table
      entry.update(storage=table.storage, pruned=table.pruned, exported_bytes=table.exported_bytes)
    report[v.name] = entry
  layers = {}
  for layer in (model,) + tuple(model.submodules):
    if (not isinstance(layer, embedding_lib.FeatureEmbedding) or not layer.built or layer.fused
        or len(layer.tables) < 2 or len({t[2] for t in layer.tables}) != 1):
      continue
    served = [tables.get(v.ref()) for v in layer.table_variables]
    storages = {t.storage for t in served if t is not None}
    if any(t is None or t.pruned for t in served) or len(storages) != 1:
      continue
    layer_tables = LayerTables(layer, storages.pop(),
                               name="layer_" + re.sub(r"\W", "_", layer.name))
    layers[id(layer)] = (layer, layer_tables)
    for v in layer.table_variables:
      del tables[v.ref()]
      report[v.name]["exported_bytes"] = layer_tables.table_bytes[v.name]
  return tables, layers, report


def _plan_kernels(model, table_refs) -> dict:
  """{variable ref: HalfKernel} for every float32 weight of rank >= 2 that is not a table."""
  tables = {v.ref() for v in sparsity.embedding_tables(model)} | set(table_refs)
  kernels = {}
  for v in model.variables:
    if v.ref() in tables or v.shape.rank is None or v.shape.rank < 2:
      continue
    if tf.as_dtype(v.dtype) != tf.float32:
      continue
    kernels[v.ref()] = HalfKernel(v, name="half_" + re.sub(r"\W", "_", _table_name(v.name)))
  return kernels


def _directory_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


class _Untracked:
  """Holds objects without making them part of a tf.Module's saved object graph."""

  def __init__(self, **values):
    self.__dict__.update(values)


def _first_true(mask: tf.Tensor) -> tf.Tensor:
  """Index of the first True of a (B,) bool mask (B when none is)."""
  return tf.argmax(tf.concat([tf.cast(mask, tf.int32), [1]], axis=0), output_type=tf.int64)


def _feature_list(names) -> str:
  names = list(names)
  return ", ".join(names) if len(names) <= 6 else f"{', '.join(names[:3])}, .., {names[-1]}"


class RawFeatureModule(tf.Module):
  """The raw-string -> ids/floats -> model graph, as a trackable module.

  Args:
    model: tf.keras.Model. Takes the spec's feature dict and returns the click
      probability (B, 1); a `logit` layer is used for the logit when present.
    spec: FeatureSpec. The fitted spec the model was trained with.
    tables: dict or None. {table variable ref: ServingTable}: tables stored
      pruned or quantized. Defaults to None.
    kernels: dict or None. {variable ref: HalfKernel}: dense weights stored
      as float16. Defaults to None.
    layers: dict or None. {id(layer): (FeatureEmbedding, LayerTables)}: layers
      whose tables are served from one storage. Defaults to None.

  The module tracks the serving tables, the half kernels and every other model
  variable (no Keras model object, whose layers' functions the signatures do
  not need), and the model's layers read the replacements while the serving
  functions are traced (`predict_raw`).
  """

  def __init__(self, model: tf.keras.Model, spec: spec_lib.FeatureSpec,
               tables: Optional[dict] = None, kernels: Optional[dict] = None,
               layers: Optional[dict] = None):
    super().__init__(name="raw_feature_serving")
    if not spec.is_fitted:
      raise spec_lib.SpecError("export needs a fitted FeatureSpec (vocabularies present)")
    self._spec = spec
    try:
      logit_model = tf.keras.Model(model.inputs, model.get_layer("logit").output)
    except (ValueError, AttributeError, TypeError):
      logit_model = None
    tables, kernels, layers = dict(tables or {}), dict(kernels or {}), dict(layers or {})
    layer_refs = {v.ref() for layer, _ in layers.values() for v in layer.table_variables}
    self._keras = _Untracked(model=model, logit_model=logit_model, tables=tables, kernels=kernels,
                             layers=layers,
                             table_slots=[t for t in _table_slots(model) if t[3].ref() in tables],
                             kernel_slots=_variable_slots(model, set(kernels)) if kernels else [])
    # Only the variables are saved (the serving tables, the half kernels and every other model
    # variable), never the Keras model object: saving it would trace every layer's call
    # functions once more, which the serving signatures do not use.
    self.serving_tables = list(tables.values())
    self.layer_tables = [t for _, t in layers.values()]
    self.half_kernels = list(kernels.values())
    self.serving_variables = [v for v in model.variables if v.ref() not in tables
                              and v.ref() not in kernels and v.ref() not in layer_refs]
    self.tables = {}
    for f in spec.features:
      vocab_owner = f
      if isinstance(f, spec_lib.SequenceFeature) and f.shares_vocabulary_with:
        vocab_owner = spec[f.shares_vocabulary_with]
      vocabulary = getattr(vocab_owner, "vocabulary", None)
      if vocabulary and vocab_owner.name not in self.tables:  # empty: every value is OOV
        self.tables[vocab_owner.name] = _lookup_table(vocabulary)
    self.spec_json = tf.Variable(spec.to_json(indent=None), trainable=False, name="spec_json")

  # --- raw -> model inputs -----------------------------------------------------
  def _token_ids(self, feature, tokens: tf.Tensor) -> tf.Tensor:
    """Ids of string tokens (any shape) for an id feature; "" -> MISSING_ID."""
    owner = feature
    if isinstance(feature, spec_lib.SequenceFeature) and feature.shares_vocabulary_with:
      owner = self._spec[feature.shares_vocabulary_with]
    if owner.hash_buckets is not None:
      ids = tf.strings.to_hash_bucket_fast(tokens, owner.hash_buckets) + spec_lib.NUM_RESERVED_IDS
    elif owner.name in self.tables:
      ids = self.tables[owner.name].lookup(tokens)
    else:  # an empty vocabulary: every value is out of vocabulary
      ids = tf.fill(tf.shape(tokens, out_type=tf.int64), tf.constant(spec_lib.OOV_ID, tf.int64))
    return tf.where(tf.equal(tokens, ""), tf.constant(spec_lib.MISSING_ID, tf.int64), ids)

  def _number(self, feature, raw: tf.Tensor, missing: tf.Tensor) -> tf.Tensor:
    """float64 value of raw number strings under the training grammar (spec module doc).

    A value the pipeline's readers would reject (e.g. "0x10", "+5", " 5",
    "inf") fails the call with InvalidArgumentError naming the input, the
    value and its row in the batch.
    """
    is_int = feature.value_type == "int"
    pattern = _INT_GRAMMAR if is_int else _FLOAT_GRAMMAR
    if is_int:
      expects = "base-10 integer strings"
      what = "not an integer (base 10, optional minus)"
    else:
      expects = "finite decimal numbers"
      what = "not a finite number"

    def check(ok):
      first = _first_true(tf.logical_not(ok))
      value = tf.gather(tf.concat([raw, [""]], axis=0), first)
      return tf.debugging.Assert(
          tf.reduce_all(ok),
          [tf.strings.join([
              f"input {feature.raw_column} (a numeric field) expects {expects}, empty = "
              "missing; got ", value, " in row ", tf.strings.as_string(first), " of the batch. "
              f"serve_typed takes numbers (float64, NaN = missing). (field "
              f"{feature.raw_column!r}: {what})"])])

    ok = tf.logical_or(missing, tf.strings.regex_full_match(raw, pattern))
    with tf.control_dependencies([check(ok)]):
      safe = tf.where(tf.logical_and(ok, tf.logical_not(missing)), raw, "0")
      if is_int:
        return tf.cast(tf.strings.to_number(safe, out_type=tf.int64), tf.float64)
      x = tf.strings.to_number(safe, out_type=tf.float64)
    with tf.control_dependencies([check(tf.math.is_finite(x))]):
      return tf.identity(x)

  def _dense_value(self, feature, raw: tf.Tensor) -> tf.Tensor:
    """A numeric field's raw strings (B,) -> its model input."""
    missing = tf.equal(raw, "")
    # The readers' number grammar (ctr_zoo.datasets.readers); float64 math.
    return self._dense_number(feature, self._number(feature, raw, missing), missing)

  def _dense_number(self, feature, x: tf.Tensor, missing: tf.Tensor) -> tf.Tensor:
    """float64 values x (B,) and their missing mask -> the model input (float32 or ids)."""
    x = tf.where(missing, tf.zeros_like(x), x)
    if feature.transform == "bucketize":
      bucket = tf.where(x > 2, tf.floor(tf.square(tf.math.log(tf.maximum(x, 2.0)))), x)
      tokens = tf.strings.as_string(tf.cast(bucket, tf.int64))  # trunc(x) for x <= 2
      tokens = tf.where(missing, "", tokens)
      return self._token_ids(feature, tokens)
    if feature.transform == "quantile":
      boundaries = tf.constant(list(feature.boundaries), tf.float64)  # (k,)
      if feature.boundaries:
        bucket = tf.searchsorted(boundaries[tf.newaxis], x[tf.newaxis], side="right",
                                 out_type=tf.int64)[0]
      else:
        bucket = tf.zeros_like(x, tf.int64)
      return tf.where(missing, tf.constant(spec_lib.MISSING_ID, tf.int64),
                      bucket + spec_lib.NUM_RESERVED_IDS)
    if feature.transform == "log1p":
      y = tf.math.log1p(tf.maximum(x, 0.0))
    elif feature.transform == "standardize":
      y = (x - feature.mean) / feature.std
    elif feature.transform == "log1p_standardize":
      y = (tf.math.log1p(tf.maximum(x, 0.0)) - feature.mean) / feature.std
    else:  # "none"
      y = x
    return tf.cast(tf.where(missing, tf.zeros_like(y), y), tf.float32)

  def _derive(self, feature, raw: tf.Tensor) -> tf.Tensor:
    """A `spec.DERIVATIONS` token of YYMMDDHH strings, as `readers.derive_tokens`; "" stays ""."""
    missing = tf.equal(raw, "")
    digits = tf.strings.regex_full_match(raw, "[0-9]{8}")
    n = tf.strings.to_number(tf.where(digits, raw, "00010100"), out_type=tf.int64)
    yy, mm, dd, hh = n // 1000000, n // 10000 % 100, n // 100 % 100, n % 100
    year = 2000 + yy
    leap = tf.logical_or(tf.logical_and(tf.equal(year % 4, 0), tf.not_equal(year % 100, 0)),
                         tf.equal(year % 400, 0))
    month_ok = tf.logical_and(mm >= 1, mm <= 12)
    m = tf.where(month_ok, mm, 1)
    dim = tf.gather(tf.constant([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], tf.int64), m)
    dim += tf.cast(tf.logical_and(tf.equal(m, 2), leap), tf.int64)
    ok = tf.reduce_all(tf.stack([digits, month_ok, dd >= 1, dd <= dim, hh <= 23]), axis=0)
    ok = tf.logical_or(ok, missing)
    check = tf.debugging.Assert(
        tf.reduce_all(ok), [f"field {feature.raw_column!r}: not a YYMMDDHH time (for "
                            f"{feature.derive}), got", tf.boolean_mask(raw, tf.logical_not(ok))],
        summarize=3)
    with tf.control_dependencies([check]):
      if feature.derive == "hour_of_day":
        value = hh
      else:  # "weekday": days since 1970-01-01 (a Thursday), Monday = 0
        y = year - tf.cast(m <= 2, tf.int64)
        era = y // 400
        yoe = y - era * 400
        doy = (153 * (m + tf.where(m > 2, tf.constant(-3, tf.int64), 9)) + 2) // 5 + dd - 1
        doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
        value = (era * 146097 + doe - 719468 + 3) % 7
      return tf.where(missing, "", tf.strings.as_string(value))

  def _sequence_ids(self, feature, raw: tf.Tensor) -> tf.Tensor:
    tokens = tf.strings.split(raw, sep=feature.separator)  # ragged (B, None)
    tokens = tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, ""))
    tokens = tokens[:, -feature.max_len:]  # keep the last max_len (most recent)
    ids = tf.ragged.map_flat_values(lambda t: self._token_ids(feature, t), tokens)
    return ids.to_tensor(default_value=spec_lib.PAD_ID, shape=[None, feature.max_len])  # (B, L)

  def features_from_raw(self, raw: dict, typed: bool = False) -> dict:
    """{raw column: (B,)} (the spec's `input_columns`) -> the model's input dict.

    The values are strings; with `typed`, the numeric columns (`numeric_columns`)
    are float64 numbers (NaN = missing) instead.
    """
    out = {}
    for f in self._spec.features:
      value = tf.reshape(raw[f.raw_column], [-1])  # exact strings: no trimming
      if isinstance(f, spec_lib.SequenceFeature):
        ids = self._sequence_ids(f, value)
      elif isinstance(f, spec_lib.DenseFeature):
        if typed:
          infinite = tf.math.is_inf(value)
          first = _first_true(infinite)
          check = tf.debugging.Assert(
              tf.logical_not(tf.reduce_any(infinite)),
              [tf.strings.join([
                  f"input {f.raw_column} (a numeric field) must be a finite number or NaN "
                  "(missing); got ",
                  tf.strings.as_string(tf.gather(tf.concat([value, [0.0]], 0), first)),
                  " in row ", tf.strings.as_string(first), " of the batch."])])
          with tf.control_dependencies([check]):
            value = tf.identity(value)
          ids = self._dense_number(f, value, tf.math.is_nan(value))
        else:
          ids = self._dense_value(f, value)
      elif f.derive is not None:
        if value.dtype != tf.string:  # a typed numeric column read by a derivation
          value = tf.where(tf.math.is_nan(value), "",
                           tf.strings.as_string(tf.cast(value, tf.int64)))
        ids = self._token_ids(f, self._derive(f, value))
      else:
        ids = self._token_ids(f, value)
      out[f.name] = ids
    return out

  @contextlib.contextmanager
  def _serving_weights(self):
    """The model's layers read the serving tables and float16 kernels (inside a trace)."""
    k = self._keras
    with _swapped(k.table_slots, lambda variable, owner: k.tables[variable.ref()]) if k.tables \
        else contextlib.nullcontext():
      with _swapped(k.kernel_slots, lambda variable, owner: k.kernels[variable.ref()].read(
          _read_dtype(variable, owner))) if k.kernels else contextlib.nullcontext():
        with _layer_lookups(k.layers):
          yield

  def predict_raw(self, raw: dict, typed: bool = False) -> dict:
    inputs = self.features_from_raw(raw, typed=typed)
    with self._serving_weights():
      probability = tf.reshape(self._keras.model(inputs, training=False), [-1])
      if self._keras.logit_model is not None:
        logit = tf.reshape(self._keras.logit_model(inputs, training=False), [-1])
      else:
        p = tf.clip_by_value(probability, 1e-7, 1 - 1e-7)
        logit = tf.math.log(p) - tf.math.log1p(-p)
    return {"probability": tf.cast(probability, tf.float32), "logit": tf.cast(logit, tf.float32)}

  def split_tsv(self, lines: tf.Tensor, with_label: bool = False) -> dict:
    """Raw TSV lines (B,) in the spec's `raw_columns` layout -> {input column: tf.string (B,)}.

    Args:
      lines: tf.string (B,). One row per line; a trailing "\n" / "\r\n" is dropped.
      with_label: bool. The lines hold the label column (ignored) where the
        layout has it: len(raw_columns) fields; else exactly one fewer.

    Raises (when run):
      InvalidArgumentError: a line with another number of fields, naming the
        line's index in the batch and the expected and actual field counts.
    """
    spec = self._spec
    layout = [c for c in spec.raw_columns if with_label or c != spec.label]
    expected = len(layout)
    parts = tf.strings.split(tf.strings.regex_replace(lines, "[\r\n]+$", ""), sep="\t")  # (B, None)
    lengths = parts.row_lengths()
    bad = tf.not_equal(lengths, expected)
    first = _first_true(bad)
    got = tf.gather(tf.concat([lengths, [expected]], axis=0), first)
    if with_label:
      described, other = "the label included", "serve_tsv (lines without the label)"
    else:
      described, other = "no label", "serve_tsv_labeled (lines with the label)"
    signature = "serve_tsv_labeled" if with_label else "serve_tsv"
    check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad)),
        [tf.strings.format(
            f"{signature}: line {{}} of the batch has {{}} tab-separated fields, expected "
            f"{expected} ({described}: {_feature_list(layout)}); see {other}",
            (first, got))])
    with tf.control_dependencies([check]):  # no field is read before the counts are checked
      values = tf.identity(parts.values)
    starts = parts.row_starts()
    return {c: tf.gather(values, starts + layout.index(c)) for c in spec.input_columns}


def _trace(module: RawFeatureModule, spec: spec_lib.FeatureSpec) -> dict:
  """Fresh tf.functions of every signature, traced; returns {name: concrete function}."""
  names = spec.input_columns  # the raw columns the features read
  numeric = numeric_columns(spec)
  field_specs = {n: tf.TensorSpec([None], tf.string, name=n) for n in names}
  typed_specs = {n: tf.TensorSpec([None], tf.float64 if n in numeric else tf.string, name=n)
                 for n in names}

  @tf.function(input_signature=[field_specs], autograph=False)
  def serve_fields(raw):
    return module.predict_raw(raw)

  @tf.function(input_signature=[typed_specs], autograph=False)
  def serve_typed(raw):
    return module.predict_raw(raw, typed=True)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="lines")], autograph=False)
  def serve_tsv(lines):
    return module.predict_raw(module.split_tsv(lines, with_label=False))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="lines")], autograph=False)
  def serve_tsv_labeled(lines):
    return module.predict_raw(module.split_tsv(lines, with_label=True))

  @tf.function(input_signature=[field_specs], autograph=False)
  def preprocess(raw):
    return module.features_from_raw(raw)

  return {
      # serving_default takes keyword arguments named like the raw columns.
      "serving_default": serve_fields.get_concrete_function(),
      "serve_typed": serve_typed.get_concrete_function(),
      "serve_tsv": serve_tsv.get_concrete_function(),
      "serve_tsv_labeled": serve_tsv_labeled.get_concrete_function(),
      "preprocess": preprocess.get_concrete_function(),
  }


def _leaks(signatures: dict, refs) -> set:
  """Refs among `refs` that a traced signature still reads."""
  return {v.ref() for fn in signatures.values() for v in fn.variables if v.ref() in refs}


def export_saved_model(model: tf.keras.Model, spec: spec_lib.FeatureSpec, path: str,
                       prune_zero_rows: bool = False, quantize: Optional[str] = None,
                       quantize_tables=None, quantize_dense: bool = True) -> dict:
  """Writes a raw-feature serving SavedModel of `model` to `path`.

  Args:
    model: tf.keras.Model. A ctr_zoo model (or any model with the spec's
      input dict and a (B, 1) probability output).
    spec: FeatureSpec. The fitted spec the model was trained with.
    path: str. Output directory.
    prune_zero_rows: bool. Export the model's `FeatureEmbedding` tables
      without their all-zero rows (group lasso); ids of dropped rows read a
      zero vector, so predictions are unchanged. A table is pruned only when
      that makes it smaller. Defaults to False.
    quantize: None, "float16" or "int8". Post-training quantization of the
      stored weights, computed in float32: "float16" stores tables and dense
      kernels as float16; "int8" stores tables as per-row int8
      (`ctr_zoo.layers.quantization`) and dense kernels as float16. Biases
      and other rank-1 weights stay float32. Defaults to None (float32).
    quantize_tables: collection of table variable names (as in the returned
      "tables" report, with or without ":0") or None. With `quantize`, only
      these tables are quantized, the others stay float32 (the mixed export
      of a sensitivity report); None quantizes every table. Defaults to None.
    quantize_dense: bool. With `quantize`, store the dense kernels as float16.
      Defaults to True.

  Returns:
    {"path", "signatures": sorted signature names, "quantize", "saved_model_bytes":
    size of the directory, "variables_bytes": size of its variables/,
    "tables": {table name: {"rows", "dim", "zero_rows", "zero_row_fraction",
    "dense_bytes" (float32), "exported_bytes", "storage", "pruned" (bool)[,
    "reason" when pruning was asked and not done]}}, "table_bytes":
    {"float32" (= "unpruned"), "exported"}, "dense_kernel_bytes": {"float32",
    "exported"}}; with `prune_zero_rows` the same per-table report also as "pruning".
  """
  checks.choice(quantize, "quantize", QUANTIZE_MODES)
  spec = spec if isinstance(spec, spec_lib.FeatureSpec) else spec_lib.FeatureSpec.from_json(spec)
  missing = sorted(set(spec.feature_names) - set(getattr(model, "input_names", spec.feature_names)))
  if missing:
    raise ValueError(f"model {model.name!r} has no inputs for spec features {missing}")
  tables, layers, report = _plan_tables(model, quantize, prune_zero_rows, quantize_tables)
  kernels = _plan_kernels(model, tables) if quantize and quantize_dense else {}
  layer_refs = {v.ref() for layer, _ in layers.values() for v in layer.table_variables}
  while True:
    module = RawFeatureModule(model, spec, tables=tables, kernels=kernels, layers=layers)
    signatures = _trace(module, spec)
    leaked_tables = _leaks(signatures, set(tables) | layer_refs)
    if leaked_tables:
      names = sorted(v.deref().name for v in leaked_tables)
      raise RuntimeError(f"export: the signatures still read the full tables {names}; their "
                         "lookups did not go through FeatureEmbedding")
    leaked = _leaks(signatures, set(kernels))
    if not leaked:
      break
    # Weights read other than through a layer attribute stay float32.
    logging.info("export: %d weights stay float32 (not read through a layer attribute): %s",
                 len(leaked), sorted(v.deref().name for v in leaked))
    kernels = {r: k for r, k in kernels.items() if r not in leaked}
  os.makedirs(path, exist_ok=True)
  tf.saved_model.save(module, path, signatures=signatures)
  assets = os.path.join(path, "assets")
  os.makedirs(assets, exist_ok=True)
  spec.save(os.path.join(assets, "spec.json"))
  float32_tables = sum(e["dense_bytes"] for e in report.values())
  kernel_vars = {r.deref().name: r.deref() for r in kernels}
  info = {"path": path, "signatures": sorted(signatures), "quantize": quantize,
          "saved_model_bytes": _directory_bytes(path),
          "variables_bytes": _directory_bytes(os.path.join(path, "variables")),
          "tables": report,
          "table_bytes": {"float32": float32_tables, "unpruned": float32_tables,
                          "exported": sum(e["exported_bytes"] for e in report.values())},
          "dense_kernel_bytes": {
              "float32": sum(int(np.prod(v.shape)) * 4 for v in kernel_vars.values()),
              "exported": sum(k.exported_bytes for k in kernels.values())}}
  if prune_zero_rows:
    info["pruning"] = report
  logging.info("export %s (quantize=%s, prune_zero_rows=%s): %d of %d tables replaced, table "
               "bytes %d -> %d, SavedModel %d bytes", path, quantize, prune_zero_rows,
               len(tables) + len(layer_refs), len(report), float32_tables,
               info["table_bytes"]["exported"],
               info["saved_model_bytes"])
  return info


def numeric_columns(spec: spec_lib.FeatureSpec) -> list:
  """The input columns read by a DenseFeature: `serve_typed` takes them as float64."""
  return [c for c in spec.input_columns
          if any(isinstance(f, spec_lib.DenseFeature) and f.raw_column == c for f in spec.features)]


def typed_inputs(table, spec: spec_lib.FeatureSpec) -> dict:
  """A typed raw Arrow table (a `read_batches` batch) -> the `serve_typed` inputs.

  Returns {input column: np.ndarray (N,)}: numeric columns float64 with NaN =
  missing, the others object arrays of str with "" = missing. A column read
  only through derivations comes from the batch's raw copy of it.
  """
  numeric = set(numeric_columns(spec))
  out = {}
  for c in spec.input_columns:
    readers_of_c = [f for f in spec.features
                    if f.raw_column == c and getattr(f, "derive", None) is None]
    column = table.column(readers_of_c[0].name if readers_of_c else c)
    if c in numeric:
      out[c] = pc.fill_null(pc.cast(column, pa.float64()), float("nan")).to_numpy()
    else:
      out[c] = pc.fill_null(pc.cast(column, pa.string()), "").to_numpy()
  return out
