"""`xdeepfm`: xDeepFM (Lian et al., KDD'18): linear + CIN + DNN."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from ctr_zoo.layers import cin as cin_lib
from ctr_zoo.models import base
from ctr_zoo.models import blocks
from ctr_zoo.models import dnn as dnn_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class XDeepFMConfig:
  """Config of `xdeepfm`.

  logit = linear + w_c^T CIN(X) + w_d^T MLP(flatten(X)) + b, X (B, n, d).

  Args:
    cin_layer_sizes: tuple of int. Feature maps per CIN layer. Defaults to
      (200, 200, 200) (paper's Criteo setting).
    cin_split_half: bool. Defaults to True.
    dnn_dims: tuple of int. Defaults to (400, 400, 400).
    dropout: float. Defaults to 0.2.
    batch_norm: bool. Defaults to False.
    activation: str. Defaults to "relu".
    embedding_l2: float. Defaults to 1e-5.
    linear_l2: float. Defaults to 0.0.
  """
  cin_layer_sizes: Tuple[int, ...] = (200, 200, 200)
  cin_split_half: bool = True
  dnn_dims: Tuple[int, ...] = (400, 400, 400)
  dropout: float = 0.2
  batch_norm: bool = False
  activation: str = "relu"
  embedding_l2: float = 1e-5
  linear_l2: float = 0.0

  def __post_init__(self):
    owner = "XDeepFMConfig"
    base.check_positive_ints(owner, "cin_layer_sizes", self.cin_layer_sizes, allow_empty=False)
    base.check_non_negative(owner, "linear_l2", self.linear_l2)
    dnn_lib.check_tower(owner, self)


@register_model("xdeepfm")
class XDeepFM(base.CTRModel):
  """Compressed Interaction Network (explicit, vector-wise) + DNN (implicit) + linear.

  Needs one embedding_dim for every id feature.
  Paper: J. Lian et al., "xDeepFM: Combining Explicit and Implicit Feature
  Interactions for Recommender Systems", KDD'18 (arXiv 1803.05170).
  """
  config_class = XDeepFMConfig

  @classmethod
  def build_logit(cls, inputs, spec, config):
    fields = blocks.field_stack_parts(inputs, spec, config.embedding_l2, owner="xdeepfm")
    x = fields.stack  # (B, n, d)
    cin = cin_lib.CIN(list(config.cin_layer_sizes), split_half=config.cin_split_half,
                      name="cin")(x)  # (B, sum of maps)
    logits = [blocks.linear_logit(inputs, spec, config.linear_l2),
              blocks.dense_logit(cin, name="cin_head")]
    if config.dnn_dims:
      logits.append(blocks.dense_logit(dnn_lib.field_tower(fields, config), name="dnn_head"))
    return blocks.add(logits, "xdeepfm_logit")
