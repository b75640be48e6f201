"""Named experiments: a base config per data setup, and one variant per zoo model.

Names are `<model>_<data>`, for every model in `ctr_zoo.models.names()` and
every data setup below, e.g. `dcn_v2_synthetic`, `dnn_criteo`,
`dcn_v2_criteo_x4`, `dcn_mix_dcnv2_paper`:

- `synthetic`: the built-in synthetic Criteo-style data (generated and cached
  on first use; its oracle AUC is known).
- `criteo`: a raw Criteo TSV given with --data (defaults to the 6,000-row
  sample in $CTR_ZOO_SHARED_DATA or ../shared/data when present), random
  8:1:1 split.
- `avazu`: the Avazu CSV (with its header) given with --data (defaults to the
  6,000-row shared sample), `data.spec="avazu"` (id dropped, hour of day and
  weekday derived from `hour`, every other column categorical), random 8:1:1.
- `frappe`: a Frappe libFM file given with --data (defaults to the shared
  57,722-row file), `data.spec="frappe"` (10 one-hot fields), random 8:1:1.
  BARS Frappe_x1 ships separate train / valid / test files: set
  `data.valid_path` and `data.test_path`.
- `criteo_x4`: BARS Criteo_x4_001 (Zhu et al., "Open Benchmarking for
  Click-Through Rate Prediction", CIKM'21): Kaggle train.txt, random 8:1:1
  split with seed 2018, min_count 10, integer fields bucketed
  (floor(ln(x)^2)), embedding dim 16, Adam 1e-3, batch 10000.
- `dcnv2_paper`: DCN-V2 paper (Wang et al., WWW'21, Sec. 7): Kaggle
  train.txt, the first six days train, the last day halved into valid and
  test; log transform of integer fields; embedding dim 39; Adam, batch 512,
  gradient-norm clip 10.

Each is the base plus a few changed fields (`variant`), never a copy. Every
named experiment stops early (`EARLY_STOPPING`): the valid split is scored
after every epoch, training stops after `trainer.patience` epochs without a new
best validation AUC (AUC - logloss on the Criteo sample, see TUNED; so
`trainer.epochs` is an upper bound), and the best epoch's weights are the ones
tested and exported.
"""

from __future__ import annotations

import copy
from typing import Callable, Dict, List

from experiments import paths
from experiments.configs import base

DEFAULT_EXPERIMENT = "dcn_v2_synthetic"


def _synthetic() -> base.ExperimentConfig:
  cfg = base.ExperimentConfig()
  base.apply_overrides(cfg, {
      "input.batch_size": 512, "trainer.epochs": 3, "trainer.checkpoint_every_steps": 100,
  })
  return cfg


# The epoch budget of the small real samples: an upper bound, early stopping
# (patience 2) decides. Chosen by 5-fold CV (benchmarks/results/tuning.md): with
# 3 epochs the Frappe models were still improving (dnn CV AUC 0.925 -> 0.945
# with 30, FTRL lr 0.775 -> 0.864), and on the Criteo sample fm, dcnv3 and lr
# gained (+0.004, +0.005, +0.001; dlrm -0.002); Avazu stops at epoch 3-4 anyway.
SMALL_DATA_MAX_EPOCHS = 30


def _criteo() -> base.ExperimentConfig:
  cfg = base.ExperimentConfig()
  base.apply_overrides(cfg, {
      "data.name": "criteo_sample", "data.source": "file", "data.path": paths.criteo_sample(),
      "data.min_count": 2, "input.batch_size": 256,
      "trainer.epochs": SMALL_DATA_MAX_EPOCHS, "trainer.checkpoint_every_steps": 50,
  })
  return cfg


