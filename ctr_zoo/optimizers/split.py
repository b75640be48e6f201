"""One optimizer for embedding tables, another for dense variables."""

import re
from typing import Callable, Dict, List, Optional, Sequence

from absl import logging
import tensorflow as tf

from ctr_zoo import serialization
from ctr_zoo.optimizers import registry

DEFAULT_EMBEDDING_OPTIMIZER = "ftrl"
DEFAULT_DENSE_OPTIMIZER = "adam"
DEFAULT_EMBEDDING_NAME_PATTERN = "embedding"


@serialization.register
class SplitOptimizer(tf.keras.optimizers.legacy.Optimizer):
  r"""Dispatches embedding tables to one optimizer and everything else to another.

  A variable is an embedding variable if it is in ``embedding_variables()``
  (e.g. ``lambda: model.embedding_variables``) when that callable is given,
  else if its name matches ``embedding_name_pattern`` (a regex searched in
  ``var.name``; ctr_zoo's tables are named ``.../embedding...``). All other
  variables go to the dense optimizer. The default pairing is sparse FTRL for
  tables and Adam for dense layers: Adam's moment decay touches every row of a
  table every step and mistreats rare ids, so it is never the default for
  tables (choosing it explicitly logs a warning).

  Each call of ``apply_gradients`` hands the embedding (gradient, variable)
  pairs to the embedding optimizer and the rest to the dense one, so sparse
  ``tf.IndexedSlices`` gradients reach the embedding optimizer's sparse kernel.
  Both inner optimizers (with their slots) are tracked as
  ``embedding_optimizer`` / ``dense_optimizer``, so
  ``tf.train.Checkpoint(optimizer=...)`` and ``model.fit`` checkpoints resume
  exactly. The assignment is logged (absl INFO) the first time each variable
  set is seen and is available from :meth:`assignment`.

  Works in ``model.compile(optimizer=SplitOptimizer(...))`` and in a custom
  loop (``optimizer.apply_gradients(zip(grads, model.trainable_variables))``).

  Args:
    embedding_optimizer: legacy tf.keras optimizer, str or dict. For embedding
      tables (resolved with ``ctr_zoo.optimizers.get``). Defaults to "ftrl"
      (``Ftrl(learning_rate=0.01, initial_accumulator_value=0)``).
    dense_optimizer: legacy tf.keras optimizer, str or dict. For all other
      variables. Defaults to "adam".
    embedding_variables: callable returning a list of tf.Variable, or None.
      Explicit embedding set (e.g. ``lambda: model.embedding_variables``). Not
      serialised: a reloaded optimizer uses the name pattern. Defaults to None.
    embedding_name_pattern: str. Regex that marks embedding variables by name
      when ``embedding_variables`` is None. Defaults to "embedding".
    name: str. Defaults to "SplitOptimizer".

  Example:

  >>> opt = SplitOptimizer(embedding_optimizer="adagrad", dense_optimizer="adam")
  >>> opt.embedding_optimizer.__class__.__name__
  'Adagrad'
  """

  def __init__(self,
               embedding_optimizer=None,
               dense_optimizer=None,
               embedding_variables: Optional[Callable[[], Sequence[tf.Variable]]] = None,
               embedding_name_pattern: str = DEFAULT_EMBEDDING_NAME_PATTERN,
               name: str = "SplitOptimizer",
               **kwargs):
    super().__init__(name, **kwargs)
    self._embedding_optimizer = registry.get(
        DEFAULT_EMBEDDING_OPTIMIZER if embedding_optimizer is None else embedding_optimizer)
    self._dense_optimizer = registry.get(DEFAULT_DENSE_OPTIMIZER if dense_optimizer is None else dense_optimizer)
    if self._embedding_optimizer is self._dense_optimizer:
      raise ValueError("`embedding_optimizer` and `dense_optimizer` must be two distinct optimizer "
                       f"instances, got the same object twice: {self._embedding_optimizer!r}.")
    if embedding_variables is not None and not callable(embedding_variables):
      raise TypeError("`embedding_variables` must be a callable returning variables "
                      f"(e.g. lambda: model.embedding_variables), got {embedding_variables!r}.")
    try:
      re.compile(embedding_name_pattern)
    except re.error as e:
      raise ValueError(f"`embedding_name_pattern` is not a valid regex: {embedding_name_pattern!r} ({e}).") from e
    if "adam" in type(self._embedding_optimizer).__name__.lower():
      logging.warning("SplitOptimizer: %s chosen for embedding tables; Adam's moment decay touches "
                      "every row each step (slow for large tables) and mistreats rare ids.",
                      type(self._embedding_optimizer).__name__)
    self._embedding_variables = embedding_variables
    self.embedding_name_pattern = embedding_name_pattern
    self._track_trackable(self._embedding_optimizer, "embedding_optimizer")
    self._track_trackable(self._dense_optimizer, "dense_optimizer")
    self._logged_assignments = set()

  @classmethod
  def for_model(cls, model, embedding_optimizer=None, dense_optimizer=None, **kwargs):
    """Uses ``model.embedding_variables`` as the embedding set."""
    if not hasattr(model, "embedding_variables"):
      raise AttributeError(f"model {getattr(model, 'name', model)!r} has no `embedding_variables`; "
                           "pass embedding_name_pattern instead.")
    return cls(embedding_optimizer, dense_optimizer, embedding_variables=lambda: model.embedding_variables,
               **kwargs)

  @property
  def embedding_optimizer(self):
    return self._embedding_optimizer

  @property
  def dense_optimizer(self):
    return self._dense_optimizer

  def is_embedding(self, var) -> bool:
    """Whether `var` goes to the embedding optimizer."""
    if self._embedding_variables is not None:
      return any(var is v or var.ref() == v.ref() for v in self._embedding_variables())
    return re.search(self.embedding_name_pattern, var.name) is not None

  def assignment(self, variables) -> Dict[str, List[str]]:
    """Returns {"embedding": [names], "dense": [names]} for `variables`."""
    result = {"embedding": [], "dense": []}
    for var in variables:
      result["embedding" if self.is_embedding(var) else "dense"].append(var.name)
    return result

  def _log_assignment(self, variables):
    key = tuple(v.name for v in variables)
    if key in self._logged_assignments:
      return
    self._logged_assignments.add(key)
    split = self.assignment(variables)
    logging.info("SplitOptimizer %s: %d embedding variable(s) -> %s: %s; %d dense variable(s) -> %s: %s",
                 self._name, len(split["embedding"]), type(self._embedding_optimizer).__name__,
                 split["embedding"], len(split["dense"]), type(self._dense_optimizer).__name__, split["dense"])

  def apply_gradients(self, grads_and_vars, name=None, experimental_aggregate_gradients=True):
    grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
    if not grads_and_vars:
      raise ValueError("SplitOptimizer.apply_gradients got no gradients (all None).")
    self._log_assignment([v for _, v in grads_and_vars])
    embedding, dense = [], []
    for g, v in grads_and_vars:
      (embedding if self.is_embedding(v) else dense).append((g, v))
    with tf.init_scope():
      self._create_hypers()
      _ = self.iterations
    ops = []
    for optimizer, pairs in ((self._embedding_optimizer, embedding), (self._dense_optimizer, dense)):
      if pairs:
        ops.append(optimizer.apply_gradients(
            pairs, name=name, experimental_aggregate_gradients=experimental_aggregate_gradients))
    with tf.control_dependencies([op for op in ops if op is not None]):
      return self.iterations.assign_add(1)

  def _create_all_weights(self, var_list):
    _ = self.iterations
    self._create_hypers()
    embedding = [v for v in var_list if self.is_embedding(v)]
    dense = [v for v in var_list if not self.is_embedding(v)]
    if embedding:
      self._embedding_optimizer._create_all_weights(embedding)  # pylint: disable=protected-access
    if dense:
      self._dense_optimizer._create_all_weights(dense)  # pylint: disable=protected-access

  def _create_slots(self, var_list):
    pass

  def _resource_apply_dense(self, grad, var, apply_state=None):
    raise NotImplementedError("SplitOptimizer dispatches in apply_gradients.")

  def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
    raise NotImplementedError("SplitOptimizer dispatches in apply_gradients.")

  @property
  def weights(self):
    return self._weights + self._embedding_optimizer.weights + self._dense_optimizer.weights

  def variables(self):
    return self.weights

  def get_config(self):
    config = super().get_config()
    config.update(embedding_optimizer=tf.keras.optimizers.serialize(self._embedding_optimizer),
                  dense_optimizer=tf.keras.optimizers.serialize(self._dense_optimizer),
                  embedding_name_pattern=self.embedding_name_pattern)
    return config

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    for key in ("embedding_optimizer", "dense_optimizer"):
      if isinstance(config.get(key), dict):
        config[key] = tf.keras.optimizers.deserialize(config[key], custom_objects=custom_objects,
                                                      use_legacy_optimizer=True)
    return cls(**config)


registry.register("split", SplitOptimizer)
