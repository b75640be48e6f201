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

Signatures (all return {"probability": float32 (B,), "logit": float32 (B,)}):

- `serving_default`: one tf.string tensor of shape (B,) per raw column the
  features read (`spec.input_columns`), keyword arguments named like those
  columns (e.g. I1..I13, C1..C26 for Criteo; `hour` for Avazu's derived
  fields).
- `serve_tsv`: `lines`, tf.string (B,): raw tab-separated lines in the
  spec's `raw_columns` layout, either with the label column (as in Kaggle
  train.txt) or without it (as in test.txt).
- `preprocess`: the per-column strings of `serving_default` -> the model's
  input dict (ids and floats), for checking the in-graph transform.

The SavedModel needs only TensorFlow to run: load it with plain
`tf.saved_model.load(path)` in a process that never imports ctr_zoo. The spec
is also written next to it as `assets/spec.json`.

Pruning (`prune_zero_rows=True`, for tables trained with group-lasso FTRL,
which zeroes whole rows): every `FeatureEmbedding` table among the model's
`embedding_variables` that has all-zero rows, and gets smaller by dropping
them, is exported as a `PrunedTable`: its k non-zero rows plus one zero row
(k + 1, d) and their ids in ascending order (k + 1,) (an int64 sentinel last).
In the serving graph an id is found by binary search (`tf.searchsorted`);
the id of a dropped row maps to the zero row, so predictions are identical to
the unpruned model's. Both arrays are variables, so the exported size is
honest: (k + 1) (4 d + 8) bytes instead of 4 V d per table. The SavedModel
then holds only the pruned tables and the model's other variables (no Keras
model object); the returned dict reports per-table and on-disk sizes.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.layers import embedding as embedding_lib
from ctr_zoo.optimizers import sparsity

_SIGNATURE_OUTPUTS = ("probability", "logit")
# The raw number grammar of ctr_zoo.datasets.readers (full matches).
_INT_GRAMMAR = "-?[0-9]+"
_FLOAT_GRAMMAR = r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"


def _lookup_table(vocabulary) -> tf.lookup.StaticHashTable:
  keys = tf.constant(list(vocabulary), dtype=tf.string)
  values = tf.range(spec_lib.NUM_RESERVED_IDS, spec_lib.NUM_RESERVED_IDS + len(vocabulary),
                    dtype=tf.int64)
  return tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(keys, values), default_value=spec_lib.OOV_ID)


class PrunedTable(tf.Module):
  """An embedding table (V, d) without its all-zero rows, read like the full table.

  With kept ids s_0 < .. < s_{k-1} (the non-zero rows) and their rows R:

    rows = [R; 0] (k + 1, d);  kept_ids = [s_0, .., s_{k-1}, int64 max] (k + 1,)
    lookup(i) = rows[j] if kept_ids[j] == i, j = searchsorted(kept_ids, i), else rows[k] = 0

  so `lookup(i)` equals the full table's row i for every id 0 <= i < V.
  `sparse_read` (what `tf.gather(table, ids)` calls) makes it a drop-in
  replacement for the table variable inside `FeatureEmbedding.lookup`.

  Args:
    table: tf.Variable (V, d). The trained table.
    name: str or None. Module name. Defaults to None.
  """

  def __init__(self, table, name: Optional[str] = None):
    super().__init__(name=name)
    kept_ids, rows = sparsity.prune_table(table)  # (k,), (k, d)
    self.num_rows, self.dim = (int(n) for n in table.shape)
    self.num_kept = int(kept_ids.shape[0])
    self.kept_ids = tf.Variable(np.append(kept_ids, np.iinfo(np.int64).max), trainable=False,
                                name="kept_ids")  # (k + 1,)
    self.rows = tf.Variable(
        np.concatenate([rows, np.zeros((1, self.dim), rows.dtype)]).astype(
            table.dtype.as_numpy_dtype), trainable=False, name="rows")  # (k + 1, d)

  @staticmethod
  def size_bytes(num_kept: int, dim: int, value_bytes: int = 4) -> int:
    """Bytes of a pruned table: (k + 1) int64 ids and (k + 1, d) values."""
    return (num_kept + 1) * (8 + dim * value_bytes)

  @property
  def exported_bytes(self) -> int:
    return self.size_bytes(self.num_kept, self.dim, self.rows.dtype.size)

  def lookup(self, ids: tf.Tensor) -> tf.Tensor:
    """ids (any shape, ints in [0, V)) -> rows (ids.shape + (d,)); dropped rows are 0.

    Unlike a gather on the full table, an id >= V is not an error: it reads 0.
    """
    ids = tf.cast(ids, tf.int64)
    flat = tf.reshape(ids, [-1])  # (N,)
    pos = tf.searchsorted(self.kept_ids, flat, side="left", out_type=tf.int64)  # (N,) in [0, k]
    found = tf.equal(tf.gather(self.kept_ids, pos), flat)
    pos = tf.where(found, pos, tf.constant(self.num_kept, tf.int64))  # missing -> zero row k
    rows = tf.gather(self.rows, pos)  # (N, d)
    out = tf.reshape(rows, tf.concat([tf.shape(ids, out_type=tf.int64), [self.dim]], axis=0))
    out.set_shape(ids.shape.concatenate(self.dim))
    return out  # (..., d)

  def sparse_read(self, indices, name=None):  # pylint: disable=unused-argument
    return self.lookup(indices)


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


