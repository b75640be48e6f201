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
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRITEO_SAMPLE = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data", "criteo",
                             "criteo_sample.tsv")
# Used only when the model registry cannot be imported (it lists the real zoo).
FALLBACK_MODELS = ("lr", "dnn", "deepfm", "dcn", "dcn_v2", "dcn_mix", "cdot")


def _synthetic() -> base.ExperimentConfig:
  cfg = base.ExperimentConfig()
  cfg.trainer.epochs = 2
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
  return base.apply_overrides(cfg, dict(overrides or {}))


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
