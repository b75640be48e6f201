"""The common base of every ctr_zoo model: a functional Keras model built from a spec.

Every model in the zoo is a *subclassed functional* Keras model: its
constructor takes a fitted `FeatureSpec` and a small config dataclass, builds a
functional graph from `spec.keras_inputs()` to one logit, and hands the graph
to `tf.keras.Model.__init__(inputs, outputs)`. That gives the robustness of
functional models (saving, reloading, composing into a user's own functional
model) together with a constructor that stores what the model was built from:

- `get_config()` is `{"name", "spec" (the spec as JSON), "config" (the config
  dataclass as a dict), "precision", "graph_version"}`; `from_config` rebuilds
  the same graph, so `tf.keras.models.load_model` of a `.keras` file or a
  SavedModel directory works after `import ctr_zoo` with no `custom_objects`.
- Inputs: the spec's feature dict (int64 ids (B,) or (B, max_len) for id and
  sequence features, float32 (B,) for dense ones; see
  `ctr_zoo.feature_columns.spec`).
- Output: the click probability, float32 (B, 1), from a layer named
  "probability" (a sigmoid) applied to a layer named "logit". The logit is
  available as `model.logit_model` (a functional model sharing every layer).
- `embedding_variables`: every trainable variable indexed by ids (embedding
  tables, per-id linear weights, co-action tables), collected from the layers
  that expose `embedding_variables`; `dense_variables`: every other trainable
  variable. The two are disjoint and cover `trainable_variables`, so the
  optimizer split (sparse FTRL/AdaGrad on tables, Adam on the rest) applies to
  every model without special cases.

A model is assembled from parts (`ctr_zoo.models.parts`): embed ->
interaction -> tower -> combine. Subclasses define `config_class` (a frozen
dataclass; an `embedding: EmbeddingConfig` field sets the embedding width and
L2, a `tower: TowerConfig` field the MLP) and the class method
`build_logit(parts, config) -> (B, 1) tensor`, and register themselves with
`ctr_zoo.models.registry.register_model`.

Config dicts may give nested sections as dicts (`tower={"dropout": 0.1}`,
merged into the model's default section) and may use the flat names of
earlier versions (`dnn_dims`, `dropout`, `batch_norm`, `activation`,
`embedding_l2`; see `LEGACY_KEYS`), so files and run configs written before
the sections existed still load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Any, Mapping, Optional

import tensorflow as tf

from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.layers import mlp as mlp_lib
from ctr_zoo.layers import tower as tower_lib
from ctr_zoo.models import parts as parts_lib

GRAPH_VERSION = parts_lib.GRAPH_VERSION
GRAPH_VERSIONS = parts_lib.GRAPH_VERSIONS
EmbeddingConfig = parts_lib.EmbeddingConfig
TowerConfig = tower_lib.TowerConfig

# Flat config keys of earlier versions -> (section, field).
LEGACY_KEYS = {
    "dnn_dims": ("tower", "dims"),
    "dropout": ("tower", "dropout"),
    "batch_norm": ("tower", "batch_norm"),
    "activation": ("tower", "activation"),
    "embedding_l2": ("embedding", "l2"),
}


class ModelConfigError(ValueError):
  """A model config (or its overrides) is malformed."""


def as_spec(spec: Any) -> spec_lib.FeatureSpec:
  """A `FeatureSpec` from a spec, its JSON string or its dict; checks it is fitted."""
  if isinstance(spec, str):
    spec = spec_lib.FeatureSpec.from_json(spec)
  elif isinstance(spec, Mapping):
    spec = spec_lib.FeatureSpec.from_dict(spec)
  if not isinstance(spec, spec_lib.FeatureSpec):
    raise TypeError(f"spec must be a FeatureSpec (or its JSON), got {type(spec).__name__}")
  unfitted = [f.name for f in spec.features if not f.is_fitted]
  if unfitted:
    raise spec_lib.SpecError(
        f"models are built from a fitted FeatureSpec; features {unfitted} have no "
        "vocabulary (fit the spec with ctr_zoo.datasets first, or use hash_buckets)")
  return spec


def _sections(config_class) -> dict:
  """{field name: default section instance} of the config's nested dataclass fields."""
  out = {}
  for f in dataclasses.fields(config_class):
    if f.default_factory is not dataclasses.MISSING:
      default = f.default_factory()
      if dataclasses.is_dataclass(default):
        out[f.name] = default
  return out


