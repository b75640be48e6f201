"""Reads and writes of touched rows of a table or slot, through its resource handle.

The sparse optimizers update a table of shape (V, d) by gathering the U
touched rows of the table and its slots, computing the new rows (U, d) and
scattering them back. They do it through `variable.handle`:

    rows = ResourceGather(handle, indices)          # (U, d), = variable.sparse_read(indices)
    ResourceScatterUpdate(handle, indices, rows)    # = variable.scatter_update(IndexedSlices)

which are the ops `sparse_read` and `scatter_update` run on a plain
`ResourceVariable` (same values, bit for bit). The handle also exists for the
per-replica slot variables of a `tf.distribute` strategy inside
`Strategy.extended.update` (a `MirroredVariable` slot of
`MultiWorkerMirroredStrategy` has no `sparse_read`), and for each shard of a
`ShardedVariable` of `ParameterServerStrategy`, where the update runs on the
parameter server that holds the shard (the optimizer's update is colocated
with the variable).
"""

import tensorflow as tf


def on_parameter_server(variable) -> bool:
  """Whether `variable` lives on a ps task (parameter-server training).

  There, several workers update the same rows concurrently. A gather,
  compute and scatter is three ops, so two overlapping updates of a row can
  lose one of them; the optimizers use TF's fused sparse kernels instead,
  which hold the variable's lock (`use_locking`) for the whole row update.
  """
  return "/job:ps/" in (getattr(variable, "device", "") or "")


def gather_rows(variable, indices) -> tf.Tensor:
  """Rows `indices` (U,) of `variable` (V, ...) -> (U, ...)."""
  return tf.raw_ops.ResourceGather(resource=variable.handle, indices=indices,
                                   dtype=variable.dtype.base_dtype)


def scatter_rows(variable, indices, rows) -> tf.Operation:
  """Writes `rows` (U, ...) into rows `indices` (U,) of `variable`."""
  return tf.raw_ops.ResourceScatterUpdate(resource=variable.handle, indices=indices,
                                          updates=rows)
