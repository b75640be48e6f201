"""The stages every model is assembled from: embed -> interaction -> tower -> combine.

A model's `build_logit(parts, config)` receives a `Parts`: the spec's Keras
inputs and what the model's `EmbeddingConfig` says about embedding them. Each
embedding view below is built once, on first use, and shared by every later
use in the same model:

- `parts.flat_input()`: x0 = [e_1; ..; e_n; x_dense] (B, sum_f d_f + m), the
  input of DNN and cross towers (pooled sequences included);
- `parts.field_stack(owner)`: X (B, n, d), id fields then the numeric fields
  as x_j v_j (a `FieldStack`, with the parts a DNN on flatten(X) needs);
- `parts.embeddings()`: the per-field embeddings as a list of (B, d);
- `parts.dense_matrix()`: the raw numeric values x (B, m);
- `parts.linear_logit(l2)`: the wide / first-order logit (B, 1).

The interaction is whatever layer(s) the model injects (`CrossNet`,
`FactorizationMachine`, `CIN`, ...), and the combine helpers end the graph:

- `stacked(x, tower)`: logit = w^T tower(x) + b;
- `parallel(x, x0, tower)`: logit = w^T [x; tower(x0)] + b;
- `sum_of_logits([...])`: logit = sum of the parts' logits.

Tables: one per field by default; `EmbeddingConfig.fused` puts the tables of
one width in one fused table with per-field row offsets (one gather and one
sparse optimizer update per step instead of one per field; where every id
feature is a single id of one width, x0 and X are then one (B, n) -> (B, n, d)
gather). The numbers are the same either way; only the variables' layout
differs (see `FeatureEmbedding`).

Layer names and the order in which the graph connects them are part of the
saved-file format (a `.keras` file is matched by layer names, a SavedModel by
the layers' order), so they stay as they are.
"""

from __future__ import annotations

import dataclasses
from typing import List, NamedTuple, Optional

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.layers import embedding as embedding_lib
from ctr_zoo.layers import linear as linear_lib
from ctr_zoo.layers import numeric_fields
from ctr_zoo.layers import sequence
from ctr_zoo.layers import tower as tower_lib

# Layer layouts (see `CTRModel.graph_version`):
#   1: field-wise models (FM, DeepFM, xDeepFM, AutoInt) feed the concatenated
#      field stack to their FM and to a Dense-first MLP;
#   2: their DNN starts with `NumericFieldDense` and the FM takes the field
#      groups (the same numbers, fewer FLOPs and copies).
GRAPH_VERSION = 2
GRAPH_VERSIONS = (1, 2)


@dataclasses.dataclass(frozen=True)
class EmbeddingConfig:
  """How a model embeds the spec's id features.

  Args:
    dim: int or None. The width d of every id feature's embedding (applied to
      the spec when the model is built); None keeps the spec's per-feature
      widths. Defaults to 16.
    l2: float. L2 penalty on the looked-up embedding rows (and on the numeric
      field vectors v_j of field-wise models), added as a layer loss. Defaults
      to 1e-5.
    fused: bool. One fused table per embedding width instead of one table per
      field (same numbers). Defaults to False.
    fake_quant: bool. Quantization-aware training: the looked-up rows are
      fake-quantized to per-row int8 in the forward pass (straight-through
      gradient, float32 tables); see `FeatureEmbedding`. Defaults to False.
  """
  dim: Optional[int] = 16
  l2: float = 1e-5
  fused: bool = False
  fake_quant: bool = False

  def __post_init__(self):
    checks.optional_positive_int(self.dim, "embedding.dim")
    checks.non_negative(self.l2, "embedding.l2")
    checks.boolean(self.fused, "embedding.fused")
    checks.boolean(self.fake_quant, "embedding.fake_quant")


def l2_or_none(strength: float):
  return tf.keras.regularizers.l2(strength) if strength else None


def embedding_dim(spec: spec_lib.FeatureSpec, owner: str) -> int:
  """The one embedding width of every id feature (field-wise models need it)."""
  dims = sorted({d for _, _, d in spec.embedding_tables()})
  if len(dims) != 1:
    raise ValueError(f"{owner} needs one embedding_dim for every id feature, got "
                     f"{ {n: d for n, _, d in spec.embedding_tables()} }; set "
                     "embedding.dim in the model config")
  return dims[0]


def width_groups(spec: spec_lib.FeatureSpec) -> dict:
  """{width d: [(table, num_ids, d), ...]} of the spec's tables, in spec order."""
  groups = {}
  for table in spec.embedding_tables():
    groups.setdefault(table[2], []).append(table)
  return groups


