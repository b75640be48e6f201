"""`dcn_mix`: DCN-Mix (mixture of low-rank cross experts, DCN-V2 paper Eqs. 3-4)."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from ctr_zoo.layers import cross_net_mix as mix_lib
from ctr_zoo.models import base
from ctr_zoo.models import blocks
from ctr_zoo.models import dnn as dnn_lib
from ctr_zoo.models.dcn_v2 import STRUCTURES
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class DCNMixConfig:
  """Config of `dcn_mix`.

  x_{l+1} = sum_i G_i(x_l) x0 (.) (U_l^i g(C_l^i g(V_l^{iT} x_l)) + b_l) + x_l,
  then (stacked) logit = w^T MLP(x_L) + b or (parallel) w^T [x_L; MLP(x0)] + b.

  Args:
    structure: str. "stacked" or "parallel". Defaults to "stacked".
    num_cross_layers: int. Defaults to 3.
    num_experts: int. K. Defaults to 4.
    low_rank: int. r. Defaults to 32 (as in DeepCTR / the paper's setting).
    dnn_dims: tuple of int. Defaults to (400, 400, 400).
    dropout: float. Defaults to 0.2.
    batch_norm: bool. Defaults to False.
    activation: str. MLP activation. Defaults to "relu".
    embedding_l2: float. Defaults to 1e-5.
    cross_l2: float. L2 on U, V, C. Defaults to 0.0.
  """
  structure: str = "stacked"
  num_cross_layers: int = 3
  num_experts: int = 4
  low_rank: int = 32
  dnn_dims: Tuple[int, ...] = (400, 400, 400)
  dropout: float = 0.2
  batch_norm: bool = False
  activation: str = "relu"
  embedding_l2: float = 1e-5
  cross_l2: float = 0.0

  def __post_init__(self):
    owner = "DCNMixConfig"
    base.check_choice(owner, "structure", self.structure, STRUCTURES)
    base.check_positive_int(owner, "num_cross_layers", self.num_cross_layers)
    base.check_positive_int(owner, "num_experts", self.num_experts)
    base.check_positive_int(owner, "low_rank", self.low_rank)
    base.check_non_negative(owner, "cross_l2", self.cross_l2)
    dnn_lib.check_tower(owner, self)


@register_model("dcn_mix")
class DCNMix(base.CTRModel):
  """DCN-V2 with a mixture of low-rank experts per cross layer (DCN-Mix).

  Paper: R. Wang et al., "DCN V2", WWW'21 (arXiv 2008.13535), Eqs. 3-4.
  """
  config_class = DCNMixConfig

  @classmethod
  def build_logit(cls, inputs, spec, config):
    x0 = blocks.flat_input(inputs, spec, config.embedding_l2)  # (B, D)
    cross = mix_lib.CrossNetMix(
        config.num_cross_layers, num_experts=config.num_experts, low_rank=config.low_rank,
        kernel_regularizer=blocks.l2_or_none(config.cross_l2), name="cross_mix")(x0)  # (B, D)
    if config.structure == "stacked":
      return blocks.dense_logit(dnn_lib.tower(cross, config))
    deep = dnn_lib.tower(x0, config)
    return blocks.dense_logit(blocks.concat([cross, deep], name="cross_and_deep"))
