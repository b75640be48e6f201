"""The model registry: every zoo model by its short name.

  from ctr_zoo import models
  models.names()                       # ['autoint', 'can', 'cdot', ...]
  cls = models.get("dcn_v2")           # the CTRModel subclass
  model = models.build("dcn_v2", spec, structure="parallel", projection_dim=16)
"""

from __future__ import annotations

from typing import Any, Optional

from ctr_zoo import serialization

_MODELS = {}


def register_model(name: str):
  """Class decorator: registers a CTRModel subclass under `name` (and with Keras)."""
  if not isinstance(name, str) or not name:
    raise ValueError(f"model name must be a non-empty string, got {name!r}")

  def decorator(cls):
    if name in _MODELS and _MODELS[name] is not cls:
      raise ValueError(f"model name {name!r} is already registered to {_MODELS[name].__name__}")
    if getattr(cls, "config_class", None) is None:
      raise TypeError(f"{cls.__name__} must set config_class before it is registered")
    cls.registry_name = name
    cls = serialization.register(cls)
    _MODELS[name] = cls
    return cls

  return decorator


def names() -> list:
  """Sorted names of every registered model."""
  return sorted(_MODELS)


def get(name: str):
  """The model class registered as `name`; KeyError listing the known names otherwise."""
  try:
    return _MODELS[name]
  except (KeyError, TypeError):
    raise KeyError(f"unknown model {name!r}; known models: {names()}") from None


def config_class(name: str):
  """The config dataclass of model `name`."""
  return get(name).config_class


def build(name: str, spec: Any, config: Any = None, precision: Optional[str] = None,
          **overrides):
  """Builds model `name` from a fitted spec, an optional config and field overrides.

  Args:
    name: str. A registered model name (see `names()`).
    spec: FeatureSpec (or its JSON). The fitted feature spec.
    config: config dataclass, dict or None. Starting config. Defaults to None
      (the model's defaults).
    precision: str or None. "float32" or "mixed_bfloat16" (see `CTRModel`);
      None uses the global Keras policy. Defaults to None.
    **overrides: config fields to change, e.g. `dropout=0.2`.

  Returns:
    The built `CTRModel`.
  """
  from ctr_zoo.models import base  # pylint: disable=g-import-not-at-top
  cls = get(name)
  return cls(spec, base.config_from(cls.config_class, config, **overrides), precision=precision)
