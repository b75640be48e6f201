"""`dlrm`: DLRM (Naumov et al., arXiv 1906.00091): bottom MLP, dot interaction, top MLP."""

from __future__ import annotations

import dataclasses
from typing import Tuple

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import dot_interaction as dot_lib
from ctr_zoo.layers import mlp as mlp_lib
from ctr_zoo.layers import tower as tower_lib
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class DLRMConfig:
  """Config of `dlrm`.

  z = bottom_MLP(x_dense) (B, d); fields [z; e_1; ..; e_n] (B, n+1, d);
  p = (<f_i, f_j>)_{i<j}; logit = top_MLP([z; p]) (last layer linear, width 1).
  Without numeric fields there is no bottom MLP (fields = embeddings).

  Args:
    bottom_dims: tuple of int. Hidden widths of the bottom MLP; a last layer
      of width d (the embedding width) is appended. Defaults to (64,).
    embedding: EmbeddingConfig. Width, L2 and table layout.
    tower: TowerConfig. The top MLP's hidden layers (a width-1 linear layer is
      appended). Defaults to (512, 256) with dropout 0.2.
  """
  bottom_dims: Tuple[int, ...] = (64,)
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)
  tower: base.TowerConfig = dataclasses.field(
      default_factory=lambda: base.TowerConfig(dims=(512, 256)))
  # Earlier versions named the top MLP's widths `top_dims`.
  legacy_keys = {"top_dims": ("tower", "dims")}

  def __post_init__(self):
    checks.positive_ints(self.bottom_dims, "DLRMConfig.bottom_dims", error=base.ModelConfigError)


@register_model("dlrm")
class DLRM(base.CTRModel):
  """DLRM: dense features through a bottom MLP, pairwise dots with the embeddings.

  Needs one embedding width for every id feature.
  Paper: M. Naumov et al., "Deep Learning Recommendation Model for
  Personalization and Recommendation Systems", arXiv 1906.00091.
  """
  config_class = DLRMConfig

  @classmethod
  def build_logit(cls, parts, config):
    d = parts_lib.embedding_dim(parts.spec, "dlrm")
    fields = list(parts.embeddings())  # n x (B, d)
    dense = parts.dense_matrix()
    bottom = None
    if dense is not None:
      bottom = mlp_lib.MLP(list(config.bottom_dims) + [d], name="bottom_mlp")(dense)  # (B, d)
      fields = [bottom] + fields
    stacked = tf.keras.layers.Concatenate(axis=1, name="fields")(
        [tf.keras.layers.Reshape((1, d), name=f"field_{i}")(f) for i, f in enumerate(fields)])
    # (B, F, d): F = n + 1 fields with the bottom MLP's output, F = n without numeric fields.
    dots = dot_lib.DotInteraction(name="dot_interaction")(stacked)  # (B, F(F-1)/2): i < j only
    top_in = parts_lib.concat([bottom, dots], name="top_input")
    return tower_lib.build_tower(top_in, config.tower, name="top_mlp", output_dim=1)  # (B, 1)
