"""Glue shared by the zoo's models: spec inputs -> embeddings, field stacks, towers.

The interaction layers live in `ctr_zoo.layers`; this module only holds the
small, model-side pieces that turn a spec's input dict into what those layers
take (and two tiny registered glue layers, so that no model needs a Lambda
layer, which `.keras` loading would refuse):

- `SequencePooling`: masked mean (or sum) of a sequence's embeddings,
  mask = ids != PAD_ID.
- `DenseFieldEmbedding`: float fields x (B, m) -> x_j v_j (B, m, d), the usual
  way FM/DeepFM/AutoInt/xDeepFM/CDot treat numeric fields as fields.

Embedding tables: one per field by default; `fused=True` puts the tables of
one width in one fused table with per-field row offsets (one gather, one
IndexedSlices for the sparse optimizer, the embedding L2 as one op; when every
id feature is a single id of one width, `flat_input` and `field_stack` look
them all up as one (B, n) -> (B, n, d) gather). The numbers are the same
either way; only the variables' layout differs.

Why per-field is the default (measured on the 2-core benchmark machine,
batch 4096, 26 fields x 10k ids x dim 16, windows interleaved in one
process; see benchmarks/throughput.py): the sparse optimizer's cost is per
looked-up row (tf.unique, then a per-row kernel), not per table, so one
fused update over 106k rows costs what 26 updates of 4k rows cost (42 vs
44 ms), while the 26 independent per-field ops run in parallel on the
executor's threads and the 640 KB per-field tables stay in cache. Whole
steps: fused was 4-8% slower for dnn and deepfm and level (within noise) for
dcn_v2. The fused layout is kept as an option for machines and optimizers
where it wins.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import tensorflow as tf

from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.layers import embedding as embedding_lib
from ctr_zoo.models import base
from ctr_zoo.serialization import register


@register
class SequencePooling(tf.keras.layers.Layer):
  """Masked pooling of sequence embeddings over positions with id != PAD_ID.

    mean: out = sum_t M_t e_t / max(sum_t M_t, 1);  sum: out = sum_t M_t e_t

  Args:
    mode: str. "mean" or "sum". Defaults to "mean".

  Inputs: [embeddings (B, T, d), ids (B, T)]. Output: (B, d); an empty
  sequence gives zeros.
  """

  def __init__(self, mode: str = "mean", **kwargs):
    super().__init__(**kwargs)
    if mode not in ("mean", "sum"):
      raise ValueError(f"SequencePooling mode must be 'mean' or 'sum', got {mode!r}")
    self.mode = mode

  def call(self, inputs):
    emb, ids = inputs
    mask = tf.cast(tf.not_equal(ids, spec_lib.PAD_ID), emb.dtype)[:, :, tf.newaxis]  # (B, T, 1)
    total = tf.reduce_sum(emb * mask, axis=1)  # (B, d)
    if self.mode == "sum":
      return total
    return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)  # (B, d)

  def get_config(self):
    return {**super().get_config(), "mode": self.mode}


@register
class SequenceMask(tf.keras.layers.Layer):
  """ids (B, T) -> float mask (B, T) of positions with id != PAD_ID."""

  def call(self, ids):
    return tf.cast(tf.not_equal(ids, spec_lib.PAD_ID), tf.float32)  # (B, T)


@register
class DenseFieldEmbedding(tf.keras.layers.Layer):
  """Numeric fields as embedded fields: e_j = x_j v_j.

    out[b, j, :] = x[b, j] * V[j, :],   V in R^{m x d}

  V is initialised like the embedding tables (uniform in [-0.05, 0.05]) and
  regularised like them: the numeric values (log1p counts reach ~10) multiply
  V, so a Glorot-sized V would start every pairwise dot of a field-wise model
  (FM, DeepFM, AutoInt, ...) at a logit of tens and diverge on small data.

  Args:
    dim: int. d, the embedding width. Must be >= 1.
    initializer: initializer of V. Defaults to "uniform" (as embeddings).
    regularizer: regularizer of V (e.g. the model's embedding L2). Defaults to None.

  Input: (B, m) floats. Output: (B, m, d).
  """

  def __init__(self, dim: int, initializer="uniform", regularizer=None, **kwargs):
    super().__init__(**kwargs)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
      raise ValueError(f"DenseFieldEmbedding dim must be an int >= 1, got {dim!r}")
    self.dim = dim
    self.initializer = tf.keras.initializers.get(initializer)
    self.regularizer = tf.keras.regularizers.get(regularizer)

  def build(self, input_shape):
    m = tf.TensorShape(input_shape)[-1]
    if m is None:
      raise ValueError(f"DenseFieldEmbedding needs a static number of fields, got shape {input_shape}")
    self.kernel = self.add_weight(name="kernel", shape=(int(m), self.dim),
                                  initializer=self.initializer, regularizer=self.regularizer,
                                  trainable=True)
    super().build(input_shape)

  def call(self, x):
    return x[:, :, tf.newaxis] * self.kernel[tf.newaxis]  # (B, m, d)

  def get_config(self):
    return {**super().get_config(), "dim": self.dim,
            "initializer": tf.keras.initializers.serialize(self.initializer),
            "regularizer": tf.keras.regularizers.serialize(self.regularizer)
                           if self.regularizer is not None else None}


def l2_or_none(strength: float):
  return tf.keras.regularizers.l2(strength) if strength else None


def embedding_dim(spec: spec_lib.FeatureSpec, owner: str) -> int:
  """The one embedding width of every id feature (field-wise models need it)."""
  dims = sorted({d for _, _, d in spec.embedding_tables()})
  if len(dims) != 1:
    raise ValueError(f"{owner} needs one embedding_dim for every id feature, got "
                     f"{ {n: d for n, _, d in spec.embedding_tables()} }; use "
                     "spec.with_embedding_dim(d)")
  return dims[0]


def width_groups(spec: spec_lib.FeatureSpec) -> dict:
  """{width d: [(table, num_ids, d), ...]} of the spec's tables, in spec order."""
  groups = {}
  for table in spec.embedding_tables():
    groups.setdefault(table[2], []).append(table)
  return groups


def embedding_layers(spec: spec_lib.FeatureSpec, embedding_l2: float = 0.0,
                     name: str = "embedding", fused: bool = False) -> list:
  """The `FeatureEmbedding` layer(s) behind a spec's id features.

  With `fused=False` (the default): one layer named `name` with a table per
  field. With `fused=True` the tables of one width share one fused table
  (one gather, one sparse optimizer update per step instead of one per
  field): a single layer named `name` when every table has the same width,
  else one layer per width d named f"{name}_d{d}"; sequences that share
  another feature's vocabulary are looked up in that feature's layer. The
  lookups are the same numbers either way; only the variables' layout
  differs.
  """
  if not spec.embedding_tables():
    return []
  regularizer = l2_or_none(embedding_l2)
  shared = {f.name: f.shares_vocabulary_with for f in spec.sequence_features
            if f.shares_vocabulary_with}
  groups = width_groups(spec)
  if not fused or len(groups) == 1:
    return [embedding_lib.FeatureEmbedding.from_spec(
        spec, fused=fused and len(spec.embedding_tables()) > 1,
        embeddings_regularizer=regularizer, name=name)]
  layers = []
  for d, tables in groups.items():
    names = {t[0] for t in tables}
    layers.append(embedding_lib.FeatureEmbedding(
        tables, feature_to_table={f: t for f, t in shared.items() if t in names},
        fused=len(tables) > 1, embeddings_regularizer=regularizer, name=f"{name}_d{d}"))
  return layers


def embed(inputs: dict, spec: spec_lib.FeatureSpec, embedding_l2: float = 0.0,
          name: str = "embedding", fused: bool = False) -> list:
  """Per-field embeddings in spec order: id features (B, d), sequences pooled (B, d).

  Tables: see `embedding_layers` (per field by default, fused per width with
  `fused=True`).
  """
  emb = {}
  for layer in embedding_layers(spec, embedding_l2, name, fused):
    emb.update(layer(inputs))
  out = []
  for f in spec.features:
    if isinstance(f, spec_lib.SequenceFeature):
      out.append(SequencePooling("mean", name=f"{name}_pool_{f.name}")([emb[f.name], inputs[f.name]]))
    elif f.is_categorical:
      out.append(emb[f.name])
  return out


def dense_matrix(inputs: dict, spec: spec_lib.FeatureSpec) -> Optional[tf.Tensor]:
  """The float features as one (B, m) tensor, or None when there are none."""
  cols = [tf.keras.layers.Reshape((1,), name=f"dense_{f.name}")(inputs[f.name])
          for f in spec.dense_features]
  if not cols:
    return None
  return cols[0] if len(cols) == 1 else tf.keras.layers.Concatenate(name="dense_features")(cols)


def concat(tensors: list, name: str) -> tf.Tensor:
  tensors = [t for t in tensors if t is not None]
  if len(tensors) == 1:
    return tensors[0]
  return tf.keras.layers.Concatenate(axis=-1, name=name)(tensors)


def stacked_embeddings(inputs: dict, spec: spec_lib.FeatureSpec, embedding_l2: float = 0.0,
                       name: str = "embedding", fused: bool = True) -> Optional[tf.Tensor]:
  """E (B, n, d) of the n id features in spec order, with the L2 as one op.

  `fused` (the default here): one (B, n) gather on one fused table; else a
  table per field, stacked. Applies when there are >= 2 id features, no
  sequence features and one width d; returns None otherwise (use `embed`).
  E[:, i] equals `embed`'s i-th output, so models built on either compute
  the same numbers.
  """
  tables = spec.embedding_tables()
  if len(tables) < 2 or spec.sequence_features or len(width_groups(spec)) != 1:
    return None
  layer = embedding_lib.FeatureEmbedding.from_spec(
      spec, fused=fused, stack=True, embeddings_regularizer=l2_or_none(embedding_l2), name=name)
  return layer(inputs)  # (B, n, d)


def flat_input(inputs: dict, spec: spec_lib.FeatureSpec, embedding_l2: float = 0.0,
               fused: bool = False) -> tf.Tensor:
  """x0 = [e_1; ..; e_n; x_dense]: (B, sum_f d_f + m), the input of DNN/cross towers.

  `fused`: one fused table (and one (B, n) gather where `stacked_embeddings`
  applies) instead of a table per field. Defaults to False (see the module
  docstring).
  """
  stacked = stacked_embeddings(inputs, spec, embedding_l2) if fused else None
  if stacked is not None:
    n, d = stacked.shape[1], stacked.shape[2]
    emb = [tf.keras.layers.Reshape((n * d,), name="embeddings_flat")(stacked)]  # (B, n d)
  else:
    emb = embed(inputs, spec, embedding_l2, fused=fused)
  return concat(emb + [dense_matrix(inputs, spec)], name="x0")


class FieldStack(NamedTuple):
  """What `field_stack_parts` returns.

  stack: X (B, n, d), id fields then numeric fields x_j v_j.
  groups: [ids (B, n_id, d), numeric (B, m, d)] (those present), whose
    concatenation on axis 1 is X; `FactorizationMachine` takes them as they
    are (no concatenated copy).
  id_flat: the id fields flattened (B, n_id d), or None when there are none.
  dense: the raw numeric values x (B, m), or None when there are none.
  numeric_layer: the `DenseFieldEmbedding` holding V (m, d), or None.
  """
  stack: tf.Tensor
  groups: list
  id_flat: Optional[tf.Tensor]
  dense: Optional[tf.Tensor]
  numeric_layer: Optional[tf.keras.layers.Layer]


def field_stack_parts(inputs: dict, spec: spec_lib.FeatureSpec, embedding_l2: float = 0.0,
                      owner: str = "model", fused: bool = False) -> FieldStack:
  """X (B, n, d) as `field_stack`, plus its parts for a DNN on flatten(X).

  A DNN on flatten(X) = [e ; x_1 v_1 ; .. ; x_m v_m] takes [id_flat, dense]
  and `numeric_layer` (see `ctr_zoo.models.dnn.field_tower`): the same
  numbers without the (B, m d) numeric block in its first matmul.
  """
  # Keras runs only the layers a model's outputs depend on: a model that reads
  # `groups` and `id_flat` never runs the "fields" concatenation, and one that
  # reads `stack` never runs "id_fields_flat".
  d = embedding_dim(spec, owner)
  stacked = stacked_embeddings(inputs, spec, embedding_l2) if fused else None
  groups = []
  if stacked is not None:
    fields = [stacked]  # (B, n_id, d)
    groups.append(stacked)
    id_flat = tf.keras.layers.Reshape((stacked.shape[1] * d,), name="id_fields_flat")(stacked)
  else:
    emb = embed(inputs, spec, embedding_l2, fused=fused)  # (B, d) each
    fields = [tf.keras.layers.Reshape((1, d), name=f"field_{i}")(e) for i, e in enumerate(emb)]
    id_flat = concat(emb, name="id_fields_flat") if emb else None  # (B, n_id d)
    if id_flat is not None:
      groups.append(tf.keras.layers.Reshape((len(emb), d), name="id_fields")(id_flat))  # (B, n_id, d)
  dense = dense_matrix(inputs, spec)
  numeric_layer = None
  if dense is not None:
    numeric_layer = DenseFieldEmbedding(d, regularizer=l2_or_none(embedding_l2),
                                        name="dense_field_embedding")
    fields.append(numeric_layer(dense))  # (B, m, d)
    groups.append(fields[-1])
  stack = (fields[0] if len(fields) == 1
           else tf.keras.layers.Concatenate(axis=1, name="fields")(fields))  # (B, n, d)
  return FieldStack(stack, groups, id_flat, dense, numeric_layer)


def fm_input(fields: FieldStack):
  """What a `FactorizationMachine` over X takes: the field groups (no concatenated
  copy), or X itself when rebuilding a file saved with graph version 1."""
  return fields.groups if base.graph_version() >= 2 else fields.stack


def field_stack(inputs: dict, spec: spec_lib.FeatureSpec, embedding_l2: float = 0.0,
                owner: str = "model", fused: bool = False) -> tf.Tensor:
  """X (B, n, d): id fields, pooled sequences, then numeric fields as x_j v_j.

  `fused`: as in `flat_input`. Defaults to False.
  """
  return field_stack_parts(inputs, spec, embedding_l2, owner, fused).stack


def linear_logit(inputs: dict, spec: spec_lib.FeatureSpec, l2: float = 0.0,
                 name: str = "linear", fused: bool = False) -> tf.Tensor:
  """The wide / first-order part: sum_f w_f[id_f] + v^T x_dense + b (B, 1).

  The per-id weights are a (V_t, 1) table per field by default; `fused=True`
  makes them one (sum_t V_t, 1) table (one gather and one sparse update per
  step). Same logit either way (see the module docstring for the default).
  """
  from ctr_zoo.layers import linear as linear_lib  # pylint: disable=g-import-not-at-top
  return linear_lib.LinearLogit.from_spec(spec, kernel_regularizer=l2_or_none(l2), name=name,
                                          fused=fused and len(spec.embedding_tables()) > 1)(inputs)


def add(tensors: list, name: str) -> tf.Tensor:
  tensors = [t for t in tensors if t is not None]
  if len(tensors) == 1:
    return tensors[0]
  return tf.keras.layers.Add(name=name)(tensors)


def dense_logit(x: tf.Tensor, name: str = "head") -> tf.Tensor:
  """A final Dense(1) (B, 1)."""
  return tf.keras.layers.Dense(1, name=name)(x)


def flatten(x: tf.Tensor, name: str = "flatten_fields") -> tf.Tensor:
  """(B, n, d) -> (B, n d)."""
  return tf.keras.layers.Flatten(name=name)(x)
