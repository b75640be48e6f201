"""`xdeepfm`: xDeepFM (Lian et al., KDD'18): linear + CIN + DNN."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from ctr_zoo import checks
from ctr_zoo.layers import cin as cin_lib
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class XDeepFMConfig:
  """Config of `xdeepfm`.

  logit = linear + w_c^T CIN(X) + w_d^T MLP(flatten(X)) + b, X (B, n, d).

  Args:
    cin_layer_sizes: tuple of int. Feature maps per CIN layer. Defaults to
      (200, 200, 200) (paper's Criteo setting).
    cin_split_half: bool. Defaults to True.
    linear_l2: float. L2 on looked-up first-order weights. Defaults to 0.0.
    embedding: EmbeddingConfig. Width, L2 and table layout.
    tower: TowerConfig. The DNN; dims () for linear + CIN only. Defaults to
      3 x 400 with dropout 0.2.
  """
  cin_layer_sizes: Tuple[int, ...] = (200, 200, 200)
  cin_split_half: bool = True
  linear_l2: float = 0.0
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)
  tower: base.TowerConfig = dataclasses.field(default_factory=base.TowerConfig)

  def __post_init__(self):
    owner = "XDeepFMConfig"
    checks.positive_ints(self.cin_layer_sizes, f"{owner}.cin_layer_sizes", allow_empty=False,
                         error=base.ModelConfigError)
    checks.boolean(self.cin_split_half, f"{owner}.cin_split_half", error=base.ModelConfigError)
    checks.non_negative(self.linear_l2, f"{owner}.linear_l2", error=base.ModelConfigError)


@register_model("xdeepfm")
class XDeepFM(base.CTRModel):
  """Compressed Interaction Network (explicit, vector-wise) + DNN (implicit) + linear.

  Needs one embedding width for every id feature.
  Paper: J. Lian et al., "xDeepFM: Combining Explicit and Implicit Feature
  Interactions for Recommender Systems", KDD'18 (arXiv 1803.05170).
  """
  config_class = XDeepFMConfig

  @classmethod
  def build_logit(cls, parts, config):
    fields = parts.field_stack(owner="xdeepfm")
    cin = cin_lib.CIN(list(config.cin_layer_sizes), split_half=config.cin_split_half,
                      name="cin")(fields.stack)  # (B, sum of maps)
    logits = [parts.linear_logit(config.linear_l2), parts_lib.head(cin, name="cin_head")]
    if config.tower.dims:
      logits.append(parts_lib.head(parts.field_tower(fields, config.tower), name="dnn_head"))
    return parts_lib.sum_of_logits(logits, "xdeepfm_logit")
