"""Field-level dimension optimisation (GDCN's FDO): per-field widths from trained tables.

Train once with one width for every field (say 16), then give each field the
smallest width k whose first k principal components keep `variance_ratio` of
its table's variance, and train again with those widths:

  dims = field_dimensions(trained_model)                  # {"C1": 3, "C2": 11, ...}
  spec = with_field_dimensions(trained_model.spec, dims)
  model = models.build("gdcn", spec, embedding={"dim": None})   # keep the per-field widths

Fields whose values carry little signal collapse to a few dimensions, which
cuts the embedding and cross-network parameters (the cross kernels are
D x D with D the sum of the widths).

Paper: F. Wang et al., "Towards Deeper, Lighter and Interpretable Cross
Network for CTR Prediction", CIKM'23, Section 3.3 (FDO).
"""

from __future__ import annotations

import dataclasses
from typing import Dict

import numpy as np

from ctr_zoo import checks
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.layers import embedding as embedding_lib


def pca_dimension(table: np.ndarray, variance_ratio: float = 0.8) -> int:
  """The least k whose top-k principal components keep `variance_ratio` of the variance.

  Args:
    table: (V, d) array. The embedding rows (reserved rows excluded by the caller).
    variance_ratio: float in (0, 1]. Defaults to 0.8 (the paper's choice).

  Returns:
    int in [1, d]; 1 for a table with no variance.
  """
  checks.positive(variance_ratio, "variance_ratio")
  checks.probability(variance_ratio, "variance_ratio")
  rows = np.asarray(table, np.float64)
  centered = rows - rows.mean(axis=0, keepdims=True)
  singular = np.linalg.svd(centered, compute_uv=False)  # descending
  variance = singular ** 2
  total = variance.sum()
  if total <= 0:
    return 1
  kept = np.cumsum(variance) / total  # (min(V, d),)
  return int(min(np.searchsorted(kept, variance_ratio - 1e-12) + 1, rows.shape[1]))


def field_dimensions(model, variance_ratio: float = 0.8) -> Dict[str, int]:
  """{feature: k} for every per-field table of `model`'s embedding layers.

  Reads the tables of the model's `FeatureEmbedding` layers that are named
  like features of its spec (per-field layout; rows 0 and 1, the missing and
  out-of-vocabulary ids, are left out of the PCA).
  """
  names = set(model.spec.feature_names)
  out = {}
  for layer in model.submodules:
    if not isinstance(layer, embedding_lib.FeatureEmbedding) or not layer.built or layer.fused:
      continue
    if layer.name != "embedding":
      continue  # e.g. co-action tables or a LinearLogit's weights
    for (table, _, _), variable in zip(layer.tables, layer.table_variables):
      if table in names:
        rows = variable.numpy()[spec_lib.NUM_RESERVED_IDS:]
        out[table] = pca_dimension(rows if len(rows) else variable.numpy(), variance_ratio)
  return out


def with_field_dimensions(spec: spec_lib.FeatureSpec, dims: Dict[str, int]) -> spec_lib.FeatureSpec:
  """`spec` with each feature in `dims` given that embedding width."""
  unknown = sorted(set(dims) - set(spec.feature_names))
  if unknown:
    raise spec_lib.SpecError(f"with_field_dimensions: {unknown} are not features of the spec")
  return spec.with_features(
      dataclasses.replace(f, embedding_dim=checks.positive_int(dims[f.name], f"dims[{f.name!r}]"))
      if f.name in dims else f for f in spec.features)
