"""Embedding-table sparsity: zero rows and the size of a pruned export."""

import dataclasses
import re
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

ID_BYTES = 8  # kept ids are exported as int64
VALUE_BYTES = 4  # rows are exported as float32


@dataclasses.dataclass(frozen=True)
class TableSparsity:
  """Sparsity of one embedding table of shape (rows, dim).

  pruned_bytes = kept_rows * (dim * 4 + 8): the non-zero rows as float32 plus
  their int64 ids; dense_bytes = rows * dim * 4.
  """
  name: str
  rows: int
  dim: int
  zero_rows: int
  zero_row_fraction: float
  dense_bytes: int
  pruned_bytes: int


def prune_table(table) -> Tuple[np.ndarray, np.ndarray]:
  """Drops the all-zero rows of a table.

  At serving, an id not in ``kept_ids`` maps to the zero vector.

  Args:
    table: tf.Variable, tf.Tensor or np.ndarray. Shape (V, d).

  Returns:
    (kept_ids, rows): int64 (k,) ascending ids of the non-zero rows and their
    float32 values (k, d).
  """
  values = np.asarray(table.numpy() if hasattr(table, "numpy") else table)
  if values.ndim != 2:
    raise ValueError(f"prune_table expects a (rows, dim) table, got shape {values.shape}.")
  kept_ids = np.flatnonzero(np.any(values != 0, axis=1)).astype(np.int64)  # (k,)
  return kept_ids, values[kept_ids].astype(np.float32)  # (k, d)


def table_sparsity(table, name: Optional[str] = None) -> TableSparsity:
  """Returns the :class:`TableSparsity` of one (V, d) table."""
  values = np.asarray(table.numpy() if hasattr(table, "numpy") else table)
  if values.ndim != 2:
    raise ValueError(f"table {name or getattr(table, 'name', '?')!r} must be (rows, dim), got shape {values.shape}.")
  rows, dim = values.shape
  zero_rows = int(rows - np.count_nonzero(np.any(values != 0, axis=1)))
  kept = rows - zero_rows
  return TableSparsity(
      name=name or getattr(table, "name", "table"), rows=int(rows), dim=int(dim), zero_rows=zero_rows,
      zero_row_fraction=zero_rows / rows if rows else 0.0, dense_bytes=int(rows * dim * VALUE_BYTES),
      pruned_bytes=int(kept * (dim * VALUE_BYTES + ID_BYTES)))


def embedding_tables(model, name_pattern: str = "embedding") -> Sequence[tf.Variable]:
  """The model's embedding tables: ``model.embedding_variables`` if present,
  else its rank-2 variables whose name matches `name_pattern`."""
  tables = getattr(model, "embedding_variables", None)
  if tables is None:
    tables = [v for v in model.variables if re.search(name_pattern, v.name)]
  return [v for v in tables if v.shape.rank == 2]


def embedding_sparsity(model, name_pattern: str = "embedding") -> Dict[str, TableSparsity]:
  """Per embedding table of `model`: fraction of all-zero rows and pruned-export bytes.

  Args:
    model: tf.keras.Model (or any object with ``embedding_variables`` or
      ``variables``).
    name_pattern: str. Regex for tables when the model has no
      ``embedding_variables``. Defaults to "embedding".

  Returns:
    {variable name: TableSparsity}, in the model's order.
  """
  return {v.name: table_sparsity(v, v.name) for v in embedding_tables(model, name_pattern)}
