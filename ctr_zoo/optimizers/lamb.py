"""LAMB: Adam with a layer-wise trust ratio (You et al., ICLR'20, arXiv 1904.00962)."""

import re
from typing import Optional, Sequence

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo import serialization


@serialization.register
class Lamb(tf.keras.optimizers.legacy.Optimizer):
  r"""LAMB (Algorithm 2 of You et al.): Adam's update rescaled per variable.

  tf-keras 2.21 ships no LAMB (neither legacy nor new-style), so this is the
  project's. Per variable (a "layer" = one tf.Variable), at step t:

      m = beta_1 m + (1 - beta_1) g;   v = beta_2 v + (1 - beta_2) g^2
      m_hat = m / (1 - beta_1^t);      v_hat = v / (1 - beta_2^t)
      u = m_hat / (sqrt(v_hat) + epsilon) + weight_decay w
      r = ||w||_2 / ||u||_2   (1 if either norm is 0, or if layer adaptation is
                               excluded for the variable)
      w -= learning_rate r u

  Sparse gradients are densified (LAMB's norms span the whole variable): use
  Ftrl / GroupLassoFtrl / Adagrad for embedding tables.

  Args:
    learning_rate: float or schedule. Defaults to 0.001.
    beta_1: float. First-moment decay. Defaults to 0.9.
    beta_2: float. Second-moment decay. Defaults to 0.999.
    epsilon: float. Added to sqrt(v_hat). Defaults to 1e-6.
    weight_decay: float. Decoupled weight decay inside u. Defaults to 0.0.
    exclude_from_weight_decay: list of str or None. Regexes; variables whose
      name matches get no weight decay. Defaults to None.
    exclude_from_layer_adaptation: list of str or None. Regexes; variables
      whose name matches use r = 1. Defaults to None (the weight-decay list).
    name: str. Defaults to "Lamb".
    **kwargs: clipnorm, clipvalue, global_clipnorm, decay.

  Example:

  >>> w = tf.Variable([1.0, -2.0])
  >>> _ = Lamb(learning_rate=0.01).apply_gradients([(tf.constant([0.5, 0.1]), w)])
  """

  _HAS_AGGREGATE_GRAD = True

  def __init__(self,
               learning_rate=0.001,
               beta_1: float = 0.9,
               beta_2: float = 0.999,
               epsilon: float = 1e-6,
               weight_decay: float = 0.0,
               exclude_from_weight_decay: Optional[Sequence[str]] = None,
               exclude_from_layer_adaptation: Optional[Sequence[str]] = None,
               name: str = "Lamb",
               **kwargs):
    super().__init__(name, **kwargs)
    checks.fraction(beta_1, "Lamb beta_1")
    checks.fraction(beta_2, "Lamb beta_2")
    checks.non_negative(epsilon, "Lamb epsilon")
    checks.non_negative(weight_decay, "Lamb weight_decay")
    self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
    self._set_hyper("decay", self._initial_decay)
    self._set_hyper("beta_1", beta_1)
    self._set_hyper("beta_2", beta_2)
    self._set_hyper("weight_decay", weight_decay)
    self.epsilon = float(epsilon)
    self.exclude_from_weight_decay = list(exclude_from_weight_decay or [])
    self.exclude_from_layer_adaptation = (list(exclude_from_layer_adaptation)
                                          if exclude_from_layer_adaptation is not None
                                          else list(self.exclude_from_weight_decay))

  def _create_slots(self, var_list):
    for var in var_list:
      self.add_slot(var, "m")
    for var in var_list:
      self.add_slot(var, "v")

  @staticmethod
  def _matches(var, patterns):
    return any(re.search(pattern, var.name) for pattern in patterns)

  def _resource_apply_dense(self, grad, var, apply_state=None):
    var_dtype = var.dtype.base_dtype
    lr = self._decayed_lr(var_dtype)
    beta_1 = self._get_hyper("beta_1", var_dtype)
    beta_2 = self._get_hyper("beta_2", var_dtype)
    t = tf.cast(self.iterations + 1, var_dtype)
    m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
    m_t = m.assign(beta_1 * m + (1.0 - beta_1) * grad, use_locking=self._use_locking)
    v_t = v.assign(beta_2 * v + (1.0 - beta_2) * tf.square(grad), use_locking=self._use_locking)
    m_hat = m_t / (1.0 - tf.pow(beta_1, t))
    v_hat = v_t / (1.0 - tf.pow(beta_2, t))
    update = m_hat / (tf.sqrt(v_hat) + tf.cast(self.epsilon, var_dtype))
    if not self._matches(var, self.exclude_from_weight_decay):
      update += self._get_hyper("weight_decay", var_dtype) * var
    ratio = tf.constant(1.0, var_dtype)
    if not self._matches(var, self.exclude_from_layer_adaptation):
      w_norm = tf.norm(var)
      u_norm = tf.norm(update)
      ratio = tf.where((w_norm > 0) & (u_norm > 0), tf.math.divide_no_nan(w_norm, u_norm), ratio)
    return var.assign_sub(lr * ratio * update, use_locking=self._use_locking)

  def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
    dense_grad = tf.math.unsorted_segment_sum(grad, indices, num_segments=tf.shape(var)[0])
    return self._resource_apply_dense(dense_grad, var, apply_state)

  def get_config(self):
    config = super().get_config()
    config.update(
        learning_rate=self._serialize_hyperparameter("learning_rate"),
        decay=self._initial_decay,
        beta_1=self._serialize_hyperparameter("beta_1"),
        beta_2=self._serialize_hyperparameter("beta_2"),
        epsilon=self.epsilon,
        weight_decay=self._serialize_hyperparameter("weight_decay"),
        exclude_from_weight_decay=self.exclude_from_weight_decay,
        exclude_from_layer_adaptation=self.exclude_from_layer_adaptation)
    return config
