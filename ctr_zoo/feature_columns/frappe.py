"""Frappe app-usage CTR data (Baltrunas et al., 2015) in the libFM layout of the NFM release."""

from ctr_zoo.feature_columns.spec import CategoricalFeature, FeatureSpec

LABEL = "label"
# The 10 one-hot fields, in the order their items appear on every line of the
# libFM files of He & Chua's NFM release (and BARS Frappe_x1).
FIELDS = ("user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather",
          "country", "city")
RAW_COLUMNS = (LABEL,) + FIELDS


def frappe_spec(min_count: int = 1, embedding_dim: int = 16, hash_buckets=None) -> FeatureSpec:
  """The unfitted Frappe spec: 10 categorical (one-hot) fields.

  The libFM files carry globally indexed feature ids, one item per field on
  every line, in the order of `FIELDS`, so the libFM reader assigns fields by
  position (see `ctr_zoo.datasets.readers`); a feature's raw value is its
  feature id.

  Args:
    min_count: int. Vocabulary threshold. Defaults to 1.
    embedding_dim: int. Embedding width of every field. Defaults to 16.
    hash_buckets: int or None. Hash the ids instead of a fitted vocabulary.
      Defaults to None.
  """
  features = tuple(CategoricalFeature(name, min_count=min_count, embedding_dim=embedding_dim,
                                      hash_buckets=hash_buckets) for name in FIELDS)
  return FeatureSpec(features=features, label=LABEL, name="frappe", columns=RAW_COLUMNS)
