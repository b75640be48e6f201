"""Saying what a data file is: a built-in spec name, a schema file, or a FeatureSpec JSON.

`load_spec(path_or_name, **settings)` accepts

- a built-in name (`BUILTIN_SPECS`): "criteo" (label, I1..I13, C1..C26; the
  Kaggle / Criteo 1TB layout), "avazu" (the Kaggle CSV; `id` dropped, hour
  of day and weekday derived from `hour`), "frappe" (10 one-hot fields in
  libFM);
- a saved FeatureSpec JSON (an object with "features", as `FeatureSpec.save`
  writes it, e.g. a run's spec.json): used as written, fitted or not;
- a schema file: a small JSON object naming the file's columns and their
  kinds, from which the FeatureSpec is built with the data settings.

The schema file (every key but "columns" and "label" optional):

  {
    "name": "avazu",
    "label": "click",
    "columns": ["id", "click", "hour", "C1", "banner_pos", "site_id", ...],
    "ignore": ["id", "hour"],
    "default_kind": "categorical",
    "kinds": {"C14": "integer", "price": "float", "history": "sequence"},
    "sequence": {"history": {"max_len": 20, "separator": "|",
                             "shares_vocabulary_with": "item"}},
    "derived": [{"name": "hour_of_day", "from": "hour", "function": "hour_of_day"},
                {"name": "weekday", "from": "hour", "function": "weekday"}]
  }

- "columns": every column of the file, in file order, the label and ignored
  columns included (a headerless file is read by position; libFM fields are
  these columns other than the label, in order; a CSV or Parquet file is
  matched by header name);
- "label": the 0/1 click column (libFM: the line's leading 1/-1);
- "ignore": columns that are not features (a derived field may still read
  one);
- "kinds": the kind of a column: "categorical" (a string token -> an id),
  "integer" (base-10 integers, encoded per the data settings'
  `integer_encoding` / `dense_transform`), "float" (decimal numbers, same
  encodings) or "sequence" (tokens joined by a separator -> ids);
  "default_kind" is the kind of every column not listed (default
  "categorical");
- "sequence": per sequence column, any of "max_len" (default 50),
  "separator" (default "|") and "shares_vocabulary_with" (a categorical
  feature whose ids the tokens use);
- "derived": categorical features computed from a column ("from") by a
  function of `spec.DERIVATIONS` ("hour_of_day", "weekday" of a YYMMDDHH
  time); a derived feature is added after the columns' features.
- "name": the data set's name (default: the schema file's name).

The features are the non-ignored columns in file order, then the derived
ones. The data settings (`min_count`, `hash_buckets`, `embedding_dim`,
`integer_encoding`, `dense_transform`, `num_buckets`) apply to built-in specs
and schema files; a FeatureSpec JSON carries its own. Every mistake raises
`SpecError` naming the file and the key.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Mapping, Optional

from ctr_zoo.feature_columns import avazu as avazu_lib
from ctr_zoo.feature_columns import criteo as criteo_lib
from ctr_zoo.feature_columns import frappe as frappe_lib
from ctr_zoo.feature_columns import integers
from ctr_zoo.feature_columns import spec as spec_lib

SpecError = spec_lib.SpecError
KINDS = ("categorical", "integer", "float", "sequence")
SCHEMA_KEYS = ("name", "label", "columns", "ignore", "default_kind", "kinds", "sequence",
               "derived")
SEQUENCE_KEYS = ("max_len", "separator", "shares_vocabulary_with")
DERIVED_KEYS = ("name", "from", "function")
SETTINGS = ("min_count", "hash_buckets", "embedding_dim", "integer_encoding", "dense_transform",
            "num_buckets")


def _criteo(s):
  return criteo_lib.criteo_spec(**s)


def _avazu(s):
  return avazu_lib.avazu_spec(min_count=s["min_count"], embedding_dim=s["embedding_dim"],
                              hash_buckets=s["hash_buckets"])


def _frappe(s):
  return frappe_lib.frappe_spec(min_count=s["min_count"], embedding_dim=s["embedding_dim"],
                                hash_buckets=s["hash_buckets"])


BUILTIN_SPECS: Dict[str, Callable[[dict], spec_lib.FeatureSpec]] = {
    "criteo": _criteo, "avazu": _avazu, "frappe": _frappe,
}


def _settings(settings: Mapping[str, Any]) -> dict:
  unknown = sorted(set(settings) - set(SETTINGS))
  if unknown:
    raise TypeError(f"unknown spec settings {unknown}; allowed: {list(SETTINGS)}")
  out = dict(min_count=1, hash_buckets=None, embedding_dim=16, integer_encoding="",
             dense_transform="log1p", num_buckets=integers.DEFAULT_QUANTILE_BUCKETS)
  out.update({k: v for k, v in settings.items() if v is not None or k == "hash_buckets"})
  return out


def builtin_spec(name: str, **settings) -> spec_lib.FeatureSpec:
  """The built-in unfitted spec `name` ("criteo", "avazu", "frappe") with the data settings."""
  if name not in BUILTIN_SPECS:
    raise SpecError(f"unknown built-in spec {name!r}; known: {sorted(BUILTIN_SPECS)}")
  return BUILTIN_SPECS[name](_settings(settings))


def _fail(where: str, message: str):
  raise SpecError(f"{where}: {message}")


def _names(value: Any, where: str, key: str) -> list:
  if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
    _fail(where, f"{key!r} must be a list of non-empty column names, got {value!r}")
  return value


def spec_from_schema(schema: Mapping[str, Any], where: str = "schema",
                     **settings) -> spec_lib.FeatureSpec:
  """The unfitted FeatureSpec of a schema (see the module doc) with the data settings.

  Args:
    schema: dict. The parsed schema file.
    where: str. Names the schema in error messages (e.g. its path).
    **settings: data settings (`SETTINGS`).
  """
  s = _settings(settings)
  if not isinstance(schema, Mapping):
    _fail(where, f"a schema must be a JSON object, got {type(schema).__name__}")
  unknown = sorted(set(schema) - set(SCHEMA_KEYS))
  if unknown:
    _fail(where, f"unknown keys {unknown}; allowed: {list(SCHEMA_KEYS)}")
  for key in ("columns", "label"):
    if key not in schema:
      _fail(where, f"{key!r} is required")
  columns = _names(schema["columns"], where, "columns")
  dupes = sorted({c for c in columns if columns.count(c) > 1})
  if dupes:
    _fail(where, f"'columns' names {dupes} more than once")
  label = schema["label"]
  if not isinstance(label, str) or label not in columns:
    _fail(where, f"'label' must be one of the columns {columns}, got {label!r}")
  ignore = _names(schema.get("ignore", []), where, "ignore")
  for c in ignore:
    if c not in columns:
      _fail(where, f"'ignore' names {c!r}, which is not among the columns")
    if c == label:
      _fail(where, f"'ignore' names the label {label!r}")
  default_kind = schema.get("default_kind", "categorical")
  if default_kind not in KINDS:
    _fail(where, f"'default_kind' must be one of {list(KINDS)}, got {default_kind!r}")
  kinds = schema.get("kinds", {})
  if not isinstance(kinds, Mapping):
    _fail(where, f"'kinds' must be an object column -> kind, got {kinds!r}")
  for c, kind in kinds.items():
    if c not in columns:
      _fail(where, f"'kinds' names {c!r}, which is not among the columns")
    if c == label or c in ignore:
      _fail(where, f"'kinds' gives a kind to {c!r}, which is the label or ignored")
    if kind not in KINDS:
      _fail(where, f"kinds[{c!r}] must be one of {list(KINDS)}, got {kind!r}")
  sequence = schema.get("sequence", {})
  if not isinstance(sequence, Mapping):
    _fail(where, f"'sequence' must be an object column -> options, got {sequence!r}")
  kind_of = {c: kinds.get(c, default_kind) for c in columns if c != label and c not in ignore}
  for c, options in sequence.items():
    if kind_of.get(c) != "sequence":
      _fail(where, f"'sequence' gives options to {c!r}, which is not a sequence column")
    if not isinstance(options, Mapping) or set(options) - set(SEQUENCE_KEYS):
      _fail(where, f"sequence[{c!r}] must be an object with keys among {list(SEQUENCE_KEYS)}, "
                   f"got {options!r}")
  features = []
  ids = dict(min_count=s["min_count"], embedding_dim=s["embedding_dim"])
  for c, kind in kind_of.items():
    try:
      if kind == "categorical":
        features.append(spec_lib.CategoricalFeature(c, hash_buckets=s["hash_buckets"], **ids))
      elif kind == "sequence":
        features.append(spec_lib.SequenceFeature(c, hash_buckets=s["hash_buckets"], **ids,
                                                 **dict(sequence.get(c, {}))))
      else:
        features.extend(integers.integer_features(
            c, s["integer_encoding"], dense_transform=s["dense_transform"],
            min_count=s["min_count"], embedding_dim=s["embedding_dim"],
            num_buckets=s["num_buckets"], value_type="int" if kind == "integer" else "float"))
    except (SpecError, TypeError, ValueError) as e:
      _fail(where, f"column {c!r}: {e}")
  derived = schema.get("derived", [])
  if not isinstance(derived, list):
    _fail(where, f"'derived' must be a list of objects, got {derived!r}")
  for i, d in enumerate(derived):
    if not isinstance(d, Mapping) or set(d) != set(DERIVED_KEYS):
      _fail(where, f"derived[{i}] must be an object with the keys {list(DERIVED_KEYS)}, got {d!r}")
    if d["from"] not in columns or d["from"] == label:
      _fail(where, f"derived[{i}] reads {d['from']!r}, which is not a (non-label) column")
    if d["function"] not in spec_lib.DERIVATIONS:
      _fail(where, f"derived[{i}].function must be one of {list(spec_lib.DERIVATIONS)}, got "
                   f"{d['function']!r}")
    try:
      features.append(spec_lib.CategoricalFeature(
          d["name"], source=d["from"], derive=d["function"], hash_buckets=s["hash_buckets"],
          **ids))
    except (SpecError, TypeError) as e:
      _fail(where, f"derived[{i}]: {e}")
  if not features:
    _fail(where, "no features: every column is the label or ignored")
  name = schema.get("name", os.path.splitext(os.path.basename(where))[0] or "custom")
  if not isinstance(name, str) or not name:
    _fail(where, f"'name' must be a non-empty string, got {name!r}")
  try:
    return spec_lib.FeatureSpec(features=tuple(features), label=label, name=name,
                                columns=tuple(columns))
  except SpecError as e:
    _fail(where, str(e))


def is_builtin(name: str) -> bool:
  return name in BUILTIN_SPECS


def load_spec(path_or_name: str, **settings) -> spec_lib.FeatureSpec:
  """A FeatureSpec from a built-in name, a FeatureSpec JSON or a schema file (see module doc).

  Raises:
    SpecError: an unknown name, an unreadable file, or a malformed spec or schema.
  """
  if not isinstance(path_or_name, str) or not path_or_name:
    raise SpecError(f"a spec is a built-in name ({sorted(BUILTIN_SPECS)}) or a JSON file, got "
                    f"{path_or_name!r}")
  if path_or_name in BUILTIN_SPECS:
    return builtin_spec(path_or_name, **settings)
  path = path_or_name
  if os.path.isdir(path) and os.path.exists(os.path.join(path, "spec.json")):
    path = os.path.join(path, "spec.json")
  if not os.path.isfile(path):
    raise SpecError(f"spec {path_or_name!r} is neither a built-in spec ({sorted(BUILTIN_SPECS)}) "
                    "nor a readable file")
  try:
    with open(path, encoding="utf-8") as fh:
      text = fh.read()
  except (OSError, UnicodeDecodeError) as e:
    raise SpecError(f"cannot read spec file {path}: {e}") from e
  try:
    parsed = json.loads(text)
  except json.JSONDecodeError as e:
    raise SpecError(f"{path}: not JSON: {e}") from e
  if isinstance(parsed, Mapping) and "features" in parsed:
    try:
      return spec_lib.FeatureSpec.from_dict(parsed)
    except SpecError as e:
      raise SpecError(f"{path}: {e}") from e
  return spec_from_schema(parsed, where=path, **settings)


def schema_of(spec: spec_lib.FeatureSpec) -> Optional[dict]:
  """A schema file's dict for an unfitted spec made of plain fields, else None (for docs/tests)."""
  kinds, derived = {}, []
  for f in spec.features:
    if isinstance(f, spec_lib.CategoricalFeature) and f.derive:
      derived.append({"name": f.name, "from": f.raw_column, "function": f.derive})
    elif f.source:
      return None
    elif isinstance(f, spec_lib.CategoricalFeature):
      kinds[f.name] = "categorical"
    elif isinstance(f, spec_lib.SequenceFeature):
      kinds[f.name] = "sequence"
    else:
      kinds[f.name] = "integer" if f.value_type == "int" else "float"
  columns = spec.raw_columns
  ignore = [c for c in columns if c != spec.label and c not in kinds]
  out = {"name": spec.name, "label": spec.label, "columns": columns, "kinds": kinds}
  if ignore:
    out["ignore"] = ignore
  if derived:
    out["derived"] = derived
  return out