def _plan_pruning(model) -> tuple:
  """Builds the PrunedTables of `model`; returns ({variable ref: PrunedTable}, report)."""
  prunable = {v.ref() for _, _, _, v in _table_slots(model)}
  pruned, report = {}, {}
  for v in sparsity.embedding_tables(model):
    stats = sparsity.table_sparsity(v, v.name)
    entry = {"rows": stats.rows, "dim": stats.dim, "zero_rows": stats.zero_rows,
             "zero_row_fraction": stats.zero_row_fraction, "dense_bytes": stats.dense_bytes,
             "exported_bytes": stats.dense_bytes, "pruned": False}
    size = PrunedTable.size_bytes(stats.rows - stats.zero_rows, stats.dim, v.dtype.size)
    if v.ref() not in prunable:
      entry["reason"] = "not a FeatureEmbedding table"
    elif stats.zero_rows == 0:
      entry["reason"] = "no zero rows"
    elif size >= stats.dense_bytes:
      entry["reason"] = "too few zero rows to save space"
    else:
      name = "pruned_" + re.sub(r"\W", "_", v.name.split(":")[0])
      pruned[v.ref()] = PrunedTable(v, name=name)
      entry.update(pruned=True, exported_bytes=size)
    report[v.name] = entry
  return pruned, report


@contextlib.contextmanager
def _pruned_lookups(model, pruned: dict):
  """While active, the model's FeatureEmbedding layers read `pruned` tables instead.

  Used only while the serving functions are traced and saved. The attributes
  (`fused_table`, or entries of `table_variables`) are swapped with
  `object.__setattr__`, so Keras' attribute tracking never sees the
  PrunedTables (the layers' weights stay as they are), and restored on exit.
  """
  swaps = {}  # (id(layer), attr) -> [layer, attr, original, replacement]
  for layer, attr, index, variable in _table_slots(model):
    table = pruned.get(variable.ref())
    if table is None:
      continue
    swap = swaps.setdefault((id(layer), attr), [layer, attr, layer.__dict__[attr], None])
    if index is None:
      swap[3] = table
    else:
      if swap[3] is None:
        swap[3] = list(swap[2])
      swap[3][index] = table
  try:
    for layer, attr, _, replacement in swaps.values():
      object.__setattr__(layer, attr, replacement)
    yield
  finally:
    for layer, attr, original, _ in swaps.values():
      object.__setattr__(layer, attr, original)


def _directory_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


class _Untracked:
  """Holds objects without making them part of a tf.Module's saved object graph."""

  def __init__(self, **values):
    self.__dict__.update(values)


