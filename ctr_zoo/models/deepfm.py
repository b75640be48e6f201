"""`deepfm`: DeepFM (Guo et al., IJCAI'17)."""

from __future__ import annotations

import dataclasses

from ctr_zoo import checks
from ctr_zoo.layers import fm as fm_lib
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class DeepFMConfig:
  """Config of `deepfm`.

  logit = first order + sum_{i<j} <e_i, e_j> + w^T MLP(flatten(X)) + b,
  X (B, n, d) shared by the FM and the DNN.

  Args:
    linear_l2: float. L2 on looked-up first-order weights. Defaults to 0.0.
    embedding: EmbeddingConfig. Width, L2 and table layout.
    tower: TowerConfig. The DNN. Defaults to 3 x 400 with dropout 0.2.
  """
  linear_l2: float = 0.0
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)
  tower: base.TowerConfig = dataclasses.field(default_factory=base.TowerConfig)

  def __post_init__(self):
    checks.non_negative(self.linear_l2, "DeepFMConfig.linear_l2", error=base.ModelConfigError)


@register_model("deepfm")
class DeepFM(base.CTRModel):
  """FM and a DNN over the same field embeddings; logits added.

  Needs one embedding width for every id feature.
  Paper: H. Guo et al., "DeepFM: A Factorization-Machine based Neural Network
  for CTR Prediction", IJCAI'17.
  """
  config_class = DeepFMConfig

  @classmethod
  def build_logit(cls, parts, config):
    fields = parts.field_stack(owner="deepfm")
    second = fm_lib.FactorizationMachine(name="fm")(parts.fm_input(fields))  # X (B, n, d) -> (B, 1)
    deep = parts_lib.head(parts.field_tower(fields, config.tower))  # MLP(flatten(X)) -> (B, 1)
    first = parts.linear_logit(config.linear_l2)  # (B, 1)
    return parts_lib.sum_of_logits([first, second, deep], "deepfm_logit")
