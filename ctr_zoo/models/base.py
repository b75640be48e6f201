"""The common base of every ctr_zoo model: a functional Keras model built from a spec.

Every model in the zoo is a *subclassed functional* Keras model: its
constructor takes a fitted `FeatureSpec` and a small config dataclass, builds a
functional graph from `spec.keras_inputs()` to one logit, and hands the graph
to `tf.keras.Model.__init__(inputs, outputs)`. That gives the robustness of
functional models (saving, reloading, composing into a user's own functional
model) together with a constructor that stores what the model was built from:

- `get_config()` is `{"name", "spec" (the spec as JSON), "config" (the config
  dataclass as a dict)}`; `from_config` rebuilds the same graph, so
  `tf.keras.models.load_model` of a `.keras` file or a SavedModel directory
  works after `import ctr_zoo` with no `custom_objects`.
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

Subclasses define `config_class` (a dataclass) and the class method
`build_logit(inputs, spec, config) -> (B, 1) tensor`, and register themselves
with `ctr_zoo.models.registry.register_model`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf

from ctr_zoo.feature_columns import spec as spec_lib


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


def config_from(config_class, config: Any = None, **overrides):
  """An instance of `config_class` from None / an instance / a dict, plus overrides.

  Unknown keys raise `ModelConfigError` naming them and the allowed fields.
  """
  if config is None:
    values = {}
  elif isinstance(config, config_class):
    values = dataclasses.asdict(config)
  elif isinstance(config, Mapping):
    values = dict(config)
  else:
    raise ModelConfigError(
        f"config must be a {config_class.__name__}, a dict or None, got {type(config).__name__}")
  values.update(overrides)
  allowed = {f.name for f in dataclasses.fields(config_class)}
  unknown = sorted(set(values) - allowed)
  if unknown:
    raise ModelConfigError(
        f"{config_class.__name__}: unknown fields {unknown}; allowed: {sorted(allowed)}")
  for f in dataclasses.fields(config_class):  # JSON turns tuples into lists.
    if isinstance(values.get(f.name), list):
      values[f.name] = _to_tuple(values[f.name])
  return config_class(**values)


def _to_tuple(value):
  if isinstance(value, list):
    return tuple(_to_tuple(v) for v in value)
  return value


def check_positive_ints(owner: str, name: str, values: Sequence[Any], allow_empty=True) -> None:
  """Raises ModelConfigError unless `values` is a sequence of ints >= 1."""
  if not isinstance(values, (tuple, list)) or (not allow_empty and not values) or any(
      isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
    raise ModelConfigError(f"{owner}.{name} must be a tuple of ints >= 1, got {values!r}")


def check_positive_int(owner: str, name: str, value: Any, allow_zero=False) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
    bound = ">= 0" if allow_zero else ">= 1"
    raise ModelConfigError(f"{owner}.{name} must be an int {bound}, got {value!r}")


def check_fraction(owner: str, name: str, value: Any) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
    raise ModelConfigError(f"{owner}.{name} must be a number in [0, 1), got {value!r}")


def check_non_negative(owner: str, name: str, value: Any) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
    raise ModelConfigError(f"{owner}.{name} must be a number >= 0, got {value!r}")


def check_choice(owner: str, name: str, value: Any, choices: Sequence[Any]) -> None:
  if value not in choices:
    raise ModelConfigError(f"{owner}.{name} must be one of {tuple(choices)}, got {value!r}")


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


# The layout of the layers `build_logit` makes (names, order and classes, which
# `.keras` files and SavedModels are matched against on loading):
#   1: field-wise models (FM, DeepFM, xDeepFM, AutoInt) feed the concatenated
#      field stack to their FM and to a Dense-first MLP;
#   2: their DNN starts with `NumericFieldDense` and the FM takes the field
#      groups (the same numbers, fewer FLOPs and copies).
# `get_config` records the version; a file saved before it was recorded is
# rebuilt with layout 1, so it loads.
GRAPH_VERSION = 2
GRAPH_VERSIONS = (1, 2)
_graph_version_stack = [GRAPH_VERSION]


def graph_version() -> int:
  """The layer layout of the model being built (GRAPH_VERSION unless an older file is loaded)."""
  return _graph_version_stack[-1]


@contextlib.contextmanager
def building_graph_version(version: int):
  """Builds models inside the block with layer layout `version` (see GRAPH_VERSION)."""
  if isinstance(version, bool) or version not in GRAPH_VERSIONS:
    raise ModelConfigError(f"graph_version must be one of {GRAPH_VERSIONS}, got {version!r} "
                           "(a file saved by a newer ctr_zoo?)")
  _graph_version_stack.append(version)
  try:
    yield
  finally:
    _graph_version_stack.pop()


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
               precision: Optional[str] = None, **kwargs):
    spec = as_spec(spec)
    config = config_from(self.config_class, config)
    precision = check_precision(precision)
    with _global_policy(precision):
      inputs = spec.keras_inputs()
      logit = self.build_logit(inputs, spec, config)  # (B, 1)
      # float32 from here on whatever the policy: the loss and the metrics see float32.
      logit = tf.keras.layers.Activation("linear", name="logit", dtype="float32")(logit)
      probability = tf.keras.layers.Activation("sigmoid", name="probability",
                                               dtype="float32")(logit)
    super().__init__(inputs=inputs, outputs=probability,
                     name=name or self.registry_name or type(self).__name__.lower(), **kwargs)
    self._spec = spec
    self._model_config = config
    self._precision = precision
    self._graph_version = graph_version()
    self._check_shared_weights()

  def _check_shared_weights(self) -> None:
    """A layer reading another layer's weight (`NumericFieldDense` reads V) needs that
    layer in the model too, or V would be neither trained nor saved."""
    from ctr_zoo.layers import mlp as mlp_lib  # pylint: disable=g-import-not-at-top
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
  def build_logit(cls, inputs: dict, spec: spec_lib.FeatureSpec, config) -> tf.Tensor:
    """Maps the dict of `tf.keras.Input`s to the (B, 1) logit tensor."""
    raise NotImplementedError(f"{cls.__name__} must implement build_logit")

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
    config.pop("trainable", None)
    # Files saved before `precision` existed were float32, and before `graph_version`
    # existed had layout 1.
    with building_graph_version(config.get("graph_version", 1)):
      return cls(spec=config["spec"], config=config.get("config"), name=config.get("name"),
                 precision=config.get("precision", "float32"))

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
