"""`finalmlp`: FinalMLP (Mao et al., AAAI'23): two gated MLP streams, bilinear fusion."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from ctr_zoo import checks
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.layers import bilinear_fusion
from ctr_zoo.layers import feature_gate
from ctr_zoo.layers import tower as tower_lib
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.registry import register_model


@dataclasses.dataclass(frozen=True)
class FinalMLPConfig:
  """Config of `finalmlp`.

  x0 = [e_1; ..; e_n; x_dense];  x_i = x0 (.) 2 sigma(MLP_g,i(z_i))  (i = 1, 2);
  u = MLP_1(x_1), v = MLP_2(x_2);  logit = u^T w_u + v^T w_v + b + sum_j u_j^T W_j v_j.

  Args:
    stream1: TowerConfig. The first stream's MLP. Defaults to 3 x 400,
      dropout 0.2.
    stream2: TowerConfig. The second stream's MLP. Defaults to 1 x 800,
      dropout 0.2 (the streams differ in depth and width on purpose).
    feature_gates: bool. Stream-specific feature selection; False feeds x0 to
      both streams. Defaults to True.
    gate_hidden_dims: tuple of int. Hidden widths of each gate's MLP.
      Defaults to (800,).
    stream1_context: tuple of str. Id features whose embeddings are the first
      gate's context z_1; () learns one context vector. Defaults to ().
    stream2_context: tuple of str. The same for the second gate. Defaults to ().
    num_heads: int. Heads of the bilinear fusion; must divide both streams'
      output widths. Defaults to 2.
    embedding: EmbeddingConfig. Width, L2 and table layout.
  """
  stream1: base.TowerConfig = dataclasses.field(
      default_factory=lambda: base.TowerConfig(dims=(400, 400, 400)))
  stream2: base.TowerConfig = dataclasses.field(
      default_factory=lambda: base.TowerConfig(dims=(800,)))
  feature_gates: bool = True
  gate_hidden_dims: Tuple[int, ...] = (800,)
  stream1_context: Tuple[str, ...] = ()
  stream2_context: Tuple[str, ...] = ()
  num_heads: int = 2
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)

  def __post_init__(self):
    owner, error = "FinalMLPConfig", base.ModelConfigError
    for name in ("stream1", "stream2"):
      if not getattr(self, name).dims:
        raise error(f"{owner}.{name}.dims must not be empty (each stream is an MLP)")
    checks.boolean(self.feature_gates, f"{owner}.feature_gates", error=error)
    checks.positive_ints(self.gate_hidden_dims, f"{owner}.gate_hidden_dims", error=error)
    for name in ("stream1_context", "stream2_context"):
      value = getattr(self, name)
      if not isinstance(value, tuple) or not all(isinstance(n, str) for n in value):
        raise error(f"{owner}.{name} must be a tuple of feature names, got {value!r}")
    checks.positive_int(self.num_heads, f"{owner}.num_heads", error=error)


def _context(parts, names, owner):
  """The concatenated embeddings (B, c) of the features `names`, or None for ()."""
  if not names:
    return None
  ids = [f.name for f in parts.spec.features
         if isinstance(f, spec_lib.SequenceFeature) or f.is_categorical]
  embeddings = dict(zip(ids, parts.embeddings()))
  missing = [n for n in names if n not in embeddings]
  if missing:
    raise base.ModelConfigError(f"{owner} names {missing}, which are not id features of the "
                                f"spec ({ids})")
  return parts_lib.concat([embeddings[n] for n in names], name=f"{owner}_features")


@register_model("finalmlp")
class FinalMLP(base.CTRModel):
  """Two MLP streams on differently gated inputs, fused by a multi-head bilinear layer.

  Paper: K. Mao, J. Zhu, L. Su, G. Cai, Y. Li, Z. Dong, "FinalMLP: An Enhanced
  Two-Stream MLP Model for CTR Prediction", AAAI'23 (arXiv 2304.00902).
  """
  config_class = FinalMLPConfig

  @classmethod
  def build_logit(cls, parts, config):
    x0 = parts.flat_input()  # (B, D)
    streams = []
    for i, (tower, context) in enumerate(((config.stream1, config.stream1_context),
                                          (config.stream2, config.stream2_context)), start=1):
      x = x0
      if config.feature_gates:
        gate = feature_gate.FeatureGate(config.gate_hidden_dims, name=f"gate_{i}")
        z = _context(parts, context, f"stream{i}_context")
        x = gate(x0) if z is None else gate([x0, z])  # (B, D)
      streams.append(tower_lib.build_tower(x, tower, name=f"stream_{i}"))  # (B, d_i)
    return bilinear_fusion.BilinearFusion(config.num_heads, name="fusion")(streams)  # (B, 1)
