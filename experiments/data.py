"""Data for the experiment targets: raw or synthetic rows -> cached Parquet shards.

`prepare(data_config)` returns a `PreparedData`: the fitted FeatureSpec, one
shard directory per split (train / valid / test), split sizes, a fingerprint
of the data and, for synthetic data, the oracle metrics of each split.
Everything is produced with `ctr_zoo.datasets` (fit on the train split,
transform every split).

What a file is: `data.spec` (--spec) names a built-in spec ("criteo",
"avazu", "frappe"), a schema file or a saved FeatureSpec JSON
(`load_spec_arg`, see `ctr_zoo.feature_columns.schema`); "" means "criteo".
The format comes from the file name (or `data.format`): TSV without a header
in the spec's column order, CSV with a header, Parquet, libFM / libFFM.

Splits. One training file is split by `data.split` (random fractions, by
day, or fold `data.fold` of `data.folds`). With `data.valid_path` or
`data.test_path` (the BARS x1 layout) that file is the split, and nothing is
carved out of the training file for it.

The cache. Prepared data lives under the cache root ($CTR_ZOO_CACHE, else
`data_cache/` in the repository root, git-ignored), in
`prepared/<data set>-<key>` (with `locks/` and `building/` beside it), keyed by the CONTENT of the source files (a
SHA-256 of every byte, `file_digest`; copying or touching a file does not
matter, changing one byte does) and by the settings that change the shards
(spec, split, encodings, reader options) - not by the experiment or the
model, so a second run starts training at once. An entry is built in a
private temporary directory under an exclusive lock, its completion marker
(`complete.json`, listing every shard and its size) written last, and then
published with an atomic rename: concurrent preparations of one new file
build it once; an entry whose marker lists a missing or resized shard is
detected and rebuilt. Data files must not change while they are read (a
changed size or modification time fails the read).

`--data` (read by `data_path` / `apply_data_flags`, the only readers) may be:
- empty: the data setup's own source (the built-in synthetic data, generated
  on first use, or the setup's default file);
- a raw file / glob / comma-separated list of files. For split="by_day" give
  one file per day, in order (e.g. Kaggle train.txt cut into 7 equal parts:
  `split -n l/7 train.txt day_`);
- a directory written by `experiments/preprocess.py` or a previous run (it
  holds spec.json and train/, valid/, test/ shard directories): used as is.

Runs record `data.fingerprint` (`with_fingerprint`): the content fingerprint
of their data, part of params.json, so a rerun whose data changed is refused
like a changed config before anything in the run directory is rewritten.

A trained run is evaluated with its own fitted spec (`run_split`,
`transform_files`): never refitted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import os
import shutil
import uuid
from typing import Dict, List, Optional

from absl import logging

from ctr_zoo import checks
from ctr_zoo.datasets import input_pipeline
from ctr_zoo.datasets import preprocessing
from ctr_zoo.datasets import readers
from ctr_zoo.datasets import splits as splits_lib
from ctr_zoo.datasets import synthetic
from ctr_zoo.feature_columns import integers
from ctr_zoo.feature_columns import schema as schema_lib
from ctr_zoo.feature_columns import spec as spec_lib
from experiments import paths
from experiments.configs import base

REPO_ROOT = paths.REPO_ROOT  # for callers of data.REPO_ROOT; the owner is experiments.paths
SPLITS = ("train", "valid", "test")
SPEC_FILE = "spec.json"
DEFAULT_SPEC = "criteo"
# Written last into a cache entry: its presence marks the entry complete, and it
# lists every shard with its size.
_COMPLETE_FILE = "complete.json"
_HASH_BLOCK = 1 << 22  # bytes read per hashing step


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


# --- what the data is -----------------------------------------------------------

def spec_settings(cfg: base.DataConfig) -> dict:
  """The data settings a built-in spec or a schema file is built with."""
  return dict(min_count=cfg.min_count, hash_buckets=cfg.hash_buckets,
              integer_encoding=cfg.integer_encoding, dense_transform=cfg.dense_transform,
              num_buckets=cfg.num_buckets)


def load_spec_arg(path_or_name: str, cfg: Optional[base.DataConfig] = None,
                  **settings) -> spec_lib.FeatureSpec:
  """The FeatureSpec of a --spec / data.spec value (for train, evaluate, preprocess, predict).

  Args:
    path_or_name: str. A built-in name ("criteo", "avazu", "frappe"), a
      schema file or a saved FeatureSpec JSON (a file, or a directory holding
      spec.json such as a run directory); "" = "criteo".
    cfg: DataConfig or None. Its settings (min_count, hash_buckets,
      integer_encoding, dense_transform, num_buckets) build a built-in spec or
      a schema file; a FeatureSpec JSON is used as written.
    **settings: the same settings given directly (they override `cfg`'s).

  Raises:
    SpecError: an unknown name, an unreadable file or a malformed spec or
      schema, with the file and key named.
  """
  merged = {**(spec_settings(cfg) if cfg is not None else {}), **settings}
  return schema_lib.load_spec(path_or_name or DEFAULT_SPEC, **merged)


def reader_options(cfg: Optional[base.DataConfig]) -> dict:
  """Keyword arguments of `ctr_zoo.datasets.read_batches` (and fit / transform) from `cfg`."""
  if cfg is None:
    return {}
  out = {"file_format": cfg.format}
  if cfg.field_map:
    out["field_map"] = cfg.field_map
  policy = getattr(cfg, "on_bad_rows", None)
  if policy:
    out["on_bad_rows"] = policy
  return out


def check_config(cfg: base.DataConfig, error=base.ConfigError) -> None:
  """Checks the data section's file, spec, split and encoding settings (resolve calls it).

  Raises `error` naming the first bad key. The spec is loaded, so a missing
  or malformed spec or schema file fails here, before a run directory is touched.
  """
  checks.choice(cfg.format, "data.format", readers.FILE_FORMATS, error=error)
  checks.choice(cfg.integer_encoding, "data.integer_encoding", integers.INTEGER_ENCODINGS,
                error=error)
  checks.positive_int(cfg.num_buckets, "data.num_buckets", error=error)
  for name, has_file in (("valid_fraction", bool(cfg.valid_path)),
                         ("test_fraction", bool(cfg.test_path))):
    value = checks.fraction(getattr(cfg, name), f"data.{name}", error=error)
    if value <= 0 and not has_file:
      which = name.split("_")[0]
      raise error(f"data.{name} must be a number > 0 (0 only with data.{which}_path, a "
                  f"separate {which} file), got {value!r}")
  valid, test = effective_fractions(cfg)
  if valid + test >= 1:
    raise error(f"data.valid_fraction + data.test_fraction must be < 1, got {valid} + {test}")
  if cfg.split == "kfold":
    if checks.positive_int(cfg.folds, "data.folds", error=error) < 2:
      raise error(f"data.folds must be >= 2 for split='kfold', got {cfg.folds!r}")
    checks.positive_int(cfg.fold, "data.fold", allow_zero=True, error=error)
    if cfg.fold >= cfg.folds:
      raise error(f"data.fold must be in 0..{cfg.folds - 1}, got {cfg.fold!r}")
    if cfg.test_path:
      raise error("data.split='kfold' takes its test rows from the folds; drop data.test_path")
  if cfg.fingerprint:
    return  # a finished run's record (evaluate): its spec.json stands, its files may have moved
  if cfg.field_map and not os.path.isfile(cfg.field_map):
    raise error(f"data.field_map {cfg.field_map!r} is not a file")
  try:
    load_spec_arg(cfg.spec, cfg)
  except spec_lib.SpecError as e:
    raise error(f"data.spec: {e}") from None


def effective_fractions(cfg: base.DataConfig) -> tuple:
  """(valid, test) shares carved out of the training file: 0 for a split given as a file."""
  valid = 0.0 if cfg.valid_path else cfg.valid_fraction
  test = 0.0 if cfg.test_path or cfg.split == "kfold" else cfg.test_fraction
  return valid, test


# --- --data and --spec ---------------------------------------------------------------

def data_path(flag: str) -> str:
  """--data as recorded in `data.path`: absolute when it names an existing path.

  Globs and comma-separated lists are kept as given (expanded by
  `source_files`).
  """
  flag = (flag or "").strip()
  return os.path.abspath(flag) if flag and os.path.exists(flag) else flag


def dataset_label(path: str) -> str:
  """A data set's name from its file: the first file's name up to its first dot."""
  first = source_files(path)[0] if not os.path.isdir(path) else path.rstrip(os.sep)
  return os.path.basename(first).split(".")[0] or "data"


def with_data_flag(cfg: base.DataConfig, flag: str) -> base.DataConfig:
  """`cfg` reading --data: a copy with source="file" and path=`data_path(flag)` (cfg if empty).

  When the setup has data of its own (synthetic, or a default file) and --data
  names another data set (a file whose `dataset_label` is not the setup's
  `name`), `name` becomes that label, so runs, records and caches are
  labelled by the real data set.
  """
  if not flag:
    return cfg
  path = data_path(flag)
  own = cfg.source == "synthetic" or bool(cfg.path or cfg.train_path)
  name = cfg.name
  if own:
    try:
      name = dataset_label(path)
    except FileNotFoundError:
      name = os.path.basename(path.rstrip(os.sep)).split(".")[0] or cfg.name
  return dataclasses.replace(cfg, source="file", path=path, train_path="", name=name)


def apply_data_flags(cfg: base.ExperimentConfig, data: str = "",
                     spec: str = "") -> base.ExperimentConfig:
  """The experiment `cfg` with --data and --spec applied (a copy).

  --spec sets `data.spec`. --data (else a `data.train_path` override) sets
  the training file (`with_data_flag`); when it names another data set than
  the setup's own, the data set's name replaces the setup's in `data.name`
  and in the experiment name (`<model>_<data set>`), which names the default
  run directory.
  """
  cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data))
  if spec:
    cfg.data.spec = os.path.abspath(spec) if os.path.exists(spec) else spec
  old_name = cfg.data.name
  # --data wins; else a data.train_path override names the training file the same way.
  cfg.data = with_data_flag(cfg.data, data or cfg.data.train_path)
  if cfg.data.name != old_name:
    cfg.name = f"{cfg.model.name}_{cfg.data.name}"
  return cfg


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
    if os.path.isdir(file):
      raise FileNotFoundError(f"data file {file!r} is a directory, not a data file (a prepared "
                              "data directory holds spec.json and train/, valid/, test/)")
    if not os.path.isfile(file):
      raise FileNotFoundError(f"data file {file!r} does not exist (data.path or --data)")
  return files


# --- content fingerprints ---------------------------------------------------------

_DIGESTS: Dict[tuple, str] = {}


def file_digest(path: str) -> str:
  """SHA-256 of every byte of `path` (hex), memoised per process by file identity.

  The memo is keyed by (path, size, mtime, ctime, inode): any write, or a
  touch that restores the modification time, changes the ctime, so a changed
  file is hashed again.
  """
  st = os.stat(path)
  key = (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
  if key not in _DIGESTS:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
      for block in iter(lambda: fh.read(_HASH_BLOCK), b""):
        h.update(block)
    _DIGESTS[key] = h.hexdigest()
  return _DIGESTS[key]


def _prepared_digest(directory: str) -> str:
  h = hashlib.sha256()
  for path in sorted(glob.glob(os.path.join(directory, "**", "*"), recursive=True)):
    if os.path.isfile(path) and (os.path.basename(path) == SPEC_FILE or path.endswith(".parquet")):
      h.update(f"{os.path.relpath(path, directory)}|{file_digest(path)}\n".encode())
  return h.hexdigest()


def content_fingerprint(cfg: base.DataConfig) -> str:
  """A 16-hex fingerprint of the bytes of the data `cfg` reads (train, valid, test files).

  The synthetic file is generated first when absent; a prepared directory is
  fingerprinted by its spec.json and shards.
  """
  h = hashlib.sha256()
  if _is_prepared_dir(cfg):
    h.update(f"prepared|{_prepared_digest(_train_path(cfg))}\n".encode())
    return h.hexdigest()[:16]
  for role, files in _all_sources(cfg).items():
    for file in files:
      h.update(f"{role}|{file_digest(file)}\n".encode())
  return h.hexdigest()[:16]


def with_fingerprint(cfg):
  """A resolved experiment with `data.fingerprint` set to its data's `content_fingerprint`.

  The runner calls it before claiming the run directory: params.json then
  records which data the run trained on, and a rerun on other data is
  refused like a changed config.
  """
  data = dataclasses.replace(cfg.data, fingerprint=content_fingerprint(cfg.data))
  return dataclasses.replace(cfg, data=data)


# --- sources, splits and the cache --------------------------------------------------

def _train_path(cfg: base.DataConfig) -> str:
  """The training file(s): `train_path` when set, else `path`."""
  return cfg.train_path or cfg.path


def _is_prepared_dir(cfg: base.DataConfig) -> bool:
  if cfg.source != "file":
    return False
  path = _train_path(cfg)
  return bool(path) and os.path.isdir(path)


def _shard_settings(cfg: base.DataConfig, spec: spec_lib.FeatureSpec) -> Dict[str, object]:
  """The data settings that change the shards of given sources."""
  valid, test = effective_fractions(cfg)
  out = {"split": cfg.split, "split_seed": cfg.split_seed, "spec": spec.to_dict(),
         "reader": {k: v for k, v in reader_options(cfg).items() if k != "field_map"}}
  if cfg.field_map:
    out["field_map"] = file_digest(cfg.field_map)
  if cfg.split == "random":
    out.update(valid_fraction=valid, test_fraction=test)
  elif cfg.split == "kfold":
    out.update(folds=cfg.folds, fold=cfg.fold, valid_fraction=valid)
  else:
    out.update(num_days=cfg.num_days)
  out["separate"] = {"valid": bool(cfg.valid_path), "test": bool(cfg.test_path)}
  return out


def _cache_key(cfg: base.DataConfig, spec: spec_lib.FeatureSpec) -> str:
  """Cache key: the content of the source files and the shard settings of `cfg`."""
  h = hashlib.sha256()
  h.update(content_fingerprint(cfg).encode())
  h.update(json.dumps(_shard_settings(cfg, spec), sort_keys=True, default=str).encode())
  return h.hexdigest()[:16]


def _fingerprint(files: List[str], cfg: base.DataConfig) -> str:
  """The cache key of the raw `files` prepared with `cfg`'s settings (content + settings)."""
  as_files = dataclasses.replace(cfg, source="file", path=",".join(files), train_path="",
                                 valid_path="", test_path="")
  return _cache_key(as_files, load_spec_arg(cfg.spec, cfg))


def _split_of(cfg: base.DataConfig, num_files: int):
  valid, test = effective_fractions(cfg)
  if cfg.split == "random":
    return splits_lib.RandomSplit((1.0 - valid - test, valid, test), cfg.split_seed)
  if cfg.split == "kfold":
    return splits_lib.KFoldSplit(cfg.folds, cfg.fold, cfg.split_seed, valid)
  if num_files != cfg.num_days:
    raise base.ConfigError(
        f"data.split='by_day' needs one file per day ({cfg.num_days} files, in order), got "
        f"{num_files}; cut a single file with `split -n l/{cfg.num_days}`")
  if cfg.valid_path or cfg.test_path:
    raise base.ConfigError("data.split='by_day' takes valid and test from the last day; drop "
                           "data.valid_path / data.test_path or use split='random'")
  return splits_lib.FileSplit(cfg.num_days - 1, cfg.split_seed)


def _shard_manifest(directory: str) -> Dict[str, list]:
  out = {}
  for split in SPLITS:
    out[split] = [[os.path.basename(p), os.path.getsize(p)]
                  for p in sorted(glob.glob(os.path.join(directory, split, "*.parquet")))]
  return out


def _entry_problem(directory: str) -> Optional[str]:
  """Why a cache entry is not usable (None when it is complete and intact)."""
  marker = os.path.join(directory, _COMPLETE_FILE)
  if not os.path.exists(marker):
    return "no completion marker"
  try:
    with open(marker) as fh:
      listed = json.load(fh)["shards"]
  except (OSError, ValueError, KeyError, TypeError) as e:
    return f"unreadable completion marker ({e})"
  for split, shards in listed.items():
    for name, size in shards:
      path = os.path.join(directory, split, name)
      if not os.path.exists(path):
        return f"shard {split}/{name} is missing"
      if os.path.getsize(path) != size:
        return f"shard {split}/{name} has {os.path.getsize(path)} bytes, not {size}"
  if not os.path.exists(os.path.join(directory, SPEC_FILE)):
    return f"{SPEC_FILE} is missing"
  return None


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
  """The raw training files of `cfg` (the synthetic file is generated when absent and `generate`)."""
  if cfg.source == "synthetic":
    return [synthetic_source(cfg) if generate else synthetic_path(cfg)]
  if not _train_path(cfg):
    raise base.ConfigError(f"data setup {cfg.name!r} reads a raw file: pass --data=PATH")
  return source_files(_train_path(cfg))


def _all_sources(cfg: base.DataConfig, generate: bool = True) -> Dict[str, List[str]]:
  """{"train": files, "valid": files (a separate file), "test": ...}, the given ones only."""
  out = {"train": _sources(cfg, generate)}
  if cfg.valid_path:
    out["valid"] = source_files(cfg.valid_path)
  if cfg.test_path:
    out["test"] = source_files(cfg.test_path)
  return out


def _cache_entry(cfg: base.DataConfig, spec: spec_lib.FeatureSpec):
  """(directory, key) of the cache entry of `cfg`'s data prepared with the unfitted `spec`."""
  key = _cache_key(cfg, spec)
  if cfg.source == "synthetic":
    label = "synthetic"
  else:
    label = os.path.basename(_sources(cfg)[0]).split(".")[0] or cfg.name
  return os.path.join(cache_root(), "prepared", f"{label}-{key}"), key


def _work_path(directory: str, kind: str) -> str:
  """`<cache root>/<kind>/<entry name>`: locks and builds live beside `prepared/`, not in it."""
  root = os.path.dirname(os.path.dirname(directory))
  return os.path.join(root, kind, os.path.basename(directory))


@contextlib.contextmanager
def _entry_lock(directory: str):
  """An exclusive OS lock on the entry's lock file (released when the process ends, even killed)."""
  lock = _work_path(directory, "locks") + ".lock"
  os.makedirs(os.path.dirname(lock), exist_ok=True)
  os.makedirs(os.path.dirname(directory), exist_ok=True)
  with open(lock, "a+") as fh:
    try:
      import fcntl  # pylint: disable=g-import-not-at-top
    except ImportError:  # no POSIX locks: the atomic rename alone keeps entries whole
      yield
      return
    fcntl.flock(fh, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(fh, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _remove_stale_builds(directory: str) -> None:
  """Deletes the entry's `<name>.tmp-<pid>-*` builds of processes that are gone."""
  for path in glob.glob(_work_path(directory, "building") + ".tmp-*"):
    try:
      pid = int(path.rsplit(".tmp-", 1)[1].split("-")[0])
    except ValueError:
      continue
    if not _pid_alive(pid):
      shutil.rmtree(path, ignore_errors=True)


def _build_entry(cfg: base.DataConfig, spec: spec_lib.FeatureSpec, sources: Dict[str, List[str]],
                 directory: str) -> None:
  """Fits and transforms `sources` into the new directory `directory` (marker last)."""
  files = sources["train"]
  split = _split_of(cfg, len(files))
  options = reader_options(cfg)
  logging.info("fitting %s on the train split of %s and transforming into %s",
               spec.name, files, directory)
  fitted, _, summary = preprocessing.fit_transform(files, spec, directory, split=split,
                                                   fit_split="train", **options)
  summary = summary.to_dict()
  for name in ("valid", "test"):
    if name not in sources:
      continue
    part = os.path.join(directory, f".{name}-file")
    extra = preprocessing.transform(sources[name], fitted, part,
                                    split=splits_lib.ConstantSplit(name), **options)
    shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    os.rename(os.path.join(part, name), os.path.join(directory, name))
    shutil.rmtree(part)
    for key in ("rows", "positives", "ctr", "shards"):
      summary[key][name] = extra.to_dict()[key][name]
  for name in SPLITS:
    os.makedirs(os.path.join(directory, name), exist_ok=True)  # an empty split is a folder too
    summary["rows"].setdefault(name, 0)
  with open(os.path.join(directory, "summary.json"), "w") as fh:
    json.dump(summary, fh, indent=1)
  oracle = {}
  if all(os.path.exists(p + synthetic.ORACLE_SUFFIX) for p in files) and len(sources) == 1:
    oracle = {name: synthetic.split_oracle_metrics(files, split, name) for name in SPLITS}
  with open(os.path.join(directory, "oracle.json"), "w") as fh:
    json.dump(oracle, fh, indent=2)
  with open(os.path.join(directory, _COMPLETE_FILE), "w") as fh:
    json.dump({"shards": _shard_manifest(directory), "sources": sources}, fh, indent=1)


def prepare(cfg: base.DataConfig) -> PreparedData:
  """Fits and transforms (or finds in the cache) the data of one experiment.

  Args:
    cfg: DataConfig. Source, spec, split and preprocessing (with --data
      applied by `with_data_flag`).
  """
  if cfg.fingerprint and cfg.fingerprint != content_fingerprint(cfg):
    raise readers.DataError(
        f"the data of {cfg.name!r} changed after the run recorded its fingerprint "
        f"{cfg.fingerprint} (now {content_fingerprint(cfg)}); data files must not change "
        "while a run uses them")
  if _is_prepared_dir(cfg):
    return _load_prepared(_train_path(cfg))
  sources = _all_sources(cfg)
  spec = load_spec_arg(cfg.spec, cfg)
  directory, key = _cache_entry(cfg, spec)
  if _entry_problem(directory) is None:
    logging.info("using cached prepared data %s", directory)
    return _load_prepared(directory, key)
  with _entry_lock(directory):
    problem = _entry_problem(directory)
    if problem is None:  # another process built it meanwhile
      return _load_prepared(directory, key)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if os.path.exists(directory):
      logging.warning("rebuilding the data cache entry %s: %s", directory, problem)
      aside = _work_path(directory, "building") + f".broken-{tag}"
      os.makedirs(os.path.dirname(aside), exist_ok=True)
      os.rename(directory, aside)
      shutil.rmtree(aside, ignore_errors=True)
    _remove_stale_builds(directory)
    build = _work_path(directory, "building") + f".tmp-{tag}"
    os.makedirs(os.path.dirname(build), exist_ok=True)
    try:
      _build_entry(cfg, spec, sources, build)
      os.rename(build, directory)  # atomic publish: readers see all of it or nothing
    finally:
      shutil.rmtree(build, ignore_errors=True)
  return _load_prepared(directory, key)


def run_split(cfg: base.DataConfig, spec: spec_lib.FeatureSpec, split: str,
              work_dir: str) -> str:
  """The shard directory of `split` of a run's data, encoded with the run's fitted `spec`.

  The run's cached shards when the cache still holds them (fitted to the same
  spec); else the run's sources are transformed with `spec` and the run's
  split (or the split's own file) into `work_dir` (no refit).
  """
  if _is_prepared_dir(cfg):
    prepared = _load_prepared(_train_path(cfg))
    if prepared.spec.to_json() != spec.to_json():
      raise ValueError(f"prepared data {cfg.path!r} was not encoded with the run's spec.json")
    return prepared.split_dir(split)
  sources = _all_sources(cfg, generate=False)
  options = reader_options(cfg)
  try:
    unfitted = load_spec_arg(cfg.spec, cfg)
  except spec_lib.SpecError:  # a schema file that has moved: no cache lookup
    unfitted = None
  if unfitted is not None and all(os.path.exists(f) for files in sources.values() for f in files):
    directory, _ = _cache_entry(cfg, unfitted)
    if _entry_problem(directory) is None:
      cached = spec_lib.FeatureSpec.load(os.path.join(directory, SPEC_FILE))
      if cached.to_json() == spec.to_json():
        logging.info("evaluating the cached shards of %s", directory)
        return os.path.join(directory, split)
  if split in sources and split != "train":
    logging.info("transforming %s with the run's spec into %s", sources[split], work_dir)
    preprocessing.transform(sources[split], spec, work_dir,
                            split=splits_lib.ConstantSplit(split), **options)
    return os.path.join(work_dir, split)
  files = _sources(cfg)
  logging.info("transforming %s with the run's spec into %s", files, work_dir)
  preprocessing.transform(files, spec, work_dir, split=_split_of(cfg, len(files)), **options)
  return os.path.join(work_dir, split)


def transform_files(path: str, spec: spec_lib.FeatureSpec, work_dir: str,
                    cfg: Optional[base.DataConfig] = None) -> str:
  """Every row of the raw file(s) `path` encoded with a run's fitted `spec` (unseen -> OOV).

  Args:
    path: str. Raw file(s) in any layout the spec describes.
    spec: FeatureSpec. The run's fitted spec.
    work_dir: str. Where the shards go.
    cfg: DataConfig or None. The run's data section, for its reader options
      (format, libFM field map). Defaults to None (the format from the name).

  Returns the shard directory (in `work_dir`).
  """
  files = source_files(path)
  options = reader_options(cfg)
  preprocessing.transform(files, spec, work_dir, split=None, **options)
  return os.path.join(work_dir, "train")  # split=None writes one split, "train"


def oracle_summary(prepared: PreparedData, split: str = "test") -> Optional[Dict[str, float]]:
  return prepared.oracle.get(split) or None
