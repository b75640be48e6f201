"""Named experiments: a base config per data setup, and one variant per zoo model.

Names are `<model>_<data>`, for every model in `ctr_zoo.models.names()` and
every data setup below, e.g. `dcn_v2_synthetic`, `dnn_criteo`,
`dcn_v2_criteo_x4`, `dcn_mix_dcnv2_paper`:

- `synthetic`: the built-in synthetic Criteo-style data (generated and cached
  on first use; its oracle AUC is known).
- `criteo`: a raw Criteo TSV given with --data (defaults to the 6,000-row
  sample in ../shared/data when present), random 8:1:1 split.
- `criteo_x4`: BARS Criteo_x4_001 (Zhu et al., "Open Benchmarking for
  Click-Through Rate Prediction", CIKM'21): Kaggle train.txt, random 8:1:1
  split with seed 2018, min_count 10, integer fields bucketed
  (floor(ln(x)^2)), embedding dim 16, Adam 1e-3, batch 10000.
- `dcnv2_paper`: DCN-V2 paper (Wang et al., WWW'21, Sec. 7): Kaggle
  train.txt, the first six days train, the last day halved into valid and
  test; log transform of integer fields; embedding dim 39; Adam, batch 512,
  gradient-norm clip 10.

Each is the base plus a few changed fields (`variant`), never a copy.
"""

from __future__ import annotations

import copy
import os
from typing import Callable, Dict, List

from experiments.configs import base

DEFAULT_EXPERIMENT = "dcn_v2_synthetic"
# Under `bazel run`, Bazel names the real workspace in BUILD_WORKSPACE_DIRECTORY.
REPO_ROOT = os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRITEO_SAMPLE = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data", "criteo",
                             "criteo_sample.tsv")
# Used only when the model registry cannot be imported (it lists the real zoo).
FALLBACK_MODELS = ("lr", "dnn", "deepfm", "dcn", "dcn_v2", "dcn_mix", "cdot")


def _synthetic() -> base.ExperimentConfig:
  cfg = base.ExperimentConfig()
  cfg.trainer.epochs = 3
  cfg.trainer.batch_size = 512
  cfg.trainer.checkpoint_every_steps = 100
  return cfg


def _criteo() -> base.ExperimentConfig:
  cfg = base.ExperimentConfig()
  base.apply_overrides(cfg, {
      "data.name": "criteo_sample", "data.source": "file", "data.path": CRITEO_SAMPLE,
      "data.min_count": 2, "trainer.epochs": 3, "trainer.batch_size": 256,
      "trainer.checkpoint_every_steps": 50,
  })
  return cfg


def _criteo_x4() -> base.ExperimentConfig:
  cfg = base.ExperimentConfig()
  base.apply_overrides(cfg, {
      "data.name": "criteo_x4", "data.source": "file", "data.split": "random",
      "data.valid_fraction": 0.1, "data.test_fraction": 0.1, "data.split_seed": 2018,
      "data.min_count": 10, "data.dense_transform": "bucketize", "data.embedding_dim": 16,
      "optimizer.embedding": "adam", "optimizer.embedding_learning_rate": 1e-3,
      "optimizer.dense_learning_rate": 1e-3,
      "trainer.batch_size": 10000, "trainer.epochs": 2, "trainer.checkpoint_every_steps": 1000,
      "trainer.log_every_steps": 100,
  })
  return cfg


def _dcnv2_paper() -> base.ExperimentConfig:
  cfg = base.ExperimentConfig()
  base.apply_overrides(cfg, {
      "data.name": "dcnv2_paper", "data.source": "file", "data.split": "by_day",
      "data.num_days": 7, "data.dense_transform": "log1p", "data.min_count": 10,
      "data.embedding_dim": 39, "optimizer.dense_learning_rate": 1e-3,
      "trainer.batch_size": 512, "trainer.clipnorm": 10.0, "trainer.epochs": 1,
      "trainer.checkpoint_every_steps": 5000, "trainer.log_every_steps": 200,
  })
  return cfg


DATA_SETUPS: Dict[str, Callable[[], base.ExperimentConfig]] = {
    "synthetic": _synthetic,
    "criteo": _criteo,
    "criteo_x4": _criteo_x4,
    "dcnv2_paper": _dcnv2_paper,
}

# Per data setup, per model ("*": every model) overrides chosen by validation
# (see each entry's comment and benchmarks/results/). A "*" entry setting
# `model.params.<field>` applies only to models whose config has that field
# (lr and fm have no dropout).
# `lr` is the KDD'13 model: FTRL-Proximal on every variable. alpha = 1, beta = 1,
# l2 = 1 chosen on the Criteo sample's valid split (alpha in 0.05..2, l2 in
# 0..5, l1 in 0/1e-3: l1 made no difference; alpha 2 with l2 0 diverged, alpha 2
# with l2 1 was 0.002 better on valid, within noise, so the stabler alpha 1).
_LR_FTRL = {"optimizer.embedding": "ftrl", "optimizer.dense": "ftrl",
            "optimizer.embedding_learning_rate": 1.0, "optimizer.dense_learning_rate": 1.0,
            "optimizer.embedding_params": {"beta": 1.0, "l2": 1.0},
            "optimizer.dense_params": {"beta": 1.0, "l2": 1.0}}

