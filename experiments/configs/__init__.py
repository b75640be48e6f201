"""Named experiment configs: nested dataclasses, a base per data setup, small variants."""

from experiments.configs.base import (
    ConfigError, DataConfig, ExperimentConfig, ModelConfig, OptimizerConfig, apply_overrides,
    parse_overrides)
from experiments.configs.registry import DATA_SETUPS, DEFAULT_EXPERIMENT, get, names

__all__ = [
    "ConfigError", "DATA_SETUPS", "DEFAULT_EXPERIMENT", "DataConfig", "ExperimentConfig",
    "ModelConfig", "OptimizerConfig", "apply_overrides", "get", "names", "parse_overrides",
]
