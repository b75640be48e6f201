"""Criteo display-advertising constants and the standard 13 + 26 spec."""

from ctr_zoo.feature_columns import integers
from ctr_zoo.feature_columns.spec import CategoricalFeature, FeatureSpec

NUM_INT_FIELDS = 13
NUM_CAT_FIELDS = 26
LABEL = "label"
INT_FIELDS = tuple(f"I{i}" for i in range(1, NUM_INT_FIELDS + 1))
CAT_FIELDS = tuple(f"C{i}" for i in range(1, NUM_CAT_FIELDS + 1))
# Raw column order of Kaggle train.txt / dac_sample.txt / Criteo 1TB day_N.
RAW_COLUMNS = (LABEL,) + INT_FIELDS + CAT_FIELDS
NUM_RAW_COLUMNS = len(RAW_COLUMNS)  # 40


def criteo_spec(dense_transform: str = "log1p", min_count: int = 1,
                embedding_dim: int = 16, hash_buckets=None, integer_encoding: str = "",
                num_buckets: int = integers.DEFAULT_QUANTILE_BUCKETS) -> FeatureSpec:
  """The standard, unfitted Criteo spec: label, I1..I13, C1..C26.

  Args:
    dense_transform: str. Transform of the 13 integer fields when
      `integer_encoding` is "": "log1p" (as in the DCN-V2 paper), "bucketize"
      (as in BARS Criteo_x4), "standardize", "log1p_standardize", "quantile"
      or "none". Defaults to "log1p".
    min_count: int. Vocabulary threshold for the categorical (and bucketized)
      fields (BARS Criteo_x4 uses 10). Defaults to 1.
    embedding_dim: int. Embedding width of every id field. Defaults to 16.
    hash_buckets: int or None. If set, categorical fields are hashed into this
      many buckets instead of using a fitted vocabulary. Defaults to None.
    integer_encoding: str. One of `integers.INTEGER_ENCODINGS`: "" keeps
      `dense_transform`; "continuous+bucketize" gives each integer field a
      float input I<k> and an id input I<k>_bucket. Defaults to "".
    num_buckets: int. Buckets of the "quantile" encodings. Defaults to 16.
  """
  dense = [f for name in INT_FIELDS for f in integers.integer_features(
      name, integer_encoding, dense_transform=dense_transform, min_count=min_count,
      embedding_dim=embedding_dim, num_buckets=num_buckets)]
  cats = [CategoricalFeature(name, hash_buckets=hash_buckets, min_count=min_count,
                             embedding_dim=embedding_dim) for name in CAT_FIELDS]
  return FeatureSpec(features=tuple(dense + cats), label=LABEL, name="criteo")
