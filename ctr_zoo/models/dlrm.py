"""`dlrm`: DLRM (Naumov et al., arXiv 1906.00091): bottom MLP, dot interaction, top MLP."""

from __future__ import annotations

import dataclasses
from typing import Tuple

import tensorflow as tf

from ctr_zoo.layers import dot_interaction as dot_lib
from ctr_zoo.layers import mlp as mlp_lib
from ctr_zoo.models import base
from ctr_zoo.models import blocks
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class DLRMConfig:
  """Config of `dlrm`.

  z = bottom_MLP(x_dense) (B, d); fields [z; e_1; ..; e_n] (B, n+1, d);
  p = (<f_i, f_j>)_{i<j}; logit = top_MLP([z; p]) (last layer linear, width 1).
  Without numeric fields there is no bottom MLP (fields = embeddings).

  Args:
    bottom_dims: tuple of int. Hidden widths of the bottom MLP; a last layer
      of width d (the embedding dim) is appended. Defaults to (64,).
    top_dims: tuple of int. Hidden widths of the top MLP (a width-1 linear
      layer is appended). Defaults to (512, 256).
    dropout: float. Top-MLP dropout. Defaults to 0.2.
    embedding_l2: float. Defaults to 1e-5.
  """
  bottom_dims: Tuple[int, ...] = (64,)
  top_dims: Tuple[int, ...] = (512, 256)
  dropout: float = 0.2
  embedding_l2: float = 1e-5

  def __post_init__(self):
    base.check_positive_ints("DLRMConfig", "bottom_dims", self.bottom_dims)
    base.check_positive_ints("DLRMConfig", "top_dims", self.top_dims)
    base.check_fraction("DLRMConfig", "dropout", self.dropout)
    base.check_non_negative("DLRMConfig", "embedding_l2", self.embedding_l2)


@register_model("dlrm")
class DLRM(base.CTRModel):
  """DLRM: dense features through a bottom MLP, pairwise dots with the embeddings.

  Needs one embedding_dim for every id feature.
  Paper: M. Naumov et al., "Deep Learning Recommendation Model for
  Personalization and Recommendation Systems", arXiv 1906.00091.
  """
  config_class = DLRMConfig

  @classmethod
  def build_logit(cls, inputs, spec, config):
    d = blocks.embedding_dim(spec, "dlrm")
    fields = blocks.embed(inputs, spec, config.embedding_l2)  # n x (B, d)
    dense = blocks.dense_matrix(inputs, spec)
    bottom = None
    if dense is not None:
      bottom = mlp_lib.MLP(list(config.bottom_dims) + [d], name="bottom_mlp")(dense)  # (B, d)
      fields = [bottom] + fields
    stacked = tf.keras.layers.Concatenate(axis=1, name="fields")(
        [tf.keras.layers.Reshape((1, d), name=f"field_{i}")(f) for i, f in enumerate(fields)])
    # (B, F, d): F = n + 1 fields with the bottom MLP's output, F = n without numeric fields.
    dots = dot_lib.DotInteraction(name="dot_interaction")(stacked)  # (B, F(F-1)/2): i < j only
    top_in = blocks.concat([bottom, dots], name="top_input")
    return mlp_lib.MLP(list(config.top_dims) + [1], dropout=config.dropout,
                       activate_last=False, name="top_mlp")(top_in)  # (B, 1)
