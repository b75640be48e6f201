"""`dnn`: embeddings + an MLP (the DCN-V2 paper's "DNN" baseline)."""

from __future__ import annotations

import dataclasses

from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class DNNConfig:
  """Config of `dnn`.

  logit = w^T MLP([e_1; ..; e_n; x_dense]) + b

  Args:
    embedding: EmbeddingConfig. Width, L2 and table layout.
    tower: TowerConfig. The MLP. Defaults to 3 x 400 with dropout 0.2.
  """
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)
  tower: base.TowerConfig = dataclasses.field(default_factory=base.TowerConfig)


@register_model("dnn")
class DNN(base.CTRModel):
  """Embeddings of every field, concatenated with the numeric fields, through an MLP."""
  config_class = DNNConfig

  @classmethod
  def build_logit(cls, parts, config):
    return parts_lib.stacked(parts.flat_input(), config.tower)  # (B, D) -> (B, 1)
