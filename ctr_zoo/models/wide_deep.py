"""`wide_deep`: Wide & Deep (Cheng et al., DLRS'16)."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from ctr_zoo.models import base
from ctr_zoo.models import blocks
from ctr_zoo.models import dnn as dnn_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class WideDeepConfig:
  """Config of `wide_deep`.

  logit = [sum_f w_f[id_f] + v^T x + b]  (wide)  +  w^T MLP(x0)  (deep)

  Args:
    dnn_dims: tuple of int. Deep tower widths. Defaults to (400, 400, 400).
    dropout: float. Defaults to 0.2.
    batch_norm: bool. Defaults to False.
    activation: str. Defaults to "relu".
    embedding_l2: float. L2 on looked-up embedding rows. Defaults to 1e-5.
    linear_l2: float. L2 on looked-up wide weights. Defaults to 0.0.
  """
  dnn_dims: Tuple[int, ...] = (400, 400, 400)
  dropout: float = 0.2
  batch_norm: bool = False
  activation: str = "relu"
  embedding_l2: float = 1e-5
  linear_l2: float = 0.0

  def __post_init__(self):
    dnn_lib.check_tower("WideDeepConfig", self)
    base.check_non_negative("WideDeepConfig", "linear_l2", self.linear_l2)


@register_model("wide_deep")
class WideDeep(base.CTRModel):
  """A sparse linear (wide) logit plus a DNN (deep) logit, trained jointly.

  Paper: H.-T. Cheng et al., "Wide & Deep Learning for Recommender Systems", DLRS'16.
  """
  config_class = WideDeepConfig

  @classmethod
  def build_logit(cls, inputs, spec, config):
    wide = blocks.linear_logit(inputs, spec, config.linear_l2)  # (B, 1)
    x0 = blocks.flat_input(inputs, spec, config.embedding_l2)
    deep = blocks.dense_logit(dnn_lib.tower(x0, config))  # (B, 1)
    return blocks.add([wide, deep], "wide_plus_deep")