class RawFeatureModule(tf.Module):
  """The raw-string -> ids/floats -> model graph, as a trackable module.

  Args:
    model: tf.keras.Model. Takes the spec's feature dict and returns the click
      probability (B, 1); a `logit` layer is used for the logit when present.
    spec: FeatureSpec. The fitted spec the model was trained with.
    pruned_tables: dict or None. {table variable ref: PrunedTable}. When
      given, the module tracks (and so saves) these tables and every other
      model variable instead of the Keras model; the serving functions must
      then be traced under `_pruned_lookups(model, pruned_tables)`. Defaults
      to None.
  """

  def __init__(self, model: tf.keras.Model, spec: spec_lib.FeatureSpec,
               pruned_tables: Optional[dict] = None):
    super().__init__(name="raw_feature_serving")
    if not spec.is_fitted:
      raise spec_lib.SpecError("export needs a fitted FeatureSpec (vocabularies present)")
    self._spec = spec
    try:
      logit_model = tf.keras.Model(model.inputs, model.get_layer("logit").output)
    except (ValueError, AttributeError, TypeError):
      logit_model = None
    self._keras = _Untracked(model=model, logit_model=logit_model)
    if pruned_tables is None:
      self.model = model  # tracked: the SavedModel holds the Keras model and all its variables
      self.logit_model = logit_model
    else:
      # Only the pruned tables and the other variables are saved, not the full tables.
      self.pruned_tables = list(pruned_tables.values())
      self.serving_variables = [v for v in model.variables if v.ref() not in pruned_tables]
    self.tables = {}
    for f in spec.features:
      vocab_owner = f
      if isinstance(f, spec_lib.SequenceFeature) and f.shares_vocabulary_with:
        vocab_owner = spec[f.shares_vocabulary_with]
      if getattr(vocab_owner, "vocabulary", None) is not None and vocab_owner.name not in self.tables:
        self.tables[vocab_owner.name] = _lookup_table(vocab_owner.vocabulary)
    self.spec_json = tf.Variable(spec.to_json(indent=None), trainable=False, name="spec_json")

  # --- raw -> model inputs -----------------------------------------------------
  def _token_ids(self, feature, tokens: tf.Tensor) -> tf.Tensor:
    """Ids of string tokens (any shape) for an id feature; "" -> MISSING_ID."""
    owner = feature
    if isinstance(feature, spec_lib.SequenceFeature) and feature.shares_vocabulary_with:
      owner = self._spec[feature.shares_vocabulary_with]
    if owner.hash_buckets is not None:
      ids = tf.strings.to_hash_bucket_fast(tokens, owner.hash_buckets) + spec_lib.NUM_RESERVED_IDS
    else:
      ids = self.tables[owner.name].lookup(tokens)
    return tf.where(tf.equal(tokens, ""), tf.constant(spec_lib.MISSING_ID, tf.int64), ids)

  def _number(self, feature, raw: tf.Tensor, missing: tf.Tensor) -> tf.Tensor:
    """float64 value of raw number strings under the training grammar (spec module doc).

    A value the pipeline's readers would reject (e.g. "0x10", "+5", " 5",
    "inf") fails the call with InvalidArgumentError naming the field.
    """
    is_int = feature.value_type == "int"
    pattern = _INT_GRAMMAR if is_int else _FLOAT_GRAMMAR
    ok = tf.logical_or(missing, tf.strings.regex_full_match(raw, pattern))
    what = "not an integer (base 10, optional minus)" if is_int else "not a finite number"
    checks = [tf.debugging.Assert(
        tf.reduce_all(ok), [f"field {feature.raw_column!r}: {what}, got",
                            tf.boolean_mask(raw, tf.logical_not(ok))], summarize=3)]
    with tf.control_dependencies(checks):
      safe = tf.where(tf.logical_and(ok, tf.logical_not(missing)), raw, "0")
      if is_int:
        return tf.cast(tf.strings.to_number(safe, out_type=tf.int64), tf.float64)
      x = tf.strings.to_number(safe, out_type=tf.float64)
    finite = tf.math.is_finite(x)
    with tf.control_dependencies([tf.debugging.Assert(
        tf.reduce_all(finite), [f"field {feature.raw_column!r}: not a finite number, got",
                                tf.boolean_mask(raw, tf.logical_not(finite))], summarize=3)]):
      return tf.identity(x)

  def _dense_value(self, feature, raw: tf.Tensor) -> tf.Tensor:
    missing = tf.equal(raw, "")
    # The readers' number grammar (ctr_zoo.datasets.readers); float64 math.
    x = self._number(feature, raw, missing)
    if feature.transform == "bucketize":
      bucket = tf.where(x > 2, tf.floor(tf.square(tf.math.log(tf.maximum(x, 2.0)))), x)
      tokens = tf.strings.as_string(tf.cast(bucket, tf.int64))
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

  def features_from_raw(self, raw: dict) -> dict:
    """{raw column: tf.string (B,)} (the spec's `input_columns`) -> the model's input dict."""
    out = {}
    for f in self._spec.features:
      value = tf.reshape(raw[f.raw_column], [-1])  # exact strings: no trimming
      if isinstance(f, spec_lib.SequenceFeature):
        ids = self._sequence_ids(f, value)
      elif isinstance(f, spec_lib.DenseFeature):
        ids = self._dense_value(f, value)
      elif f.derive is not None:
        ids = self._token_ids(f, self._derive(f, value))
      else:
        ids = self._token_ids(f, value)
      out[f.name] = ids
    return out

  def predict_raw(self, raw: dict) -> dict:
    inputs = self.features_from_raw(raw)
    probability = tf.reshape(self._keras.model(inputs, training=False), [-1])
    if self._keras.logit_model is not None:
      logit = tf.reshape(self._keras.logit_model(inputs, training=False), [-1])
    else:
      p = tf.clip_by_value(probability, 1e-7, 1 - 1e-7)
      logit = tf.math.log(p) - tf.math.log1p(-p)
    return {"probability": probability, "logit": logit}

  def split_tsv(self, lines: tf.Tensor) -> dict:
    """Raw TSV lines (B,) in the spec's `raw_columns` layout -> {input column: tf.string (B,)}.

    The label column is optional (a line has len(raw_columns) or one fewer fields).
    """
    spec = self._spec
    layout = spec.raw_columns
    without_label = [c for c in layout if c != spec.label]
    n = len(without_label)
    parts = tf.strings.split(tf.strings.regex_replace(lines, "[\r\n]+$", ""), sep="\t")  # (B, None)
    lengths = parts.row_lengths()
    tf.debugging.Assert(
        tf.reduce_all(tf.logical_or(tf.equal(lengths, n), tf.equal(lengths, n + 1))),
        ["serve_tsv: every line needs", n, "or", n + 1, "tab-separated fields; got counts", lengths],
        summarize=20)
    has_label = tf.equal(lengths, n + 1)
    starts = parts.row_starts()
    return {c: tf.gather(parts.values, starts + tf.where(
        has_label, tf.constant(layout.index(c), tf.int64), tf.constant(without_label.index(c), tf.int64)))
            for c in spec.input_columns}


