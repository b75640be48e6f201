"""`lr`: the FTRL logistic regression of McMahan et al., KDD'13."""

from __future__ import annotations

import dataclasses

from ctr_zoo import checks
from ctr_zoo.models import base
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class LRConfig:
  """Config of `lr`.

  logit = b + sum_f w_f[id_f] + sum_j v_j x_j   (sparse per-id weights)

  Args:
    l2: float. L2 penalty on the looked-up per-id weights and the dense
      weights (as a layer loss). Defaults to 0.0: regularise with FTRL's
      l1/l2 instead (the trainer's FTRL for `lr`, as in the paper).
  """
  l2: float = 0.0

  def __post_init__(self):
    checks.non_negative(self.l2, "LRConfig.l2", error=base.ModelConfigError)


@register_model("lr")
class LogisticRegression(base.CTRModel):
  """Sparse logistic regression: one scalar weight per id, plus dense weights.

  Inputs: the spec's feature dict. Output: click probability (B, 1).
  Meant to train with FTRL on every variable (`default_optimizers`).

  Paper: H. B. McMahan et al., "Ad Click Prediction: a View from the
  Trenches", KDD'13.
  """
  config_class = LRConfig
  default_optimizers = {"embedding": "ftrl", "dense": "ftrl"}

  @classmethod
  def build_logit(cls, parts, config):
    return parts.linear_logit(config.l2)  # (B, 1)
