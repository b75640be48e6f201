"""Builds a config's model and its optimizer split from the ctr_zoo registries."""

import importlib
import pkgutil

from ctr_zoo.optimizers import split as split_lib


def _models():
  """The model registry, with every ctr_zoo.models module imported (registered)."""
  import ctr_zoo.models as models_pkg  # pylint: disable=g-import-not-at-top
  from ctr_zoo.models import registry  # pylint: disable=g-import-not-at-top
  for info in pkgutil.iter_modules(models_pkg.__path__):
    importlib.import_module(f"ctr_zoo.models.{info.name}")
  return registry


def model_names():
  return _models().names()


def build_model(model_cfg, spec):
  """`ctr_zoo.models.build(model_cfg.name, spec, precision=model_cfg.precision, **model_cfg.params)`."""
  return _models().build(model_cfg.name, spec, precision=model_cfg.precision,
                         **dict(model_cfg.params))


def build_optimizer(opt_cfg, model):
  """SplitOptimizer: opt_cfg.embedding on model.embedding_variables, opt_cfg.dense on the rest."""
  embedding = {"name": opt_cfg.embedding, "learning_rate": opt_cfg.embedding_learning_rate,
               **opt_cfg.embedding_params}
  dense = {"name": opt_cfg.dense, "learning_rate": opt_cfg.dense_learning_rate,
           **opt_cfg.dense_params}
  return split_lib.SplitOptimizer.for_model(model, embedding, dense)
