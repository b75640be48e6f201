"""`dnn`: embeddings + an MLP (the DCN-V2 paper's "DNN" baseline)."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from ctr_zoo.layers import mlp as mlp_lib
from ctr_zoo.models import base
from ctr_zoo.models import blocks
from ctr_zoo.models.registry import register_model


def check_tower(owner: str, config) -> None:
  """Validates the common tower fields: dnn_dims, dropout, embedding_l2."""
  base.check_positive_ints(owner, "dnn_dims", config.dnn_dims)
  base.check_fraction(owner, "dropout", config.dropout)
  base.check_non_negative(owner, "embedding_l2", config.embedding_l2)


def tower(x, config, name: str = "dnn", numeric_embedding=None):
  """MLP(config.dnn_dims) with config.dropout / batch_norm, or x when dnn_dims is empty.

  `numeric_embedding`: see `MLP`; x is then [e, x_dense]. Defaults to None.
  """
  if not config.dnn_dims:
    return x
  return mlp_lib.MLP(list(config.dnn_dims), activation=getattr(config, "activation", "relu"),
                     dropout=config.dropout, batch_norm=getattr(config, "batch_norm", False),
                     numeric_embedding=numeric_embedding, name=name)(x)


def field_tower(fields: blocks.FieldStack, config, name: str = "dnn"):
  """`tower(flatten(X))` for a field stack X from `blocks.field_stack_parts`.

  With numeric fields x_j v_j and id fields, the first layer is a
  `NumericFieldDense` on [e, x]: the same variables and numbers as the MLP on
  flatten(X), without the (B, m d) numeric block in its matmul (DeepFM on the
  Criteo layout: 208 of 624 input columns). Otherwise (or when rebuilding a
  file saved with `base.GRAPH_VERSION` 1) the plain tower.
  """
  if (not config.dnn_dims or fields.numeric_layer is None or fields.id_flat is None
      or base.graph_version() < 2):
    return tower(blocks.flatten(fields.stack), config, name)
  return tower([fields.id_flat, fields.dense], config, name,
               numeric_embedding=fields.numeric_layer)


@dataclasses.dataclass(frozen=True)
class DNNConfig:
  """Config of `dnn`.

  logit = w^T MLP([e_1; ..; e_n; x_dense]) + b

  Args:
    dnn_dims: tuple of int. MLP widths. Defaults to (400, 400, 400) (BARS
      Criteo_x4 setting).
    dropout: float. Dropout after each hidden layer. Defaults to 0.2.
    batch_norm: bool. Batch norm in the MLP. Defaults to False.
    activation: str. Hidden activation. Defaults to "relu".
    embedding_l2: float. L2 on looked-up embedding rows (small data
      overfits without it). Defaults to 1e-5.
  """
  dnn_dims: Tuple[int, ...] = (400, 400, 400)
  dropout: float = 0.2
  batch_norm: bool = False
  activation: str = "relu"
  embedding_l2: float = 1e-5

  def __post_init__(self):
    check_tower("DNNConfig", self)


@register_model("dnn")
class DNN(base.CTRModel):
  """Embeddings of every field, concatenated with the numeric fields, through an MLP."""
  config_class = DNNConfig

  @classmethod
  def build_logit(cls, inputs, spec, config):
    x0 = blocks.flat_input(inputs, spec, config.embedding_l2)  # (B, sum d + m)
    return blocks.dense_logit(tower(x0, config))  # (B, 1)
