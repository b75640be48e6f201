"""Encodings of an integer field: continuous, bucketized ids, or both at once.

The 2014 Criteo winners (Juan et al., field-aware FMs) turned each integer
field into categorical ids: v > 2 -> floor(ln(v)^2), small values kept as
they are; DCN-V2 (Wang et al., 2021) used log(1 + v) as a float. Both are
offered per integer field, and so is the pair (the model gets a float input
and an id input for the field):

- "" (the default): one `DenseFeature` with the given `dense_transform`
  ("log1p", "standardize", "log1p_standardize", "none", "bucketize",
  "quantile"), as before integer encodings were a setting;
- "continuous": log(1 + max(v, 0)), standardized with the mean and std fitted
  on the training rows (`transform="log1p_standardize"`);
- "bucketize": the ids of the floor(ln(v)^2) buckets (a vocabulary fitted like
  a categorical field's: rare buckets -> OOV);
- "quantile": the ids of `num_buckets` quantile buckets fitted on the
  training rows;
- "continuous+bucketize", "continuous+quantile": both features, the float
  named like the field and the ids named `<field>_bucket` (reading the same
  raw column through `source`).

A missing value is MISSING_ID (0) for every id encoding, and 0 (the fitted
mean) for the continuous one.
"""

from __future__ import annotations

from typing import List, Optional

from ctr_zoo import checks
from ctr_zoo.feature_columns import spec as spec_lib

INTEGER_ENCODINGS = ("", "continuous", "bucketize", "quantile", "continuous+bucketize",
                     "continuous+quantile")
BUCKET_SUFFIX = "_bucket"
DEFAULT_QUANTILE_BUCKETS = 16
_TRANSFORM = {"continuous": "log1p_standardize", "bucketize": "bucketize", "quantile": "quantile"}


def integer_features(name: str, encoding: str = "", *, dense_transform: str = "log1p",
                     min_count: int = 1, embedding_dim: int = 16,
                     num_buckets: int = DEFAULT_QUANTILE_BUCKETS,
                     value_type: str = "int", source: Optional[str] = None,
                     error=spec_lib.SpecError) -> List[spec_lib.DenseFeature]:
  """The feature(s) of one integer field under `encoding` (see the module doc).

  Args:
    name: str. The field (raw column) name.
    encoding: str. One of INTEGER_ENCODINGS. Defaults to "".
    dense_transform: str. The transform when `encoding` is "". Defaults to "log1p".
    min_count: int. Vocabulary threshold of "bucketize" ids. Defaults to 1.
    embedding_dim: int. Embedding width of id features. Defaults to 16.
    num_buckets: int. Buckets of "quantile". Defaults to 16.
    value_type: str. "int" or "float" raw grammar. Defaults to "int".
    source: str or None. The raw column when it is not `name`. Defaults to None.
    error: the exception type of a bad argument. Defaults to SpecError.
  """
  checks.choice(encoding, "integer_encoding", INTEGER_ENCODINGS, error=error)
  common = dict(min_count=min_count, embedding_dim=embedding_dim, num_buckets=num_buckets,
                value_type=value_type)
  if not encoding:
    return [spec_lib.DenseFeature(name, transform=dense_transform, source=source, **common)]
  parts = encoding.split("+")
  if len(parts) == 1:
    return [spec_lib.DenseFeature(name, transform=_TRANSFORM[parts[0]], source=source, **common)]
  return [spec_lib.DenseFeature(name, transform=_TRANSFORM[parts[0]], source=source, **common),
          spec_lib.DenseFeature(name + BUCKET_SUFFIX, transform=_TRANSFORM[parts[1]],
                                source=source or name, **common)]
