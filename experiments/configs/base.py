"""Nested experiment configs: data, input, model, optimizer and trainer, with overrides.

An `ExperimentConfig` is everything that defines one training run, as
written: the sections this module declares (data, input, optimizer) and two
sections of overrides owned by the library (`model.params`, checked against
the model's config class, and `trainer`, checked against
`ctr_zoo.training.TrainerConfig`). `experiments.resolve` turns it into the
fully resolved run config (every default filled in, every value checked),
whose JSON is written to `model_dir/params.json` and identifies the run.

Named experiments (`experiments.configs.registry`) are built from a base with
a few fields changed; `--params_override` changes fields by dotted path:

  trainer.epochs=2,model.params.tower.dropout=0.1,optimizer.dense_learning_rate=3e-4

Values are parsed as JSON when they parse (numbers, true/false/null, lists
such as [256,128]), else kept as strings; a value is converted to the type of
the field it replaces (an int for a float field becomes a float).

This package imports neither TensorFlow nor ctr_zoo: parsing a config is
cheap, and a bad name or value is reported before anything is built.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any, Dict, List, Optional

DATA_SOURCES = ("synthetic", "file")
DATA_SPLITS = ("random", "by_day", "kfold")
BAD_ROW_POLICIES = ("error", "skip")


class ConfigError(ValueError):
  """A config or an override is malformed."""


@dataclasses.dataclass
class DataConfig:
  """Where the examples come from and how raw fields become model inputs.

  Everything here but `name`, the paths and `fingerprint` changes the
  prepared shards, and is part of the data cache key (with the content of
  the source files).

  Args:
    name: str. Short name of the data set (for records, tables and default
      run names); --data naming another file than the setup's own sets it
      to that file's name. Defaults to "synthetic".
    source: str. "synthetic" (the built-in generator, cached) or "file" (a raw
      file or a prepared directory, given by `path` or --data). Defaults to
      "synthetic".
    path: str. Raw training data file(s) (a path, glob or comma list) or a
      prepared directory for source="file" (--data sets it). Defaults to "".
    train_path: str. The training file(s) in the BARS x1 layout's terms
      (beside `valid_path` and `test_path`): when set it replaces `path`
      (the named experiments turn it into `path`, as --data). Defaults to "".
    valid_path: str. A separate validation file: nothing is carved out of the
      training file for valid (valid_fraction is ignored). Defaults to "".
    test_path: str. A separate test file: nothing is carved out of the
      training file for test (test_fraction is ignored). Defaults to "".
    spec: str. What the files are: a built-in spec ("criteo", "avazu",
      "frappe"), a schema file or a saved FeatureSpec JSON
      (`ctr_zoo.feature_columns.schema`); "" = "criteo". --spec sets it.
      Defaults to "".
    format: str. The files' format ("auto" from the file name, "tsv",
      "csv", "parquet", "libfm", "libffm"). Defaults to "auto".
    field_map: str. libFM only: a file of `<feature id> <field>` lines; ""
      assigns fields by position in the line. Defaults to "".
    split: str. "random" (fractions below, seeded), "by_day" (rows in file
      order cut into `num_days` equal days: the first num_days - 1 train, the
      last day halved into valid and test) or "kfold" (fold `fold` of `folds`
      is test; of the rest a share valid_fraction is valid). Defaults to
      "random".
    valid_fraction: float. Share of rows in valid (random and kfold splits).
      0 is allowed with `valid_path`. Defaults to 0.1.
    test_fraction: float. Share of rows in test (random split). 0 is
      allowed with `test_path`. Defaults to 0.1.
    split_seed: int. Seed of the split. Defaults to 2020.
    num_days: int. Days in the file for split="by_day". Defaults to 7.
    folds: int. K of split="kfold". Defaults to 5.
    fold: int. The test fold of split="kfold", 0 <= fold < folds. Defaults to 0.
    dense_transform: str. Transform of integer fields ("log1p", "bucketize",
      "standardize", "log1p_standardize", "quantile", "none") when
      `integer_encoding` is "". Defaults to "log1p".
    integer_encoding: str. Encoding of integer (and float) fields:
      "continuous", "bucketize", "quantile", "continuous+bucketize",
      "continuous+quantile" (`ctr_zoo.feature_columns.integers`); ""
      = `dense_transform`. Defaults to "".
    num_buckets: int. Buckets of the quantile encodings. Defaults to 16.
    min_count: int. Vocabulary min count (rarer values -> OOV). Defaults to 1.
    hash_buckets: int or None. Hash categorical values instead of a vocabulary.
      Defaults to None.
    on_bad_rows: str. "error" stops at the first bad row (naming file, line
      and field); "skip" drops bad rows and counts them (as preprocess's
      --on_bad_rows). Defaults to "error".
    synthetic_rows: int. Rows generated (train + valid + test). Defaults to 200000.
    synthetic_seed: int. Seed of the synthetic rows. Defaults to 7.
    synthetic_options: dict. Extra keyword arguments of the generator's world
      (`ctr_zoo.datasets.SyntheticCriteoConfig`). Defaults to {}.
    fingerprint: str. The content fingerprint of the data a run trained on,
      filled in by the runner (not a setting): a rerun on different data is
      refused like a changed config. Defaults to "".
  """
  name: str = "synthetic"
  source: str = "synthetic"
  path: str = ""
  train_path: str = ""
  valid_path: str = ""
  test_path: str = ""
  spec: str = ""
  format: str = "auto"
  field_map: str = ""
  split: str = "random"
  valid_fraction: float = 0.1
  test_fraction: float = 0.1
  split_seed: int = 2020
  num_days: int = 7
  folds: int = 5
  fold: int = 0
  dense_transform: str = "log1p"
  integer_encoding: str = ""
  num_buckets: int = 16
  min_count: int = 1
  hash_buckets: Optional[int] = None
  on_bad_rows: str = "error"
  synthetic_rows: int = 200000
  synthetic_seed: int = 7
  synthetic_options: Dict[str, Any] = dataclasses.field(default_factory=dict)
  fingerprint: str = ""


@dataclasses.dataclass
class InputConfig:
  """How the prepared examples are batched.

  Args:
    batch_size: int. Training batch size. Defaults to 1024.
    eval_batch_size: int. Batch size for evaluation and prediction (also
      `evaluate`'s default). Defaults to 8192.
  """
  batch_size: int = 1024
  eval_batch_size: int = 8192


@dataclasses.dataclass
class ModelConfig:
  """Which zoo model and its config fields.

  Args:
    name: str. A name from `ctr_zoo.models.names()`. Defaults to "dcn_v2".
    params: dict. Overrides of the model's config dataclass, nested like it
      (e.g. {"embedding": {"dim": 32}, "tower": {"dropout": 0.1}}); unknown
      keys are an error. Defaults to {}.
    common_params: dict. Overrides a data setup gives every model, nested the
      same way; each applies only to a model whose config has that field (lr
      has no tower), and `params` wins over it. Defaults to {}.
    precision: str. "float32", or "mixed_bfloat16" (bfloat16 compute, float32
      variables; see `ctr_zoo.models.CTRModel`). Defaults to "float32".
  """
  name: str = "dcn_v2"
  params: Dict[str, Any] = dataclasses.field(default_factory=dict)
  common_params: Dict[str, Any] = dataclasses.field(default_factory=dict)
  precision: str = "float32"


@dataclasses.dataclass
class OptimizerConfig:
  """The optimizer split: one optimizer for embedding tables, one for the rest.

  Args:
    embedding: str. Optimizer name for `model.embedding_variables`
      (`ctr_zoo.optimizers.get`). Defaults to "adagrad".
    embedding_learning_rate: float. Defaults to 0.05.
    embedding_params: dict. Extra constructor arguments. Defaults to {}.
    dense: str. Optimizer name for `model.dense_variables`. Defaults to "adam".
    dense_learning_rate: float. Defaults to 1e-3.
    dense_params: dict. Extra constructor arguments. Defaults to {}.
  """
  embedding: str = "adagrad"
  embedding_learning_rate: float = 0.05
  embedding_params: Dict[str, Any] = dataclasses.field(default_factory=dict)
  dense: str = "adam"
  dense_learning_rate: float = 1e-3
  dense_params: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ExperimentConfig:
  """One training run as written: data + input + model + optimizer + trainer.

  Args:
    name: str. The registered experiment name. Defaults to "custom".
    data: DataConfig.
    input: InputConfig.
    model: ModelConfig.
    optimizer: OptimizerConfig.
    trainer: dict. Overrides of `ctr_zoo.training.TrainerConfig` fields (its
      defaults fill the rest when the config is resolved). Defaults to {}.
  """
  name: str = "custom"
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  input: InputConfig = dataclasses.field(default_factory=InputConfig)
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
  trainer: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def to_dict(self) -> Dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(self)))

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, d: Dict[str, Any]) -> "ExperimentConfig":
    cfg = cls()
    apply_overrides(cfg, _flatten(d))
    return cfg


def _flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
  out = {}
  for key, value in d.items():
    if isinstance(value, dict) and not key.endswith("params") and key != "synthetic_options":
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def split_overrides(text: str) -> List[str]:
  """Splits "a=1,b=[1,2],c=x" on the commas outside brackets and quotes."""
  items, depth, quote, current = [], 0, None, []
  for ch in text:
    if quote:
      quote = None if ch == quote else quote
    elif ch in "\"'":
      quote = ch
    elif ch in "[{":
      depth += 1
    elif ch in "]}":
      depth -= 1
    elif ch == "," and depth == 0:
      items.append("".join(current))
      current = []
      continue
    current.append(ch)
  items.append("".join(current))
  return [item.strip() for item in items if item.strip()]


def parse_overrides(text: str) -> Dict[str, Any]:
  """"key=value,..." -> {dotted key: parsed value}; ConfigError on a bad item."""
  out = {}
  for item in split_overrides(text or ""):
    if "=" not in item:
      raise ConfigError(f"--params_override item {item!r} is not key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
      value = json.loads(raw)
    except json.JSONDecodeError:
      value = raw
    out[key] = value
  return out


def coerce(path: str, old: Any, value: Any) -> Any:
  """`value` converted to the type of `old` (the default it replaces); ConfigError if it cannot be."""
  if old is None or value is None:
    return value
  if isinstance(old, bool):
    if isinstance(value, bool):
      return value
    raise ConfigError(f"{path} must be true or false, got {value!r}")
  if isinstance(old, int):
    if isinstance(value, int) and not isinstance(value, bool):
      return value
    raise ConfigError(f"{path} must be an integer, got {value!r}")
  if isinstance(old, float):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      return float(value)
    raise ConfigError(f"{path} must be a number, got {value!r}")
  if isinstance(old, str):
    return value if isinstance(value, str) else json.dumps(value)
  if isinstance(old, dict) and not isinstance(value, dict):
    raise ConfigError(f"{path} must be an object, got {value!r}")
  return value


def apply_overrides(cfg: Any, overrides: Dict[str, Any]) -> Any:
  """Sets dotted-path fields of a nested dataclass in place; returns it.

  Inside a dict field (trainer, model.params, optimizer.*_params) any key may
  be set (the owner of those keys checks them when the config is resolved);
  elsewhere an unknown field raises ConfigError listing the allowed ones.
  """
  for path, value in overrides.items():
    parts = path.split(".")
    target = cfg
    for i, part in enumerate(parts):
      last = i == len(parts) - 1
      where = ".".join(parts[:i + 1])
      if isinstance(target, dict):
        if last:
          target[part] = value
        else:
          target = target.setdefault(part, {})
        continue
      if not dataclasses.is_dataclass(target):
        raise ConfigError(f"cannot set {path!r}: {'.'.join(parts[:i])} is not a config section")
      names = [f.name for f in dataclasses.fields(target)]
      if part not in names:
        raise ConfigError(f"unknown config field {where!r}; allowed here: {names}")
      if last:
        old = getattr(target, part)
        if dataclasses.is_dataclass(old):
          raise ConfigError(f"{where!r} is a config section; set one of its fields "
                            f"({[f.name for f in dataclasses.fields(old)]})")
        setattr(target, part, coerce(where, old, copy.deepcopy(value)))
      else:
        target = getattr(target, part)
  return cfg
