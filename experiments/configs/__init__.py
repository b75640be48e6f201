"""Named experiment configs: nested dataclasses, a base per data setup, small variants.

Parsing a config imports neither TensorFlow nor ctr_zoo; `experiments.resolve`
checks and completes it against the library.
"""

from experiments.configs.base import (
    ConfigError, DataConfig, ExperimentConfig, InputConfig, ModelConfig, OptimizerConfig,
    apply_overrides, parse_overrides)
from experiments.configs.registry import DATA_SETUPS, DEFAULT_EXPERIMENT, get, names, parse_name

__all__ = [
    "ConfigError", "DATA_SETUPS", "DEFAULT_EXPERIMENT", "DataConfig", "ExperimentConfig",
    "InputConfig", "ModelConfig", "OptimizerConfig", "apply_overrides", "get", "names",
    "parse_name", "parse_overrides",
]
