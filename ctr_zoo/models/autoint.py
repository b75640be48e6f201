"""`autoint`: AutoInt / AutoInt+ (Song et al., CIKM'19)."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from ctr_zoo.layers import attention as attention_lib
from ctr_zoo.models import base
from ctr_zoo.models import blocks
from ctr_zoo.models import dnn as dnn_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class AutoIntConfig:
  """Config of `autoint`.

  X (B, n, d) -> L layers of multi-head self-attention (residual) -> (B, n, H a);
  logit = w^T flatten(.) + b, plus w'^T MLP(flatten(X)) when dnn_dims (AutoInt+).

  Args:
    num_attention_layers: int. Defaults to 3 (paper).
    num_heads: int. H. Defaults to 2 (paper).
    head_dim: int. a. Defaults to 16.
    use_residual: bool. Defaults to True.
    dnn_dims: tuple of int. The parallel DNN of AutoInt+; () for plain
      AutoInt. Defaults to (400, 400, 400) (AutoInt+ is the stronger on Criteo).
    dropout: float. Defaults to 0.2.
    batch_norm: bool. Defaults to False.
    activation: str. Defaults to "relu".
    embedding_l2: float. Defaults to 1e-5.
  """
  num_attention_layers: int = 3
  num_heads: int = 2
  head_dim: int = 16
  use_residual: bool = True
  dnn_dims: Tuple[int, ...] = (400, 400, 400)
  dropout: float = 0.2
  batch_norm: bool = False
  activation: str = "relu"
  embedding_l2: float = 1e-5

  def __post_init__(self):
    owner = "AutoIntConfig"
    base.check_positive_int(owner, "num_attention_layers", self.num_attention_layers)
    base.check_positive_int(owner, "num_heads", self.num_heads)
    base.check_positive_int(owner, "head_dim", self.head_dim)
    dnn_lib.check_tower(owner, self)


@register_model("autoint")
class AutoInt(base.CTRModel):
  """Self-attention over the field embeddings (AutoInt), plus a DNN (AutoInt+).

  Needs one embedding_dim for every id feature.
  Paper: W. Song et al., "AutoInt: Automatic Feature Interaction Learning via
  Self-Attentive Neural Networks", CIKM'19 (arXiv 1810.11921).
  """
  config_class = AutoIntConfig

  @classmethod
  def build_logit(cls, inputs, spec, config):
    fields = blocks.field_stack_parts(inputs, spec, config.embedding_l2, owner="autoint")
    x = fields.stack  # (B, n, d)
    h = x
    for l in range(config.num_attention_layers):
      h = attention_lib.MultiHeadSelfAttention(
          config.num_heads, config.head_dim, use_residual=config.use_residual,
          name=f"attention_{l}")(h)  # (B, n, H a)
    logits = [blocks.dense_logit(blocks.flatten(h, name="flatten_attention"), name="attention_head")]
    if config.dnn_dims:
      logits.append(blocks.dense_logit(dnn_lib.field_tower(fields, config), name="dnn_head"))
    return blocks.add(logits, "autoint_logit")
