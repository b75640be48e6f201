"""FeatureEmbedding: id features -> embeddings, per-field tables or one fused table."""

from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import initializers
from ctr_zoo.layers import quantization
from ctr_zoo.serialization import register

EMBEDDING_PREFIX = "embedding/"


def _normalize_tables(tables: Sequence[Any], layer_name: str) -> list:
  """[(name, num_ids, dim)] from tuples/lists (e.g. `FeatureSpec.embedding_tables()`)."""
  if isinstance(tables, (str, bytes)) or not isinstance(tables, (list, tuple)) or not tables:
    raise ValueError(f"{layer_name} tables must be a non-empty list of (name, num_ids, dim), "
                     f"got {tables!r}")
  out = []
  for t in tables:
    if not isinstance(t, (list, tuple)) or len(t) != 3:
      raise ValueError(f"{layer_name} table configs are (name, num_ids, dim) triples, got {t!r}")
    name, num_ids, dim = t
    if not isinstance(name, str) or not name:
      raise ValueError(f"{layer_name} table name must be a non-empty string, got {name!r} in {t!r}")
    for what, v in (("num_ids", num_ids), ("dim", dim)):
      checks.positive_int(v, f"{layer_name} table {name!r}: {what}")
    out.append((name, int(num_ids), int(dim)))
  names = [t[0] for t in out]
  dupes = sorted({n for n in names if names.count(n) > 1})
  if dupes:
    raise ValueError(f"{layer_name} has duplicate table names {dupes}")
  return out


ADDITIVE_REGULARIZERS = (tf.keras.regularizers.L1, tf.keras.regularizers.L2,
                         tf.keras.regularizers.L1L2)


def regularize_rows(regularizer, rows) -> tf.Tensor:
  """`regularizer` on looked-up rows, computed in float32.

  Under a mixed policy the rows are bfloat16; the loss is summed with the
  float32 data loss, so it is taken in float32 (the cast is a no-op otherwise).
  """
  return regularizer(tf.cast(rows, tf.float32))


def is_sharded(variable) -> bool:
  """Whether `variable` is a `ShardedVariable` (a table split by a `variable_partitioner`).

  Checked by class name, as tf-keras does (`is_split_variable`): the class is
  not part of TensorFlow's public API.
  """
  return any(c.__name__ == "ShardedVariable" for c in type(variable).__mro__)


def is_remote(table) -> bool:
  """Whether `table` lives on a parameter server: a `ShardedVariable`, or a variable on a ps job."""
  return is_sharded(table) or "/job:ps/" in (getattr(table, "device", "") or "")


def table_parts(table) -> list:
  """The variables that hold `table`: its shards if it is sharded, else [table]."""
  return list(table.variables) if is_sharded(table) else [table]


def gather_rows(table, ids) -> tf.Tensor:
  """table[ids]: ids of any shape (...) -> rows (..., d).

  A local table: `tf.gather`, whose gradient is a `tf.IndexedSlices` of one
  row per id. A table on parameter servers (`is_remote`; parameter-server
  training): the ids are de-duplicated first, each of the U touched rows is
  read once (`tf.nn.embedding_lookup` reads a `ShardedVariable` shard by
  shard, on the tasks that hold the shards, and never concatenates it) and
  the rows are expanded locally. The gradient then holds U rows (the sum over
  each id's occurrences), so a step moves U x d floats each way, not one row
  per occurrence. Same values either way.
  """
  if not is_remote(table):
    return tf.gather(table, ids)
  ids = tf.convert_to_tensor(ids)
  unique_ids, positions = tf.unique(tf.reshape(ids, (-1,)))  # (U,), (n,)
  rows = tf.nn.embedding_lookup(table, unique_ids)  # (U, d)
  out = tf.gather(rows, positions)  # (n, d)
  out = tf.reshape(out, tf.concat([tf.shape(ids), tf.shape(rows)[1:]], axis=0))  # (..., d)
  out.set_shape(ids.shape.concatenate(table.shape[1:]))
  return out