def embedding_layers(spec: spec_lib.FeatureSpec, embedding_l2: float = 0.0,
                     name: str = "embedding", fused: bool = False,
                     fake_quant: bool = False) -> list:
  """The `FeatureEmbedding` layer(s) behind a spec's id features.

  With `fused=False`: one layer named `name` with a table per field. With
  `fused=True` the tables of one width share one fused table: a single layer
  named `name` when every table has the same width, else one layer per width
  d named f"{name}_d{d}"; sequences that share another feature's vocabulary
  are looked up in that feature's layer.
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
        embeddings_regularizer=regularizer, fake_quant=fake_quant, name=name)]
  layers = []
  for d, tables in groups.items():
    names = {t[0] for t in tables}
    layers.append(embedding_lib.FeatureEmbedding(
        tables, feature_to_table={f: t for f, t in shared.items() if t in names},
        fused=len(tables) > 1, embeddings_regularizer=regularizer, fake_quant=fake_quant,
        name=f"{name}_d{d}"))
  return layers


def embed(inputs: dict, spec: spec_lib.FeatureSpec, embedding_l2: float = 0.0,
          name: str = "embedding", fused: bool = False, fake_quant: bool = False) -> list:
  """Per-field embeddings in spec order: id features (B, d), sequences mean-pooled (B, d)."""
  emb = {}
  for layer in embedding_layers(spec, embedding_l2, name, fused, fake_quant):
    emb.update(layer(inputs))
  out = []
  for f in spec.features:
    if isinstance(f, spec_lib.SequenceFeature):
      out.append(sequence.SequencePooling("mean", name=f"{name}_pool_{f.name}")(
          [emb[f.name], inputs[f.name]]))
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
  """Concatenation on the last axis of the tensors that are not None (one: itself)."""
  tensors = [t for t in tensors if t is not None]
  if len(tensors) == 1:
    return tensors[0]
  return tf.keras.layers.Concatenate(axis=-1, name=name)(tensors)


def stacked_embeddings(inputs: dict, spec: spec_lib.FeatureSpec, embedding_l2: float = 0.0,
                       name: str = "embedding", fused: bool = True,
                       fake_quant: bool = False) -> Optional[tf.Tensor]:
  """E (B, n, d) of the n id features in spec order, with the L2 as one op.

  `fused`: one (B, n) gather on one fused table; else a table per field,
  stacked. Applies when there are >= 2 id features, no sequence features and
  one width d; returns None otherwise (use `embed`). E[:, i] equals `embed`'s
  i-th output.
  """
  tables = spec.embedding_tables()
  if len(tables) < 2 or spec.sequence_features or len(width_groups(spec)) != 1:
    return None
  layer = embedding_lib.FeatureEmbedding.from_spec(
      spec, fused=fused, stack=True, embeddings_regularizer=l2_or_none(embedding_l2),
      fake_quant=fake_quant, name=name)
  return layer(inputs)  # (B, n, d)


class FieldStack(NamedTuple):
  """The field view of a model's inputs (`Parts.field_stack`).

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


