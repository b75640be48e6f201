"""`deepfm`: DeepFM (Guo et al., IJCAI'17)."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from ctr_zoo.layers import fm as fm_lib
from ctr_zoo.models import base
from ctr_zoo.models import blocks
from ctr_zoo.models import dnn as dnn_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class DeepFMConfig:
  """Config of `deepfm`.

  logit = first order + sum_{i<j} <e_i, e_j> + w^T MLP(flatten(X)) + b,
  X (B, n, d) shared by the FM and the DNN.

  Args:
    dnn_dims: tuple of int. Defaults to (400, 400, 400).
    dropout: float. Defaults to 0.2.
    batch_norm: bool. Defaults to False.
    activation: str. Defaults to "relu".
    embedding_l2: float. Defaults to 1e-5.
    linear_l2: float. Defaults to 0.0.
  """
  dnn_dims: Tuple[int, ...] = (400, 400, 400)
  dropout: float = 0.2
  batch_norm: bool = False
  activation: str = "relu"
  embedding_l2: float = 1e-5
  linear_l2: float = 0.0

  def __post_init__(self):
    dnn_lib.check_tower("DeepFMConfig", self)
    base.check_non_negative("DeepFMConfig", "linear_l2", self.linear_l2)


@register_model("deepfm")
class DeepFM(base.CTRModel):
  """FM and a DNN over the same field embeddings; logits added.

  Needs one embedding_dim for every id feature.
  Paper: H. Guo et al., "DeepFM: A Factorization-Machine based Neural Network
  for CTR Prediction", IJCAI'17.
  """
  config_class = DeepFMConfig

  @classmethod
  def build_logit(cls, inputs, spec, config):
    fields = blocks.field_stack_parts(inputs, spec, config.embedding_l2, owner="deepfm")
    second = fm_lib.FactorizationMachine(name="fm")(blocks.fm_input(fields))  # X (B, n, d) -> (B, 1)
    deep = blocks.dense_logit(dnn_lib.field_tower(fields, config))  # MLP(flatten(X)) -> (B, 1)
    first = blocks.linear_logit(inputs, spec, config.linear_l2)  # (B, 1)
    return blocks.add([first, second, deep], "deepfm_logit")

