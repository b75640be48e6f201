"""`dcnv3`: DCNv3 (Li et al., 2024): exponential and linear self-mask cross networks, Tri-BCE."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import self_mask_cross_net as smcn_lib
from ctr_zoo.models import base
from ctr_zoo.models import parts as parts_lib
from ctr_zoo.models.registry import register_model

# Cross bias initializers by name: "uniform" is uniform [0, 1) (the authors' code).
BIAS_INITIALIZERS = ("zeros", "uniform")
# How numeric fields enter x0: "fields" = x_j v_j, one d-wide field each (the
# authors' code); "raw" = the values x_j themselves (the layout before this option).
NUMERIC_INPUTS = ("fields", "raw")


@dataclasses.dataclass(frozen=True)
class DCNv3Config:
  """Config of `dcnv3`.

  x0 = [e_1; ..; e_n; x_1 v_1; ..; x_m v_m] (every field d wide, as in the
  authors' code; `numeric_input="raw"`: [e_1; ..; e_n; x_1; ..; x_m]);
  y_D = w_D^T ECN(x0) + b_D (the deep,
  exponential network); y_S = w_S^T LCN(x0) + b_S (the shallow, linear one);
  logit = (y_D + y_S) / 2. No MLP: the crosses are the whole model.

  Args:
    num_deep_cross_layers: int. Layers of the exponential network. Defaults to 4.
    num_shallow_cross_layers: int. Layers of the linear network. Defaults to 4.
    deep_dropout: float. Dropout after each exponential layer. Defaults to 0.1.
    shallow_dropout: float. Dropout after each linear layer. Defaults to 0.3.
    layer_norm: bool. Layer norm inside the self-mask. Defaults to True.
    batch_norm: bool. Batch norm of each layer's c_l (the authors' code;
      `SelfMaskCrossNet`). Defaults to False (on in the Frappe experiments,
      by 5-fold CV: benchmarks/results/tuning.md).
    bias_initializer: str. Initializer of the cross biases b_l: "zeros" or
      "uniform" (uniform [0, 1), the authors' code). Defaults to "zeros".
    tri_bce: bool. Train with the Tri-BCE loss (see `DCNv3.training_loss`);
      False: plain BCE on the averaged logit. Defaults to True.
    cross_l2: float. L2 on the cross kernels. Defaults to 0.0.
    numeric_input: str. "fields": each numeric field enters x0 as x_j v_j
      (a learned d-vector v_j, initialised like the embeddings); "raw": as the
      value x_j. Defaults to "fields": ECN(x0) is a polynomial of degree
      2^L in x0 (16 for L = 4), so raw log1p values of 5-10 gave initial
      logits in the hundreds, and one seed on the synthetic data never
      recovered (test AUC 0.678 against 0.776; benchmarks/results/tuning.md).
      Models saved before this option existed reload with "raw".
    embedding: EmbeddingConfig. Width, L2 and table layout.
  """
  num_deep_cross_layers: int = 4
  num_shallow_cross_layers: int = 4
  deep_dropout: float = 0.1
  shallow_dropout: float = 0.3
  layer_norm: bool = True
  batch_norm: bool = False
  bias_initializer: str = "zeros"
  tri_bce: bool = True
  cross_l2: float = 0.0
  numeric_input: str = "fields"
  embedding: base.EmbeddingConfig = dataclasses.field(default_factory=base.EmbeddingConfig)

  # Saved before `numeric_input` existed: the raw values were in x0.
  OLDER_FILE_DEFAULTS = {"numeric_input": "raw"}

  def __post_init__(self):
    owner, error = "DCNv3Config", base.ModelConfigError
    checks.positive_int(self.num_deep_cross_layers, f"{owner}.num_deep_cross_layers", error=error)
    checks.positive_int(self.num_shallow_cross_layers, f"{owner}.num_shallow_cross_layers",
                        error=error)
    checks.fraction(self.deep_dropout, f"{owner}.deep_dropout", error=error)
    checks.fraction(self.shallow_dropout, f"{owner}.shallow_dropout", error=error)
    checks.boolean(self.layer_norm, f"{owner}.layer_norm", error=error)
    checks.boolean(self.batch_norm, f"{owner}.batch_norm", error=error)
    checks.choice(self.bias_initializer, f"{owner}.bias_initializer", BIAS_INITIALIZERS,
                  error=error)
    checks.boolean(self.tri_bce, f"{owner}.tri_bce", error=error)
    checks.non_negative(self.cross_l2, f"{owner}.cross_l2", error=error)
    checks.choice(self.numeric_input, f"{owner}.numeric_input", NUMERIC_INPUTS, error=error)


@register_model("dcnv3")
class DCNv3(base.CTRModel):
  """Deep Cross Network v3: an exponential and a linear cross network, logits averaged.

  Trained by ctr_zoo's `Trainer` (which calls `training_loss`) with Tri-BCE:
  L = BCE(y, sigma(logit)) + w_D BCE(y, sigma(y_D)) + w_S BCE(y, sigma(y_S)),
  w_D = max(L_D - L, 0), w_S = max(L_S - L, 0), so a sub-network that fits
  worse than the ensemble gets its own supervision. (A model compiled with
  Keras `fit` and a plain loss trains on BCE of the averaged logit.)

  Paper: H. Li, Y. Zhang, Y. Zhang, H. Li, L. Sang, J. Yang, "DCNv3: Towards
  Next Generation Deep Cross Network for CTR Prediction" (arXiv 2407.13349),
  Eqs. 2-5 and 9-10.
  """
  config_class = DCNv3Config

  @classmethod
  def build_logit(cls, parts, config):
    if config.numeric_input == "fields" and parts.dense_matrix() is not None:
      x0 = parts_lib.flatten(
          parts.field_stack(owner="dcnv3 with numeric_input='fields'").stack, name="x0")  # (B, (n + m) d)
    else:
      x0 = parts.flat_input()  # (B, n d + m)
    regularizer = parts_lib.l2_or_none(config.cross_l2)
    common = dict(layer_norm=config.layer_norm, batch_norm=config.batch_norm,
                  kernel_regularizer=regularizer,
                  bias_initializer=(tf.keras.initializers.RandomUniform(0.0, 1.0)
                                    if config.bias_initializer == "uniform" else "zeros"))
    deep = smcn_lib.SelfMaskCrossNet(config.num_deep_cross_layers, kind="exponential",
                                     dropout=config.deep_dropout, name="exponential_cross",
                                     **common)(x0)
    shallow = smcn_lib.SelfMaskCrossNet(config.num_shallow_cross_layers, kind="linear",
                                        dropout=config.shallow_dropout, name="linear_cross",
                                        **common)(x0)
    logits = [parts_lib.head(deep, name="deep_head"), parts_lib.head(shallow, name="shallow_head")]
    return tf.keras.layers.Average(name="dcnv3_logit")(logits)  # (B, 1)

  def _heads(self):
    """A model sharing the layers: features -> [logit, y_D, y_S], each (B, 1) float32."""
    heads = self.__dict__.get("_heads_model")
    if heads is None:
      heads = tf.keras.Model(self.inputs, [self.get_layer(n).output
                                           for n in ("logit", "deep_head", "shallow_head")])
      object.__setattr__(self, "_heads_model", heads)  # untracked: the layers are ours already
    return heads

  def training_loss(self, features, labels):
    if not self.model_config.tri_bce:
      return super().training_loss(features, labels)
    labels = tf.reshape(tf.cast(labels, tf.float32), (-1, 1))  # (B, 1)
    logit, deep, shallow = (tf.cast(t, tf.float32) for t in self._heads()(features, training=True))

    def bce(z):
      return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, z))

    loss, loss_deep, loss_shallow = bce(logit), bce(deep), bce(shallow)
    loss = (loss + loss_deep * tf.nn.relu(loss_deep - loss)
            + loss_shallow * tf.nn.relu(loss_shallow - loss))
    return loss, tf.sigmoid(logit)