TUNED: Dict[str, Dict[str, Dict[str, object]]] = {
    # Chosen on the synthetic valid split (200k rows): the old defaults (AdaGrad
    # 0.05, Adam 1e-3, 2 epochs, dropout 0.2) underfit badly (dcn_v2 valid AUC
    # 0.69 -> 0.80 with these; see benchmarks/results/tuning.md).
    "synthetic": {
        "*": {"optimizer.embedding_learning_rate": 0.5, "optimizer.dense_learning_rate": 3e-3,
              "model.params.dropout": 0.1},
        "lr": _LR_FTRL,
    },
    # Criteo sample (4,820 train rows), valid split, seed 0, dnn and dcn_v2 over
    # embedding_l2 {1e-5, 1e-4} x dropout {0.2, 0.5} x AdaGrad lr {0.05, 0.2}:
    # both best at 1e-5 / 0.2 / 0.2 (benchmarks/results/regularization_sweep.json).
    "criteo": {
        "*": {"optimizer.embedding_learning_rate": 0.2, "model.params.embedding_l2": 1e-5,
              "model.params.dropout": 0.2},
        "lr": _LR_FTRL,
        # dcn (v1): batch norm in its 2x1024 tower made it unstable on 4,820 rows
        # (valid AUC 0.690 / 0.674 for seeds 0 / 1 with it, 0.728 / 0.723 without).
        "dcn": {"model.params.batch_norm": False},
    },
    "criteo_x4": {"lr": _LR_FTRL},
    "dcnv2_paper": {"lr": _LR_FTRL},
}


def model_names() -> List[str]:
  """The zoo's model names (from ctr_zoo.models), or a fallback list."""
  try:
    from experiments import zoo  # pylint: disable=g-import-not-at-top
    names = list(zoo.model_names())
  except ImportError:
    names = []
  return names or list(FALLBACK_MODELS)


def variant(data: str, model: str, overrides: Dict[str, object] = None) -> base.ExperimentConfig:
  """The `data` base with model `model` and a few changed fields."""
  if data not in DATA_SETUPS:
    raise KeyError(f"unknown data setup {data!r}; known: {sorted(DATA_SETUPS)}")
  cfg = DATA_SETUPS[data]()
  cfg.name = f"{model}_{data}"
  cfg.model.name = model
  base.apply_overrides(cfg, tuned_overrides(data, model))
  return base.apply_overrides(cfg, dict(overrides or {}))


def _model_fields(model: str):
  """Field names of `model`'s config dataclass, or None when the zoo is unavailable."""
  try:
    import dataclasses  # pylint: disable=g-import-not-at-top
    from experiments import zoo  # pylint: disable=g-import-not-at-top
    return {f.name for f in dataclasses.fields(zoo._models().config_class(model))}  # pylint: disable=protected-access
  except (ImportError, KeyError):
    return None


def tuned_overrides(data: str, model: str) -> Dict[str, object]:
  """TUNED[data]["*"] (fields the model has) updated with TUNED[data][model]."""
  table = TUNED.get(data, {})
  fields = _model_fields(model)
  out = {}
  for key, value in table.get("*", {}).items():
    if key.startswith("model.params."):
      name = key[len("model.params."):].split(".")[0]
      if fields is not None and name not in fields:
        continue
    out[key] = value
  out.update(table.get(model, {}))
  return out


def names() -> List[str]:
  """Every registered experiment name, sorted."""
  return sorted(f"{m}_{d}" for m in model_names() for d in DATA_SETUPS)


def parse_name(name: str):
  """'dcn_v2_criteo_x4' -> ('dcn_v2', 'criteo_x4'); KeyError naming the choices."""
  for data in sorted(DATA_SETUPS, key=len, reverse=True):
    suffix = "_" + data
    if name.endswith(suffix) and name[:-len(suffix)] in model_names():
      return name[:-len(suffix)], data
  raise KeyError(f"unknown experiment {name!r}; run with --list_experiments to see all "
                 f"(models: {model_names()}; data setups: {sorted(DATA_SETUPS)})")


def get(name: str, overrides: Dict[str, object] = None) -> base.ExperimentConfig:
  """The named experiment config (a fresh copy), with optional dotted overrides."""
  model, data = parse_name(name)
  cfg = variant(data, model)
  if overrides:
    base.apply_overrides(cfg, copy.deepcopy(overrides))
  return cfg.validate()
