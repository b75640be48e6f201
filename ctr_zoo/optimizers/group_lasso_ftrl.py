"""FTRL-Proximal with a group-lasso penalty per embedding row (Ni et al., CIKM'19)."""

import math

import tensorflow as tf

from ctr_zoo import serialization
from ctr_zoo.optimizers import ftrl as ftrl_lib
from ctr_zoo.optimizers import sparse_rows


def group_lasso_ftrl_step(w, z, n, g, alpha, beta, l1, l2, group_lasso, group_size, row_wise):
  r"""One FTRL step with the (sparse-)group-lasso proximal solve, on whole groups.

  Groups are the slices along axis 0 (rows): w, z, g have shape (k, ...) and
  the group norm is taken over all other axes (a group of size
  ``group_size``). Rank-0/1 inputs are groups of size 1.

      n' = n + g^2                 (per coordinate; row-wise: n + mean_row(g^2))
      sigma = (sqrt(n') - sqrt(n)) / alpha
      z' = z + g - sigma w
      q = (beta + sqrt(n')) / alpha + l2
      u = clip(z', -l1, l1) - z'   (element-wise l1 soft-threshold, negated)
      w' = 0                                          if ||u||_2 <= lambda sqrt(d_g)
      w' = (1 - lambda sqrt(d_g) / ||u||_2) u / q     otherwise

  Args:
    w: tf.Tensor. Current weights, (k, ...).
    z: tf.Tensor. "linear" slot, same shape as w.
    n: tf.Tensor. "accumulator" slot, shape of w (per coordinate) or (k, 1, ...)
      (row-wise).
    g: tf.Tensor. Gradient, shape of w (duplicates already summed).
    alpha, beta, l1, l2, group_lasso: scalar tf.Tensors. Hyperparameters.
    group_size: int. d_g, number of coordinates per group.
    row_wise: bool. One accumulator per row instead of per coordinate.

  Returns:
    (w', z', n'), with the shapes of (w, z, n).
  """
  axes = list(range(1, w.shape.rank))
  g2 = tf.square(g)
  if row_wise and axes:
    g2 = tf.reduce_mean(g2, axis=axes, keepdims=True)  # (k, 1, ...)
  n_new = n + g2
  sqrt_n_new = tf.sqrt(n_new)
  sigma = (sqrt_n_new - tf.sqrt(n)) / alpha
  z_new = z + g - sigma * w
  q = (beta + sqrt_n_new) / alpha + l2
  u = tf.clip_by_value(z_new, -l1, l1) - z_new
  norm = tf.sqrt(tf.reduce_sum(tf.square(u), axis=axes, keepdims=True))  # (k, 1, ...)
  threshold = group_lasso * math.sqrt(group_size)
  scale = tf.where(norm > threshold, 1.0 - tf.math.divide_no_nan(threshold, norm), tf.zeros_like(norm))
  # q = 0 only where n' = 0, i.e. every gradient so far was 0: then u = 0 too.
  w_new = tf.math.divide_no_nan(scale * u, q)
  return w_new, z_new, n_new


