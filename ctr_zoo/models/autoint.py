"""`autoint`: AutoInt / AutoInt+ (Song et al., CIKM'19)."""

from __future__ import annotations

import dataclasses

from ctr_zoo import checks
from ctr_zoo.layers import attention as attention_lib
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class AutoIntConfig:
  """Config of `autoint`.

  X (B, n, d) -> L layers of multi-head self-attention (residual) -> (B, n, H a);
  logit = w^T flatten(.) + b, plus w'^T MLP(flatten(X)) when the tower has
  layers (AutoInt+).

  Args:
    num_attention_layers: int. Defaults to 3 (paper).
    num_heads: int. H. Defaults to 2 (paper).
    head_dim: int. a. Defaults to 16.
    use_residual: bool. Defaults to True.
    embedding: EmbeddingConfig. Width, L2 and table layout.
    tower: TowerConfig. The parallel DNN of AutoInt+; dims () for plain
      AutoInt. Defaults to 3 x 400 with dropout 0.2 (AutoInt+ is the stronger
      on Criteo).
  """
  num_attention_layers: int = 3
  num_heads: int = 2
  head_dim: int = 16
  use_residual: bool = True
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)
  tower: base.TowerConfig = dataclasses.field(default_factory=base.TowerConfig)

  def __post_init__(self):
    owner, error = "AutoIntConfig", base.ModelConfigError
    checks.positive_int(self.num_attention_layers, f"{owner}.num_attention_layers", error=error)
    checks.positive_int(self.num_heads, f"{owner}.num_heads", error=error)
    checks.positive_int(self.head_dim, f"{owner}.head_dim", error=error)
    checks.boolean(self.use_residual, f"{owner}.use_residual", error=error)


@register_model("autoint")
class AutoInt(base.CTRModel):
  """Self-attention over the field embeddings (AutoInt), plus a DNN (AutoInt+).

  Needs one embedding width for every id feature.
  Paper: W. Song et al., "AutoInt: Automatic Feature Interaction Learning via
  Self-Attentive Neural Networks", CIKM'19 (arXiv 1810.11921).
  """
  config_class = AutoIntConfig

  @classmethod
  def build_logit(cls, parts, config):
    fields = parts.field_stack(owner="autoint")
    h = fields.stack  # (B, n, d)
    for l in range(config.num_attention_layers):
      h = attention_lib.MultiHeadSelfAttention(
          config.num_heads, config.head_dim, use_residual=config.use_residual,
          name=f"attention_{l}")(h)  # (B, n, H a)
    logits = [parts_lib.head(parts_lib.flatten(h, name="flatten_attention"), name="attention_head")]
    if config.tower.dims:
      logits.append(parts_lib.head(parts.field_tower(fields, config.tower), name="dnn_head"))
    return parts_lib.sum_of_logits(logits, "autoint_logit")
