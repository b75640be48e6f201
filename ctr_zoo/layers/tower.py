"""The deep tower of a CTR model: its config, declared once, and the MLP built from it."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import mlp as mlp_lib

@dataclasses.dataclass(frozen=True)
class TowerConfig:
  """The MLP tower: h_l = dropout(act(BN(h_{l-1} W_l + b_l))), l = 1..L.

  Args:
    dims: tuple of int. Widths d_1..d_L; () means no tower (its input passes
      through). Defaults to (400, 400, 400) (the BARS Criteo_x4 setting).
    dropout: float in [0, 1). Dropout after each hidden layer. Defaults to 0.2.
    batch_norm: bool. Batch norm before each activation. Defaults to False.
    activation: str. Hidden activation: a Keras activation name ("relu",
      "gelu", ...) or "prelu" (a learned PReLU layer). Defaults to "relu".
  """
  dims: Tuple[int, ...] = (400, 400, 400)
  dropout: float = 0.2
  batch_norm: bool = False
  activation: str = "relu"

  def __post_init__(self):
    object.__setattr__(self, "dims", checks.positive_ints(self.dims, "tower.dims"))
    checks.fraction(self.dropout, "tower.dropout")
    checks.boolean(self.batch_norm, "tower.batch_norm")
    if self.activation != "prelu":
      try:
        tf.keras.activations.get(self.activation)
      except (ValueError, TypeError) as e:
        raise ValueError(f"tower.activation must be a Keras activation name or 'prelu', got "
                         f"{self.activation!r}") from e


def build_tower(x, config: TowerConfig, name: str = "dnn", numeric_embedding=None,
          output_dim: Optional[int] = None):
  """MLP(config.dims) on x (B, D) -> (B, d_L); x itself when config.dims is empty.

  Args:
    x: tensor (B, D), or [e (B, a), x (B, m)] with `numeric_embedding` (see `MLP`).
    config: TowerConfig.
    name: str. The MLP layer's name. Defaults to "dnn".
    numeric_embedding: None or the `DenseFieldEmbedding` whose V the first
      layer reads (see `MLP`). Defaults to None.
    output_dim: int or None. Append a last linear layer of this width (no
      activation, batch norm or dropout), e.g. 1 for a tower that ends in the
      logit. Defaults to None.
  """
  dims = list(config.dims) + ([output_dim] if output_dim is not None else [])
  if not dims:
    return x
  return mlp_lib.MLP(dims, activation=config.activation, dropout=config.dropout,
                     batch_norm=config.batch_norm, activate_last=output_dim is None,
                     numeric_embedding=numeric_embedding, name=name)(x)