@serialization.register
class GroupLassoFtrl(tf.keras.optimizers.legacy.Optimizer):
  r"""FTRL with group lasso on embedding rows (Ni et al., CIKM'19; Yue et al. 2107.14432).

  Group g = one row of a table of shape (V, d) (one feature value's vector),
  d_g = d. Penalty lambda sqrt(d_g) ||w_g||_2 (unsquared L2 norm), optionally
  plus l1 ||w_g||_1 (the sparse-group variant). Per touched row, after the FTRL
  n and z updates of :class:`Ftrl` (see :func:`group_lasso_ftrl_step`):

      u = clip(z_g, -l1, l1) - z_g
      w_g = 0                                         if ||u|| <= lambda sqrt(d_g)
      w_g = (1 - lambda sqrt(d_g) / ||u||) u / ((beta + sqrt(n)) / alpha + l2)

  With l1 = 0, w_g is exactly zero iff ||z_g|| <= lambda sqrt(d_g) and else
  parallel to -z_g (per-coordinate n rescales coordinates). lambda = 0 is plain
  FTRL; d_g = 1 is scalar FTRL with l1 + lambda. Zeroed rows keep z and n and
  revive once ||z_g|| grows back; drop them only at export (see
  ``ctr_zoo.optimizers.sparsity``).

  Accumulator: ``row_wise_accumulator=False`` (default, the published variant)
  keeps one n per coordinate, so the closed form above is the usual
  approximation of the proximal step; ``True`` keeps one n per row (slot of
  shape (V, 1), n += mean over the row of g^2), which makes the quadratic term
  isotropic in the row and the closed form the exact proximal step.

  Sparse gradients are de-duplicated (ids summed) and only touched rows of the
  table and its slots are gathered, updated and scattered back: the step cost
  does not depend on V. Untouched rows are bit-identical. Dense gradients (any
  variable, e.g. a Dense kernel whose rows are input features) use the same
  math on all rows (groups along axis 0; rank <= 1 variables: groups of size 1).

  Args:
    learning_rate: float or schedule. alpha. Defaults to 0.01.
    group_lasso: float. lambda >= 0, the per-row group-lasso strength (it is
      multiplied by sqrt(d)). Defaults to 0.0.
    beta: float. The paper's beta. Defaults to 0.0.
    l1: float. Element-wise l1 applied before the group shrink. Defaults to 0.0.
    l2: float. The paper's L2 denominator term. Defaults to 0.0.
    initial_accumulator_value: float. n0 >= 0 (0 keeps an embedding's initial
      value, see :class:`Ftrl`). Defaults to 0.0.
    row_wise_accumulator: bool. One accumulator per row (exact proximal step)
      instead of per coordinate (published). Defaults to False.
    name: str. Defaults to "GroupLassoFtrl".
    **kwargs: clipnorm, clipvalue, global_clipnorm, decay.

  Example:

  >>> opt = GroupLassoFtrl(learning_rate=0.1, group_lasso=0.01)
  >>> table = tf.Variable(tf.ones((10, 4)), name="embedding/table")
  >>> grad = tf.IndexedSlices(tf.ones((2, 4)), tf.constant([1, 5]), tf.constant([10, 4]))
  >>> _ = opt.apply_gradients([(grad, table)])
  """

  _HAS_AGGREGATE_GRAD = True

  def __init__(self,
               learning_rate=0.01,
               group_lasso: float = 0.0,
               beta: float = 0.0,
               l1: float = 0.0,
               l2: float = 0.0,
               initial_accumulator_value: float = 0.0,
               row_wise_accumulator: bool = False,
               name: str = "GroupLassoFtrl",
               **kwargs):
    super().__init__(name, **kwargs)
    ftrl_lib.check_non_negative(
        learning_rate=learning_rate, group_lasso=group_lasso, beta=beta, l1=l1, l2=l2,
        initial_accumulator_value=initial_accumulator_value)
    self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
    self._set_hyper("decay", self._initial_decay)
    self._set_hyper("group_lasso", group_lasso)
    self._set_hyper("beta", beta)
    self._set_hyper("l1", l1)
    self._set_hyper("l2", l2)
    self.initial_accumulator_value = float(initial_accumulator_value)
    self.row_wise_accumulator = bool(row_wise_accumulator)

  def _accumulator_shape(self, var):
    shape = var.shape.as_list()
    if self.row_wise_accumulator and len(shape) >= 2:
      return [shape[0]] + [1] * (len(shape) - 1)  # (V, 1)
    return shape

  def _create_slots(self, var_list):
    for var in var_list:
      init = tf.compat.v1.constant_initializer(self.initial_accumulator_value, dtype=var.dtype.base_dtype)
      self.add_slot(var, "accumulator", init, shape=self._accumulator_shape(var))
      self.add_slot(var, "linear")

  def _prepare_local(self, var_device, var_dtype, apply_state):
    super()._prepare_local(var_device, var_dtype, apply_state)
    apply_state[(var_device, var_dtype)].update(
        {name: tf.identity(self._get_hyper(name, var_dtype)) for name in ("group_lasso", "beta", "l1", "l2")})

  def _step(self, w, z, n, g, var, apply_state):
    var_device, var_dtype = var.device, var.dtype.base_dtype
    c = ((apply_state or {}).get((var_device, var_dtype))
         or self._fallback_apply_state(var_device, var_dtype))
    group_size = max(1, var.shape[1:].num_elements() or 1)
    return group_lasso_ftrl_step(w, z, n, g, alpha=c["lr_t"], beta=c["beta"], l1=c["l1"], l2=c["l2"],
                                 group_lasso=c["group_lasso"], group_size=group_size,
                                 row_wise=self.row_wise_accumulator)

  def _resource_apply_dense(self, grad, var, apply_state=None):
    accum, linear = self.get_slot(var, "accumulator"), self.get_slot(var, "linear")
    w, z, n = self._step(var.read_value(), linear.read_value(), accum.read_value(), grad, var, apply_state)
    return tf.group(var.assign(w, use_locking=self._use_locking),
                    linear.assign(z, use_locking=self._use_locking),
                    accum.assign(n, use_locking=self._use_locking))

  def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
    # `indices` are unique here: the base class' duplicate-index path sums first.
    accum, linear = self.get_slot(var, "accumulator"), self.get_slot(var, "linear")
    w, z, n = self._step(*[sparse_rows.gather_rows(v, indices) for v in (var, linear, accum)],
                         grad, var, apply_state)  # each (k, d) or (k, 1)
    return tf.group(*[sparse_rows.scatter_rows(v, indices, u)
                      for v, u in ((var, w), (linear, z), (accum, n))])

  def get_config(self):
    config = super().get_config()
    config.update(
        learning_rate=self._serialize_hyperparameter("learning_rate"),
        decay=self._initial_decay,
        group_lasso=self._serialize_hyperparameter("group_lasso"),
        beta=self._serialize_hyperparameter("beta"),
        l1=self._serialize_hyperparameter("l1"),
        l2=self._serialize_hyperparameter("l2"),
        initial_accumulator_value=self.initial_accumulator_value,
        row_wise_accumulator=self.row_wise_accumulator)
    return config
