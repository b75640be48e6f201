"""`fm`: factorization machine (Rendle, ICDM'10)."""

from __future__ import annotations

import dataclasses

from ctr_zoo import checks
from ctr_zoo.layers import fm as fm_lib
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class FMConfig:
  """Config of `fm`.

  logit = b + sum_f w_f[id_f] + v^T x + sum_{i<j} <e_i, e_j>   over the n fields

  Args:
    embedding: EmbeddingConfig. Width, L2 and table layout.
    linear_l2: float. L2 on looked-up first-order weights. Defaults to 0.0.
  """
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)
  linear_l2: float = 0.0

  def __post_init__(self):
    checks.non_negative(self.linear_l2, "FMConfig.linear_l2", error=base.ModelConfigError)


@register_model("fm")
class FM(base.CTRModel):
  """Factorization machine: first-order weights plus all pairwise field dots.

  Fields X (B, n, d): every id feature's embedding, pooled sequences, and
  numeric fields as x_j v_j. Needs one embedding width for every id feature.
  """
  config_class = FMConfig

  @classmethod
  def build_logit(cls, parts, config):
    fields = parts.field_stack(owner="fm")
    second = fm_lib.FactorizationMachine(name="fm")(parts.fm_input(fields))  # X (B, n, d) -> (B, 1)
    return parts_lib.sum_of_logits([parts.linear_logit(config.linear_l2), second], "fm_logit")
