"""Declarative feature specs: what each raw field is and how it becomes an input.

Built-in specs (`criteo_spec`, `avazu_spec`, `frappe_spec`), the integer
encodings (`integers`) and schema files (`schema.load_spec`) build them.
"""

from ctr_zoo.feature_columns.avazu import avazu_spec
from ctr_zoo.feature_columns.criteo import criteo_spec
from ctr_zoo.feature_columns.frappe import frappe_spec
from ctr_zoo.feature_columns.integers import INTEGER_ENCODINGS, integer_features
from ctr_zoo.feature_columns.schema import BUILTIN_SPECS, builtin_spec, load_spec
from ctr_zoo.feature_columns.spec import (
    DENSE_TRANSFORMS, DERIVATIONS, MISSING_ID, NUM_RESERVED_IDS, OOV_ID, PAD_ID,
    CategoricalFeature, DenseFeature, FeatureSpec, SequenceFeature, SpecError,
    bucketize_value)

__all__ = [
    "BUILTIN_SPECS", "DENSE_TRANSFORMS", "DERIVATIONS", "INTEGER_ENCODINGS", "MISSING_ID",
    "NUM_RESERVED_IDS", "OOV_ID", "PAD_ID", "CategoricalFeature", "DenseFeature", "FeatureSpec",
    "SequenceFeature", "SpecError", "avazu_spec", "bucketize_value", "builtin_spec",
    "criteo_spec", "frappe_spec", "integer_features", "load_spec",
]
