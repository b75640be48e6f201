"""ctr_zoo.training: the resumable trainer, exact offline metrics, run directories, export."""

from ctr_zoo.training import metrics
from ctr_zoo.training import model_dir
from ctr_zoo.training.metrics import auc, calibration, evaluate_predictions, logloss
from ctr_zoo.training.model_dir import ExperimentMismatchError
from ctr_zoo.training.trainer import (
    Callback, NonFiniteLossError, Trainer, TrainerConfig, count_params, random_generators)

from ctr_zoo.training.export import export_saved_model

__all__ = [
    "Callback", "ExperimentMismatchError", "NonFiniteLossError", "Trainer", "TrainerConfig",
    "auc", "calibration", "count_params", "evaluate_predictions", "export_saved_model",
    "logloss", "metrics", "model_dir", "random_generators",
]