def _avazu() -> base.ExperimentConfig:
  cfg = base.ExperimentConfig()
  base.apply_overrides(cfg, {
      "data.name": "avazu_sample", "data.source": "file", "data.path": paths.avazu_sample(),
      # min_count 1 by 5-fold CV (dnn +0.0035 on 4/5 folds, fm +0.0068; the
      # sklearn anchor's own CV picks 1 on 5/5 folds): on 4,800 training rows
      # a value seen once still carries signal.
      "data.spec": "avazu", "data.min_count": 1, "input.batch_size": 256,
      "trainer.epochs": SMALL_DATA_MAX_EPOCHS, "trainer.checkpoint_every_steps": 50,
  })
  return cfg


def _frappe() -> base.ExperimentConfig:
  cfg = base.ExperimentConfig()
  base.apply_overrides(cfg, {
      "data.name": "frappe", "data.source": "file", "data.path": paths.frappe_libfm(),
      "data.spec": "frappe", "data.min_count": 1, "input.batch_size": 1024,
      "trainer.epochs": SMALL_DATA_MAX_EPOCHS, "trainer.checkpoint_every_steps": 50,
  })
  return cfg


def _criteo_x4() -> base.ExperimentConfig:
  # Embedding dim 16: the spec's default width.
  cfg = base.ExperimentConfig()
  base.apply_overrides(cfg, {
      "data.name": "criteo_x4", "data.source": "file", "data.split": "random",
      "data.valid_fraction": 0.1, "data.test_fraction": 0.1, "data.split_seed": 2018,
      "data.min_count": 10, "data.dense_transform": "bucketize",
      "optimizer.embedding": "adam", "optimizer.embedding_learning_rate": 1e-3,
      "optimizer.dense_learning_rate": 1e-3, "input.batch_size": 10000,
      "trainer.epochs": 2, "trainer.checkpoint_every_steps": 1000, "trainer.log_every_steps": 100,
  })
  return cfg


def _dcnv2_paper() -> base.ExperimentConfig:
  cfg = base.ExperimentConfig()
  base.apply_overrides(cfg, {
      "data.name": "dcnv2_paper", "data.source": "file", "data.split": "by_day",
      "data.num_days": 7, "data.dense_transform": "log1p", "data.min_count": 10,
      "model.common_params.embedding.dim": 39, "optimizer.dense_learning_rate": 1e-3,
      "input.batch_size": 512, "trainer.clipnorm": 10.0, "trainer.epochs": 1,
      "trainer.checkpoint_every_steps": 5000, "trainer.log_every_steps": 200,
  })
  return cfg


# Early stopping for every named experiment (FuxiCTR's default patience).
EARLY_STOPPING = {"trainer.monitor": "auc", "trainer.patience": 2}

DATA_SETUPS: Dict[str, Callable[[], base.ExperimentConfig]] = {
    "synthetic": _synthetic,
    "criteo": _criteo,
    "avazu": _avazu,
    "frappe": _frappe,
    "criteo_x4": _criteo_x4,
    "dcnv2_paper": _dcnv2_paper,
}

# Per data setup, per model ("*": every model) overrides chosen by validation
# (see each entry's comment and benchmarks/results/). A "*" entry sets
# `model.common_params`, which applies only to models whose config has the
# field (lr and fm have no tower); a per-model entry sets `model.params`.
# `lr` is the KDD'13 model: FTRL-Proximal on every variable. alpha = 1, beta = 1,
# l2 = 1 chosen on the Criteo sample's valid split (alpha in 0.05..2, l2 in
# 0..5, l1 in 0/1e-3: l1 made no difference; alpha 2 with l2 0 diverged, alpha 2
# with l2 1 was 0.002 better on valid, within noise, so the stabler alpha 1).
_LR_FTRL = {"optimizer.embedding": "ftrl", "optimizer.dense": "ftrl",
            "optimizer.embedding_learning_rate": 1.0, "optimizer.dense_learning_rate": 1.0,
            "optimizer.embedding_params": {"beta": 1.0, "l2": 1.0},
            "optimizer.dense_params": {"beta": 1.0, "l2": 1.0}}

