"""The DeepCTR 0.9.4 equivalents of ctr_zoo's models, for throughput comparisons.

DeepCTR is a benchmark-only peer, never a dependency of ctr_zoo. Install it into
the benchmark environment only:

  .venv/bin/pip install --no-deps deepctr==0.9.4   # h5py and requests also needed

It runs on Keras 2 (tf-keras) with ``TF_USE_LEGACY_KERAS=1``; importing ctr_zoo
first sets that. When DeepCTR is absent, `availability()` says why and the
throughput harness skips the DeepCTR side.

Peers (DeepCTR's own defaults except for the sizes; Adam on every variable, as
``model.compile("adam", ...)`` gives):

- dcn_v2  -> ``DCN(cross_parameterization="matrix")`` (full-rank DCN-V2 cross
  layers, parallel with the DNN, plus DeepCTR's linear part).
- dcn_mix -> ``DCNMix(low_rank, num_experts)``.
- deepfm  -> ``DeepFM``.
- dnn     -> a plain DNN built from DeepCTR's own blocks (its embedding inputs,
  ``combined_dnn_input``, ``DNN`` and ``PredictionLayer``): DeepCTR has no
  plain-DNN model.

cdot and can have no DeepCTR equivalent.
"""

from typing import Dict, Optional, Sequence, Tuple

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import numpy as np
import tensorflow as tf

# ctr_zoo model name -> the DeepCTR model it is compared with.
PEER_NAMES = {
    "dcn_v2": 'DCN(cross_parameterization="matrix")',
    "dcn_mix": "DCNMix",
    "deepfm": "DeepFM",
    "dnn": "DNN (DeepCTR blocks)",
}


def availability() -> Tuple[bool, str]:
  """(True, version) if DeepCTR imports, else (False, the reason)."""
  try:
    import deepctr  # pylint: disable=g-import-not-at-top
  except Exception as e:  # pylint: disable=broad-except
    return False, (f"DeepCTR is not installed ({type(e).__name__}: {e}); install it into the "
                   "benchmark environment with `.venv/bin/pip install --no-deps deepctr==0.9.4`")
  version = getattr(deepctr, "__version__", "unknown")
  return True, version


def build(name: str, sparse_names: Sequence[str], dense_names: Sequence[str],
          vocab_size: int, embedding_dim: int, mlp: Sequence[int],
          cross_layers: int, low_rank: int, num_experts: int,
          seed: int = 1024) -> tf.keras.Model:
  """Builds and compiles (Adam, binary cross-entropy) the DeepCTR peer of `name`.

  Args:
    name: str. A key of PEER_NAMES ("dcn_v2", "dcn_mix", "deepfm", "dnn").
    sparse_names: sequence of str. Categorical input names, each (B, 1) int32.
    dense_names: sequence of str. Dense input names, each (B, 1) float32.
    vocab_size: int. Rows of each field's embedding table.
    embedding_dim: int. Embedding width.
    mlp: sequence of int. DNN hidden units.
    cross_layers: int. Number of cross layers (DCN, DCNMix).
    low_rank: int. DCNMix expert rank.
    num_experts: int. DCNMix experts per layer.
    seed: int. DeepCTR's seed. Defaults to 1024 (DeepCTR's default).

  Returns:
    A compiled tf.keras.Model taking a dict of (B, 1) inputs.
  """
  if name not in PEER_NAMES:
    raise ValueError(f"no DeepCTR peer for model {name!r}; peers exist for {sorted(PEER_NAMES)}")
  # pylint: disable=g-import-not-at-top
  from deepctr.feature_column import DenseFeat, SparseFeat
  from deepctr import models as dc_models
  columns = ([SparseFeat(n, vocabulary_size=vocab_size, embedding_dim=embedding_dim)
              for n in sparse_names] + [DenseFeat(n, 1) for n in dense_names])
  mlp = tuple(mlp)
  if name == "dcn_v2":
    model = dc_models.DCN(columns, columns, cross_num=cross_layers,
                          cross_parameterization="matrix", dnn_hidden_units=mlp, seed=seed)
  elif name == "dcn_mix":
    model = dc_models.DCNMix(columns, columns, cross_num=cross_layers, dnn_hidden_units=mlp,
                             low_rank=low_rank, num_experts=num_experts, seed=seed)
  elif name == "deepfm":
    model = dc_models.DeepFM(columns, columns, dnn_hidden_units=mlp, seed=seed)
  else:
    model = _plain_dnn(columns, mlp, seed)
  model.compile(optimizer="adam", loss="binary_crossentropy")
  return model


def _plain_dnn(columns, mlp, seed) -> tf.keras.Model:
  """DNN from DeepCTR's blocks: embeddings + dense -> DNN -> Dense(1) -> sigmoid."""
  # pylint: disable=g-import-not-at-top
  from deepctr.feature_column import build_input_features, input_from_feature_columns
  from deepctr.layers.utils import combined_dnn_input
  from deepctr.layers.core import DNN, PredictionLayer
  features = build_input_features(columns)
  sparse_list, dense_list = input_from_feature_columns(features, columns, 1e-5, seed)
  x = combined_dnn_input(sparse_list, dense_list)
  x = DNN(mlp, "relu", 0, 0, False, seed=seed)(x)
  logit = tf.keras.layers.Dense(1, use_bias=False)(x)
  output = PredictionLayer("binary")(logit)
  return tf.keras.Model(inputs=list(features.values()), outputs=output)


def to_peer_inputs(features: Dict[str, np.ndarray], sparse_names: Sequence[str],
                   dense_names: Sequence[str]) -> Dict[str, np.ndarray]:
  """ctr_zoo inputs ((B,) int64 ids, (B,) float32) -> DeepCTR's (B, 1) int32 / float32."""
  out = {}
  for n in sparse_names:
    out[n] = np.asarray(features[n]).astype(np.int32).reshape(-1, 1)  # (B, 1)
  for n in dense_names:
    out[n] = np.asarray(features[n]).astype(np.float32).reshape(-1, 1)  # (B, 1)
  return out


def make_train_step(model: tf.keras.Model, batches, labels_key: Optional[str] = None):
  """The step `model.fit` runs: Keras's compiled train function over a repeating dataset.

  Args:
    model: a compiled DeepCTR model.
    batches: list of (inputs dict, labels (B,)) pairs, cycled forever.
    labels_key: unused; kept for symmetry with ctr_zoo's step builder.

  Returns:
    (step, sync): `step()` runs one training step; `sync(out)` blocks on its result.
  """
  del labels_key
  inputs = [b[0] for b in batches]
  labels = [np.asarray(b[1], np.float32).reshape(-1, 1) for b in batches]
  ds = tf.data.Dataset.from_tensor_slices(
      ({k: np.stack([x[k] for x in inputs]) for k in inputs[0]}, np.stack(labels)))
  ds = ds.repeat().prefetch(2)
  iterator = iter(ds)
  train_function = model.make_train_function()

  def step():
    return train_function(iterator)

  def sync(out):
    return {k: float(v.numpy()) for k, v in out.items()}

  return step, sync
