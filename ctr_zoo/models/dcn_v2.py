"""`dcn_v2`: DCN-V2 (Wang et al., WWW'21), stacked or parallel, full or low rank.

`CrossNetworkModel` is the assembly shared with `dcn_mix`: x0 -> a cross
network -> (stacked) the tower, or (parallel) beside a tower on x0 -> one
logit. The two models differ only in the cross layer they inject.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import cross_net as cross_lib
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.registry import register_model

STRUCTURES = ("stacked", "parallel")


def check_cross(owner: str, config) -> None:
  """Checks the fields every cross network config has."""
  checks.choice(config.structure, f"{owner}.structure", STRUCTURES, error=base.ModelConfigError)
  checks.positive_int(config.num_cross_layers, f"{owner}.num_cross_layers",
                      error=base.ModelConfigError)
  checks.non_negative(config.cross_l2, f"{owner}.cross_l2", error=base.ModelConfigError)


class CrossNetworkModel(base.CTRModel):
  """x0 = [e_1; ..; e_n; x_dense] -> cross network -> tower -> logit.

    stacked:  logit = w^T tower(cross(x0)) + b
    parallel: logit = w^T [cross(x0); tower(x0)] + b

  Subclasses implement `cross_layer(config)`; their config has `structure`,
  `num_cross_layers`, `cross_l2`, `embedding` and `tower`.
  """

  @classmethod
  def cross_layer(cls, config) -> tf.keras.layers.Layer:
    """The cross network layer, (B, D) -> (B, D)."""
    raise NotImplementedError(f"{cls.__name__} must implement cross_layer")

  @classmethod
  def build_logit(cls, parts, config):
    x0 = parts.flat_input()  # (B, D)
    cross = cls.cross_layer(config)(x0)  # (B, D)
    if config.structure == "stacked":
      return parts_lib.stacked(cross, config.tower)
    return parts_lib.parallel(cross, x0, config.tower)


@dataclasses.dataclass(frozen=True)
class DCNV2Config:
  """Config of `dcn_v2`.

  x_{l+1} = x0 (.) (W_l x_l + b_l) + x_l  (W_l = U_l V_l^T with projection_dim r).

  Args:
    structure: str. "stacked" or "parallel". Defaults to "stacked" (best on
      Criteo in the paper).
    num_cross_layers: int. Defaults to 3 (the paper uses 1-4).
    projection_dim: int or None. Low rank r; None is full rank. Defaults to
      None (full rank; r ~ D/4 loses nothing per the paper).
    diag_scale: float. s in W + sI. Defaults to 0.0.
    cross_l2: float. L2 on the cross kernels. Defaults to 0.0.
    embedding: EmbeddingConfig. Width, L2 and table layout.
    tower: TowerConfig. The MLP. Defaults to 3 x 400 with dropout 0.2.
  """
  structure: str = "stacked"
  num_cross_layers: int = 3
  projection_dim: Optional[int] = None
  diag_scale: float = 0.0
  cross_l2: float = 0.0
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)
  tower: base.TowerConfig = dataclasses.field(default_factory=base.TowerConfig)

  def __post_init__(self):
    check_cross("DCNV2Config", self)
    checks.optional_positive_int(self.projection_dim, "DCNV2Config.projection_dim",
                                 error=base.ModelConfigError)
    checks.non_negative(self.diag_scale, "DCNV2Config.diag_scale", error=base.ModelConfigError)


@register_model("dcn_v2")
class DCNV2(CrossNetworkModel):
  """Deep & Cross Network V2 with a matrix (or low-rank) cross network.

  Paper: R. Wang et al., "DCN V2: Improved Deep & Cross Network and Practical
  Lessons for Web-scale Learning to Rank Systems", WWW'21 (arXiv 2008.13535).
  """
  config_class = DCNV2Config

  @classmethod
  def cross_layer(cls, config):
    return cross_lib.CrossNet(
        config.num_cross_layers, projection_dim=config.projection_dim,
        diag_scale=config.diag_scale, kernel_regularizer=parts_lib.l2_or_none(config.cross_l2),
        name="cross")