class Parts:
  """The embed stage of one model under construction, built lazily and once.

  Args:
    inputs: dict of `tf.keras.Input`s from `spec.keras_inputs()`.
    spec: FeatureSpec. Fitted, with the model's embedding width applied.
    embedding: EmbeddingConfig. l2 and the table layout.
    graph_version: int. The layer layout to build (see `GRAPH_VERSION`).
  """

  def __init__(self, inputs: dict, spec: spec_lib.FeatureSpec, embedding: EmbeddingConfig,
               graph_version: int = GRAPH_VERSION):
    self.inputs = inputs
    self.spec = spec
    self.embedding = embedding
    self.graph_version = graph_version
    self._cache = {}

  def _once(self, key, build):
    if key not in self._cache:
      self._cache[key] = build()
    return self._cache[key]

  @property
  def l2(self) -> float:
    return self.embedding.l2

  def embeddings(self) -> List[tf.Tensor]:
    """Per-field embeddings in spec order (B, d); sequences mean-pooled."""
    return self._once("embeddings", lambda: embed(self.inputs, self.spec, self.l2,
                                                  fused=self.embedding.fused,
                                                  fake_quant=self.embedding.fake_quant))

  def dense_matrix(self) -> Optional[tf.Tensor]:
    """The raw numeric values x (B, m), or None."""
    return self._once("dense", lambda: dense_matrix(self.inputs, self.spec))

  def flat_input(self) -> tf.Tensor:
    """x0 = [e_1; ..; e_n; x_dense]: (B, sum_f d_f + m)."""
    return self._once("flat", self._build_flat_input)

  def _build_flat_input(self):
    stacked = (stacked_embeddings(self.inputs, self.spec, self.l2,
                                  fake_quant=self.embedding.fake_quant)
               if self.embedding.fused else None)
    if stacked is not None:
      n, d = stacked.shape[1], stacked.shape[2]
      emb = [tf.keras.layers.Reshape((n * d,), name="embeddings_flat")(stacked)]  # (B, n d)
    else:
      emb = self.embeddings()
    return concat(emb + [self.dense_matrix()], name="x0")

  def field_stack(self, owner: str = "model") -> FieldStack:
    """X (B, n, d): id fields, pooled sequences, then numeric fields as x_j v_j.

    Keras runs only the layers a model's outputs depend on: a model that reads
    `groups` and `id_flat` never runs the "fields" concatenation, and one that
    reads `stack` never runs "id_fields_flat".
    """
    return self._once("fields", lambda: self._build_field_stack(owner))

  def _build_field_stack(self, owner):
    d = embedding_dim(self.spec, owner)
    stacked = (stacked_embeddings(self.inputs, self.spec, self.l2,
                                  fake_quant=self.embedding.fake_quant)
               if self.embedding.fused else None)
    groups = []
    if stacked is not None:
      fields = [stacked]  # (B, n_id, d)
      groups.append(stacked)
      id_flat = tf.keras.layers.Reshape((stacked.shape[1] * d,), name="id_fields_flat")(stacked)
    else:
      emb = self.embeddings()  # (B, d) each
      fields = [tf.keras.layers.Reshape((1, d), name=f"field_{i}")(e) for i, e in enumerate(emb)]
      id_flat = concat(emb, name="id_fields_flat") if emb else None  # (B, n_id d)
      if id_flat is not None:
        groups.append(tf.keras.layers.Reshape((len(emb), d), name="id_fields")(id_flat))  # (B, n_id, d)
    dense = self.dense_matrix()
    numeric_layer = None
    if dense is not None:
      numeric_layer = numeric_fields.DenseFieldEmbedding(d, regularizer=l2_or_none(self.l2),
                                                         name="dense_field_embedding")
      fields.append(numeric_layer(dense))  # (B, m, d)
      groups.append(fields[-1])
    stack = (fields[0] if len(fields) == 1
             else tf.keras.layers.Concatenate(axis=1, name="fields")(fields))  # (B, n, d)
    return FieldStack(stack, groups, id_flat, dense, numeric_layer)

  def fm_input(self, fields: FieldStack):
    """What a `FactorizationMachine` over X takes: the field groups (no concatenated
    copy), or X itself in graph version 1."""
    return fields.groups if self.graph_version >= 2 else fields.stack

  def linear_logit(self, l2: float = 0.0, name: str = "linear") -> tf.Tensor:
    """The wide / first-order part: sum_f w_f[id_f] + v^T x_dense + b (B, 1).

    The per-id weights are a (V_t, 1) table per field, or one fused table when
    `embedding.fused` (same logit either way).
    """
    return linear_lib.LinearLogit.from_spec(
        self.spec, kernel_regularizer=l2_or_none(l2), name=name,
        fused=self.embedding.fused and len(self.spec.embedding_tables()) > 1)(self.inputs)

  def field_tower(self, fields: FieldStack, config: tower_lib.TowerConfig, name: str = "dnn"):
    """`tower(flatten(X))` for the field stack X.

    With numeric fields x_j v_j and id fields, the first layer is a
    `NumericFieldDense` on [e, x]: the same variables and numbers as the MLP
    on flatten(X), without the (B, m d) numeric block in its matmul.
    Otherwise (or in graph version 1) the plain tower on flatten(X).
    """
    if (not config.dims or fields.numeric_layer is None or fields.id_flat is None
        or self.graph_version < 2):
      return tower_lib.build_tower(flatten(fields.stack), config, name)
    return tower_lib.build_tower([fields.id_flat, fields.dense], config, name,
                           numeric_embedding=fields.numeric_layer)


# --- combine ------------------------------------------------------------------
def head(x: tf.Tensor, name: str = "head") -> tf.Tensor:
  """logit = w^T x + b: a final Dense(1) (B, 1)."""
  return tf.keras.layers.Dense(1, name=name)(x)


def flatten(x: tf.Tensor, name: str = "flatten_fields") -> tf.Tensor:
  """(B, n, d) -> (B, n d)."""
  return tf.keras.layers.Flatten(name=name)(x)


def sum_of_logits(logits: list, name: str) -> tf.Tensor:
  """The sum of (B, 1) logits (those that are not None)."""
  logits = [t for t in logits if t is not None]
  if len(logits) == 1:
    return logits[0]
  return tf.keras.layers.Add(name=name)(logits)


def stacked(x: tf.Tensor, config: tower_lib.TowerConfig) -> tf.Tensor:
  """logit = w^T tower(x) + b: the interaction's output through the tower."""
  return head(tower_lib.build_tower(x, config))


def parallel(x: tf.Tensor, x0: tf.Tensor, config: tower_lib.TowerConfig) -> tf.Tensor:
  """logit = w^T [x; tower(x0)] + b: the interaction beside the tower."""
  return head(concat([x, tower_lib.build_tower(x0, config)], name="cross_and_deep"))
