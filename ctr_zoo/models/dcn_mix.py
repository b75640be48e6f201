"""`dcn_mix`: DCN-Mix (mixture of low-rank cross experts, DCN-V2 paper Eqs. 3-4)."""

from __future__ import annotations

import dataclasses

from ctr_zoo import checks
from ctr_zoo.layers import cross_net_mix as mix_lib
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.dcn_v2 import CrossNetworkModel, check_cross
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class DCNMixConfig:
  """Config of `dcn_mix`.

  x_{l+1} = sum_i G_i(x_l) x0 (.) (U_l^i g(C_l^i g(V_l^{iT} x_l)) + b_l) + x_l.

  Args:
    structure: str. "stacked" or "parallel". Defaults to "stacked".
    num_cross_layers: int. Defaults to 3.
    num_experts: int. K. Defaults to 4.
    low_rank: int. r. Defaults to 32 (the paper's setting).
    cross_l2: float. L2 on U, V, C. Defaults to 0.0.
    embedding: EmbeddingConfig. Width, L2 and table layout.
    tower: TowerConfig. The MLP. Defaults to 3 x 400 with dropout 0.2.
  """
  structure: str = "stacked"
  num_cross_layers: int = 3
  num_experts: int = 4
  low_rank: int = 32
  cross_l2: float = 0.0
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)
  tower: base.TowerConfig = dataclasses.field(default_factory=base.TowerConfig)

  def __post_init__(self):
    check_cross("DCNMixConfig", self)
    checks.positive_int(self.num_experts, "DCNMixConfig.num_experts", error=base.ModelConfigError)
    checks.positive_int(self.low_rank, "DCNMixConfig.low_rank", error=base.ModelConfigError)


@register_model("dcn_mix")
class DCNMix(CrossNetworkModel):
  """DCN-V2 with a mixture of low-rank experts per cross layer (DCN-Mix).

  Paper: R. Wang et al., "DCN V2", WWW'21 (arXiv 2008.13535), Eqs. 3-4.
  """
  config_class = DCNMixConfig

  @classmethod
  def cross_layer(cls, config):
    return mix_lib.CrossNetMix(
        config.num_cross_layers, num_experts=config.num_experts, low_rank=config.low_rank,
        kernel_regularizer=parts_lib.l2_or_none(config.cross_l2), name="cross_mix")
