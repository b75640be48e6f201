"""`dcn_v2`: DCN-V2 (Wang et al., WWW'21), stacked or parallel, full or low rank."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from ctr_zoo.layers import cross_net as cross_lib
from ctr_zoo.models import base
from ctr_zoo.models import blocks
from ctr_zoo.models import dnn as dnn_lib
from ctr_zoo.models.registry import register_model

STRUCTURES = ("stacked", "parallel")


@dataclasses.dataclass(frozen=True)
class DCNV2Config:
  """Config of `dcn_v2`.

  x0 = [e_1; ..; e_n; x_dense] (B, D);  x_{l+1} = x0 (.) (W_l x_l + b_l) + x_l
  (W_l = U_l V_l^T with projection_dim r).
    stacked:  logit = w^T MLP(cross(x0)) + b
    parallel: logit = w^T [cross(x0); MLP(x0)] + b

  Args:
    structure: str. "stacked" or "parallel". Defaults to "stacked" (best on
      Criteo in the paper).
    num_cross_layers: int. Defaults to 3 (the paper uses 1-4).
    projection_dim: int or None. Low rank r; None is full rank. Defaults to
      None (full rank; r ~ D/4 loses nothing per the paper).
    diag_scale: float. s in W + sI. Defaults to 0.0.
    dnn_dims: tuple of int. Defaults to (400, 400, 400).
    dropout: float. Defaults to 0.2.
    batch_norm: bool. Defaults to False.
    activation: str. Defaults to "relu".
    embedding_l2: float. L2 on looked-up embedding rows. Defaults to 1e-5.
    cross_l2: float. L2 on the cross kernels. Defaults to 0.0.
  """
  structure: str = "stacked"
  num_cross_layers: int = 3
  projection_dim: Optional[int] = None
  diag_scale: float = 0.0
  dnn_dims: Tuple[int, ...] = (400, 400, 400)
  dropout: float = 0.2
  batch_norm: bool = False
  activation: str = "relu"
  embedding_l2: float = 1e-5
  cross_l2: float = 0.0

  def __post_init__(self):
    owner = "DCNV2Config"
    base.check_choice(owner, "structure", self.structure, STRUCTURES)
    base.check_positive_int(owner, "num_cross_layers", self.num_cross_layers)
    if self.projection_dim is not None:
      base.check_positive_int(owner, "projection_dim", self.projection_dim)
    base.check_non_negative(owner, "diag_scale", self.diag_scale)
    base.check_non_negative(owner, "cross_l2", self.cross_l2)
    dnn_lib.check_tower(owner, self)


@register_model("dcn_v2")
class DCNV2(base.CTRModel):
  """Deep & Cross Network V2 with a matrix (or low-rank) cross network.

  Paper: R. Wang et al., "DCN V2: Improved Deep & Cross Network and Practical
  Lessons for Web-scale Learning to Rank Systems", WWW'21 (arXiv 2008.13535).
  """
  config_class = DCNV2Config

  @classmethod
  def build_logit(cls, inputs, spec, config):
    x0 = blocks.flat_input(inputs, spec, config.embedding_l2)  # (B, D)
    cross = cross_lib.CrossNet(
        config.num_cross_layers, projection_dim=config.projection_dim,
        diag_scale=config.diag_scale, kernel_regularizer=blocks.l2_or_none(config.cross_l2),
        name="cross")(x0)  # (B, D)
    if config.structure == "stacked":
      return blocks.dense_logit(dnn_lib.tower(cross, config))
    deep = dnn_lib.tower(x0, config)
    return blocks.dense_logit(blocks.concat([cross, deep], name="cross_and_deep"))