_CRITEO_BUCKETS = {"data.integer_encoding": "continuous+bucketize"}

TUNED: Dict[str, Dict[str, Dict[str, object]]] = {
    # Chosen on the synthetic valid split (200k rows): the old defaults (AdaGrad
    # 0.05, Adam 1e-3, 2 epochs, dropout 0.2) underfit badly (dcn_v2 valid AUC
    # 0.69 -> 0.80 with these; see benchmarks/results/tuning.md).
    "synthetic": {
        "*": {"optimizer.embedding_learning_rate": 0.5, "optimizer.dense_learning_rate": 3e-3,
              "model.common_params.tower.dropout": 0.1},
        "lr": _LR_FTRL,
        # One CIN layer of 64 maps, as xdeepfm_frappe (BARS's Frappe_x1 setting), for
        # cost, not tuned: the paper's 3 x 200 maps over 39 fields of width 16 are ~55M
        # multiply-adds per example (this: 1.6M), about 24 minutes per seed here.
        "xdeepfm": {"model.params.cin_layer_sizes": [64]},
    },
    # Criteo sample (4,820 train rows), valid split, seed 0, dnn and dcn_v2 over
    # embedding_l2 {1e-5, 1e-4} x dropout {0.2, 0.5} x AdaGrad lr {0.05, 0.2}:
    # both best at 1e-5 / 0.2 / 0.2 (benchmarks/results/regularization_sweep.json).
    "criteo": {
        # Early stopping on valid AUC - logloss (FuxiCTR's monitor) rather than AUC:
        # the valid fold holds ~460 rows, on which AUC alone picks noisy epochs. By
        # 5-fold CV x 3 seeds, paired (benchmarks/results/tuning.md): dcn_v2 +0.0020,
        # dlrm +0.0019, wide_deep +0.0012, dnn +0.0001 AUC, and test logloss
        # -0.003 to -0.005 for all four (monitor "logloss": dnn -0.0016 AUC).
        "*": {"optimizer.embedding_learning_rate": 0.2, "model.common_params.embedding.l2": 1e-5,
              "model.common_params.tower.dropout": 0.2, "trainer.monitor": "auc-logloss"},
        # Integer fields as a log1p float AND a log^2 bucket id (continuous+bucketize)
        # for the models it helped on 5-fold CV of the sample (paired mean test-AUC
        # gain over log1p floats, folds better of 5): lr +0.0143 (5), dlrm +0.0147 (5),
        # dcn_v2 +0.0081 (4), can +0.0052 (4), dnn +0.0033 (4). The field-wise models
        # (fm, deepfm, autoint, cdot, finalmlp, ...) lost 0.002-0.004 with it and keep
        # log1p (benchmarks/results/tuning.md).
        "lr": {**_LR_FTRL, **_CRITEO_BUCKETS},
        "dnn": _CRITEO_BUCKETS,
        "dcn_v2": _CRITEO_BUCKETS,
        "dlrm": _CRITEO_BUCKETS,
        "can": _CRITEO_BUCKETS,
        # dcn (v1): batch norm in its 2x1024 tower made it unstable on 4,820 rows
        # (valid AUC 0.690 / 0.674 for seeds 0 / 1 with it, 0.728 / 0.723 without).
        "dcn": {"model.params.tower.batch_norm": False},
    },
    # Avazu and Frappe: the Criteo sample's settings where 5-fold CV did not
    # choose others (benchmarks/results/tuning.md).
    "avazu": {
        "*": {"optimizer.embedding_learning_rate": 0.2, "model.common_params.embedding.l2": 1e-5,
              "model.common_params.tower.dropout": 0.2},
        "lr": _LR_FTRL,
        "dcn": {"model.params.tower.batch_norm": False},
    },
    "frappe": {
        "*": {"optimizer.embedding_learning_rate": 0.2, "model.common_params.embedding.l2": 1e-5,
              "model.common_params.tower.dropout": 0.2},
        # FTRL at batch 1024 (a batch-mean gradient): alpha 5, l2 0.01 by 5-fold CV
        # (CV AUC 0.864 with the Criteo sample's alpha 1 / l2 1 at 30 epochs, 0.881
        # with l2 0.01, 0.911 with alpha 5, 0.901 / 0.906 with alpha 20 / 50).
        "lr": {**_LR_FTRL, "optimizer.embedding_learning_rate": 5.0,
               "optimizer.dense_learning_rate": 5.0,
               "optimizer.embedding_params": {"beta": 1.0, "l2": 0.01},
               "optimizer.dense_params": {"beta": 1.0, "l2": 0.01}},
        "dcn": {"model.params.tower.batch_norm": False},
        # DCNv3 with its authors' batch norm of each cross layer's c_l: +0.0108 CV AUC, 5/5
        # folds; on the Criteo sample it lost 0.0024 over 3 seeds (one seed unstable), so it is
        # not the model's default (benchmarks/results/tuning.md).
        "dcnv3": {"model.params.batch_norm": True},
        # xDeepFM as BARS tuned it for Frappe_x1 (FuxiCTR's xDeepFM_frappe_x1_005 run:
        # one CIN layer of 64 maps beside the 3 x 400 DNN). The paper's Criteo CIN
        # (3 x 200 maps) costs about 60x the multiply-adds per example on 10 fields.
        "xdeepfm": {"model.params.cin_layer_sizes": [64]},
    },
    "criteo_x4": {"lr": _LR_FTRL},
    "dcnv2_paper": {"lr": _LR_FTRL},
}


