"""`dcn`: the original Deep & Cross Network (Wang et al., ADKDD'17), vector cross layers."""

from __future__ import annotations

import dataclasses

from ctr_zoo import checks
from ctr_zoo.layers import cross_net_v1 as cross_v1_lib
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.dcn_v2 import CrossNetworkModel
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class DCNConfig:
  """Config of `dcn`.

  x0 = [e_1; ..; e_n; x_dense] (B, D);  x_{l+1} = x0 (w_l^T x_l) + b_l + x_l
  (w_l, b_l in R^D); the cross network and the DNN run side by side on x0:
    logit = w^T [x_L; MLP(x0)] + b,  or w^T x_L + b with no tower ("cross only").

  The tower defaults follow the paper's best Criteo setting (Section 4.3: 6
  cross layers, 2 deep layers of 1024, batch norm in the deep network). The
  paper regularised by early stopping only; the zoo's usual dropout and
  embedding L2 are kept here so small data does not overfit.

  Args:
    num_cross_layers: int. L, the number of vector cross layers. Defaults to 6.
    cross_l2: float. L2 on the cross kernels w_l. Defaults to 0.0.
    embedding: EmbeddingConfig. Width, L2 and table layout.
    tower: TowerConfig. The deep network; dims () = cross network only.
      Defaults to 2 x 1024 with batch norm and dropout 0.2.
  """
  num_cross_layers: int = 6
  cross_l2: float = 0.0
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)
  tower: base.TowerConfig = dataclasses.field(
      default_factory=lambda: base.TowerConfig(dims=(1024, 1024), batch_norm=True))
  structure = "parallel"  # the paper's only structure (not a field)

  def __post_init__(self):
    checks.positive_int(self.num_cross_layers, "DCNConfig.num_cross_layers",
                        error=base.ModelConfigError)
    checks.non_negative(self.cross_l2, "DCNConfig.cross_l2", error=base.ModelConfigError)


@register_model("dcn")
class DCN(CrossNetworkModel):
  """Deep & Cross Network (v1): a vector cross network parallel to a DNN.

  The combination layer concatenates the cross network's output x_L (B, D)
  and the DNN's last hidden layer (B, h) and maps them to the logit with one
  dense layer ("head").

  Paper: R. Wang, B. Fu, G. Fu, M. Wang, "Deep & Cross Network for Ad Click
  Predictions", ADKDD'17 (arXiv 1708.05123), Eqs. 3-5.
  """
  config_class = DCNConfig

  @classmethod
  def cross_layer(cls, config):
    return cross_v1_lib.VectorCrossNet(
        config.num_cross_layers, kernel_regularizer=parts_lib.l2_or_none(config.cross_l2),
        name="cross")

  @classmethod
  def build_logit(cls, parts, config):
    if config.tower.dims:
      return super().build_logit(parts, config)
    return parts_lib.head(cls.cross_layer(config)(parts.flat_input()))  # cross only
