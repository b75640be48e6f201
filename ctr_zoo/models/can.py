"""`can`: the Co-Action Network (Bian, Zhou et al., WSDM'22)."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.layers import co_action as co_lib
from ctr_zoo.layers import embedding as embedding_lib
from ctr_zoo.layers import sequence
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class CANConfig:
  """Config of `can`.

  For each co-action pair (a, b): p = P_ind^{(a)}[id_a] (B, D_w) reshaped into
  micro-MLP weights; H = P_feed^{(b)}[ids_b] (B, T, d_0); o = sum_t M_t
  [MLP_p(H_t^c)]_{c=1..C} (B, C sum_l d_l). Both tables are separate from the
  main embeddings. logit = w^T MLP([e_1; ..; e_n; x_dense; o_1; ..]) + b.

  Args:
    pairs: tuple of (induction, feed) feature names, or None. Defaults to
      None: every SequenceFeature b with shares_vocabulary_with=a gives (a, b)
      (the official item x item-history, category x category-history); a spec
      without such sequences (e.g. Criteo) gets the pairs (f0, f1), (f2, f3),
      (f4, f5) of its first six categorical features.
    mlp_dims: tuple of int. Micro-MLP [d_0 (feed width), d_1, ..]. Defaults to
      (16, 8, 4) (official; D_w = 160).
    orders: int. C. Defaults to 3.
    order_independent: bool. Separate micro-MLP weights per order. Defaults to False.
    induction_stddev: float. Std of the induction table's N(0, s^2) init (its
      rows are MLP weights: ~1/sqrt(fan-in 16)). Defaults to 0.25.
    embedding: EmbeddingConfig. The main embeddings' width, L2 and layout
      (the co-action tables have their own widths, from mlp_dims).
    tower: TowerConfig. The DNN. Defaults to (200, 80) with PReLU and no
      dropout (official).
  """
  pairs: Optional[Tuple[Tuple[str, str], ...]] = None
  mlp_dims: Tuple[int, ...] = (16, 8, 4)
  orders: int = 3
  order_independent: bool = False
  induction_stddev: float = 0.25
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)
  tower: base.TowerConfig = dataclasses.field(
      default_factory=lambda: base.TowerConfig(dims=(200, 80), dropout=0.0, activation="prelu"))

  def __post_init__(self):
    owner = "CANConfig"
    if self.pairs is not None:
      if not isinstance(self.pairs, tuple) or not self.pairs or any(
          not isinstance(p, tuple) or len(p) != 2 or not all(isinstance(n, str) for n in p)
          for p in self.pairs):
        raise base.ModelConfigError(
            f"{owner}.pairs must be None or a non-empty tuple of (induction, feed) name pairs, "
            f"got {self.pairs!r}")
    error = base.ModelConfigError
    checks.positive_ints(self.mlp_dims, f"{owner}.mlp_dims", allow_empty=False, error=error)
    if len(self.mlp_dims) < 2:
      raise error(f"{owner}.mlp_dims needs >= 2 widths (feed width first), got {self.mlp_dims!r}")
    checks.positive_int(self.orders, f"{owner}.orders", error=error)
    checks.boolean(self.order_independent, f"{owner}.order_independent", error=error)
    checks.non_negative(self.induction_stddev, f"{owner}.induction_stddev", error=error)


def co_action_pairs(spec: spec_lib.FeatureSpec, config: CANConfig) -> tuple:
  """The (induction, feed) pairs of `config` for `spec` (see CANConfig.pairs)."""
  if config.pairs is not None:
    pairs = config.pairs
  else:
    pairs = tuple((f.shares_vocabulary_with, f.name) for f in spec.sequence_features
                  if f.shares_vocabulary_with)
    if not pairs:
      cats = [f.name for f in spec.features if isinstance(f, spec_lib.CategoricalFeature)]
      pairs = tuple((cats[i], cats[i + 1]) for i in range(0, min(len(cats) - 1, 6), 2))
    if not pairs:
      raise base.ModelConfigError(
          "can: the spec has no sequence sharing a vocabulary and fewer than two "
          "categorical features, so there are no co-action pairs; set pairs=")
  names = spec.feature_names
  for a, b in pairs:
    for n in (a, b):
      if n not in names:
        raise base.ModelConfigError(f"can: co-action pair {(a, b)!r} names {n!r}, "
                                    f"which is not a feature of the spec ({names})")
    fa, fb = spec[a], spec[b]
    if isinstance(fa, spec_lib.SequenceFeature) or not fa.is_categorical:
      raise base.ModelConfigError(f"can: induction feature {a!r} of pair {(a, b)!r} must be a "
                                  "single-id feature (categorical or bucketized)")
    if not (isinstance(fb, spec_lib.SequenceFeature) or fb.is_categorical):
      raise base.ModelConfigError(f"can: feed feature {b!r} of pair {(a, b)!r} must be an id "
                                  "or sequence feature")
  return tuple(pairs)


@register_model("can")
class CAN(base.CTRModel):
  """Co-action units on (induction, feed) pairs, concatenated into a DNN with the usual embeddings.

  Paper: G. Bian, G. Zhou et al., "CAN: Feature Co-Action Network for
  Click-Through Rate Prediction", WSDM'22 (arXiv 2011.05625).
  """
  config_class = CANConfig

  @classmethod
  def build_logit(cls, parts, config):
    inputs, spec = parts.inputs, parts.spec
    width = co_lib.co_action_param_width(config.mlp_dims, False, config.orders,
                                         config.order_independent)
    outputs = []
    for i, (a, b) in enumerate(co_action_pairs(spec, config)):
      induction = embedding_lib.FeatureEmbedding(
          [(a, spec.num_ids(a), width)],
          embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=config.induction_stddev),
          name=f"co_action_{i}_induction")({a: inputs[a]})[a]  # (B, D_w)
      feed = embedding_lib.FeatureEmbedding(
          [(b, spec.num_ids(b), config.mlp_dims[0])],
          name=f"co_action_{i}_feed")({b: inputs[b]})[b]  # (B, T, d_0) or (B, d_0)
      unit_inputs = [induction, feed]
      if isinstance(spec[b], spec_lib.SequenceFeature):
        unit_inputs.append(sequence.SequenceMask(name=f"co_action_{i}_mask")(inputs[b]))  # (B, T)
      outputs.append(co_lib.CoActionUnit(
          config.mlp_dims, orders=config.orders, order_independent=config.order_independent,
          name=f"co_action_{i}")(unit_inputs))  # (B, C sum d_l)
    x0 = parts.flat_input()
    return parts_lib.stacked(parts_lib.concat([x0] + outputs, name="dnn_input"), config.tower)
