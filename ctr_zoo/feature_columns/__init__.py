"""Declarative feature specs: what each raw field is and how it becomes an input."""

from ctr_zoo.feature_columns.criteo import criteo_spec
from ctr_zoo.feature_columns.spec import (
    DENSE_TRANSFORMS, MISSING_ID, NUM_RESERVED_IDS, OOV_ID, PAD_ID,
    CategoricalFeature, DenseFeature, FeatureSpec, SequenceFeature, SpecError,
    bucketize_value)

__all__ = [
    "DENSE_TRANSFORMS", "MISSING_ID", "NUM_RESERVED_IDS", "OOV_ID", "PAD_ID",
    "CategoricalFeature", "DenseFeature", "FeatureSpec", "SequenceFeature",
    "SpecError", "bucketize_value", "criteo_spec",
]
