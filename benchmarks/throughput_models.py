"""What the throughput benchmark times: its sizes and data, ctr_zoo's steps, the DeepCTR peers.

- `BenchSizes`, `benchmark_spec`, `synthetic_batches`: the benchmark's shapes,
  a hashed Criteo-style FeatureSpec and identical NumPy batches for both sides.
- ctr_zoo: the model built by `ctr_zoo.models.build` at those sizes, trained
  by the product's step (`Trainer`'s tf.function, embedding tables on sparse
  AdaGrad and the rest on Adam), by a variant with the dense part under XLA,
  or in mixed_bfloat16; and the model's embedding work alone.
- `model_flops`: the model's matmul FLOPs per example, counted from its own
  forward graph (`benchmarks.flops`).
- DeepCTR 0.9.4 (`benchmarks.deepctr_peers`): the peer of each model, trained
  by `model.fit`'s train function, in float32 or under the Keras global
  policy "mixed_bfloat16".
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
from typing import Any, Dict, List, Tuple

from absl import logging
import numpy as np

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf

from benchmarks import flops as flops_lib
from benchmarks import harness
from benchmarks import throughput_report
from ctr_zoo import checks

ALL_MODELS = ("dcn_v2", "dcn_mix", "deepfm", "dnn", "cdot", "can")
JIT_MODES = {"off": "off", "dense": "dense part"}
# The mixed-precision variant: no XLA, layers in bfloat16, float32 variables.
BF16_MODE = throughput_report.BF16_MODE
BF16_POLICY = "mixed_bfloat16"
# Layers whose output starts the purely dense part of ctr_zoo's models.
DENSE_PART_INPUTS = ("x0", "fields")


@dataclasses.dataclass(frozen=True)
class BenchSizes:
  """The benchmark's shapes.

  Args:
    batch_size: int. B. Defaults to 4096.
    num_fields: int. n, categorical fields. Defaults to 26.
    vocab_size: int. Rows per field's table. Defaults to 10000.
    embedding_dim: int. e. Defaults to 16.
    num_dense: int. Dense float fields. Defaults to 13.
    mlp: tuple of int. MLP hidden units. Defaults to (256, 256, 256).
    cross_layers: int. L. Defaults to 3.
    low_rank: int. r of DCN-Mix experts. Defaults to 32.
    num_experts: int. K of DCN-Mix. Defaults to 4.
    cdot_k: int. k of CDot. Defaults to 8.
  """
  batch_size: int = 4096
  num_fields: int = 26
  vocab_size: int = 10000
  embedding_dim: int = 16
  num_dense: int = 13
  mlp: Tuple[int, ...] = (256, 256, 256)
  cross_layers: int = 3
  low_rank: int = 32
  num_experts: int = 4
  cdot_k: int = 8

  def __post_init__(self):
    for f in dataclasses.fields(self):
      if f.name == "mlp":
        checks.positive_ints(self.mlp, "BenchSizes.mlp", allow_empty=False)
      else:
        checks.positive_int(getattr(self, f.name), f"BenchSizes.{f.name}")

  @property
  def input_width(self) -> int:
    """d = n * e + num_dense: the width of the concatenated input x0."""
    return self.num_fields * self.embedding_dim + self.num_dense


# --------------------------------------------------------------------------
# Synthetic data.
# --------------------------------------------------------------------------
def feature_names(sizes: BenchSizes) -> Tuple[List[str], List[str]]:
  """(dense names I1.., categorical names C1..), Criteo style."""
  return ([f"I{i}" for i in range(1, sizes.num_dense + 1)],
          [f"C{i}" for i in range(1, sizes.num_fields + 1)])


def benchmark_spec(sizes: BenchSizes):
  """A hashed Criteo-style FeatureSpec with exactly `vocab_size` ids per field."""
  from ctr_zoo import feature_columns as fc  # pylint: disable=g-import-not-at-top
  if sizes.vocab_size <= fc.NUM_RESERVED_IDS:
    raise ValueError(f"vocab_size must exceed the {fc.NUM_RESERVED_IDS} reserved ids, "
                     f"got {sizes.vocab_size}")
  dense, cats = feature_names(sizes)
  features = ([fc.DenseFeature(n, transform="log1p", embedding_dim=sizes.embedding_dim)
               for n in dense] +
              [fc.CategoricalFeature(n, hash_buckets=sizes.vocab_size - fc.NUM_RESERVED_IDS,
                                     embedding_dim=sizes.embedding_dim) for n in cats])
  return fc.FeatureSpec(features=tuple(features), label="label", name="throughput")


def synthetic_batches(sizes: BenchSizes, num_batches: int, seed: int):
  """`num_batches` (features, labels) pairs of model inputs (NumPy).

  Ids are uniform over [0, vocab_size) (int64 (B,)); dense values are
  log1p(Exp(1) * 10) (float32 (B,)); labels ~ Bernoulli(0.25) (float32 (B,)).
  """
  rng = np.random.default_rng(seed)
  dense, cats = feature_names(sizes)
  out = []
  for _ in range(num_batches):
    features = {}
    for n in dense:
      features[n] = np.log1p(rng.exponential(10.0, sizes.batch_size)).astype(np.float32)
    for n in cats:
      features[n] = rng.integers(0, sizes.vocab_size, sizes.batch_size, dtype=np.int64)
    labels = (rng.random(sizes.batch_size) < 0.25).astype(np.float32)
    out.append((features, labels))
  return out


def to_tensors(batches):
  """NumPy (features, labels) pairs -> the same as tf constants."""
  return [({k: tf.constant(v) for k, v in f.items()}, tf.constant(y)) for f, y in batches]


# --------------------------------------------------------------------------
# ctr_zoo's model, its FLOPs and its steps.
# --------------------------------------------------------------------------
def ctr_zoo_overrides(model_name: str, sizes: BenchSizes, config_class) -> Dict[str, Any]:
  """Config overrides that set the benchmark's sizes, for the fields `config_class` has.

  The tower gets the benchmark's MLP without dropout (DeepCTR's default
  dnn_dropout is 0 too) and the embedding section its width.

  Raises:
    ValueError: `config_class` has neither a tower nor an embedding section
      (the benchmark's sizes would not reach the model).
  """
  fields = {f.name for f in dataclasses.fields(config_class)}
  if not {"tower", "embedding"} <= fields:
    raise ValueError(f"{model_name}: {config_class.__name__} has no tower/embedding section to "
                     f"size; fields: {sorted(fields)}")
  out = {"tower": {"dims": tuple(sizes.mlp), "dropout": 0.0},
         "embedding": {"dim": sizes.embedding_dim}}
  wanted = {"num_cross_layers": sizes.cross_layers, "low_rank": sizes.low_rank,
            "num_experts": sizes.num_experts, "num_projections": sizes.cdot_k}
  out.update({k: v for k, v in wanted.items() if k in fields})
  return out


def _import_model_modules():
  """Imports every module of ctr_zoo/models so each model is registered."""
  import ctr_zoo.models as zoo_models  # pylint: disable=g-import-not-at-top
  for info in pkgutil.iter_modules(zoo_models.__path__):
    if not info.name.endswith("_test"):
      try:
        importlib.import_module(f"ctr_zoo.models.{info.name}")
      except Exception as e:  # pylint: disable=broad-except
        logging.warning("could not import ctr_zoo.models.%s: %s", info.name, e)


def build_ctr_zoo_model(model_name: str, spec, sizes: BenchSizes, seed: int,
                        precision: str = "float32"):
  """(ctr_zoo.models.build(name, spec, precision=precision, **size overrides), the overrides)."""
  from ctr_zoo.models import registry  # pylint: disable=g-import-not-at-top
  import ctr_zoo.models as zoo_models  # pylint: disable=g-import-not-at-top
  build = getattr(zoo_models, "build", registry.build)
  _import_model_modules()
  tf.keras.backend.clear_session()
  tf.keras.utils.set_random_seed(seed)
  overrides = ctr_zoo_overrides(model_name, sizes, registry.config_class(model_name))
  return build(model_name, spec, precision=precision, **overrides), overrides


def model_flops(model, sizes: BenchSizes, seed: int = 0) -> int:
  """Forward matmul FLOPs per example of a built ctr_zoo `model`, from its traced graph."""
  (features, _), = synthetic_batches(dataclasses.replace(sizes, batch_size=4), 1, seed)
  return flops_lib.forward_matmul_flops(flops_lib.keras_forward(model),
                                        lambda b: flops_lib.batch_of(features, b))


def flops_of(model_name: str, sizes: BenchSizes, seed: int = 0) -> int:
  """Forward matmul FLOPs per example of ctr_zoo's `model_name` built at `sizes` (float32)."""
  model, _ = build_ctr_zoo_model(model_name, benchmark_spec(sizes), sizes, seed)
  return model_flops(model, sizes, seed)


def split_optimizer(model, embedding_optimizer: str = "adagrad"):
  """ctr_zoo's embedding/dense split: a sparse optimizer on tables, Adam on the rest.

  `ctr_zoo.optimizers.split.SplitOptimizer` with the model's
  `embedding_variables` as the embedding set; it hands IndexedSlices to the
  sparse kernels. AdaGrad on the tables matches the models'
  `default_optimizers` hint.

  Returns:
    (optimizer, description).
  """
  from ctr_zoo.optimizers import split  # pylint: disable=g-import-not-at-top
  opt = split.SplitOptimizer(embedding_optimizer=embedding_optimizer, dense_optimizer="adam",
                             embedding_variables=lambda: model.embedding_variables)
  kind = type(opt.embedding_optimizer)
  return opt, (f"SplitOptimizer({embedding_optimizer} [{kind.__module__.split('.')[0]}."
               f"{kind.__name__}] on embedding_variables, adam on dense)")


def make_trainer_step(model, optimizer, jit_compile: bool):
  """The product's step: ctr_zoo.training.Trainer's tf.function train step."""
  from ctr_zoo.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  trainer = trainer_lib.Trainer(model, optimizer, trainer_lib.TrainerConfig(
      deterministic=False, jit_compile=jit_compile))
  return trainer.train_step


def embedding_layers(model) -> list:
  """The model's top-level layers that own tables (FeatureEmbedding, LinearLogit)."""
  return [layer for layer in model.layers if getattr(layer, "embedding_variables", None)]


def make_embedding_step(model):
  """The model's embedding work alone: its lookups, row regularizers and table updates.

  Each layer of `embedding_layers(model)` looks up the batch as in the model;
  the loss is sum_o mean((o - 1)^2) over their outputs plus their regularization
  losses, so every looked-up row gets a gradient, and a fresh
  `split_optimizer(model)` applies those to the tables (its sparse AdaGrad:
  the same kernels as the model's step). No interaction, tower or dense
  optimizer work. It trains the model's tables on a meaningless loss, so it
  is for timing only.

  Raises:
    ValueError: the model has no embedding layers.
  """
  layers = embedding_layers(model)
  if not layers:
    raise ValueError(f"{model.name}: no layer with embedding_variables")
  variables = [v for layer in layers for v in layer.embedding_variables]
  optimizer, _ = split_optimizer(model)

  @tf.function
  def step(features, labels):
    del labels
    with tf.GradientTape() as tape:
      outputs = []
      for layer in layers:
        out = layer(features, training=True)
        outputs.extend(out.values() if isinstance(out, dict) else [out])
      loss = tf.add_n([tf.reduce_mean(tf.square(tf.cast(o, tf.float32) - 1.0)) for o in outputs])
      losses = [l for layer in layers for l in layer.losses]
      if losses:
        loss += tf.add_n([tf.cast(l, tf.float32) for l in losses])
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss

  return step


def make_dense_part_jit_step(model, optimizer):
  """Embedding lookups plain, the dense part XLA-compiled, the optimizer outside XLA.

  The model is cut at its first layer in DENSE_PART_INPUTS (x0 (B, d), or
  the field stack (B, n, e)): everything after it must depend on that tensor
  only. The lookups and the sparse optimizer kernels stay out of XLA (on CPU
  XLA turns the table gradients into dense scatters); forward and backward of
  the dense part run as XLA clusters.

  Raises:
    ValueError: the model has no such cut (e.g. a linear part reads the inputs).
  """
  for name in DENSE_PART_INPUTS:
    try:
      cut = model.get_layer(name).output
    except ValueError:
      continue
    front = tf.keras.Model(model.inputs, cut)
    back = tf.keras.Model(cut, model.output)  # ValueError when the graph is not cut here
    break
  else:
    raise ValueError(f"{model.name}: no layer named one of {DENSE_PART_INPUTS} to cut at")
  variables = model.trainable_variables
  dense_part = tf.function(lambda x: back(x, training=True), jit_compile=True)

  @tf.function
  def step(features, labels):
    labels = tf.reshape(tf.cast(labels, tf.float32), (-1, 1))  # (B, 1)
    with tf.GradientTape() as tape:
      probs = dense_part(front(features, training=True))  # (B, 1)
      loss = tf.reduce_mean(tf.keras.losses.binary_crossentropy(labels, probs))
      if model.losses:
        loss += tf.add_n(model.losses)
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss

  return step


def make_ctr_zoo_step(mode: str, model, optimizer):
  """The step of `mode`: "off" and BF16_MODE use the Trainer's, "dense" the XLA variant."""
  if mode in ("off", BF16_MODE):
    return make_trainer_step(model, optimizer, jit_compile=False)
  return make_dense_part_jit_step(model, optimizer)


def _error(e: Exception) -> str:
  return f"{type(e).__name__}: {e}"[:300]


def prepare_ctr_zoo(model_name: str, sizes: BenchSizes, spec, tf_batches, jit: str, seed: int,
                    bfloat16: bool = False):
  """Builds ctr_zoo's model once per mode: ({mode: (step, sync)}, {mode: model}, info).

  Modes: the float32 jit modes of `jit` ("off", "dense"), plus BF16_MODE
  (precision="mixed_bfloat16", no XLA) when `bfloat16`. info holds the
  overrides, the optimizer, the parameter counts and the model's forward
  matmul FLOPs per example ("forward_flops_per_example"), counted from the
  first float32 model's graph.
  """
  runners, models, info = {}, {}, {"modes": {}}
  modes = {"auto": ["off", "dense"], "on": ["dense"], "off": ["off"]}[jit]
  for mode in modes + ([BF16_MODE] if bfloat16 else []):
    precision = BF16_POLICY if mode == BF16_MODE else "float32"
    try:
      model, overrides = build_ctr_zoo_model(model_name, spec, sizes, seed, precision)
    except Exception as e:  # pylint: disable=broad-except
      if mode == BF16_MODE:
        info["modes"][mode] = {"error": _error(e)}
        continue
      return {}, {}, {"note": f"ctr_zoo model unavailable: {_error(e)}"}
    info["overrides"] = json.loads(json.dumps(overrides))  # tuples -> lists, as in the record
    if "forward_flops_per_example" not in info and mode != BF16_MODE:
      try:
        info["forward_flops_per_example"] = model_flops(model, sizes, seed)
      except Exception as e:  # pylint: disable=broad-except
        info["flops_error"] = _error(e)
    if mode == BF16_MODE:
      info["modes"][mode] = {"matmul_flop_share_bfloat16": bfloat16_share(model, sizes, seed)}
    optimizer, info["optimizer"] = split_optimizer(model)
    try:
      step_fn = make_ctr_zoo_step(mode, model, optimizer)
    except Exception as e:  # pylint: disable=broad-except
      info["modes"][mode] = {"error": _error(e)}
      continue
    runners[mode] = (harness.cycle(step_fn, tf_batches), harness.sync_scalar)
    models[mode] = model
    if hasattr(model, "parameter_counts"):
      info["parameters"] = model.parameter_counts()
  return runners, models, info


def bfloat16_share(model, sizes: BenchSizes, seed: int, peer_inputs=None) -> float:
  """The share of `model`'s forward matmul FLOPs computed in bfloat16 (traced at batch 4)."""
  (features, _), = synthetic_batches(dataclasses.replace(sizes, batch_size=4), 1, seed)
  if peer_inputs is not None:
    features = peer_inputs(features)
  graph = flops_lib.forward_graph(flops_lib.keras_forward(model), flops_lib.batch_of(features, 4))
  in_bf16, total = flops_lib.dtype_share(graph, tf.bfloat16)
  return in_bf16 / total if total else 0.0


# --------------------------------------------------------------------------
# The DeepCTR side.
# --------------------------------------------------------------------------
def prepare_deepctr(model_name: str, sizes: BenchSizes, batches, seed: int,
                    policy: str = "float32"):
  """Builds the DeepCTR peer of `model_name`: ((step, sync) or None, info dict).

  With `policy` "mixed_bfloat16" the peer is built under that Keras global
  policy (DeepCTR's layers then compute in bfloat16 with float32 variables);
  the global policy is restored afterwards. info["matmul_flop_share_bfloat16"]
  says how much of the peer's forward matmul work the policy moved to bfloat16.
  """
  from benchmarks import deepctr_peers  # pylint: disable=g-import-not-at-top
  if model_name not in deepctr_peers.PEER_NAMES:
    return None, {"note": "no DeepCTR equivalent"}
  ok, why = deepctr_peers.availability()
  if not ok:
    return None, {"note": why}
  dense, cats = feature_names(sizes)
  tf.keras.utils.set_random_seed(seed)
  previous = tf.keras.mixed_precision.global_policy()
  tf.keras.mixed_precision.set_global_policy(policy)
  try:
    model = deepctr_peers.build(model_name, cats, dense, sizes.vocab_size, sizes.embedding_dim,
                                sizes.mlp, sizes.cross_layers, sizes.low_rank, sizes.num_experts)
  finally:
    tf.keras.mixed_precision.set_global_policy(previous)
  peer_batches = [(deepctr_peers.to_peer_inputs(f, cats, dense), y) for f, y in batches]
  runner = deepctr_peers.make_train_step(model, peer_batches)
  info = {"name": f"DeepCTR {why} {deepctr_peers.PEER_NAMES[model_name]}",
          "optimizer": "Adam (all variables), model.fit's train function", "policy": policy}
  if policy != "float32":
    info["matmul_flop_share_bfloat16"] = bfloat16_share(
        model, sizes, seed, peer_inputs=lambda f: deepctr_peers.to_peer_inputs(f, cats, dense))
    info["output_dtype"] = model.output.dtype.name
  return runner, info