def _to_tuple(value):
  if isinstance(value, list):
    return tuple(_to_tuple(v) for v in value)
  return value


def _as_partial(value) -> Any:
  """A section value as a dict of the fields it sets (instances give all their fields)."""
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
  return value


def _move_legacy_keys(config_class, values: dict, sections: dict) -> dict:
  """Moves flat keys of earlier versions (`LEGACY_KEYS`, and the config class's own
  `legacy_keys`) into their section's dict."""
  owner = config_class.__name__
  values = dict(values)
  legacy = {**LEGACY_KEYS, **getattr(config_class, "legacy_keys", {})}
  for old, (section, field) in legacy.items():
    if old not in values or section not in sections:
      continue
    nested = _as_partial(values.get(section)) or {}
    if not isinstance(nested, Mapping):
      continue  # reported as a bad section value below
    if field in nested and section in values:
      raise ModelConfigError(f"{owner}: {old!r} is the earlier name of {section}.{field}; "
                             f"give only {section}.{field}")
    values[section] = {**nested, field: values.pop(old)}
  return values


def _build_section(owner: str, name: str, default, value):
  """The section instance: the model's default section updated with `value`'s fields."""
  value = _as_partial(value)
  if not isinstance(value, Mapping):
    raise ModelConfigError(f"{owner}.{name} must be a {type(default).__name__} or a dict, "
                           f"got {value!r}")
  allowed = {f.name for f in dataclasses.fields(default)}
  unknown = sorted(set(value) - allowed)
  if unknown:
    raise ModelConfigError(f"{owner}.{name}: unknown fields {unknown}; allowed: {sorted(allowed)}")
  try:
    return dataclasses.replace(default, **{k: _to_tuple(v) for k, v in value.items()})
  except ValueError as e:
    raise ModelConfigError(f"{owner}.{e}") from e


def older_file_defaults(config_class) -> dict:
  """{field: value} for config fields added after files were saved: a saved
  config (model file, params.json) without the field means this value, the one
  that rebuilds the saved graph (the config class's `OLDER_FILE_DEFAULTS`)."""
  return dict(getattr(config_class, "OLDER_FILE_DEFAULTS", {}))


def config_from(config_class, config: Any = None, **overrides):
  """An instance of `config_class` from None / an instance / a dict, plus overrides.

  Nested sections (`embedding`, `tower`) may be given as section instances or
  as dicts of some of their fields, which update the model's default section
  (or the section given in `config`); flat names of earlier versions
  (`LEGACY_KEYS`) are moved into their section. Unknown keys raise
  `ModelConfigError` naming them and the allowed fields.

  Example:
    >>> config_from(DNNConfig, {"tower": {"dims": (64,)}}, dropout=0.1).tower
    TowerConfig(dims=(64,), dropout=0.1, batch_norm=False, activation='relu')
  """
  owner = config_class.__name__
  if config is None:
    values = {}
  elif isinstance(config, config_class):
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config_class)}
  elif isinstance(config, Mapping):
    values = dict(config)
  else:
    raise ModelConfigError(
        f"config must be a {owner}, a dict or None, got {type(config).__name__}")
  sections = _sections(config_class)
  values = _move_legacy_keys(config_class, values, sections)
  for key, value in _move_legacy_keys(config_class, overrides, sections).items():
    base, update = _as_partial(values.get(key)), _as_partial(value)
    if key in sections and isinstance(base, Mapping) and isinstance(update, Mapping):
      values[key] = {**base, **update}
    else:
      values[key] = value
  allowed = {f.name for f in dataclasses.fields(config_class)}
  unknown = sorted(set(values) - allowed)
  if unknown:
    raise ModelConfigError(f"{owner}: unknown fields {unknown}; allowed: {sorted(allowed)}")
  for name, default in sections.items():
    values[name] = _build_section(owner, name, default, values.get(name, {}))
  for name, value in values.items():  # JSON turns tuples into lists.
    if name not in sections:
      values[name] = _to_tuple(value)
  try:
    return config_class(**values)
  except ModelConfigError:
    raise
  except ValueError as e:
    raise ModelConfigError(f"{owner}: {e}") from e