def model_names() -> List[str]:
  """The zoo's model names (imports the model registry, hence TensorFlow)."""
  from experiments import zoo  # pylint: disable=g-import-not-at-top
  return list(zoo.model_names())


def variant(data: str, model: str, overrides: Dict[str, object] = None) -> base.ExperimentConfig:
  """The `data` base with model `model` and a few changed fields."""
  if data not in DATA_SETUPS:
    raise base.ConfigError(f"unknown data setup {data!r}; known: {sorted(DATA_SETUPS)}")
  cfg = base.apply_overrides(DATA_SETUPS[data](), EARLY_STOPPING)
  cfg.name = f"{model}_{data}"
  cfg.model.name = model
  base.apply_overrides(cfg, tuned_overrides(data, model))
  return base.apply_overrides(cfg, dict(overrides or {}))


def tuned_overrides(data: str, model: str) -> Dict[str, object]:
  """TUNED[data]["*"] updated with TUNED[data][model]."""
  table = TUNED.get(data, {})
  return {**table.get("*", {}), **table.get(model, {})}


def names() -> List[str]:
  """Every registered experiment name, sorted (imports the model registry)."""
  return sorted(f"{m}_{d}" for m in model_names() for d in DATA_SETUPS)


def parse_name(name: str):
  """'dcn_v2_criteo_x4' -> ('dcn_v2', 'criteo_x4'); ConfigError naming the data setups.

  Only the data setup is checked here; the model name is checked against the
  model registry when the config is resolved (`experiments.resolve`).
  """
  for data in sorted(DATA_SETUPS, key=len, reverse=True):
    suffix = "_" + data
    if isinstance(name, str) and name.endswith(suffix) and len(name) > len(suffix):
      return name[:-len(suffix)], data
  raise base.ConfigError(
      f"unknown experiment {name!r}: a name is <model>_<data setup> with a data setup in "
      f"{sorted(DATA_SETUPS)} (run with --list_experiments to see all)")


def get(name: str, overrides: Dict[str, object] = None) -> base.ExperimentConfig:
  """The named experiment config (a fresh copy, not yet resolved), with dotted overrides."""
  model, data = parse_name(name)
  cfg = variant(data, model)
  if overrides:
    base.apply_overrides(cfg, copy.deepcopy(overrides))
  return cfg
