"""Data for the experiment targets: raw or synthetic rows -> cached Parquet shards.

`prepare(data_config)` returns a `PreparedData`: the fitted FeatureSpec, one
shard directory per split (train / valid / test), split sizes, a fingerprint
of the data and, for synthetic data, the oracle metrics of each split.
Everything is produced with `ctr_zoo.datasets` (fit on the train split,
transform every split) and cached under the cache root ($CTR_ZOO_CACHE, else
`data_cache/` in the repository root, git-ignored), keyed by the identity of
the source files (path, size, mtime) and the data settings that change the
shards (split, transform, min_count, hash_buckets, synthetic settings) - not
by the experiment or the model - so a second run starts training at once.

`--data` (read by `data_path` / `with_data_flag`, the only readers) may be:
- empty: the data setup's own source (the built-in synthetic data, generated
  on first use, or the setup's default file);
- a raw file / glob / comma-separated list of files (Criteo TSV, CSV with a
  header, Parquet). For split="by_day" give one file per day, in order
  (e.g. Kaggle train.txt cut into 7 equal parts: `split -n l/7 train.txt day_`);
- a directory written by `experiments/preprocess.py` or a previous run (it
  holds spec.json and train/, valid/, test/ shard directories): used as is.

A trained run is evaluated with its own fitted spec (`run_split`,
`transform_files`): never refitted.
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
from experiments import paths
from experiments.configs import base

REPO_ROOT = paths.REPO_ROOT  # for callers of data.REPO_ROOT; the owner is experiments.paths
SPLITS = ("train", "valid", "test")
SPEC_FILE = "spec.json"
# Written last into a cache entry: its presence marks the entry complete.
_COMPLETE_FILE = "oracle.json"


def cache_root() -> str:
  """$CTR_ZOO_CACHE, else <repo>/data_cache (see experiments.paths)."""
  return paths.cache_root()


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


def data_path(flag: str) -> str:
  """--data as recorded in `data.path`: absolute when it names an existing path.

  Globs and comma-separated lists are kept as given (expanded by
  `source_files`).
  """
  flag = (flag or "").strip()
  return os.path.abspath(flag) if flag and os.path.exists(flag) else flag


def with_data_flag(cfg: base.DataConfig, flag: str) -> base.DataConfig:
  """`cfg` reading --data: a copy with source="file" and path=`data_path(flag)` (cfg if empty)."""
  if not flag:
    return cfg
  return dataclasses.replace(cfg, source="file", path=data_path(flag))


def source_files(path: str) -> List[str]:
  """The raw files of a `data.path`: a file, a glob or a comma-separated list of them."""
  files = []
  for item in path.split(","):
    item = item.strip()
    matched = sorted(glob.glob(item)) if any(c in item for c in "*?[") else [item]
    if not matched:
      raise FileNotFoundError(f"--data pattern {item!r} matches no file")
    files.extend(matched)
  for file in files:
    if not os.path.isfile(file):
      raise FileNotFoundError(f"data file {file!r} does not exist (data.path or --data)")
  return files


def _shard_settings(cfg: base.DataConfig) -> Dict[str, object]:
  """The data settings that change the shards of given sources."""
  out = {"split": cfg.split, "split_seed": cfg.split_seed, "dense_transform": cfg.dense_transform,
         "min_count": cfg.min_count, "hash_buckets": cfg.hash_buckets}
  if cfg.on_bad_rows != "error":  # (absent from the key when "error": earlier keys still hit)
    out["on_bad_rows"] = cfg.on_bad_rows
  if cfg.split == "random":
    out.update(valid_fraction=cfg.valid_fraction, test_fraction=cfg.test_fraction)
  else:
    out.update(num_days=cfg.num_days)
  if cfg.source == "synthetic":
    out.update(synthetic_rows=cfg.synthetic_rows, synthetic_seed=cfg.synthetic_seed,
               synthetic_options=cfg.synthetic_options)
  return out


def _fingerprint(files: List[str], cfg: base.DataConfig) -> str:
  """Cache key: identity of the source files and the shard settings of `cfg`."""
  h = hashlib.sha256()
  for file in files:
    st = os.stat(file)
    h.update(f"{os.path.abspath(file)}|{st.st_size}|{int(st.st_mtime)}\n".encode())
  h.update(json.dumps(_shard_settings(cfg), sort_keys=True, default=str).encode())
  return h.hexdigest()[:16]


def _split_of(cfg: base.DataConfig, num_files: int):
  if cfg.split == "random":
    train = 1.0 - cfg.valid_fraction - cfg.test_fraction
    return splits_lib.RandomSplit((train, cfg.valid_fraction, cfg.test_fraction), cfg.split_seed)
  if num_files != cfg.num_days:
    raise base.ConfigError(
        f"data.split='by_day' needs one file per day ({cfg.num_days} files, in order), got "
        f"{num_files}; cut a single file with `split -n l/{cfg.num_days}`")
  return splits_lib.FileSplit(cfg.num_days - 1, cfg.split_seed)


def _load_prepared(directory: str, fingerprint: str = "") -> PreparedData:
  spec = spec_lib.FeatureSpec.load(os.path.join(directory, SPEC_FILE))
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


def synthetic_path(cfg: base.DataConfig) -> str:
  """Path of the cached synthetic TSV of `cfg` (it may not exist yet)."""
  # Keyed by the resolved world (defaults included) and the generator's version,
  # so a changed generator or default never reuses stale cached rows.
  world = synthetic.SyntheticCriteoConfig(**cfg.synthetic_options)
  key = json.dumps({"world": dataclasses.asdict(world), "version": synthetic.GENERATOR_VERSION},
                   sort_keys=True, default=str)
  tag = hashlib.sha256(key.encode()).hexdigest()[:8]
  return os.path.join(cache_root(), "synthetic",
                      f"rows{cfg.synthetic_rows}-seed{cfg.synthetic_seed}-{tag}", "data.tsv")


def synthetic_source(cfg: base.DataConfig) -> str:
  """Path of the cached synthetic TSV of `cfg` (generated on first use)."""
  path = synthetic_path(cfg)
  if not (os.path.exists(path) and os.path.exists(path + synthetic.ORACLE_SUFFIX)):
    logging.info("generating %d synthetic rows into %s", cfg.synthetic_rows, path)
    synthetic.generate_criteo_tsv(path, cfg.synthetic_rows, seed=cfg.synthetic_seed,
                                  config=synthetic.SyntheticCriteoConfig(**cfg.synthetic_options))
  return path


def _sources(cfg: base.DataConfig, generate: bool = True) -> List[str]:
  """The raw files of `cfg` (the synthetic file is generated when absent and `generate`)."""
  if cfg.source == "synthetic":
    return [synthetic_source(cfg) if generate else synthetic_path(cfg)]
  if not cfg.path:
    raise base.ConfigError(f"data setup {cfg.name!r} reads a raw file: pass --data=PATH")
  return source_files(cfg.path)


def _cache_entry(files: List[str], cfg: base.DataConfig):
  """(directory, fingerprint) of the cache entry of `files` prepared with `cfg`."""
  fingerprint = _fingerprint(files, cfg)
  label = "synthetic" if cfg.source == "synthetic" else os.path.basename(files[0]).split(".")[0]
  return os.path.join(cache_root(), "prepared", f"{label}-{fingerprint}"), fingerprint


def prepare(cfg: base.DataConfig) -> PreparedData:
  """Fits and transforms (or finds in the cache) the data of one experiment.

  Args:
    cfg: DataConfig. Source, split and preprocessing (with --data applied by
      `with_data_flag`).
  """
  if cfg.source == "file" and cfg.path and os.path.isdir(cfg.path):
    return _load_prepared(cfg.path)
  files = _sources(cfg)
  directory, fingerprint = _cache_entry(files, cfg)
  if os.path.exists(os.path.join(directory, _COMPLETE_FILE)):
    logging.info("using cached prepared data %s", directory)
    return _load_prepared(directory, fingerprint)
  split = _split_of(cfg, len(files))
  spec = criteo_lib.criteo_spec(dense_transform=cfg.dense_transform, min_count=cfg.min_count,
                                hash_buckets=cfg.hash_buckets)
  logging.info("fitting %s on the train split of %s and transforming into %s",
               spec.name, files, directory)
  preprocessing.fit_transform(files, spec, directory, split=split, fit_split="train",
                              on_bad_rows=cfg.on_bad_rows)
  oracle = {}
  if all(os.path.exists(p + synthetic.ORACLE_SUFFIX) for p in files):
    oracle = {name: synthetic.split_oracle_metrics(files, split, name) for name in SPLITS}
  with open(os.path.join(directory, _COMPLETE_FILE), "w") as fh:
    json.dump(oracle, fh, indent=2)
  return _load_prepared(directory, fingerprint)


def run_split(cfg: base.DataConfig, spec: spec_lib.FeatureSpec, split: str,
              work_dir: str) -> str:
  """The shard directory of `split` of a run's data, encoded with the run's fitted `spec`.

  The run's cached shards when the cache still holds them (fitted to the same
  spec); else the run's sources are transformed with `spec` and the run's
  split into `work_dir` (no refit).
  """
  if cfg.source == "file" and cfg.path and os.path.isdir(cfg.path):
    prepared = _load_prepared(cfg.path)
    if prepared.spec.to_json() != spec.to_json():
      raise ValueError(f"prepared data {cfg.path!r} was not encoded with the run's spec.json")
    return prepared.split_dir(split)
  files = _sources(cfg, generate=False)
  if all(os.path.exists(f) for f in files):
    directory, _ = _cache_entry(files, cfg)
    if os.path.exists(os.path.join(directory, _COMPLETE_FILE)):
      cached = spec_lib.FeatureSpec.load(os.path.join(directory, SPEC_FILE))
      if cached.to_json() == spec.to_json():
        logging.info("evaluating the cached shards of %s", directory)
        return os.path.join(directory, split)
  files = _sources(cfg)
  logging.info("transforming %s with the run's spec into %s", files, work_dir)
  preprocessing.transform(files, spec, work_dir, split=_split_of(cfg, len(files)),
                          on_bad_rows=cfg.on_bad_rows)
  return os.path.join(work_dir, split)


def transform_files(path: str, spec: spec_lib.FeatureSpec, work_dir: str) -> str:
  """Every row of the raw file(s) `path` encoded with a run's fitted `spec` (unseen -> OOV).

  Returns the shard directory (in `work_dir`).
  """
  files = source_files(path)
  preprocessing.transform(files, spec, work_dir, split=None)
  return os.path.join(work_dir, "train")  # split=None writes one split, "train"


def oracle_summary(prepared: PreparedData, split: str = "test") -> Optional[Dict[str, float]]:
  return prepared.oracle.get(split) or None
