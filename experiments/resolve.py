"""An experiment config as written -> the resolved run config, every value checked.

`experiments.configs` parses names and overrides without TensorFlow; this
module is where a config meets the library that owns its fields:

- `trainer` (a dict of overrides) -> `ctr_zoo.training.TrainerConfig`, the one
  owner of the trainer's fields and defaults;
- `model.params` (+ the `model.common_params` the model's config has) -> the
  model's config dataclass, as `ctr_zoo.models.build` makes it; the model name
  and `model.precision` are checked against the model registry;
- `data`, `input` and `optimizer` -> checked (ranges, choices, known
  optimizer names and arguments).

`resolve` runs before anything touches a run directory: a misspelt or
mistyped key fails with a `ConfigError` naming it (and the allowed ones). The
result's `to_dict()` holds every value, defaults included; it is what
params.json records, so a run's identity is complete.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any, Dict, Mapping

from ctr_zoo import checks
from ctr_zoo import optimizers
from ctr_zoo.datasets import synthetic
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.training import TrainerConfig
from experiments import data as data_lib
from experiments import run_dir
from experiments import zoo
from experiments.configs import base

ConfigError = base.ConfigError


def _json(value: Any) -> Any:
  return json.loads(json.dumps(value))


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
  """The model of a resolved experiment.

  Attributes:
    name: str. A registered model name.
    precision: str. "float32" or "mixed_bfloat16".
    config: the model's config dataclass, every field set.
  """
  name: str
  precision: str
  config: Any

  @property
  def params(self) -> Dict[str, Any]:
    """The model config as a JSON dict (what params.json records)."""
    return _json(dataclasses.asdict(self.config))


@dataclasses.dataclass(frozen=True)
class ResolvedExperiment:
  """A checked, complete experiment: what `experiments.runner.run` trains.

  Attributes:
    name: str. The experiment name.
    data: DataConfig.
    input: InputConfig.
    model: ResolvedModel.
    optimizer: OptimizerConfig.
    trainer: ctr_zoo.training.TrainerConfig.
  """
  name: str
  data: base.DataConfig
  input: base.InputConfig
  model: ResolvedModel
  optimizer: base.OptimizerConfig
  trainer: TrainerConfig

  def to_dict(self) -> Dict[str, Any]:
    """Every value of the run, defaults included (params.json)."""
    return _json({
        "name": self.name, "data": dataclasses.asdict(self.data),
        "input": dataclasses.asdict(self.input),
        "model": {"name": self.model.name, "precision": self.model.precision,
                  "params": self.model.params},
        "optimizer": dataclasses.asdict(self.optimizer),
        "trainer": dataclasses.asdict(self.trainer),
    })

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _check_data(cfg: base.DataConfig) -> None:
  e = ConfigError
  checks.choice(cfg.source, "data.source", base.DATA_SOURCES, error=e)
  checks.choice(cfg.split, "data.split", base.DATA_SPLITS, error=e)
  checks.positive_int(cfg.split_seed, "data.split_seed", allow_zero=True, error=e)
  if checks.positive_int(cfg.num_days, "data.num_days", error=e) < 2:
    raise e(f"data.num_days must be >= 2, got {cfg.num_days!r}")
  checks.choice(cfg.dense_transform, "data.dense_transform", spec_lib.DENSE_TRANSFORMS, error=e)
  checks.positive_int(cfg.min_count, "data.min_count", error=e)
  checks.optional_positive_int(cfg.hash_buckets, "data.hash_buckets", error=e)
  checks.choice(cfg.on_bad_rows, "data.on_bad_rows", base.BAD_ROW_POLICIES, error=e)
  if checks.positive_int(cfg.synthetic_rows, "data.synthetic_rows", error=e) < 100:
    raise e(f"data.synthetic_rows must be >= 100, got {cfg.synthetic_rows!r}")
  checks.positive_int(cfg.synthetic_seed, "data.synthetic_seed", allow_zero=True, error=e)
  try:
    synthetic.SyntheticCriteoConfig(**cfg.synthetic_options)
  except TypeError as err:
    allowed = [f.name for f in dataclasses.fields(synthetic.SyntheticCriteoConfig)]
    raise e(f"data.synthetic_options: {err}; allowed: {allowed}") from None
  data_lib.check_config(cfg, error=e)  # files, spec, fractions, folds, encodings


def _check_input(cfg: base.InputConfig) -> None:
  checks.positive_int(cfg.batch_size, "input.batch_size", error=ConfigError)
  checks.positive_int(cfg.eval_batch_size, "input.eval_batch_size", error=ConfigError)


def _check_optimizer(cfg: base.OptimizerConfig) -> None:
  for which, args in zip(("embedding", "dense"), zoo.optimizer_args(cfg)):
    try:
      optimizers.get(dict(args))
    except (ValueError, TypeError) as err:
      raise ConfigError(f"optimizer.{which} ({args}): {err}") from None


def trainer_config(overrides: Mapping[str, Any]) -> TrainerConfig:
  """`TrainerConfig` with `overrides` (values converted to the fields' types)."""
  defaults = dataclasses.asdict(TrainerConfig())
  unknown = sorted(set(overrides) - set(defaults))
  if unknown:
    raise ConfigError(f"unknown config field 'trainer.{unknown[0]}'; allowed here: "
                      f"{sorted(defaults)}")
  values = {key: base.coerce(f"trainer.{key}", defaults[key], value)
            for key, value in overrides.items()}
  try:
    return TrainerConfig(**values)
  except ValueError as err:
    raise ConfigError(str(err)) from None


def _leaves(d: Mapping[str, Any], prefix=()):
  for key, value in d.items():
    if isinstance(value, Mapping) and value:
      yield from _leaves(value, prefix + (key,))
    else:
      yield prefix + (key,), value


def _has_path(d: Any, path) -> bool:
  for key in path:
    if not isinstance(d, Mapping) or key not in d:
      return False
    d = d[key]
  return True


def _set_path(d: Dict[str, Any], path, value) -> None:
  for key in path[:-1]:
    d = d.setdefault(key, {})
  d[path[-1]] = value


def model_params(name: str, params: Mapping[str, Any],
                 common_params: Mapping[str, Any] = None) -> Dict[str, Any]:
  """`params` plus each `common_params` entry model `name`'s config has (params win)."""
  defaults = _json(dataclasses.asdict(zoo.config_class(name)()))
  merged = {}
  for path, value in _leaves(common_params or {}):
    if _has_path(defaults, path):
      _set_path(merged, path, value)
  for path, value in _leaves(params):
    _set_path(merged, path, value)
  return merged


def _resolve_model(cfg: base.ModelConfig) -> ResolvedModel:
  try:
    zoo.config_class(cfg.name)
  except KeyError:
    raise ConfigError(f"unknown model {cfg.name!r} (model.name); known models: "
                      f"{zoo.model_names()}") from None
  checks.choice(cfg.precision, "model.precision", zoo.precisions(), error=ConfigError)
  params = model_params(cfg.name, cfg.params, cfg.common_params)
  try:
    config = zoo.model_config(cfg.name, params)
  except (ValueError, TypeError) as err:
    raise ConfigError(f"model.params of {cfg.name!r}: {err}") from None
  return ResolvedModel(name=cfg.name, precision=cfg.precision, config=config)


def resolve(cfg: base.ExperimentConfig) -> ResolvedExperiment:
  """The checked, complete run config of `cfg`; ConfigError naming the first bad key."""
  if isinstance(cfg, ResolvedExperiment):
    return cfg
  _check_data(cfg.data)
  _check_input(cfg.input)
  model = _resolve_model(cfg.model)
  _check_optimizer(cfg.optimizer)
  trainer = trainer_config(cfg.trainer)
  return ResolvedExperiment(
      name=cfg.name, data=copy.deepcopy(cfg.data), input=copy.deepcopy(cfg.input),
      model=model, optimizer=copy.deepcopy(cfg.optimizer), trainer=trainer)


def from_params(params: Mapping[str, Any]) -> ResolvedExperiment:
  """The resolved config of a run directory's params.json (one of an older version upgraded)."""
  return resolve(base.ExperimentConfig.from_dict(run_dir.upgrade_params(params)))


def model_fields(name: str) -> Dict[str, Any]:
  """The default config of model `name` as a JSON dict (its field names, nested)."""
  return _json(dataclasses.asdict(zoo.config_class(name)()))