def export_saved_model(model: tf.keras.Model, spec: spec_lib.FeatureSpec, path: str,
                       prune_zero_rows: bool = False) -> dict:
  """Writes a raw-feature serving SavedModel of `model` to `path`.

  Args:
    model: tf.keras.Model. A ctr_zoo model (or any model with the spec's
      input dict and a (B, 1) probability output).
    spec: FeatureSpec. The fitted spec the model was trained with.
    path: str. Output directory.
    prune_zero_rows: bool. Export the model's `FeatureEmbedding` tables
      without their all-zero rows (group lasso); ids of dropped rows read a
      zero vector, so predictions are unchanged. A table is pruned only when
      that makes it smaller ((k + 1)(4d + 8) < 4Vd bytes). Defaults to False.

  Returns:
    {"path": path, "signatures": sorted signature names, "saved_model_bytes":
    size of the directory, "variables_bytes": size of its variables/}; with
    `prune_zero_rows` also "pruning": {table name: {"rows", "dim",
    "zero_rows", "zero_row_fraction", "dense_bytes", "exported_bytes",
    "pruned" (bool)[, "reason" when not pruned]}} and "table_bytes":
    {"unpruned": sum of dense_bytes, "exported": sum of exported_bytes}.
  """
  spec = spec if isinstance(spec, spec_lib.FeatureSpec) else spec_lib.FeatureSpec.from_json(spec)
  missing = sorted(set(spec.feature_names) - set(getattr(model, "input_names", spec.feature_names)))
  if missing:
    raise ValueError(f"model {model.name!r} has no inputs for spec features {missing}")
  pruned, report = (None, None)
  if prune_zero_rows:
    pruned, report = _plan_pruning(model)
  module = RawFeatureModule(model, spec, pruned_tables=pruned)

  names = spec.input_columns  # the raw columns the features read
  field_specs = {n: tf.TensorSpec([None], tf.string, name=n) for n in names}

  @tf.function(input_signature=[field_specs])
  def _serve_dict(raw):
    return module.predict_raw(raw)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="lines")])
  def serve_tsv(lines):
    return module.predict_raw(module.split_tsv(lines))

  @tf.function(input_signature=[field_specs])
  def preprocess(raw):
    return module.features_from_raw(raw)

  module.serve_fields = _serve_dict
  module.serve_tsv = serve_tsv
  module.preprocess = preprocess
  os.makedirs(path, exist_ok=True)
  with _pruned_lookups(model, pruned or {}):
    signatures = {
        # serving_default takes keyword arguments named like the features.
        "serving_default": _serve_dict.get_concrete_function(),
        "serve_tsv": serve_tsv.get_concrete_function(),
        "preprocess": preprocess.get_concrete_function(),
    }
    if pruned:
      for name, fn in signatures.items():
        leaked = [v.name for v in fn.variables if v.ref() in pruned]
        if leaked:
          raise RuntimeError(f"pruned export: signature {name!r} still reads the full tables "
                             f"{leaked}; their lookups did not go through FeatureEmbedding")
    tf.saved_model.save(module, path, signatures=signatures)
  assets = os.path.join(path, "assets")
  os.makedirs(assets, exist_ok=True)
  spec.save(os.path.join(assets, "spec.json"))
  info = {"path": path, "signatures": sorted(signatures),
          "saved_model_bytes": _directory_bytes(path),
          "variables_bytes": _directory_bytes(os.path.join(path, "variables"))}
  if prune_zero_rows:
    info["pruning"] = report
    info["table_bytes"] = {"unpruned": sum(e["dense_bytes"] for e in report.values()),
                           "exported": sum(e["exported_bytes"] for e in report.values())}
    logging.info("pruned export %s: %d of %d tables pruned, table bytes %d -> %d, SavedModel %d bytes",
                 path, sum(e["pruned"] for e in report.values()), len(report),
                 info["table_bytes"]["unpruned"], info["table_bytes"]["exported"],
                 info["saved_model_bytes"])
  return info
