"""`cdot`: compressed dot products (random-projection field compression) + an MLP."""

from __future__ import annotations

import dataclasses
from typing import Tuple

import tensorflow as tf

from ctr_zoo.layers import compressed_dot as cdot_lib
from ctr_zoo.models import base
from ctr_zoo.models import blocks
from ctr_zoo.models import dnn as dnn_lib
from ctr_zoo.models.registry import register_model

PROJECTIONS = ("random", "learned", "instance")


@dataclasses.dataclass(frozen=True)
class CDotConfig:
  """Config of `cdot`.

  X (B, n, d) the fields; block 1: Z1 = Y1^T X (B, k, d), D1 = X (X^T Y1) (B, n, k);
  optional block 2 on X2 = [X; Z1] (B, n+k, d) (raises the interaction order);
  logit = w^T MLP([flatten(X); flatten(Z1); flatten(D1); (block 2 out)]) + b.

  Args:
    num_projections: int. k, compressed fields per block. Defaults to 8.
    projection: str. "random" (fixed JL projection), "learned" or "instance".
      Defaults to "learned".
    second_block: bool. Add the second block on [X; Z1]. Defaults to False.
    second_num_projections: int. k of the second block. Defaults to 8.
    include_embeddings: bool. Feed flatten(X) to the MLP too. Defaults to True.
    seed: int. Seed of the projections. Defaults to 0.
    dnn_dims: tuple of int. Defaults to (400, 400, 400).
    dropout: float. Defaults to 0.2.
    batch_norm: bool. Defaults to False.
    activation: str. Defaults to "relu".
    embedding_l2: float. Defaults to 1e-5.
  """
  num_projections: int = 8
  projection: str = "learned"
  second_block: bool = False
  second_num_projections: int = 8
  include_embeddings: bool = True
  seed: int = 0
  dnn_dims: Tuple[int, ...] = (400, 400, 400)
  dropout: float = 0.2
  batch_norm: bool = False
  activation: str = "relu"
  embedding_l2: float = 1e-5

  def __post_init__(self):
    owner = "CDotConfig"
    base.check_positive_int(owner, "num_projections", self.num_projections)
    base.check_positive_int(owner, "second_num_projections", self.second_num_projections)
    base.check_choice(owner, "projection", self.projection, PROJECTIONS)
    base.check_positive_int(owner, "seed", self.seed, allow_zero=True)
    dnn_lib.check_tower(owner, self)


@register_model("cdot")
class CDot(base.CTRModel):
  """Field embeddings -> CompressedDotProduct (+ a second block) -> MLP.

  Cost O(n k d) per block instead of O(n^2 d) for all pairwise dots. Needs one
  embedding_dim for every id feature. See the notes' "CDot" section; relatives:
  Wukong's optimized FM (arXiv 2403.02545), Meta's DotCompress.
  """
  config_class = CDotConfig

  @classmethod
  def build_logit(cls, inputs, spec, config):
    x = blocks.field_stack(inputs, spec, config.embedding_l2, owner="cdot")  # (B, n, d)
    out1, z1 = cdot_lib.CompressedDotProduct(
        config.num_projections, projection=config.projection, seed=config.seed,
        return_compressed=True, name="cdot_1")(x)  # (B, kd + nk), (B, k, d)
    parts = [blocks.flatten(x)] if config.include_embeddings else []
    parts.append(out1)
    if config.second_block:
      x2 = tf.keras.layers.Concatenate(axis=1, name="fields_and_compressed")([x, z1])  # (B, n+k, d)
      parts.append(cdot_lib.CompressedDotProduct(
          config.second_num_projections, projection=config.projection, seed=config.seed + 1,
          name="cdot_2")(x2))
    h = blocks.concat(parts, name="cdot_features")
    return blocks.dense_logit(dnn_lib.tower(h, config))
