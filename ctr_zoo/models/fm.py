"""`fm`: factorization machine (Rendle, ICDM'10)."""

from __future__ import annotations

import dataclasses

from ctr_zoo.layers import fm as fm_lib
from ctr_zoo.models import base
from ctr_zoo.models import blocks
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class FMConfig:
  """Config of `fm`.

  logit = b + sum_f w_f[id_f] + v^T x + sum_{i<j} <e_i, e_j>   over the n fields

  Args:
    embedding_l2: float. L2 on looked-up embedding rows. Defaults to 1e-5.
    linear_l2: float. L2 on looked-up first-order weights. Defaults to 0.0.
  """
  embedding_l2: float = 1e-5
  linear_l2: float = 0.0

  def __post_init__(self):
    base.check_non_negative("FMConfig", "embedding_l2", self.embedding_l2)
    base.check_non_negative("FMConfig", "linear_l2", self.linear_l2)


@register_model("fm")
class FM(base.CTRModel):
  """Factorization machine: first-order weights plus all pairwise field dots.

  Fields X (B, n, d): every id feature's embedding, pooled sequences, and
  numeric fields as x_j v_j. Needs one embedding_dim for every id feature.
  """
  config_class = FMConfig

  @classmethod
  def build_logit(cls, inputs, spec, config):
    fields = blocks.field_stack_parts(inputs, spec, config.embedding_l2, owner="fm")
    second = fm_lib.FactorizationMachine(name="fm")(blocks.fm_input(fields))  # X (B, n, d) -> (B, 1)
    return blocks.add([blocks.linear_logit(inputs, spec, config.linear_l2), second], "fm_logit")
