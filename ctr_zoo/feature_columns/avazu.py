"""Avazu mobile-ads CTR data (Kaggle 2014): the raw columns and the standard spec."""

from ctr_zoo.feature_columns.spec import CategoricalFeature, FeatureSpec

LABEL = "click"
# The header of the Kaggle train.csv.
RAW_COLUMNS = ("id", "click", "hour", "C1", "banner_pos", "site_id", "site_domain",
               "site_category", "app_id", "app_domain", "app_category", "device_id", "device_ip",
               "device_model", "device_type", "device_conn_type", "C14", "C15", "C16", "C17",
               "C18", "C19", "C20", "C21")
IGNORED = ("id", "hour")  # a row id; `hour` is read through its derived fields
CAT_FIELDS = tuple(c for c in RAW_COLUMNS if c not in IGNORED + (LABEL,))


def avazu_spec(min_count: int = 1, embedding_dim: int = 16, hash_buckets=None) -> FeatureSpec:
  """The unfitted Avazu spec: 21 categorical fields plus hour of day and weekday.

  As in the BARS Avazu pipelines: `id` is dropped; `hour` (YYMMDDHH) gives
  `hour_of_day` ("0".."23") and `weekday` ("0" = Monday .. "6"); every other
  column, the small integers used as ids (C1, banner_pos, C14..C21, ...)
  included, is categorical. The label is `click`.

  Args:
    min_count: int. Vocabulary threshold (BARS Avazu_x4 uses 2). Defaults to 1.
    embedding_dim: int. Embedding width of every field. Defaults to 16.
    hash_buckets: int or None. Hash the categorical values into this many
      buckets instead of a fitted vocabulary. Defaults to None.
  """
  common = dict(min_count=min_count, embedding_dim=embedding_dim, hash_buckets=hash_buckets)
  features = [CategoricalFeature(name, **common) for name in CAT_FIELDS]
  features += [CategoricalFeature("hour_of_day", source="hour", derive="hour_of_day", **common),
               CategoricalFeature("weekday", source="hour", derive="weekday", **common)]
  return FeatureSpec(features=tuple(features), label=LABEL, name="avazu", columns=RAW_COLUMNS)
