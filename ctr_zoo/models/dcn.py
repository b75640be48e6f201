"""`dcn`: the original Deep & Cross Network (Wang et al., ADKDD'17), vector cross layers."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from ctr_zoo.layers import cross_net_v1 as cross_v1_lib
from ctr_zoo.models import base
from ctr_zoo.models import blocks
from ctr_zoo.models import dnn as dnn_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class DCNConfig:
  """Config of `dcn`.

  x0 = [e_1; ..; e_n; x_dense] (B, D);  x_{l+1} = x0 (w_l^T x_l) + b_l + x_l
  (w_l, b_l in R^D); the cross network and the DNN run side by side on x0:
    logit = w^T [x_L; MLP(x0)] + b

  Defaults follow the paper's best Criteo setting (Section 4.3: 6 cross
  layers, 2 deep layers of 1024, batch norm in the deep network). The paper
  regularised by early stopping only; the zoo's usual dropout and embedding
  L2 are kept here so small data does not overfit (choose them on validation).

  Args:
    num_cross_layers: int. L, the number of vector cross layers. Defaults to 6.
    dnn_dims: tuple of int. Widths of the deep network; empty = cross network
      only ("cross only" in the paper). Defaults to (1024, 1024).
    dropout: float. Dropout after each hidden layer. Defaults to 0.2.
    batch_norm: bool. Batch norm in the deep network. Defaults to True.
    activation: str. Hidden activation. Defaults to "relu".
    embedding_l2: float. L2 on looked-up embedding rows. Defaults to 1e-5.
    cross_l2: float. L2 on the cross kernels w_l. Defaults to 0.0.
  """
  num_cross_layers: int = 6
  dnn_dims: Tuple[int, ...] = (1024, 1024)
  dropout: float = 0.2
  batch_norm: bool = True
  activation: str = "relu"
  embedding_l2: float = 1e-5
  cross_l2: float = 0.0

  def __post_init__(self):
    owner = "DCNConfig"
    base.check_positive_int(owner, "num_cross_layers", self.num_cross_layers)
    base.check_non_negative(owner, "cross_l2", self.cross_l2)
    dnn_lib.check_tower(owner, self)


@register_model("dcn")
class DCN(base.CTRModel):
  """Deep & Cross Network (v1): a vector cross network parallel to a DNN.

  The combination layer concatenates the cross network's output x_L (B, D)
  and the DNN's last hidden layer (B, h) and maps them to the logit with one
  dense layer ("head").

  Paper: R. Wang, B. Fu, G. Fu, M. Wang, "Deep & Cross Network for Ad Click
  Predictions", ADKDD'17 (arXiv 1708.05123), Eqs. 3-5.
  """
  config_class = DCNConfig

  @classmethod
  def build_logit(cls, inputs, spec, config):
    x0 = blocks.flat_input(inputs, spec, config.embedding_l2)  # (B, D)
    cross = cross_v1_lib.VectorCrossNet(
        config.num_cross_layers, kernel_regularizer=blocks.l2_or_none(config.cross_l2),
        name="cross")(x0)  # (B, D)
    if not config.dnn_dims:
      return blocks.dense_logit(cross)  # (B, 1)
    deep = dnn_lib.tower(x0, config)  # (B, h)
    return blocks.dense_logit(blocks.concat([cross, deep], name="cross_and_deep"))  # (B, 1)
