"""AdaGrad for embedding tables: vectorised row updates instead of TF's sparse kernel."""

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo import serialization
from ctr_zoo.optimizers import sparse_rows

# Dense path when V <= DEFAULT_DENSE_ROW_FACTOR * (ids looked up in the batch).
# Timing both paths on tables of dim 16 put their crossover near V = 6 n;
# 4 keeps a margin.
DEFAULT_DENSE_ROW_FACTOR = 4.0


@serialization.register
class Adagrad(tf.keras.optimizers.legacy.Adagrad):
  r"""AdaGrad (Duchi et al., 2011) with fast sparse row updates for tables.

  The update of ``tf.keras.optimizers.legacy.Adagrad`` (slot "accumulator" a):

      a += g * g;   w -= lr * g / (sqrt(a) + epsilon)

  Dense gradients use TF's ``ResourceApplyAdagradV2`` as the parent does. A
  ``tf.IndexedSlices`` gradient of a table of shape (V, d) with n looked-up
  ids (duplicates allowed) takes one of two paths, both exactly equal to the
  parent's sparse update (same float operations in the same order):

  - sparse (V > dense_row_factor * n): de-duplicate (``tf.unique`` +
    ``unsorted_segment_sum``: repeated ids get their summed gradient), gather
    the U touched rows of w and a (U, d), apply the update to them vectorised,
    and write them back with ``scatter_update``. Only touched rows are read or
    written: the cost does not grow with V. A table on a parameter server,
    which several workers update at once, uses TF's kernel instead (it holds
    the variable's lock for the whole update; same results). TF's ``ResourceSparseApplyAdagradV2``
    does the same per row in a scalar loop (about 300 ns per row of 16 here),
    about twice as slow.
  - dense (V <= dense_row_factor * n, a table the batch covers densely):
    ``unsorted_segment_sum`` of the values into a (V, d) gradient (no
    ``tf.unique``), then the dense kernel. An untouched row has g = 0, so
    a + 0 * 0 = a and w - lr * 0 / (sqrt(a) + epsilon) = w bit for bit (the
    denominator is > 0: the path is only taken when epsilon > 0 or
    initial_accumulator_value > 0). Never taken for large tables.

  When n is only known at run time (an unknown batch size) the path is chosen
  per step with ``tf.cond``. Checkpoints and configs are interchangeable with
  the parent's (same slot name, same config keys plus ``dense_row_factor``).

  Args:
    learning_rate: float or schedule. Defaults to 0.001 (as Keras).
    initial_accumulator_value: float >= 0. a0. Defaults to 0.1 (as Keras).
    epsilon: float. Defaults to 1e-7.
    dense_row_factor: float >= 0. A table of V rows takes the dense path when
      V <= dense_row_factor * n (n = ids in the gradient); 0 disables it.
      Defaults to DEFAULT_DENSE_ROW_FACTOR (4.0).
    name: str. Defaults to "Adagrad".
    **kwargs: clipnorm, clipvalue, global_clipnorm, decay.
  """

  def __init__(self,
               learning_rate=0.001,
               initial_accumulator_value: float = 0.1,
               epsilon: float = 1e-7,
               dense_row_factor: float = DEFAULT_DENSE_ROW_FACTOR,
               name: str = "Adagrad",
               **kwargs):
    super().__init__(learning_rate=learning_rate, initial_accumulator_value=initial_accumulator_value,
                     epsilon=epsilon, name=name, **kwargs)
    checks.non_negative(dense_row_factor, "Adagrad dense_row_factor")
    self.dense_row_factor = float(dense_row_factor)

  def _coefficients(self, var, apply_state):
    var_device, var_dtype = var.device, var.dtype.base_dtype
    return ((apply_state or {}).get((var_device, var_dtype))
            or self._fallback_apply_state(var_device, var_dtype))

  def _dense_path_allowed(self, var) -> bool:
    # The dense path is an exact no-op on untouched rows only if the
    # denominator sqrt(a) + epsilon is > 0 there.
    return (self.dense_row_factor > 0 and var.shape.rank is not None and var.shape[0] is not None
            and (self.epsilon > 0 or self._initial_accumulator_value > 0))

  def _resource_apply_sparse_duplicate_indices(self, grad, handle, indices, **kwargs):
    apply_state = kwargs.get("apply_state")
    if not self._dense_path_allowed(handle):
      return self._sparse_path(grad, handle, indices, apply_state)
    num_rows = int(handle.shape[0])
    num_ids = indices.shape[0]
    if num_ids is not None:  # static: decide while tracing
      if num_rows <= self.dense_row_factor * num_ids:
        return self._dense_path(grad, handle, indices, apply_state)
      return self._sparse_path(grad, handle, indices, apply_state)

    def dense():
      with tf.control_dependencies([self._dense_path(grad, handle, indices, apply_state)]):
        return tf.constant(True)

    def sparse():
      with tf.control_dependencies([self._sparse_path(grad, handle, indices, apply_state)]):
        return tf.constant(False)

    dense_wins = tf.cast(num_rows, tf.float32) <= self.dense_row_factor * tf.cast(tf.size(indices), tf.float32)
    return tf.cond(dense_wins, dense, sparse).op

  def _sparse_path(self, grad, var, indices, apply_state):
    """De-duplicate, gather the touched rows, update them, scatter them back."""
    unique_ids, positions = tf.unique(indices)
    summed = tf.math.unsorted_segment_sum(grad, positions, tf.shape(unique_ids)[0])  # (U, d)
    return self._resource_apply_sparse(summed, var, unique_ids, apply_state)

  def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
    # `indices` are unique here. Same expressions as ResourceSparseApplyAdagradV2.
    c = self._coefficients(var, apply_state)
    acc = self.get_slot(var, "accumulator")
    if sparse_rows.on_parameter_server(var):  # concurrent workers: the locking kernel
      return tf.raw_ops.ResourceSparseApplyAdagradV2(
          var=var.handle, accum=acc.handle, lr=c["lr_t"], epsilon=c["epsilon"], grad=grad,
          indices=indices, use_locking=self._use_locking)
    acc_rows = sparse_rows.gather_rows(acc, indices) + grad * grad  # (U, d)
    var_rows = sparse_rows.gather_rows(var, indices) - c["lr_t"] * grad / (tf.sqrt(acc_rows) + c["epsilon"])  # (U, d)
    return tf.group(sparse_rows.scatter_rows(acc, indices, acc_rows),
                    sparse_rows.scatter_rows(var, indices, var_rows))

  def _dense_path(self, grad, var, indices, apply_state):
    """Sums the (possibly repeated) rows into a (V, d) gradient; dense kernel."""
    dense_grad = tf.math.unsorted_segment_sum(grad, indices, tf.shape(var, out_type=indices.dtype)[0])  # (V, d)
    return self._resource_apply_dense(dense_grad, var, apply_state)

  def get_config(self):
    config = super().get_config()
    config["dense_row_factor"] = self.dense_row_factor
    return config
