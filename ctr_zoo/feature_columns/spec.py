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
- "bucketize" (Criteo-style, as in the Kaggle winners' and BARS pipelines):
  the integer x becomes the token str(floor(ln(x)^2)) if x > 2 else str(int(x));
  the token then gets a vocabulary id exactly like a categorical value
  (missing -> MISSING_ID, rare or unseen -> OOV_ID).
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

DENSE_TRANSFORMS = ("none", "log1p", "standardize", "bucketize")


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
    name: str. Field name (raw column name).
    transform: str. One of "none", "log1p", "standardize", "bucketize".
      Defaults to "log1p".
    mean: float. Fitted mean (used by "standardize"). Defaults to 0.
    std: float. Fitted standard deviation (used by "standardize"). Defaults to 1.
    min_count: int. For "bucketize": buckets seen fewer times map to OOV_ID.
      Defaults to 1.
    vocabulary: tuple of bucket tokens, fitted (for "bucketize"). Defaults to None.
    embedding_dim: int. Embedding width when bucketized. Defaults to 16.
  """
  name: str
  transform: str = "log1p"
  mean: float = 0.0
  std: float = 1.0
  min_count: int = 1
  vocabulary: Optional[tuple] = None
  embedding_dim: int = 16

  def __post_init__(self):
    _check_name("DenseFeature", self.name)
    checks.choice(self.transform, f"DenseFeature {self.name!r}: transform", DENSE_TRANSFORMS,
                  error=SpecError)
    checks.positive(self.std, f"DenseFeature {self.name!r}: std", error=SpecError)
    _check_positive_int(f"DenseFeature {self.name!r}", "min_count", self.min_count)
    _check_positive_int(f"DenseFeature {self.name!r}", "embedding_dim", self.embedding_dim)
    _check_vocab(f"DenseFeature {self.name!r}", self.vocabulary)

  @property
  def is_categorical(self) -> bool:
    """True when the transform turns the value into an id ("bucketize")."""
    return self.transform == "bucketize"

  @property
  def is_fitted(self) -> bool:
    return not self.is_categorical or self.vocabulary is not None

  @property
  def hash_buckets(self) -> None:
    return None

  @property
  def num_ids(self) -> int:
    """Number of distinct ids (embedding rows) when bucketized."""
    if not self.is_categorical:
      raise SpecError(f"DenseFeature {self.name!r} with transform {self.transform!r} has no ids")
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
  """
  name: str
  vocabulary: Optional[tuple] = None
  hash_buckets: Optional[int] = None
  min_count: int = 1
  embedding_dim: int = 16
  max_vocab_size: Optional[int] = None

  def __post_init__(self):
    kind = f"CategoricalFeature {self.name!r}"
    _check_name("CategoricalFeature", self.name)
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

  def __post_init__(self):
    kind = f"SequenceFeature {self.name!r}"
    _check_name("SequenceFeature", self.name)
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


def _feature_to_dict(feature: Feature) -> dict:
  out = {"kind": _KIND_OF[type(feature)]}
  for f in dataclasses.fields(feature):
    value = getattr(feature, f.name)
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
  for key in ("mean", "std"):
    if key in d and isinstance(d[key], int) and not isinstance(d[key], bool):
      d[key] = float(d[key])
    if key in d and not isinstance(d[key], float):
      raise SpecError(f"{where}: {key} must be a number, got {d[key]!r}")
  for key in ("transform", "separator", "shares_vocabulary_with"):
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
    features: tuple of features, in raw-column order (after the label).
    label: str. Name of the 0/1 label column. Defaults to "label".
    name: str. A short name for logs and file names. Defaults to "custom".
  """
  features: tuple
  label: str = "label"
  name: str = "custom"

  def __post_init__(self):
    if not isinstance(self.features, tuple):
      object.__setattr__(self, "features", tuple(self.features))
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

  # --- views --------------------------------------------------------------
  @property
  def feature_names(self) -> list:
    return [f.name for f in self.features]

  @property
  def raw_columns(self) -> list:
    """Raw column order of a headerless file: the label, then the features."""
    return [self.label] + self.feature_names

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
    return {"name": self.name, "label": self.label,
            "features": [_feature_to_dict(f) for f in self.features]}

  def to_json(self, indent: Optional[int] = 1) -> str:
    return json.dumps(self.to_dict(), indent=indent)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "FeatureSpec":
    if not isinstance(d, Mapping):
      raise SpecError(f"FeatureSpec JSON must be an object, got {type(d).__name__}")
    unknown = sorted(set(d) - {"name", "label", "features"})
    if unknown:
      raise SpecError(f"FeatureSpec: unknown keys {unknown}; allowed: ['features', 'label', 'name']")
    if not isinstance(d.get("features"), list):
      raise SpecError("FeatureSpec: 'features' must be a list")
    for key in ("name", "label"):
      if key in d and not isinstance(d[key], str):
        raise SpecError(f"FeatureSpec: {key} must be a string, got {d[key]!r}")
    features = tuple(_feature_from_dict(f, f"features[{i}]") for i, f in enumerate(d["features"]))
    return cls(features=features, label=d.get("label", "label"), name=d.get("name", "custom"))

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
