"""`gdcn`: the Gated Deep Cross Network (Wang et al., CIKM'23), stacked or parallel."""

from __future__ import annotations

import dataclasses

from ctr_zoo.layers import gated_cross_net as gated_lib
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.dcn_v2 import CrossNetworkModel, check_cross
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class GDCNConfig:
  """Config of `gdcn`: DCN-V2's assembly with the gated cross network.

  x_{l+1} = x0 (.) (W_l x_l + b_l) (.) sigma(W^g_l x_l) + x_l, then (stacked,
  GDCN-S) logit = w^T MLP(x_L) + b or (parallel, GDCN-P) w^T [x_L; MLP(x0)] + b.

  Args:
    structure: str. "stacked" or "parallel". Defaults to "stacked".
    num_cross_layers: int. Defaults to 3.
    cross_l2: float. L2 on W and W^g. Defaults to 0.0.
    embedding: EmbeddingConfig. Width, L2 and table layout (`field_dimensions`
      gives the paper's per-field widths from a trained model).
    tower: TowerConfig. The MLP. Defaults to 3 x 400 with dropout 0.2.
  """
  structure: str = "stacked"
  num_cross_layers: int = 3
  cross_l2: float = 0.0
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)
  tower: base.TowerConfig = dataclasses.field(default_factory=base.TowerConfig)

  def __post_init__(self):
    check_cross("GDCNConfig", self)


@register_model("gdcn")
class GDCN(CrossNetworkModel):
  """Gated Deep Cross Network: each cross term weighed by a learned information gate.

  Paper: F. Wang, H. Gu, D. Li, T. Lu, P. Zhang, N. Gu, "Towards Deeper,
  Lighter and Interpretable Cross Network for CTR Prediction", CIKM'23
  (arXiv 2311.04635).
  """
  config_class = GDCNConfig

  @classmethod
  def cross_layer(cls, config):
    return gated_lib.GatedCrossNet(config.num_cross_layers,
                                   kernel_regularizer=parts_lib.l2_or_none(config.cross_l2),
                                   name="gated_cross")
