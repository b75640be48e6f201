"""Declarative, JSON-serialisable feature specs.

A `FeatureSpec` is the contract between the data pipeline, the models and the
serving export. It lists the fields in raw-column order, says how each raw value
becomes a model input, and (once fitted) carries the statistics and
vocabularies that make that mapping reproducible.

Model inputs (what `tf.data` yields and what every model consumes), keyed by
feature name:

- `CategoricalFeature`, and `DenseFeature(transform="bucketize")`: int64 ids of
  shape (B,), in [0, num_ids).
- `DenseFeature` (other transforms): float32 of shape (B,).
- `SequenceFeature`: int64 ids of shape (B, max_len), right-padded with
  `PAD_ID` = 0; the mask is `ids != 0`.

Reserved ids (the same for every id-valued feature):

- `MISSING_ID` = 0: the raw value is missing (empty string / null). For a
  sequence this is the padding id.
- `OOV_ID` = 1: a value seen fewer than `min_count` times in the fitted split,
  or never seen. (Hashed features have no OOV id: every value hashes to
  `2 + hash(value) % hash_buckets`.)
- Vocabulary entry i gets id `NUM_RESERVED_IDS + i`; the vocabulary is sorted by
  descending count, ties broken by the value, so ids are stable across runs.

Dense transforms (missing values are treated as described):

- "none": x as float; missing -> 0.
- "log1p": log(1 + max(x, 0)); missing -> 0. (Criteo's I2 can be negative.)
- "standardize": (x - mean) / std with mean and std fitted; missing -> 0 (the
  fitted mean).
- "log1p_standardize": (log(1 + max(x, 0)) - mean) / std, mean and std fitted
  on the log1p values; missing -> 0 (the fitted mean).
- "bucketize" (Criteo-style, as in the Kaggle winners' and BARS pipelines):
  the integer x becomes the token str(floor(ln(x)^2)) if x > 2 else str(int(x));
  the token then gets a vocabulary id exactly like a categorical value
  (missing -> MISSING_ID, rare or unseen -> OOV_ID).
- "quantile": `boundaries` b_0 < .. < b_{k-1} fitted on the training rows so
  that each bucket holds about 1 / num_buckets of them; x gets the id
  NUM_RESERVED_IDS + #{j : b_j <= x} (k + 1 buckets, no OOV id: every value
  falls in a bucket); missing -> MISSING_ID.

"bucketize" and "quantile" make the field an id feature (int64 (B,)); the
other transforms a float feature.

Raw values. A dense field is read as an integer (`value_type="int"`: base-10,
an optional leading minus, nothing else: no "+", no spaces, no "0x") or as a
decimal number (`value_type="float"`: the same, with an optional fraction and
exponent, e.g. "-1.5e-3"; "inf" and "nan" are not numbers). Non-finite values
are bad rows wherever they come from (a Parquet +inf included).

Raw columns. By default a feature reads the raw column of its own name. A
feature with `source` reads another column, so one column can feed several
features: e.g. an integer field both as a float ("I1", log1p) and as bucket
ids ("I1_bucket", source "I1"). A categorical feature with `derive` reads its
source through a derivation (`DERIVATIONS`), e.g. the hour of day of Avazu's
`hour` (YYMMDDHH). `FeatureSpec.columns` lists the file's raw columns in
order (label and ignored columns included) where the layout is not
[label] + the features' columns.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from ctr_zoo import checks

MISSING_ID = 0
PAD_ID = 0
OOV_ID = 1
NUM_RESERVED_IDS = 2

DENSE_TRANSFORMS = ("none", "log1p", "standardize", "log1p_standardize", "bucketize", "quantile")
ID_TRANSFORMS = ("bucketize", "quantile")
VALUE_TYPES = ("int", "float")
# Derivations of a categorical feature from its source column (a string):
# - "hour_of_day": YYMMDDHH -> the hour "0".."23" (Avazu's `hour`);
# - "weekday": YYMMDDHH -> the day of the week of 20YY-MM-DD, "0" (Monday) .. "6".
# A source value that is not a valid YYMMDDHH time (8 digits, month 1..12, a
# day of that month, hour 0..23) is a bad row.
DERIVATIONS = ("hour_of_day", "weekday")


class SpecError(ValueError):
  """A feature spec (or its JSON) is malformed."""


def bucketize_value(x: float) -> str:
  """The Criteo-style bucket token of one integer value (see module doc)."""
  if x > 2:
    return str(int(math.floor(math.log(x) ** 2)))
  return str(int(x))


def _check_name(kind: str, name: Any) -> None:
  if not isinstance(name, str) or not name:
    raise SpecError(f"{kind}.name must be a non-empty string, got {name!r}")


def _check_positive_int(kind: str, field: str, value: Any, allow_zero=False) -> None:
  checks.positive_int(value, f"{kind}.{field}", allow_zero=allow_zero, error=SpecError)


def _check_source(kind: str, source: Any) -> None:
  if source is not None and (not isinstance(source, str) or not source):
    raise SpecError(f"{kind}: source must be a non-empty column name or None, got {source!r}")


def _check_vocab(kind: str, vocabulary: Any) -> None:
  if vocabulary is None:
    return
  if not isinstance(vocabulary, tuple) or not all(isinstance(v, str) for v in vocabulary):
    raise SpecError(f"{kind}.vocabulary must be a tuple of strings, got {type(vocabulary).__name__}")
  if len(set(vocabulary)) != len(vocabulary):
    raise SpecError(f"{kind}.vocabulary has duplicate values")


@dataclasses.dataclass(frozen=True)
class DenseFeature:
  """A numeric field.

  Args:
    name: str. Feature name (and raw column name unless `source` is set).
    transform: str. One of DENSE_TRANSFORMS (see the module doc). Defaults to
      "log1p".
    mean: float. Fitted mean (used by "standardize" and "log1p_standardize").
      Defaults to 0.
    std: float. Fitted standard deviation (same). Defaults to 1.
    min_count: int. For "bucketize": buckets seen fewer times map to OOV_ID.
      Defaults to 1.
    vocabulary: tuple of bucket tokens, fitted (for "bucketize"). Defaults to None.
    embedding_dim: int. Embedding width when bucketized. Defaults to 16.
    source: str or None. The raw column read; None = `name`. Defaults to None.
    value_type: str. "int" (base-10 integers) or "float" (decimal numbers):
      the grammar of the raw text. Defaults to "int".
    num_buckets: int. For "quantile": the number of buckets fitted (fewer
      when values tie). Defaults to 16.
    boundaries: tuple of float, fitted (for "quantile"). Defaults to None.
  """
  name: str
  transform: str = "log1p"
  mean: float = 0.0
  std: float = 1.0
  min_count: int = 1
  vocabulary: Optional[tuple] = None
  embedding_dim: int = 16
  source: Optional[str] = None
  value_type: str = "int"
  num_buckets: int = 16
  boundaries: Optional[tuple] = None

  def __post_init__(self):
    kind = f"DenseFeature {self.name!r}"
    _check_name("DenseFeature", self.name)
    checks.choice(self.transform, f"{kind}: transform", DENSE_TRANSFORMS, error=SpecError)
    checks.choice(self.value_type, f"{kind}: value_type", VALUE_TYPES, error=SpecError)
    checks.positive(self.std, f"{kind}: std", error=SpecError)
    if not math.isfinite(self.mean) or not math.isfinite(self.std):
      raise SpecError(f"{kind}: mean and std must be finite, got {self.mean!r}, {self.std!r}")
    _check_positive_int(kind, "min_count", self.min_count)
    _check_positive_int(kind, "embedding_dim", self.embedding_dim)
    _check_positive_int(kind, "num_buckets", self.num_buckets)
    _check_vocab(kind, self.vocabulary)
    _check_source(kind, self.source)
    if self.boundaries is not None:
      b = self.boundaries
      if (not isinstance(b, tuple) or not all(isinstance(v, float) and math.isfinite(v) for v in b)
          or any(x >= y for x, y in zip(b, b[1:]))):
        raise SpecError(f"{kind}: boundaries must be a tuple of finite, strictly increasing "
                        f"floats, got {b!r}")

  @property
  def raw_column(self) -> str:
    """The raw column this feature reads."""
    return self.source or self.name

  @property
  def is_categorical(self) -> bool:
    """True when the transform turns the value into an id ("bucketize", "quantile")."""
    return self.transform in ID_TRANSFORMS

  @property
  def is_fitted(self) -> bool:
    if self.transform == "bucketize":
      return self.vocabulary is not None
    if self.transform == "quantile":
      return self.boundaries is not None
    return True

  @property
  def hash_buckets(self) -> None:
    return None

  @property
  def num_ids(self) -> int:
    """Number of distinct ids (embedding rows) when bucketized."""
    if not self.is_categorical:
      raise SpecError(f"DenseFeature {self.name!r} with transform {self.transform!r} has no ids")
    if self.transform == "quantile":
      if self.boundaries is None:
        raise SpecError(f"DenseFeature {self.name!r} is not fitted (no quantile boundaries)")
      return NUM_RESERVED_IDS + len(self.boundaries) + 1
    if self.vocabulary is None:
      raise SpecError(f"DenseFeature {self.name!r} is not fitted (no vocabulary)")
    return NUM_RESERVED_IDS + len(self.vocabulary)


@dataclasses.dataclass(frozen=True)
class CategoricalFeature:
  """A categorical field: a string token -> an id -> an embedding row.

  Exactly one of `vocabulary` (fitted) or `hash_buckets` is used; before
  fitting, a vocabulary-based feature has `vocabulary=None`.

  Args:
    name: str. Field name (raw column name).
    vocabulary: tuple of str, fitted: value i gets id NUM_RESERVED_IDS + i.
      Defaults to None (not fitted yet).
    hash_buckets: int. If set, no vocabulary: id = 2 + farmhash64(value) %
      hash_buckets (TensorFlow's `to_hash_bucket_fast`). Defaults to None.
    min_count: int. Values seen fewer times in the fitted split map to OOV_ID.
      Defaults to 1.
    embedding_dim: int. Embedding width. Defaults to 16.
    max_vocab_size: int or None. Keep at most this many most frequent values.
      Defaults to None (no cap).
    source: str or None. The raw column read; None = `name`. Defaults to None.
    derive: str or None. A derivation of the source value (`DERIVATIONS`),
      e.g. "hour_of_day"; None = the value itself. Defaults to None.
  """
  name: str
  vocabulary: Optional[tuple] = None
  hash_buckets: Optional[int] = None
  min_count: int = 1
  embedding_dim: int = 16
  max_vocab_size: Optional[int] = None
  source: Optional[str] = None
  derive: Optional[str] = None

  def __post_init__(self):
    kind = f"CategoricalFeature {self.name!r}"
    _check_name("CategoricalFeature", self.name)
    _check_source(kind, self.source)
    if self.derive is not None:
      checks.choice(self.derive, f"{kind}: derive", DERIVATIONS, error=SpecError)
    _check_vocab(kind, self.vocabulary)
    if self.hash_buckets is not None:
      _check_positive_int(kind, "hash_buckets", self.hash_buckets)
      if self.vocabulary is not None:
        raise SpecError(f"{kind}: give either vocabulary or hash_buckets, not both")
    _check_positive_int(kind, "min_count", self.min_count)
    _check_positive_int(kind, "embedding_dim", self.embedding_dim)
    if self.max_vocab_size is not None:
      _check_positive_int(kind, "max_vocab_size", self.max_vocab_size)

  is_categorical = True

  @property
  def raw_column(self) -> str:
    """The raw column this feature reads."""
    return self.source or self.name

  @property
  def is_fitted(self) -> bool:
    return self.hash_buckets is not None or self.vocabulary is not None

  @property
  def num_ids(self) -> int:
    """Number of distinct ids (embedding rows), reserved ids included."""
    if self.hash_buckets is not None:
      return NUM_RESERVED_IDS + self.hash_buckets
    if self.vocabulary is None:
      raise SpecError(f"CategoricalFeature {self.name!r} is not fitted (no vocabulary)")
    return NUM_RESERVED_IDS + len(self.vocabulary)


@dataclasses.dataclass(frozen=True)
class SequenceFeature:
  """A variable-length list of tokens (e.g. a user's behaviour history).

  Raw value: tokens joined by `separator` (most recent last). Model input:
  int64 (B, max_len), keeping the LAST max_len tokens, right-padded with PAD_ID.

  Args:
    name: str. Field name.
    max_len: int. Kept length. Defaults to 50.
    vocabulary / hash_buckets / min_count / embedding_dim / max_vocab_size: as
      in `CategoricalFeature`.
    separator: str. Token separator in the raw string. Defaults to "|".
    shares_vocabulary_with: str or None. Name of a CategoricalFeature whose
      vocabulary (and id space) this sequence uses, e.g. an item history shares
      the target item's ids. Defaults to None.
    source: str or None. The raw column read; None = `name`. Defaults to None.
  """
  name: str
  max_len: int = 50
  vocabulary: Optional[tuple] = None
  hash_buckets: Optional[int] = None
  min_count: int = 1
  embedding_dim: int = 16
  max_vocab_size: Optional[int] = None
  separator: str = "|"
  shares_vocabulary_with: Optional[str] = None
  source: Optional[str] = None

  def __post_init__(self):
    kind = f"SequenceFeature {self.name!r}"
    _check_name("SequenceFeature", self.name)
    _check_source(kind, self.source)
    _check_positive_int(kind, "max_len", self.max_len)
    _check_vocab(kind, self.vocabulary)
    if self.hash_buckets is not None:
      _check_positive_int(kind, "hash_buckets", self.hash_buckets)
    _check_positive_int(kind, "min_count", self.min_count)
    _check_positive_int(kind, "embedding_dim", self.embedding_dim)
    if not isinstance(self.separator, str) or len(self.separator) != 1:
      raise SpecError(f"{kind}: separator must be one character, got {self.separator!r}")

  is_categorical = True

  @property
  def raw_column(self) -> str:
    """The raw column this feature reads."""
    return self.source or self.name

  @property
  def is_fitted(self) -> bool:
    """Fitted, or sharing a vocabulary (FeatureSpec.is_fitted checks the partner)."""
    return (self.hash_buckets is not None or self.vocabulary is not None
            or self.shares_vocabulary_with is not None)

  @property
  def num_ids(self) -> int:
    if self.hash_buckets is not None:
      return NUM_RESERVED_IDS + self.hash_buckets
    if self.vocabulary is None:
      raise SpecError(f"SequenceFeature {self.name!r} is not fitted (no vocabulary)")
    return NUM_RESERVED_IDS + len(self.vocabulary)


Feature = Union[DenseFeature, CategoricalFeature, SequenceFeature]
_KINDS = {"dense": DenseFeature, "categorical": CategoricalFeature, "sequence": SequenceFeature}
_KIND_OF = {cls: kind for kind, cls in _KINDS.items()}


# Fields added after the first JSON format: written only when not at their
# default, so specs that do not use them keep their earlier JSON.
_OPTIONAL_KEYS = {"source": None, "derive": None, "value_type": "int", "num_buckets": 16,
                  "boundaries": None}


def _feature_to_dict(feature: Feature) -> dict:
  out = {"kind": _KIND_OF[type(feature)]}
  for f in dataclasses.fields(feature):
    value = getattr(feature, f.name)
    if f.name in _OPTIONAL_KEYS and value == _OPTIONAL_KEYS[f.name]:
      continue
    out[f.name] = list(value) if isinstance(value, tuple) else value
  return out


def _feature_from_dict(d: Mapping[str, Any], where: str) -> Feature:
  if not isinstance(d, Mapping):
    raise SpecError(f"{where}: expected an object, got {type(d).__name__}")
  d = dict(d)
  kind = d.pop("kind", None)
  if kind not in _KINDS:
    raise SpecError(f"{where}: 'kind' must be one of {sorted(_KINDS)}, got {kind!r}")
  cls = _KINDS[kind]
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - set(fields))
  if unknown:
    raise SpecError(f"{where} ({kind}): unknown keys {unknown}; allowed: {sorted(fields)}")
  if "vocabulary" in d and d["vocabulary"] is not None:
    if not isinstance(d["vocabulary"], list):
      raise SpecError(f"{where}: vocabulary must be a list, got {type(d['vocabulary']).__name__}")
    d["vocabulary"] = tuple(d["vocabulary"])
  if "boundaries" in d and d["boundaries"] is not None:
    b = d["boundaries"]
    if not isinstance(b, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                          for v in b):
      raise SpecError(f"{where}: boundaries must be a list of numbers, got {b!r}")
    d["boundaries"] = tuple(float(v) for v in b)
  for key in ("mean", "std"):
    if key in d and isinstance(d[key], int) and not isinstance(d[key], bool):
      d[key] = float(d[key])
    if key in d and not isinstance(d[key], float):
      raise SpecError(f"{where}: {key} must be a number, got {d[key]!r}")
  for key in ("transform", "separator", "shares_vocabulary_with", "source", "derive",
              "value_type"):
    if key in d and d[key] is not None and not isinstance(d[key], str):
      raise SpecError(f"{where}: {key} must be a string, got {d[key]!r}")
  try:
    return cls(**d)
  except TypeError as e:  # pragma: no cover - guarded by the key check above
    raise SpecError(f"{where}: {e}") from e


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
  """Ordered fields plus the label: the schema of a CTR data set.

  Args:
    features: tuple of features: the model's inputs, in order (for a
      headerless file without `columns`, also the raw-column order after the
      label).
    label: str. Name of the 0/1 label column. Defaults to "label".
    name: str. A short name for logs and file names. Defaults to "custom".
    columns: tuple of str or None. The raw columns of the data's files, in
      file order, the label and columns no feature reads included: the layout
      of a headerless file (TSV, or the field order of libFM), and the fields
      of a serving TSV line. None = [label] + `input_columns`. Defaults to None.
  """
  features: tuple
  label: str = "label"
  name: str = "custom"
  columns: Optional[tuple] = None

  def __post_init__(self):
    if not isinstance(self.features, tuple):
      object.__setattr__(self, "features", tuple(self.features))
    if self.columns is not None and not isinstance(self.columns, tuple):
      object.__setattr__(self, "columns", tuple(self.columns))
    names = [f.name for f in self.features]
    for f in self.features:
      if not isinstance(f, (DenseFeature, CategoricalFeature, SequenceFeature)):
        raise SpecError(f"FeatureSpec.features holds a {type(f).__name__}, not a feature")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
      raise SpecError(f"FeatureSpec has duplicate feature names: {dupes}")
    if self.label in names:
      raise SpecError(f"FeatureSpec label {self.label!r} is also a feature name")
    for f in self.sequence_features:
      if f.shares_vocabulary_with is not None and f.shares_vocabulary_with not in names:
        raise SpecError(f"SequenceFeature {f.name!r} shares the vocabulary of "
                        f"{f.shares_vocabulary_with!r}, which is not in the spec")
    for f in self.features:
      if f.raw_column == self.label:
        raise SpecError(f"feature {f.name!r} reads the label column {self.label!r}")
    if self.columns is not None:
      cols = self.columns
      if not all(isinstance(c, str) and c for c in cols):
        raise SpecError(f"FeatureSpec.columns must be non-empty strings, got {list(cols)}")
      dupes = sorted({c for c in cols if cols.count(c) > 1})
      if dupes:
        raise SpecError(f"FeatureSpec.columns has duplicate names: {dupes}")
      absent = [c for c in [self.label] + self.input_columns if c not in cols]
      if absent:
        raise SpecError(f"FeatureSpec.columns {list(cols)} lacks {absent} (the label and every "
                        "feature's raw column must be among them)")

  # --- views --------------------------------------------------------------
  @property
  def feature_names(self) -> list:
    return [f.name for f in self.features]

  @property
  def input_columns(self) -> list:
    """The raw columns the features read (label excluded), each once, in feature order.

    These are the inputs of the raw-feature serving signature.
    """
    out = []
    for f in self.features:
      if f.raw_column not in out:
        out.append(f.raw_column)
    return out

  @property
  def raw_columns(self) -> list:
    """The raw columns of a file in order: `columns`, else the label then `input_columns`."""
    if self.columns is not None:
      return list(self.columns)
    return [self.label] + self.input_columns

  @property
  def dense_features(self) -> list:
    """Features fed as float32 (B,) (DenseFeature with a non-bucketize transform)."""
    return [f for f in self.features if isinstance(f, DenseFeature) and not f.is_categorical]

  @property
  def id_features(self) -> list:
    """Single-id features, int64 (B,): categorical and bucketized dense fields."""
    return [f for f in self.features
            if isinstance(f, CategoricalFeature) or (isinstance(f, DenseFeature) and f.is_categorical)]

  @property
  def sequence_features(self) -> list:
    return [f for f in self.features if isinstance(f, SequenceFeature)]

  @property
  def is_fitted(self) -> bool:
    return all(f.is_fitted for f in self.features)

  def __getitem__(self, name: str) -> Feature:
    for f in self.features:
      if f.name == name:
        return f
    raise KeyError(f"no feature named {name!r} in spec {self.name!r}; have {self.feature_names}")

  def replace(self, **changes) -> "FeatureSpec":
    return dataclasses.replace(self, **changes)

  def with_features(self, features: Iterable[Feature]) -> "FeatureSpec":
    return dataclasses.replace(self, features=tuple(features))

  def with_embedding_dim(self, dim: int) -> "FeatureSpec":
    """The same spec with every id feature's embedding_dim set to `dim`."""
    return self.with_features(
        dataclasses.replace(f, embedding_dim=dim)
        if isinstance(f, SequenceFeature) or f.is_categorical else f
        for f in self.features)

  def input_dtype(self, feature: Feature):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if isinstance(feature, SequenceFeature) or feature.is_categorical:
      return tf.int64
    return tf.float32

  def input_shape(self, feature: Feature) -> tuple:
    """Per-example input shape (no batch dimension)."""
    if isinstance(feature, SequenceFeature):
      return (feature.max_len,)
    return ()

  def keras_inputs(self) -> dict:
    """A dict of `tf.keras.Input`s, one per feature, for functional models."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return {f.name: tf.keras.Input(shape=self.input_shape(f), dtype=self.input_dtype(f), name=f.name)
            for f in self.features}

  def tensor_specs(self) -> dict:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return {f.name: tf.TensorSpec((None,) + self.input_shape(f), self.input_dtype(f), name=f.name)
            for f in self.features}

  def embedding_tables(self) -> list:
    """(name, num_ids, embedding_dim) for every id-valued feature, in spec order.

    A sequence that shares another feature's vocabulary has no table of its own.
    """
    out = []
    for f in self.features:
      if isinstance(f, SequenceFeature) and f.shares_vocabulary_with:
        continue
      if isinstance(f, (CategoricalFeature, SequenceFeature)) or f.is_categorical:
        out.append((f.name, f.num_ids, f.embedding_dim))
    return out

  def num_ids(self, name: str) -> int:
    """Rows in the table behind feature `name` (follows shares_vocabulary_with)."""
    f = self[name]
    if isinstance(f, SequenceFeature) and f.shares_vocabulary_with:
      return self[f.shares_vocabulary_with].num_ids
    return f.num_ids

  # --- JSON ---------------------------------------------------------------
  def to_dict(self) -> dict:
    out = {"name": self.name, "label": self.label,
           "features": [_feature_to_dict(f) for f in self.features]}
    if self.columns is not None:
      out["columns"] = list(self.columns)
    return out

  def to_json(self, indent: Optional[int] = 1) -> str:
    return json.dumps(self.to_dict(), indent=indent)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "FeatureSpec":
    if not isinstance(d, Mapping):
      raise SpecError(f"FeatureSpec JSON must be an object, got {type(d).__name__}")
    unknown = sorted(set(d) - {"name", "label", "features", "columns"})
    if unknown:
      raise SpecError(f"FeatureSpec: unknown keys {unknown}; allowed: ['columns', 'features', "
                      "'label', 'name']")
    if not isinstance(d.get("features"), list):
      raise SpecError("FeatureSpec: 'features' must be a list")
    for key in ("name", "label"):
      if key in d and not isinstance(d[key], str):
        raise SpecError(f"FeatureSpec: {key} must be a string, got {d[key]!r}")
    columns = d.get("columns")
    if columns is not None and not (isinstance(columns, list)
                                    and all(isinstance(c, str) for c in columns)):
      raise SpecError(f"FeatureSpec: columns must be a list of strings, got {columns!r}")
    features = tuple(_feature_from_dict(f, f"features[{i}]") for i, f in enumerate(d["features"]))
    return cls(features=features, label=d.get("label", "label"), name=d.get("name", "custom"),
               columns=tuple(columns) if columns is not None else None)

  @classmethod
  def from_json(cls, text: str) -> "FeatureSpec":
    try:
      d = json.loads(text)
    except json.JSONDecodeError as e:
      raise SpecError(f"FeatureSpec JSON does not parse: {e}") from e
    return cls.from_dict(d)

  def save(self, path: str) -> None:
    """Writes the spec as JSON to `path` (a file, or a directory -> spec.json)."""
    if os.path.isdir(path):
      path = os.path.join(path, "spec.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
      fh.write(self.to_json())
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str) -> "FeatureSpec":
    if os.path.isdir(path):
      path = os.path.join(path, "spec.json")
    try:
      with open(path) as fh:
        text = fh.read()
    except OSError as e:
      raise SpecError(f"cannot read feature spec {path}: {e}") from e
    try:
      return cls.from_json(text)
    except SpecError as e:
      raise SpecError(f"{path}: {e}") from e
