"""Lookahead: k fast steps of any optimizer, then slow weights move toward them."""

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo import serialization
from ctr_zoo.optimizers import registry


@serialization.register
class Lookahead(tf.keras.optimizers.legacy.Optimizer):
  r"""Lookahead (Zhang et al., NeurIPS'19, arXiv 1907.08610, Algorithm 1).

  Wraps any legacy Keras optimizer (the "fast" one). Each slow weight phi (slot
  "slow", initialised to the variable) and fast weight w:

      every step t = 1, 2, ...:   w <- inner_update(w, g)
      if t % sync_period == 0:    phi <- phi + slow_step_size (w - phi);  w <- phi

  The inner optimizer's slots are tracked under this one, so
  ``tf.train.Checkpoint(optimizer=Lookahead(...))`` saves both. The inner
  optimizer shares this optimizer's step counter. The synchronisation reads and
  writes whole variables: use it for dense parameters, not embedding tables.

  Args:
    optimizer: legacy tf.keras optimizer or str. The fast optimizer (a name is
      resolved with ``ctr_zoo.optimizers.get``).
    sync_period: int. k >= 1, fast steps per synchronisation. Defaults to 6.
    slow_step_size: float. alpha in [0, 1]. Defaults to 0.5.
    name: str. Defaults to "Lookahead".
    **kwargs: clipnorm, clipvalue, global_clipnorm.

  Example:

  >>> w = tf.Variable([1.0])
  >>> opt = Lookahead(tf.keras.optimizers.legacy.SGD(0.1), sync_period=2)
  >>> _ = opt.apply_gradients([(tf.constant([1.0]), w)])
  """

  def __init__(self, optimizer, sync_period: int = 6, slow_step_size: float = 0.5,
               name: str = "Lookahead", **kwargs):
    super().__init__(name, **kwargs)
    if isinstance(optimizer, (str, dict)):
      optimizer = registry.get(optimizer)
    if not isinstance(optimizer, tf.keras.optimizers.legacy.Optimizer):
      raise TypeError("Lookahead wraps a legacy tf.keras optimizer "
                      f"(tf.keras.optimizers.legacy.*), got {optimizer!r}.")
    checks.positive_int(sync_period, "Lookahead sync_period")
    checks.probability(slow_step_size, "Lookahead slow_step_size")
    self._optimizer = optimizer
    self._track_trackable(self._optimizer, "base_optimizer")
    self.sync_period = int(sync_period)
    self.slow_step_size = float(slow_step_size)

  @property
  def inner_optimizer(self):
    return self._optimizer

  def _create_hypers(self):
    super()._create_hypers()
    self._optimizer._create_hypers()  # pylint: disable=protected-access

  def _create_slots(self, var_list):
    self._optimizer._create_slots(var_list=var_list)  # pylint: disable=protected-access
    for var in var_list:
      self.add_slot(var, "slow", initializer=var)

  def _prepare(self, var_list):
    return self._optimizer._prepare(var_list=var_list)  # pylint: disable=protected-access

  def apply_gradients(self, grads_and_vars, name=None, experimental_aggregate_gradients=True):
    self._optimizer._iterations = self.iterations  # pylint: disable=protected-access
    return super().apply_gradients(grads_and_vars, name, experimental_aggregate_gradients)

  def _look_ahead(self, var):
    slow = self.get_slot(var, "slow")
    step = self.iterations + 1  # this step's number, 1-based
    sync = tf.equal(step % self.sync_period, 0)
    alpha = tf.cast(self.slow_step_size, var.dtype.base_dtype)
    stepped = slow + alpha * (var - slow)
    new_slow = tf.where(sync, stepped, slow)
    new_fast = tf.where(sync, stepped, var)
    return tf.group(slow.assign(new_slow, use_locking=self._use_locking),
                    var.assign(new_fast, use_locking=self._use_locking))

  def _resource_apply_dense(self, grad, var, apply_state=None):
    train_op = self._optimizer._resource_apply_dense(grad, var, apply_state=apply_state)  # pylint: disable=protected-access
    with tf.control_dependencies([train_op]):
      return self._look_ahead(var)

  def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
    train_op = self._optimizer._resource_apply_sparse_duplicate_indices(  # pylint: disable=protected-access
        grad, var, indices, apply_state=apply_state)
    with tf.control_dependencies([train_op]):
      return self._look_ahead(var)

  @property
  def weights(self):
    return self._weights + self._optimizer.weights

  def variables(self):
    return self.weights

  def get_config(self):
    config = super().get_config()
    config.update(optimizer=tf.keras.optimizers.serialize(self._optimizer),
                  sync_period=self.sync_period, slow_step_size=self.slow_step_size)
    return config

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    config["optimizer"] = tf.keras.optimizers.deserialize(
        config["optimizer"], custom_objects=custom_objects, use_legacy_optimizer=True)
    return cls(**config)


registry.register("lookahead", Lookahead)