PRECISIONS = ("float32", "mixed_bfloat16")


def check_precision(precision: Optional[str]) -> str:
  """The Keras dtype policy name to build with: `precision`, or the global policy when None."""
  if precision is None:
    precision = tf.keras.mixed_precision.global_policy().name
  if precision not in PRECISIONS:
    raise ModelConfigError(
        f"precision must be one of {PRECISIONS} (or None for the global Keras policy), got "
        f"{precision!r}; mixed_float16 is not supported (it needs loss scaling and CPUs run "
        "float16 matmuls slowly)")
  return precision


def check_graph_version(version: Any) -> int:
  if isinstance(version, bool) or version not in GRAPH_VERSIONS:
    raise ModelConfigError(f"graph_version must be one of {GRAPH_VERSIONS}, got {version!r} "
                           "(a file saved by a newer ctr_zoo?)")
  return version


@contextlib.contextmanager
def _global_policy(name: str):
  """Sets the global Keras dtype policy to `name` inside the block, then restores it."""
  previous = tf.keras.mixed_precision.global_policy()
  tf.keras.mixed_precision.set_global_policy(name)
  try:
    yield
  finally:
    tf.keras.mixed_precision.set_global_policy(previous)


class CTRModel(tf.keras.Model):
  """Base class: a functional CTR model built from a fitted spec and a config.

  Subclasses set `config_class` and implement `build_logit`; see the module
  docstring for the contract.

  Args:
    spec: FeatureSpec (or its JSON). The fitted spec the inputs follow.
    config: the subclass's config dataclass, a dict of its fields, or None.
      Defaults to None (the config's defaults).
    name: str or None. Model name. Defaults to the registry name.
    precision: str or None. "float32", or "mixed_bfloat16" (every layer
      computes in bfloat16 and keeps float32 variables, as Keras's mixed
      precision policy does; the logit and the probability are float32, so
      the loss is computed in float32). On CPUs with AVX512-BF16 or AMX the
      matmuls run about twice as fast. None: the global Keras policy when the
      model is built. Stored in `get_config`, so a reloaded model computes in
      the same precision. Defaults to None.
  """

  config_class = None
  registry_name = None
  # What the embedding tables and the dense layers are meant to train with
  # (a hint for the trainer; lr uses FTRL on everything, as in KDD'13).
  default_optimizers = {"embedding": "adagrad", "dense": "adam"}

  def __init__(self, spec, config=None, name: Optional[str] = None,
               precision: Optional[str] = None, graph_version: int = GRAPH_VERSION, **kwargs):
    spec = as_spec(spec)
    config = config_from(self.config_class, config)
    precision = check_precision(precision)
    graph_version = check_graph_version(graph_version)
    embedding = getattr(config, "embedding", None)
    if embedding is None:  # a model without tables of its own (lr)
      embedding = EmbeddingConfig(dim=None, l2=0.0)
    if embedding.dim is not None:
      spec = spec.with_embedding_dim(embedding.dim)
    with _global_policy(precision):
      inputs = spec.keras_inputs()
      logit = self.build_logit(parts_lib.Parts(inputs, spec, embedding, graph_version), config)
      # float32 from here on whatever the policy: the loss and the metrics see float32.
      logit = tf.keras.layers.Activation("linear", name="logit", dtype="float32")(logit)  # (B, 1)
      probability = tf.keras.layers.Activation("sigmoid", name="probability",
                                               dtype="float32")(logit)
    super().__init__(inputs=inputs, outputs=probability,
                     name=name or self.registry_name or type(self).__name__.lower(), **kwargs)
    self._spec = spec
    self._model_config = config
    self._precision = precision
    self._graph_version = graph_version
    self._check_shared_weights()

  def _check_shared_weights(self) -> None:
    """A layer reading another layer's weight (`NumericFieldDense` reads V) needs that
    layer in the model too, or V would be neither trained nor saved."""
    own = {v.ref() for v in self.variables}
    for layer in self._flatten_layers(include_self=False, recursive=True):
      if isinstance(layer, mlp_lib.NumericFieldDense):
        owner = layer.numeric_embedding
        if owner.kernel.ref() not in own:
          raise ModelConfigError(
              f"{type(self).__name__}: layer {layer.name!r} reads V from {owner.name!r}, which "
              "is not part of the model (its output is used nowhere), so V would be neither "
              "trained nor saved; use the field stack (e.g. FieldStack.groups or .stack) in the model")

  @classmethod
  def build_logit(cls, parts: parts_lib.Parts, config) -> tf.Tensor:
    """The (B, 1) logit from the model's `Parts` (its inputs and their embeddings)."""
    raise NotImplementedError(f"{cls.__name__} must implement build_logit")

  def training_loss(self, features, labels):
    """The data loss of one training batch and the click probabilities (B, 1).

    Mean binary cross-entropy of `labels` (B,) or (B, 1) and the model's
    probabilities in training mode; layer losses (`self.losses`, e.g. the
    embedding L2) are NOT included: the trainer adds them. Models trained
    with an auxiliary loss (DCNv3's Tri-BCE) override this.
    """
    labels = tf.reshape(tf.cast(labels, tf.float32), (-1, 1))  # (B, 1)
    probabilities = self(features, training=True)  # (B, 1)
    loss = tf.reduce_mean(tf.keras.losses.binary_crossentropy(labels, probabilities))
    return loss, probabilities

  # --- what the model was built from ----------------------------------------
  @property
  def spec(self) -> spec_lib.FeatureSpec:
    return self._spec

  @property
  def model_config(self):
    return self._model_config

  @property
  def precision(self) -> str:
    """The dtype policy the layers were built with ("float32" or "mixed_bfloat16")."""
    return self._precision

  def get_config(self) -> dict:
    return {"name": self.name, "spec": self._spec.to_json(indent=None),
            "config": json.loads(json.dumps(dataclasses.asdict(self._model_config))),
            "precision": self._precision, "graph_version": self._graph_version}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    unknown = sorted(set(config) - {"name", "spec", "config", "trainable", "precision",
                                    "graph_version"})
    if unknown:
      raise ModelConfigError(f"{cls.__name__}.from_config: unknown keys {unknown}")
    model_config = dict(config.get("config") or {})
    # Fields added after a file was saved take the value that reproduces its graph.
    model_config = {**older_file_defaults(cls.config_class), **model_config}
    if "embedding" in _sections(cls.config_class) and "embedding" not in model_config:
      # Saved before the embedding section existed: the saved spec holds the widths.
      model_config["embedding"] = {"dim": None}
    # Files saved before `precision` existed were float32, and before `graph_version`
    # existed had layout 1.
    return cls(spec=config["spec"], config=model_config, name=config.get("name"),
               precision=config.get("precision", "float32"),
               graph_version=config.get("graph_version", 1))

  @property
  def graph_version(self) -> int:
    """The layer layout this model was built with (see `GRAPH_VERSION`)."""
    return self._graph_version

  # --- the logit and the variable split --------------------------------------
  @property
  def logit_model(self) -> tf.keras.Model:
    """A functional model with the same inputs and layers whose output is the logit (B, 1)."""
    return tf.keras.Model(self.inputs, self.get_layer("logit").output, name=f"{self.name}_logit")

  @property
  def embedding_variables(self) -> list:
    """Trainable variables indexed by ids (tables), from layers exposing `embedding_variables`."""
    out, seen = [], set()
    for layer in self._flatten_layers(include_self=False, recursive=True):
      for v in getattr(layer, "embedding_variables", ()) or ():
        if v.trainable and v.ref() not in seen:
          seen.add(v.ref())
          out.append(v)
    return out

  @property
  def dense_variables(self) -> list:
    """Every trainable variable that is not in `embedding_variables`."""
    emb = {v.ref() for v in self.embedding_variables}
    return [v for v in self.trainable_variables if v.ref() not in emb]

  def parameter_counts(self) -> dict:
    """{"embedding": n, "dense": n, "total": n} trainable scalars."""
    emb = sum(int(tf.size(v)) for v in self.embedding_variables)
    dense = sum(int(tf.size(v)) for v in self.dense_variables)
    return {"embedding": emb, "dense": dense, "total": emb + dense}
