"""`cdot`: compressed dot products (random-projection field compression) + an MLP."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import compressed_dot as cdot_lib
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
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
    embedding: EmbeddingConfig. Width, L2 and table layout.
    tower: TowerConfig. The MLP. Defaults to 3 x 400 with dropout 0.2.
  """
  num_projections: int = 8
  projection: str = "learned"
  second_block: bool = False
  second_num_projections: int = 8
  include_embeddings: bool = True
  seed: int = 0
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)
  tower: base.TowerConfig = dataclasses.field(default_factory=base.TowerConfig)

  def __post_init__(self):
    owner, error = "CDotConfig", base.ModelConfigError
    checks.positive_int(self.num_projections, f"{owner}.num_projections", error=error)
    checks.positive_int(self.second_num_projections, f"{owner}.second_num_projections", error=error)
    checks.choice(self.projection, f"{owner}.projection", PROJECTIONS, error=error)
    checks.boolean(self.second_block, f"{owner}.second_block", error=error)
    checks.boolean(self.include_embeddings, f"{owner}.include_embeddings", error=error)
    checks.positive_int(self.seed, f"{owner}.seed", allow_zero=True, error=error)


@register_model("cdot")
class CDot(base.CTRModel):
  """Field embeddings -> CompressedDotProduct (+ a second block) -> MLP.

  Cost O(n k d) per block instead of O(n^2 d) for all pairwise dots. Needs one
  embedding width for every id feature. Relatives: Wukong's optimized FM
  (arXiv 2403.02545), Meta's DotCompress.
  """
  config_class = CDotConfig

  @classmethod
  def build_logit(cls, parts, config):
    x = parts.field_stack(owner="cdot").stack  # (B, n, d)
    out1, z1 = cdot_lib.CompressedDotProduct(
        config.num_projections, projection=config.projection, seed=config.seed,
        return_compressed=True, name="cdot_1")(x)  # (B, kd + nk), (B, k, d)
    features = [parts_lib.flatten(x)] if config.include_embeddings else []
    features.append(out1)
    if config.second_block:
      x2 = tf.keras.layers.Concatenate(axis=1, name="fields_and_compressed")([x, z1])  # (B, n+k, d)
      features.append(cdot_lib.CompressedDotProduct(
          config.second_num_projections, projection=config.projection, seed=config.seed + 1,
          name="cdot_2")(x2))
    return parts_lib.stacked(parts_lib.concat(features, name="cdot_features"), config.tower)
