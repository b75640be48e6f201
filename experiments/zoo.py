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


def config_class(name: str):
  """The config dataclass of model `name`; KeyError naming the known models."""
  return _models().config_class(name)


def model_config(name: str, params: dict):
  """The config of model `name` with `params` applied, as `ctr_zoo.models.build` makes it."""
  from ctr_zoo.models import base  # pylint: disable=g-import-not-at-top
  return base.config_from(config_class(name), None, **dict(params))


def precisions():
  """The precisions a model can be built with."""
  from ctr_zoo.models import base  # pylint: disable=g-import-not-at-top
  return base.PRECISIONS


def build_model(model_cfg, spec):
  """Model `model_cfg.name` from a fitted spec with the resolved `model_cfg.config`."""
  return _models().build(model_cfg.name, spec, config=model_cfg.config,
                         precision=model_cfg.precision)


def optimizer_args(opt_cfg):
  """(embedding, dense) optimizer dicts for `ctr_zoo.optimizers.get`."""
  embedding = {"name": opt_cfg.embedding, "learning_rate": opt_cfg.embedding_learning_rate,
               **opt_cfg.embedding_params}
  dense = {"name": opt_cfg.dense, "learning_rate": opt_cfg.dense_learning_rate,
           **opt_cfg.dense_params}
  return embedding, dense


def build_optimizer(opt_cfg, model):
  """SplitOptimizer: opt_cfg.embedding on model.embedding_variables, opt_cfg.dense on the rest."""
  embedding, dense = optimizer_args(opt_cfg)
  return split_lib.SplitOptimizer.for_model(model, embedding, dense)
