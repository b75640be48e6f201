"""Argument checks shared by every constructor: one wording, the caller's error type.

Each check returns the value (normalised where said) or raises `error`
(ValueError unless the caller passes its own subclass, e.g. `SpecError` or
`ModelConfigError`) with a message that names the argument and quotes the
offending value:

  checks.positive_int(3, "MLP dims[0]")            -> 3
  checks.positive_int(0, "CrossNet num_layers")    -> ValueError: CrossNet num_layers must
                                                      be an int >= 1, got 0
  checks.fraction(1.5, "DNNConfig.dropout", error=ModelConfigError)

Booleans are never accepted where an int or a number is asked for (True is an
int to Python, but never what a caller meant). This module imports nothing
beyond the standard library, so configs and specs can use it without
TensorFlow.
"""

from __future__ import annotations

from typing import Any, Sequence, Type


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_int(value: Any, what: str, *, allow_zero: bool = False,
                 error: Type[Exception] = ValueError) -> int:
  """`value` if it is an int >= 1 (>= 0 with `allow_zero`), else raises `error`."""
  bound = 0 if allow_zero else 1
  if not _is_int(value) or value < bound:
    raise error(f"{what} must be an int >= {bound}, got {value!r}")
  return value


def optional_positive_int(value: Any, what: str, *, error: Type[Exception] = ValueError):
  """None, or an int >= 1."""
  if value is None:
    return None
  if not _is_int(value) or value < 1:
    raise error(f"{what} must be None or an int >= 1, got {value!r}")
  return value


def positive_ints(values: Any, what: str, *, allow_empty: bool = True,
                  error: Type[Exception] = ValueError) -> tuple:
  """`tuple(values)` if it is a tuple or list of ints >= 1 (non-empty unless `allow_empty`)."""
  if (not isinstance(values, (tuple, list)) or (not allow_empty and not values)
      or any(not _is_int(v) or v < 1 for v in values)):
    kind = "a tuple of ints >= 1" if allow_empty else "a non-empty tuple of ints >= 1"
    raise error(f"{what} must be {kind}, got {values!r}")
  return tuple(values)


def non_negative(value: Any, what: str, *, error: Type[Exception] = ValueError) -> float:
  """`value` if it is a number >= 0."""
  if not _is_number(value) or value < 0:
    raise error(f"{what} must be a number >= 0, got {value!r}")
  return value


def positive(value: Any, what: str, *, error: Type[Exception] = ValueError) -> float:
  """`value` if it is a number > 0."""
  if not _is_number(value) or not value > 0:
    raise error(f"{what} must be a number > 0, got {value!r}")
  return value


def fraction(value: Any, what: str, *, error: Type[Exception] = ValueError) -> float:
  """`value` if it is a number in [0, 1) (a dropout rate, a split share)."""
  if not _is_number(value) or not 0 <= value < 1:
    raise error(f"{what} must be a number in [0, 1), got {value!r}")
  return value


def probability(value: Any, what: str, *, error: Type[Exception] = ValueError) -> float:
  """`value` if it is a number in [0, 1]."""
  if not _is_number(value) or not 0 <= value <= 1:
    raise error(f"{what} must be a number in [0, 1], got {value!r}")
  return value


def choice(value: Any, what: str, choices: Sequence[Any], *,
           error: Type[Exception] = ValueError) -> Any:
  """`value` if it is one of `choices`."""
  if value not in choices:
    raise error(f"{what} must be one of {tuple(choices)}, got {value!r}")
  return value


def boolean(value: Any, what: str, *, error: Type[Exception] = ValueError) -> bool:
  """`value` if it is a bool."""
  if not isinstance(value, bool):
    raise error(f"{what} must be true or false, got {value!r}")
  return value
