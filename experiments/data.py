"""Data for the experiment targets: raw or synthetic rows -> cached Parquet shards.

`prepare(data_config, data_flag)` returns a `PreparedData`: the fitted
FeatureSpec, one shard directory per split (train / valid / test), split
sizes, a fingerprint of the data and, for synthetic data, the oracle metrics
of each split. Everything is produced with `ctr_zoo.datasets` (fit on the
train split, transform every split) and cached under the cache root
($CTR_ZOO_CACHE, else `data_cache/` in the repository root, git-ignored),
keyed by the source files (path, size, mtime) and the data config, so a second
run starts training at once.

`--data` may be:
- empty: the built-in synthetic Criteo-style data (generated on first use);
- a raw file / glob / comma-separated list of files (Criteo TSV, CSV with a
  header, Parquet). For split="by_day" give one file per day, in order
  (e.g. Kaggle train.txt cut into 7 equal parts: `split -n l/7 train.txt day_`);
- a directory written by `experiments/preprocess.py` or a previous run (it
  holds spec.json and train/, valid/, test/ shard directories): used as is.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
from typing import Dict, List, Optional

from absl import logging

from ctr_zoo.datasets import input_pipeline
from ctr_zoo.datasets import preprocessing
from ctr_zoo.datasets import splits as splits_lib
from ctr_zoo.datasets import synthetic
from ctr_zoo.feature_columns import criteo as criteo_lib
from ctr_zoo.feature_columns import spec as spec_lib
from experiments.configs import base

# Under `bazel run` this file sits in a runfiles tree; Bazel names the real
# workspace in BUILD_WORKSPACE_DIRECTORY.
REPO_ROOT = os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
SPLITS = ("train", "valid", "test")


def cache_root() -> str:
  """$CTR_ZOO_CACHE, else <repo>/data_cache (git-ignored)."""
  return os.environ.get("CTR_ZOO_CACHE") or os.path.join(REPO_ROOT, "data_cache")


@dataclasses.dataclass
class PreparedData:
  """Transformed data ready for `make_dataset`.

  Attributes:
    spec: the fitted FeatureSpec.
    directory: the directory holding spec.json and one shard folder per split.
    rows: dict split -> rows.
    fingerprint: str. sha256 prefix identifying sources + preprocessing.
    oracle: dict split -> {auc, logloss, ...} for synthetic data, else {}.
  """
  spec: spec_lib.FeatureSpec
  directory: str
  rows: Dict[str, int]
  fingerprint: str
  oracle: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)

  def split_dir(self, split: str) -> str:
    return os.path.join(self.directory, split)

  def dataset(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0,
              skip_batches: int = 0):
    """(features, label) batches of `split` (see ctr_zoo.datasets.make_dataset)."""
    return input_pipeline.make_dataset(self.split_dir(split), self.spec, batch_size,
                                       shuffle=shuffle, seed=seed, skip_batches=skip_batches)


def _sources(data_flag: str) -> List[str]:
  paths = []
  for item in data_flag.split(","):
    item = item.strip()
    matched = sorted(glob.glob(item)) if any(c in item for c in "*?[") else [item]
    if not matched:
      raise FileNotFoundError(f"--data pattern {item!r} matches no file")
    paths.extend(matched)
  for path in paths:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"--data file {path!r} does not exist")
  return paths


def _fingerprint(paths: List[str], cfg: base.DataConfig) -> str:
  h = hashlib.sha256()
  for path in paths:
    st = os.stat(path)
    h.update(f"{os.path.abspath(path)}|{st.st_size}|{int(st.st_mtime)}\n".encode())
  relevant = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("name", "path")}
  h.update(json.dumps(relevant, sort_keys=True).encode())
  return h.hexdigest()[:16]


def _split_of(cfg: base.DataConfig, num_files: int):
  if cfg.split == "random":
    train = 1.0 - cfg.valid_fraction - cfg.test_fraction
    return splits_lib.RandomSplit((train, cfg.valid_fraction, cfg.test_fraction), cfg.split_seed)
  if num_files != cfg.num_days:
    raise ValueError(f"data.split='by_day' needs one file per day ({cfg.num_days} files, in "
                     f"order), got {num_files}; cut a single file with `split -n l/"
                     f"{cfg.num_days}`")
  return splits_lib.FileSplit(cfg.num_days - 1, cfg.split_seed)


def _load_prepared(directory: str, fingerprint: str = "") -> PreparedData:
  spec = spec_lib.FeatureSpec.load(os.path.join(directory, "spec.json"))
  rows, oracle = {}, {}
  summary_path = os.path.join(directory, "summary.json")
  if os.path.exists(summary_path):
    with open(summary_path) as fh:
      rows = dict(json.load(fh).get("rows", {}))
  oracle_path = os.path.join(directory, "oracle.json")
  if os.path.exists(oracle_path):
    with open(oracle_path) as fh:
      oracle = json.load(fh)
  missing = [s for s in SPLITS if not os.path.isdir(os.path.join(directory, s))]
  if missing:
    raise FileNotFoundError(f"prepared data {directory!r} lacks split folders {missing}")
  if not fingerprint:
    h = hashlib.sha256()
    for split in SPLITS:
      for path in sorted(glob.glob(os.path.join(directory, split, "*"))):
        h.update(f"{os.path.basename(path)}|{os.path.getsize(path)}\n".encode())
    h.update(spec.to_json().encode())
    fingerprint = h.hexdigest()[:16]
  return PreparedData(spec=spec, directory=directory, rows=rows, fingerprint=fingerprint,
                      oracle=oracle)


def synthetic_source(cfg: base.DataConfig) -> str:
  """Path of the cached synthetic TSV of `cfg` (generated on first use)."""
  # Keyed by the resolved world (defaults included) and the generator's version,
  # so a changed generator or default never reuses stale cached rows.
  world = synthetic.SyntheticCriteoConfig(**cfg.synthetic_options)
  key = json.dumps({"world": dataclasses.asdict(world), "version": synthetic.GENERATOR_VERSION},
                   sort_keys=True, default=str)
  tag = hashlib.sha256(key.encode()).hexdigest()[:8]
  path = os.path.join(cache_root(), "synthetic",
                      f"rows{cfg.synthetic_rows}-seed{cfg.synthetic_seed}-{tag}", "data.tsv")
  if not (os.path.exists(path) and os.path.exists(path + synthetic.ORACLE_SUFFIX)):
    logging.info("generating %d synthetic rows into %s", cfg.synthetic_rows, path)
    synthetic.generate_criteo_tsv(path, cfg.synthetic_rows, seed=cfg.synthetic_seed, config=world)
  return path


def prepare(cfg: base.DataConfig, data_flag: str = "") -> PreparedData:
  """Fits and transforms (or finds in the cache) the data of one experiment.

  Args:
    cfg: DataConfig. Source, split and preprocessing.
    data_flag: str. --data (overrides cfg.path); see the module docstring.
  """
  data_flag = data_flag or (cfg.path if cfg.source == "file" else "")
  if data_flag and os.path.isdir(data_flag):
    return _load_prepared(data_flag)
  if cfg.source == "file" and not data_flag:
    raise ValueError(f"data setup {cfg.name!r} reads a raw file: pass --data=PATH")
  paths = _sources(data_flag) if data_flag else [synthetic_source(cfg)]
  fingerprint = _fingerprint(paths, cfg)
  directory = os.path.join(cache_root(), "prepared", f"{cfg.name}-{fingerprint}")
  if os.path.exists(os.path.join(directory, "oracle.json")):
    logging.info("using cached prepared data %s", directory)
    return _load_prepared(directory, fingerprint)
  split = _split_of(cfg, len(paths))
  spec = criteo_lib.criteo_spec(dense_transform=cfg.dense_transform, min_count=cfg.min_count,
                                embedding_dim=cfg.embedding_dim, hash_buckets=cfg.hash_buckets)
  logging.info("fitting %s on the train split of %s and transforming into %s",
               spec.name, paths, directory)
  fitted, _, _ = preprocessing.fit_transform(paths, spec, directory, split=split, fit_split="train")
  oracle = {}
  if all(os.path.exists(p + synthetic.ORACLE_SUFFIX) for p in paths):
    oracle = {name: synthetic.split_oracle_metrics(paths, split, name) for name in SPLITS}
  # Written last: its presence marks a complete cache entry.
  with open(os.path.join(directory, "oracle.json"), "w") as fh:
    json.dump(oracle, fh, indent=2)
  return _load_prepared(directory, fingerprint)


def oracle_summary(prepared: PreparedData, split: str = "test") -> Optional[Dict[str, float]]:
  return prepared.oracle.get(split) or None
