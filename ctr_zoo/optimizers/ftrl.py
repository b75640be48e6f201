"""FTRL-Proximal for embedding tables, on TensorFlow's sparse FTRL kernels."""

import tensorflow as tf

from ctr_zoo import serialization
from ctr_zoo.optimizers import sparse_rows

# Added to the kernel's l2 so that 0 / 0 (a coordinate whose accumulator is still
# 0 after a zero gradient, with l2 = beta = 0) gives the paper's w = 0 instead of
# NaN. Far below one float32 ulp of any denominator a real gradient produces.
_DENOMINATOR_GUARD = 1e-30


def _row_size(var) -> int:
  """Floats per row of `var` (0 if not statically known)."""
  shape = var.shape
  if shape.rank is None or shape.rank < 1 or not shape[1:].is_fully_defined():
    return 0
  return int(shape[1:].num_elements())


def check_non_negative(**values):
  """Raises ValueError naming the first negative value (schedules are skipped)."""
  for name, value in values.items():
    if not callable(value) and not isinstance(value, tf.keras.optimizers.schedules.LearningRateSchedule):
      if value < 0:
        raise ValueError(f"`{name}` must be >= 0, got {name}={value!r}.")


@serialization.register
class Ftrl(tf.keras.optimizers.legacy.Optimizer):
  r"""FTRL-Proximal (McMahan et al., KDD'13, Algorithm 1), per coordinate.

  State per coordinate i: z_i (slot "linear") and n_i (slot "accumulator").

      w_i = 0                                               if |z_i| <= l1
      w_i = -(z_i - sgn(z_i) l1) / ((beta + sqrt(n_i)) / alpha + l2)  otherwise
      after gradient g_i:
        sigma_i = (sqrt(n_i + g_i^2) - sqrt(n_i)) / alpha
        z_i += g_i - sigma_i w_i;   n_i += g_i^2

  Parameters are the paper's. TensorFlow's FTRL kernels put ``2 * l2`` in the
  denominator and have no ``beta``, so this class passes
  ``l2_regularization_strength = l2 / 2 + beta / (2 alpha)`` to
  ``ResourceApplyFtrl`` / ``ResourceSparseApplyFtrl`` (Keras' ``Ftrl`` maps
  ``beta`` the same way).

  Sparse gradients (``tf.IndexedSlices``, e.g. from ``tf.gather`` on a table of
  shape (V, d)) are de-duplicated by summing the values of repeated ids (the
  base class does this), then only the touched rows of the table and of both
  slots are read and written: the cost of a step does not depend on V. Rows of
  more than one float are gathered, updated vectorised and scattered back
  (bit-identical to TF's ``ResourceSparseApplyFtrl``); rows of one float, and
  tables on parameter servers (updated by several workers at once), use that
  kernel, which holds the variable's lock for the whole update.

  Initial accumulator: w is re-solved from (z, n) at every step, so with
  n0 > 0 an embedding row keeps only sqrt(n0 + g^2) - sqrt(n0) over
  sqrt(n0 + g^2) of its random initial value after its first update (0.05% for
  Keras' default n0 = 0.1 and |g| ~ 1e-3). The default here is n0 = 0 (and
  beta = l2 = 0), with which the first update gives exactly
  w = w0 - alpha sgn(g): the initial value survives. A coordinate whose
  gradient is exactly 0 while its n is still 0 has z = 0, hence w = 0 (the
  paper's rule |z| <= l1), never NaN.

  Args:
    learning_rate: float or schedule. alpha, the per-coordinate learning rate
      scale. Defaults to 0.01.
    beta: float. The paper's beta (smooths the first steps). Defaults to 0.0.
    l1: float. L1 strength; |z_i| <= l1 gives exactly w_i = 0. Defaults to 0.0.
    l2: float. The paper's L2 strength (denominator term l2). Defaults to 0.0.
    initial_accumulator_value: float. n0 >= 0. Defaults to 0.0 (see above).
    name: str. Optimizer name. Defaults to "Ftrl".
    **kwargs: clipnorm, clipvalue, global_clipnorm, decay.

  Example:

  >>> opt = Ftrl(learning_rate=0.1, l1=0.01)
  >>> table = tf.Variable(tf.zeros((100, 4)), name="embedding/table")
  >>> with tf.GradientTape() as tape:
  ...   loss = tf.reduce_sum(tf.gather(table, [3, 7, 3]))
  >>> _ = opt.apply_gradients([(tape.gradient(loss, table), table)])
  """

  _HAS_AGGREGATE_GRAD = True

  def __init__(self,
               learning_rate=0.01,
               beta: float = 0.0,
               l1: float = 0.0,
               l2: float = 0.0,
               initial_accumulator_value: float = 0.0,
               name: str = "Ftrl",
               **kwargs):
    super().__init__(name, **kwargs)
    check_non_negative(learning_rate=learning_rate, beta=beta, l1=l1, l2=l2,
                        initial_accumulator_value=initial_accumulator_value)
    self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
    self._set_hyper("decay", self._initial_decay)
    self._set_hyper("beta", beta)
    self._set_hyper("l1", l1)
    self._set_hyper("l2", l2)
    self.initial_accumulator_value = float(initial_accumulator_value)

  def _create_slots(self, var_list):
    for var in var_list:
      init = tf.compat.v1.constant_initializer(self.initial_accumulator_value, dtype=var.dtype.base_dtype)
      self.add_slot(var, "accumulator", init)
      self.add_slot(var, "linear")

  def _prepare_local(self, var_device, var_dtype, apply_state):
    super()._prepare_local(var_device, var_dtype, apply_state)
    coefficients = apply_state[(var_device, var_dtype)]
    beta = self._get_hyper("beta", var_dtype)
    l2 = self._get_hyper("l2", var_dtype)
    coefficients.update(
        l1=tf.identity(self._get_hyper("l1", var_dtype)),
        # TF's kernels: denominator sqrt(n)/lr + 2 * l2_kernel.
        kernel_l2=l2 / 2.0 + beta / (2.0 * coefficients["lr_t"]) + tf.cast(_DENOMINATOR_GUARD, var_dtype),
        lr_power=tf.constant(-0.5, var_dtype))

  def _coefficients(self, var, apply_state):
    var_device, var_dtype = var.device, var.dtype.base_dtype
    return ((apply_state or {}).get((var_device, var_dtype))
            or self._fallback_apply_state(var_device, var_dtype))

  def _resource_apply_dense(self, grad, var, apply_state=None):
    c = self._coefficients(var, apply_state)
    return tf.raw_ops.ResourceApplyFtrl(
        var=var.handle, accum=self.get_slot(var, "accumulator").handle,
        linear=self.get_slot(var, "linear").handle, grad=grad, lr=c["lr_t"],
        l1=c["l1"], l2=c["kernel_l2"], lr_power=c["lr_power"], use_locking=self._use_locking)

  def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
    # `indices` are unique here: the base class' duplicate-index path sums first.
    c = self._coefficients(var, apply_state)
    if _row_size(var) > 1 and not sparse_rows.on_parameter_server(var):
      return self._gather_update_scatter(grad, var, indices, c)
    # Rows of one float: the kernel's scalar loop rounds differently ((z + g) -
    # sigma w, pow); keep it so that results do not depend on the path. A table
    # on a parameter server, updated by several workers at once: the kernel holds
    # the variable's lock for the whole update.
    return tf.raw_ops.ResourceSparseApplyFtrl(
        var=var.handle, accum=self.get_slot(var, "accumulator").handle,
        linear=self.get_slot(var, "linear").handle, grad=grad, indices=indices,
        lr=c["lr_t"], l1=c["l1"], l2=c["kernel_l2"], lr_power=c["lr_power"],
        use_locking=self._use_locking)

  def _gather_update_scatter(self, grad, var, indices, c):
    """The touched rows (U, d) of w, z, n: gathered, updated vectorised, scattered.

    The same float expressions, in the same order, as TF's
    ResourceSparseApplyFtrl for rows of more than one float (bit-identical
    results).
    """
    accum = self.get_slot(var, "accumulator")
    linear = self.get_slot(var, "linear")
    lr, l1 = c["lr_t"], c["l1"]
    n_old = sparse_rows.gather_rows(accum, indices)  # (U, d)
    n_new = n_old + grad * grad
    z = sparse_rows.gather_rows(linear, indices) + (
        grad - (tf.sqrt(n_new) - tf.sqrt(n_old)) / lr * sparse_rows.gather_rows(var, indices))
    x = tf.clip_by_value(z, -l1, l1) - z  # -(z - sgn(z) l1) where |z| > l1, else 0
    y = tf.sqrt(n_new) / lr + 2.0 * c["kernel_l2"]
    return tf.group(sparse_rows.scatter_rows(accum, indices, n_new),
                    sparse_rows.scatter_rows(linear, indices, z),
                    sparse_rows.scatter_rows(var, indices, x / y))

  def get_config(self):
    config = super().get_config()
    config.update(
        learning_rate=self._serialize_hyperparameter("learning_rate"),
        decay=self._initial_decay,
        beta=self._serialize_hyperparameter("beta"),
        l1=self._serialize_hyperparameter("l1"),
        l2=self._serialize_hyperparameter("l2"),
        initial_accumulator_value=self.initial_accumulator_value)
    return config
