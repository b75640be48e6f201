"""`wide_deep`: Wide & Deep (Cheng et al., DLRS'16)."""

from __future__ import annotations

import dataclasses

from ctr_zoo import checks
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class WideDeepConfig:
  """Config of `wide_deep`.

  logit = [sum_f w_f[id_f] + v^T x + b]  (wide)  +  w^T MLP(x0)  (deep)

  Args:
    linear_l2: float. L2 on looked-up wide weights. Defaults to 0.0.
    embedding: EmbeddingConfig. Width, L2 and table layout.
    tower: TowerConfig. The deep part. Defaults to 3 x 400 with dropout 0.2.
  """
  linear_l2: float = 0.0
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)
  tower: base.TowerConfig = dataclasses.field(default_factory=base.TowerConfig)

  def __post_init__(self):
    checks.non_negative(self.linear_l2, "WideDeepConfig.linear_l2", error=base.ModelConfigError)


@register_model("wide_deep")
class WideDeep(base.CTRModel):
  """A sparse linear (wide) logit plus a DNN (deep) logit, trained jointly.

  Paper: H.-T. Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS'16.
  """
  config_class = WideDeepConfig

  @classmethod
  def build_logit(cls, parts, config):
    wide = parts.linear_logit(config.linear_l2)  # (B, 1)
    deep = parts_lib.stacked(parts.flat_input(), config.tower)  # (B, 1)
    return parts_lib.sum_of_logits([wide, deep], "wide_plus_deep")