def is_additive_regularizer(regularizer) -> bool:
  """Whether r(concat(x_1, .., x_k)) == sum_i r(x_i) (Keras L1 / L2 / L1L2: sums over elements)."""
  return type(regularizer) in ADDITIVE_REGULARIZERS


@register
class FeatureEmbedding(graph_layer.GraphLayer):
  """Looks up one embedding per id feature, from per-field tables or one fused table.

  For feature f read through table t(f) with E_t in R^{V_t x d_t}:

    e_f = E_t(f)[ids_f]    (B,) ids -> (B, d_t);  (B, T) ids -> (B, T, d_t)

  Fused mode (`fused=True`) stores every table in one E in R^{(sum_t V_t) x d}
  (all d_t equal) with row offsets o_t = sum_{s<t} V_s, and looks up all
  features with one gather: e_f = E[ids_f + o_t(f)]. Same math, same API.

  Lookups are `tf.gather` on the variables, so gradients are `tf.IndexedSlices`
  and sparse optimizers (FTRL, AdaGrad) touch only the looked-up rows. The
  tables are `embedding_variables`; their names contain "embedding/" (per
  field: ".../embedding/<table>", fused: ".../embedding/fused").

  Under `ParameterServerStrategy` with a `variable_partitioner` a table is a
  `ShardedVariable`: `embedding_variables` lists its shards (what the sparse
  optimizers update, each with its own slots), and lookups read only the
  touched rows of each shard (see `gather_rows`).

  `embeddings_regularizer` is applied to the looked-up rows only (each lookup
  counts, padding positions included), added as a layer loss, never to the
  whole table. An additive regularizer (Keras L1, L2, L1L2: a sum over
  elements) is evaluated once on all looked-up rows of a fused lookup, which
  is the same number as the sum of its per-feature values.

  Fused and stacked (`fused=True, stack=True`, all inputs (B,)), the lookup is
  one gather on a (B, n) id matrix: E[ids + o] (B, n, d), with no split and
  no re-stacking (the fastest layout for models that concatenate fields).

  Quantization-aware training (`fake_quant=True`): every looked-up row is
  replaced in the forward pass by its per-row int8 round trip,
  e~ = clip(round(e / s), -127, 127) s with s = max_j |e_j| / 127, and the
  gradient passes straight through (`quantization.fake_quantize_rows`). The
  tables and their updates stay float32; the regularizer sees the float32
  rows. A model trained so is then exported with per-row int8 tables.

  Args:
    tables: list of (name, num_ids, dim). One table per entry; exactly what
      `FeatureSpec.embedding_tables()` returns.
    feature_to_table: mapping feature name -> table name, for features that
      read another feature's table (e.g. a sequence with
      `shares_vocabulary_with`). Every table is also looked up under its own
      name. Defaults to None.
    fused: bool. One fused table with per-field offsets. Defaults to False.
    stack: bool. Return one (B, n, d) tensor of the single-id features, in
      `feature_names` order (all dims equal, all inputs (B,)) instead of a
      dict. Defaults to False.
    embeddings_initializer: initializer (cloned per table). Defaults to
      "uniform" (Keras Embedding's U(-0.05, 0.05)).
    embeddings_regularizer: regularizer on looked-up rows. Defaults to None.
    fake_quant: bool. Fake-quantize looked-up rows to per-row int8 in the
      forward pass (straight-through gradient). Defaults to False.

  Input: dict feature name -> int ids (B,) or (B, T); keys not used are
  ignored (pass the whole feature dict). Output: dict feature name ->
  (B, d) / (B, T, d), or (B, n, d) with `stack=True`.

  Example:
    >>> emb = FeatureEmbedding([("user", 10, 4), ("item", 20, 4)], stack=True)
    >>> emb({"user": tf.constant([1, 2]), "item": tf.constant([3, 4])}).shape
    TensorShape([2, 2, 4])
  """

  def __init__(self,
               tables: Sequence[Any],
               feature_to_table: Optional[Mapping[str, str]] = None,
               fused: bool = False,
               stack: bool = False,
               embeddings_initializer: Any = "uniform",
               embeddings_regularizer: Any = None,
               fake_quant: bool = False,
               **kwargs):
    super().__init__(**kwargs)
    kind = type(self).__name__
    self.fake_quant = checks.boolean(fake_quant, f"{kind} fake_quant")
    self.tables = _normalize_tables(tables, kind)
    table_names = [t[0] for t in self.tables]
    mapping = dict(feature_to_table or {})
    for feature, table in mapping.items():
      if table not in table_names:
        raise ValueError(f"{kind} feature_to_table maps {feature!r} to table {table!r}, "
                         f"which is not one of the tables {table_names}")
    self.feature_to_table = mapping
    self._features = {t: t for t in table_names}
    self._features.update(mapping)
    self.fused = bool(fused)
    self.stack = bool(stack)
    dims = sorted({t[2] for t in self.tables})
    if (self.fused or self.stack) and len(dims) > 1:
      raise ValueError(f"{kind} with fused={self.fused}, stack={self.stack} needs one "
                       f"embedding dim for all tables, got dims "
                       f"{ {t[0]: t[2] for t in self.tables} }")
    self.embeddings_initializer = tf.keras.initializers.get(embeddings_initializer)
    self.embeddings_regularizer = tf.keras.regularizers.get(embeddings_regularizer)
    self._table_index = {t[0]: i for i, t in enumerate(self.tables)}
    offsets, total = {}, 0
    for name, num_ids, _ in self.tables:
      offsets[name] = total
      total += num_ids
    self.offsets = offsets
    self.total_ids = total

  @classmethod
  def from_spec(cls, spec, **kwargs) -> "FeatureEmbedding":
    """Builds the layer for every id feature of a fitted `FeatureSpec`.

    Sequences with `shares_vocabulary_with` read the shared feature's table.
    """
    mapping = {f.name: f.shares_vocabulary_with for f in spec.sequence_features
               if f.shares_vocabulary_with}
    return cls(spec.embedding_tables(), feature_to_table=mapping, **kwargs)

  @property
  def feature_names(self) -> list:
    """Features looked up, in output order: the tables, then `feature_to_table` keys."""
    return list(self._features)

  @property
  def embedding_variables(self) -> list:
    """The table variables (for sparse optimizers), shards of sharded tables; empty before `build`."""
    if not self.built:
      return []
    tables = [self.fused_table] if self.fused else list(self.table_variables)
    return [part for table in tables for part in table_parts(table)]

  def build(self, input_shape):
    if self.fused:
      self.fused_table = self.add_weight(
          name=EMBEDDING_PREFIX + "fused", shape=(self.total_ids, self.tables[0][2]),
          initializer=initializers.clone_initializer(self.embeddings_initializer, 0),
          trainable=True)
    else:
      self.table_variables = [
          self.add_weight(name=EMBEDDING_PREFIX + name, shape=(num_ids, dim),
                          initializer=initializers.clone_initializer(self.embeddings_initializer, i),
                          trainable=True)
          for i, (name, num_ids, dim) in enumerate(self.tables)]
    super().build(input_shape)

  def _ids(self, inputs) -> dict:
    kind = type(self).__name__
    if not isinstance(inputs, Mapping):
      raise ValueError(f"{kind} expects a dict of id tensors keyed by feature name, "
                       f"got {type(inputs).__name__}")
    missing = [f for f in self._features if f not in inputs]
    if missing:
      raise ValueError(f"{kind} is missing input(s) {missing}; got keys {sorted(inputs)}")
    ids = {}
    for f in self._features:
      x = tf.convert_to_tensor(inputs[f])
      if not x.dtype.is_integer:
        raise ValueError(f"{kind} input {f!r} must hold integer ids, got dtype {x.dtype.name} "
                         f"with shape {x.shape}")
      if x.shape.rank not in (1, 2):
        raise ValueError(f"{kind} input {f!r} must have shape (batch,) or (batch, T), "
                         f"got shape {x.shape}")
      if self.stack and x.shape.rank != 1:
        raise ValueError(f"{kind} with stack=True needs single ids (batch,) for every feature; "
                         f"input {f!r} has shape {x.shape}")
      ids[f] = tf.cast(x, tf.int64)
    return ids

  def lookup(self, inputs, regularize: bool = True) -> dict:
    """Dict feature -> embeddings (B, d) or (B, T, d), whatever `stack` says.

    Adds the regularizer's loss on the looked-up rows unless `regularize` is False.
    """
    ids = self._ids(inputs)
    out = {}
    if self.fused:
      d = self.tables[0][2]
      flat = [tf.reshape(ids[f] + self.offsets[t], (-1,)) for f, t in self._features.items()]
      sizes = [tf.size(x) for x in flat]
      rows = gather_rows(self.fused_table, tf.concat(flat, axis=0))  # (sum of sizes, d): one gather
      seen = quantization.fake_quantize_rows(rows) if self.fake_quant else rows
      for (f, _), part in zip(self._features.items(), tf.split(seen, tf.stack(sizes), axis=0)):
        out[f] = tf.reshape(part, tf.concat([tf.shape(ids[f]), [d]], axis=0))  # (B[, T], d)
        out[f].set_shape(ids[f].shape.concatenate(d))
    else:
      for f, t in self._features.items():
        out[f] = gather_rows(self.table_variables[self._table_index[t]], ids[f])  # (B[, T], d)
    if self.embeddings_regularizer is not None and regularize:
      if self.fused and is_additive_regularizer(self.embeddings_regularizer):
        # One op on every looked-up row.
        self.add_loss(regularize_rows(self.embeddings_regularizer, rows))
      else:
        self.add_loss(tf.add_n([regularize_rows(self.embeddings_regularizer, e)
                                for e in out.values()]))
    if self.fake_quant and not self.fused:
      out = {f: quantization.fake_quantize_rows(e) for f, e in out.items()}
    return out

  def _fused_stack_lookup(self, inputs) -> tf.Tensor:
    """Fused and stacked: one gather on the (B, n) id matrix -> (B, n, d)."""
    ids = self._ids(inputs)
    offsets = tf.constant([[self.offsets[t] for t in self._features.values()]], tf.int64)  # (1, n)
    rows = gather_rows(self.fused_table,
                       tf.stack([ids[f] for f in self._features], axis=1) + offsets)  # (B, n, d)
    if self.embeddings_regularizer is not None:
      if is_additive_regularizer(self.embeddings_regularizer):
        self.add_loss(regularize_rows(self.embeddings_regularizer, rows))
      else:
        self.add_loss(tf.add_n([regularize_rows(self.embeddings_regularizer, rows[:, i])
                                for i in range(len(self._features))]))
    return quantization.fake_quantize_rows(rows) if self.fake_quant else rows

  def call(self, inputs):
    if self.stack and self.fused:
      return self._fused_stack_lookup(inputs)  # (B, n, d)
    if self.stack and is_additive_regularizer(self.embeddings_regularizer) and not self.fake_quant:
      out = self.lookup(inputs, regularize=False)
      rows = tf.stack([out[f] for f in self._features], axis=1)  # (B, n, d)
      # One op on every looked-up row.
      self.add_loss(regularize_rows(self.embeddings_regularizer, rows))
      return rows
    out = self.lookup(inputs)
    if self.stack:
      return tf.stack([out[f] for f in self._features], axis=1)  # (B, n, d)
    return out

  def get_config(self):
    config = super().get_config()
    config.update({
        "tables": [list(t) for t in self.tables],
        "feature_to_table": dict(self.feature_to_table),
        "fused": self.fused,
        "stack": self.stack,
        "embeddings_initializer": tf.keras.initializers.serialize(self.embeddings_initializer),
        "embeddings_regularizer": tf.keras.regularizers.serialize(self.embeddings_regularizer),
    })
    if self.fake_quant:  # only when set: configs saved before the option load unchanged
      config["fake_quant"] = True
    return config
