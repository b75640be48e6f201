"""Lazy Adam for embedding tables: only the rows in the batch are read and written."""

import tensorflow as tf

from ctr_zoo import serialization
from ctr_zoo.optimizers import sparse_rows


@serialization.register
class LazyAdam(tf.keras.optimizers.legacy.Adam):
  r"""Adam (Kingma & Ba, 2015) whose sparse update touches only the looked-up rows.

  Dense gradients take exactly the update of
  ``tf.keras.optimizers.legacy.Adam`` (TF's ``ResourceApplyAdam``). A
  ``tf.IndexedSlices`` gradient of a table w of shape (V, d) with n looked-up
  ids (duplicates allowed) is first de-duplicated (``tf.unique`` +
  ``unsorted_segment_sum``: a repeated id gets its summed gradient g); then,
  with t the 1-based iteration, only the U touched rows of w and of the
  slots m, v are gathered, updated and scattered back:

      m_r = beta_1 * m_r + (1 - beta_1) * g_r
      v_r = beta_2 * v_r + (1 - beta_2) * g_r * g_r
      w_r = w_r - lr_t * m_r / (sqrt(v_r) + epsilon),
      lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)

  for each touched row r. This is the "lazy" Adam of sparse CTR training
  (the update of TF-Addons ``LazyAdam`` and of fused row-wise Adam in
  embedding-bag libraries).

  Difference from Keras Adam: Keras' sparse Adam multiplies the whole m and v
  by beta_1 and beta_2 and moves every row of w by lr_t m / (sqrt(v) +
  epsilon) at every step, so a row that is not in the batch still decays its
  moments and keeps moving on its old momentum. Here a row that is not in the
  batch is left as it is, bit for bit (w, m and v), until it is looked up
  again; its moments are then decayed once for that step, not once per step
  missed. Why: Keras' update reads and writes the whole table and both slots
  (3 V d floats) every step, which dominates the step for a table of millions
  of rows; the lazy update reads and writes 3 U d floats, so its cost does
  not depend on V. When every row is in every batch the two updates are the
  same.

  Checkpoints and configs are interchangeable with
  ``tf.keras.optimizers.legacy.Adam`` (same slots "m" and "v", same config
  keys); training resumed from one with the other continues with the other's
  update rule.

  Not supported: ``amsgrad=True`` (ValueError), and sparse gradients of a
  table placed on a parameter server (ValueError when the update is built).
  There several workers update the same rows at once, and a gather, compute
  and scatter can lose one of two overlapping updates of a row; TF has no
  locking sparse Adam kernel to use instead (as ``Adagrad`` and ``Ftrl`` do).

  Args:
    learning_rate: float or schedule. Defaults to 0.001 (as Keras).
    beta_1: float. Decay of the first moment. Defaults to 0.9.
    beta_2: float. Decay of the second moment. Defaults to 0.999.
    epsilon: float. Added to sqrt(v). Defaults to 1e-7.
    amsgrad: must be False.
    name: str. Defaults to "LazyAdam".
    **kwargs: clipnorm, clipvalue, global_clipnorm, decay.

  Raises:
    ValueError: ``amsgrad=True``.
  """

  def __init__(self,
               learning_rate=0.001,
               beta_1=0.9,
               beta_2=0.999,
               epsilon: float = 1e-7,
               amsgrad: bool = False,
               name: str = "LazyAdam",
               **kwargs):
    if amsgrad:
      raise ValueError("LazyAdam does not support amsgrad=True (it keeps no vhat slot); "
                       "use the optimizer 'amsgrad' (Keras Adam with amsgrad) instead.")
    super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                     amsgrad=False, name=name, **kwargs)

  def _coefficients(self, var, apply_state):
    var_device, var_dtype = var.device, var.dtype.base_dtype
    return ((apply_state or {}).get((var_device, var_dtype))
            or self._fallback_apply_state(var_device, var_dtype))

  def _check_not_on_parameter_server(self, var):
    if sparse_rows.on_parameter_server(var):
      raise ValueError(
          f"LazyAdam cannot update the table {var.name!r} on a parameter server ({var.device}): several "
          "workers update its rows at once and TensorFlow has no locking sparse Adam kernel, so concurrent "
          "gather/compute/scatter updates could be lost. Use 'adam' (Keras Adam) or 'adagrad' for the "
          "embedding tables in parameter-server training.")

  def _resource_apply_sparse_duplicate_indices(self, grad, handle, indices, **kwargs):
    self._check_not_on_parameter_server(handle)
    unique_ids, positions = tf.unique(indices)
    summed = tf.math.unsorted_segment_sum(grad, positions, tf.shape(unique_ids)[0])  # (U, d)
    return self._resource_apply_sparse(summed, handle, unique_ids, kwargs.get("apply_state"))

  def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
    # `indices` are unique here. The expressions (and their order) are those
    # of the parent's sparse update restricted to the touched rows.
    self._check_not_on_parameter_server(var)
    c = self._coefficients(var, apply_state)
    m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
    m_rows = sparse_rows.gather_rows(m, indices) * c["beta_1_t"] + grad * c["one_minus_beta_1_t"]  # (U, d)
    v_rows = sparse_rows.gather_rows(v, indices) * c["beta_2_t"] + (grad * grad) * c["one_minus_beta_2_t"]
    var_rows = sparse_rows.gather_rows(var, indices) - c["lr"] * m_rows / (tf.sqrt(v_rows) + c["epsilon"])
    return tf.group(sparse_rows.scatter_rows(m, indices, m_rows),
                    sparse_rows.scatter_rows(v, indices, v_rows),
                    sparse_rows.scatter_rows(var, indices, var_rows))
