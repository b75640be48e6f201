"""ctr_zoo.training: the resumable trainer and the raw-feature export.

The exact offline metrics live in `ctr_zoo.metrics` (shared with the synthetic
data's oracle); they are re-exported here.
"""

from ctr_zoo import metrics
from ctr_zoo.metrics import auc, calibration, evaluate_predictions, logloss
from ctr_zoo.training.trainer import (
    Callback, CheckpointError, CheckpointWriteError, NonFiniteLossError, Trainer, TrainerConfig,
    count_params, random_generators)

from ctr_zoo.training.export import export_saved_model
from ctr_zoo.training import distributed  # noqa: F401  (registers WarmupScaledRate)

__all__ = [
    "Callback", "CheckpointError", "CheckpointWriteError", "NonFiniteLossError", "Trainer", "TrainerConfig", "auc", "calibration",
    "count_params", "evaluate_predictions", "export_saved_model", "logloss", "metrics",
    "random_generators",
]
