"""Optimizers selectable by name (or dict) from experiment configs.

The imports go one way: this module knows the single-step optimizers; the
wrappers that resolve names themselves (`lookahead.Lookahead`,
`split.SplitOptimizer`) import it and `register` their own names, and the
package `__init__` imports them all, so `get` knows every name.
"""

import re
from typing import Any, Callable, Dict

import tensorflow as tf

from ctr_zoo.optimizers import adagrad
from ctr_zoo.optimizers import ftrl
from ctr_zoo.optimizers import group_lasso_ftrl
from ctr_zoo.optimizers import lamb
from ctr_zoo.optimizers import lazy_adam

_legacy = tf.keras.optimizers.legacy

# name -> factory(**overrides). All are legacy Keras optimizers (sparse-aware).
_FACTORIES: Dict[str, Callable[..., Any]] = {
    "sgd": lambda **kw: _legacy.SGD(**{"learning_rate": 0.01, **kw}),
    "momentum": lambda **kw: _legacy.SGD(**{"learning_rate": 0.01, "momentum": 0.9, **kw}),
    "nesterov": lambda **kw: _legacy.SGD(**{"learning_rate": 0.01, "momentum": 0.9, "nesterov": True, **kw}),
    "adam": lambda **kw: _legacy.Adam(**kw),
    "amsgrad": lambda **kw: _legacy.Adam(**{"amsgrad": True, **kw}),
    # Adam whose sparse update reads and writes only the rows in the batch
    # (untouched rows keep their moments); same slots and config as "adam".
    "lazy_adam": lambda **kw: lazy_adam.LazyAdam(**kw),
    # ctr_zoo's Adagrad: a legacy Adagrad (same math, slots, config) with fast
    # sparse row updates and a dense path for densely covered small tables.
    "adagrad": lambda **kw: adagrad.Adagrad(**{"learning_rate": 0.01, **kw}),
    "rmsprop": lambda **kw: _legacy.RMSprop(**kw),
    "ftrl": lambda **kw: ftrl.Ftrl(**kw),
    "group_lasso_ftrl": lambda **kw: group_lasso_ftrl.GroupLassoFtrl(**kw),
    "lamb": lambda **kw: lamb.Lamb(**kw),
}

_LOOKAHEAD = re.compile(r"^lookahead\((.+)\)$")


def register(name: str, factory: Callable[..., Any]) -> None:
  """Makes `get(name)` call `factory(**constructor arguments)` (a wrapper optimizer class)."""
  if name in _FACTORIES and _FACTORIES[name] is not factory:
    raise ValueError(f"optimizer name {name!r} is already registered")
  _FACTORIES[name] = factory


def names():
  """Returns the selectable names (plus "lookahead(<name>)")."""
  return sorted(_FACTORIES)


def get(identifier):
  """Returns a legacy tf.keras optimizer for a name, dict or optimizer.

  Args:
    identifier: One of
      - a legacy tf.keras optimizer: returned as is;
      - a name: "sgd", "momentum", "nesterov", "adam", "amsgrad", "lazy_adam",
        "adagrad", "rmsprop", "ftrl", "group_lasso_ftrl", "lamb", "split", or
        "lookahead(<name>)" (case-insensitive);
      - a dict {"name": <name>, **constructor arguments}, e.g.
        {"name": "ftrl", "learning_rate": 0.05, "l1": 1e-4},
        {"name": "lookahead", "optimizer": "adam", "sync_period": 5},
        {"name": "lookahead(adam)", "learning_rate": 1e-3, "sync_period": 5}
        (learning_rate goes to the inner Adam),
        {"name": "split", "embedding_optimizer": "adagrad",
         "dense_optimizer": {"name": "adam", "learning_rate": 1e-3}};
      - a Keras serialised optimizer {"class_name": ..., "config": ...}.

  Returns:
    A ``tf.keras.optimizers.legacy.Optimizer``.

  Raises:
    ValueError: unknown name (the message lists the known ones).
    TypeError: a new-style (non-legacy) Keras optimizer or another type.
  """
  if isinstance(identifier, _legacy.Optimizer):
    return identifier
  if isinstance(identifier, tf.keras.optimizers.Optimizer):
    raise TypeError(f"ctr_zoo needs legacy Keras optimizers (sparse row updates), got the new-style "
                    f"{type(identifier).__name__}; use tf.keras.optimizers.legacy.{type(identifier).__name__} "
                    "or a name such as 'adam'.")
  if isinstance(identifier, str):
    return _from_name(identifier, {})
  if isinstance(identifier, dict):
    if "class_name" in identifier:
      return tf.keras.optimizers.deserialize(identifier, use_legacy_optimizer=True)
    if "name" not in identifier:
      raise ValueError(f"An optimizer dict needs a 'name' key, got keys {sorted(identifier)}.")
    kwargs = dict(identifier)
    return _from_name(kwargs.pop("name"), kwargs)
  raise TypeError(f"Cannot make an optimizer from {identifier!r} (type {type(identifier).__name__}); "
                  "pass a name, a dict with 'name', or a legacy tf.keras optimizer.")


def _from_name(name: str, kwargs):
  if not isinstance(name, str):
    raise TypeError(f"Optimizer name must be a str, got {name!r}.")
  key = name.strip().lower()
  match = _LOOKAHEAD.match(key)
  if match:
    # sync_period / slow_step_size / name configure Lookahead; the rest (e.g.
    # learning_rate) configure the inner optimizer.
    outer = {k: kwargs.pop(k) for k in ("sync_period", "slow_step_size", "name") if k in kwargs}
    return _FACTORIES["lookahead"](optimizer=_from_name(match.group(1).strip(), kwargs), **outer)
  if key not in _FACTORIES:
    raise ValueError(f"Unknown optimizer name {name!r}; known: {names()} and 'lookahead(<name>)'.")
  return _FACTORIES[key](**kwargs)
