"""Quantization sensitivity: what storing one part of a model in low precision costs.

Per-layer sensitivity differs, so the same precision costs different layers
different error. `sensitivity(model, features, labels)` measures it on held-out
rows (the valid split): for each embedding table, and for each layer with
dense kernels, the model's weights of ONLY that part are replaced by their
quantized-then-dequantized values (exactly what the serving export computes
with), the rows are scored, and the AUC and logloss are compared with the
float32 model's:

  tables:  E -> dequantize(quantize_rows(E)) (int8), or float16(E)
  kernels: W -> float32(float16(W))

The weights are restored afterwards. `mixed_tables(report, threshold)` names
the tables whose measured AUC cost is at most `threshold`: pass them to
`export_saved_model(..., quantize=..., quantize_tables=...)` to keep the
sensitive tables in float32 (the mixed export).

An AUC cost is `auc(float32) - auc(quantized)` (positive = worse); a
logloss cost is `logloss(quantized) - logloss(float32)`. On a small split
both carry sampling noise, but the two models score the SAME rows, so the
difference is much less noisy than either AUC.
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterable, Optional

import numpy as np

from ctr_zoo import checks
from ctr_zoo import metrics
from ctr_zoo.layers import quantization
from ctr_zoo.optimizers import sparsity
from ctr_zoo.training import export

TABLE_MODES = ("int8", "float16")


def quantized_values(values: np.ndarray, mode: str) -> np.ndarray:
  """The float32 values the serving export computes with for weights stored as `mode`."""
  values = np.asarray(values, np.float32)
  if mode == "int8":
    return quantization.dequantize_rows(quantization.quantize_table(values))
  if mode == "float16":
    return values.astype(np.float16).astype(np.float32)
  raise ValueError(f"mode must be one of {TABLE_MODES}, got {mode!r}")


@contextlib.contextmanager
def _replaced(variables: Iterable, mode: str):
  """While active, each variable holds its `mode` round trip; restored on exit."""
  saved = [(v, v.numpy()) for v in variables]
  try:
    for v, values in saved:
      v.assign(quantized_values(values, mode).astype(values.dtype))
    yield
  finally:
    for v, values in saved:
      v.assign(values)


def dense_kernel_groups(model) -> Dict[str, list]:
  """{layer name: [variables]}: the float32 weights of rank >= 2 that are not tables,
  grouped by the layer that owns them (what `quantize_dense` stores as float16)."""
  tables = {v.ref() for v in sparsity.embedding_tables(model)}
  kernels = [v for v in model.variables if v.ref() not in tables and v.shape.rank is not None
             and v.shape.rank >= 2 and v.dtype.base_dtype.name == "float32"]
  groups = {}
  refs = {v.ref() for v in kernels}
  slots = export._variable_slots(model, refs)  # pylint: disable=protected-access
  owner_of = {}
  for owner, _, _, v in slots:
    owner_of.setdefault(v.ref(), getattr(owner, "name", type(owner).__name__))
  for v in kernels:
    groups.setdefault(owner_of.get(v.ref(), v.name.split("/")[0]), []).append(v)
  return groups


def _score(model, features, labels, batch_size) -> Dict[str, float]:
  p = model.predict(features, batch_size=batch_size, verbose=0).reshape(-1)
  return {"auc": metrics.auc(labels, p), "logloss": metrics.logloss(labels, p)}


def _entry(base: dict, got: dict, **extra) -> dict:
  return {"auc": got["auc"], "logloss": got["logloss"],
          "auc_cost": base["auc"] - got["auc"], "logloss_cost": got["logloss"] - base["logloss"],
          **extra}


def sensitivity(model, features: dict, labels: np.ndarray, table_mode: str = "int8",
                batch_size: int = 8192, progress=None) -> dict:
  """The AUC / logloss cost of quantizing each table and each dense layer alone.

  Args:
    model: tf.keras.Model. A trained ctr_zoo model (float32 weights).
    features: dict name -> np.ndarray. Encoded held-out rows (e.g. the valid
      split, `ctr_zoo.datasets.read_encoded`).
    labels: np.ndarray (N,). Their 0/1 labels.
    table_mode: str. "int8" or "float16": the tables' storage. Dense kernels
      are measured as float16. Defaults to "int8".
    batch_size: int. Scoring batch size. Defaults to 8192.
    progress: callable(done, total, name) or None. Called after each part.

  Returns:
    {"baseline": {"auc", "logloss"}, "table_mode": table_mode,
     "tables": {table variable name: {"auc", "logloss", "auc_cost",
       "logloss_cost", "rows", "dim"}},
     "dense_layers": {layer name: {"auc", "logloss", "auc_cost",
       "logloss_cost", "variables": [names]}},
     "all": {"auc", "logloss", "auc_cost", "logloss_cost"}} (every table as
    `table_mode` and every kernel as float16 at once).
  """
  checks.choice(table_mode, "table_mode", TABLE_MODES)
  checks.positive_int(batch_size, "batch_size")
  labels = np.asarray(labels, np.float64).reshape(-1)
  tables = list(sparsity.embedding_tables(model))
  groups = dense_kernel_groups(model)
  total = len(tables) + len(groups) + 1
  base = _score(model, features, labels, batch_size)
  report = {"baseline": base, "table_mode": table_mode, "tables": {}, "dense_layers": {}}
  done = 0
  for v in tables:
    with _replaced([v], table_mode):
      got = _score(model, features, labels, batch_size)
    report["tables"][v.name] = _entry(base, got, rows=int(v.shape[0]), dim=int(v.shape[1]))
    done += 1
    if progress is not None:
      progress(done, total, v.name)
  for name, variables in groups.items():
    with _replaced(variables, "float16"):
      got = _score(model, features, labels, batch_size)
    report["dense_layers"][name] = _entry(base, got, variables=[v.name for v in variables])
    done += 1
    if progress is not None:
      progress(done, total, name)
  with _replaced(tables, table_mode), _replaced([v for vs in groups.values() for v in vs],
                                                "float16"):
    report["all"] = _entry(base, _score(model, features, labels, batch_size))
  if progress is not None:
    progress(total, total, "all")
  return report


def mixed_tables(report: dict, threshold: float, metric: str = "auc") -> list:
  """Tables of a `sensitivity` report whose cost in `metric` is at most `threshold`.

  Args:
    report: dict. A `sensitivity` report.
    threshold: float >= 0. The largest acceptable cost (AUC points, e.g.
      0.0002, or logloss).
    metric: str. "auc" or "logloss". Defaults to "auc".

  Returns:
    The table variable names to quantize (the others stay float32), in the
    report's order.
  """
  checks.non_negative(threshold, "threshold")
  checks.choice(metric, "metric", ("auc", "logloss"))
  key = f"{metric}_cost"
  return [name for name, e in report["tables"].items() if not e[key] > threshold]


def format_report(report: dict, threshold: Optional[float] = None) -> str:
  """A plain-text table of a `sensitivity` report (for CLIs)."""
  base = report["baseline"]
  lines = [f"float32: AUC {base['auc']:.5f}  logloss {base['logloss']:.5f}",
           f"{'part':48s} {'AUC cost':>10s} {'logloss cost':>13s}"]
  for kind, mode in (("tables", report["table_mode"]), ("dense_layers", "float16")):
    for name, e in sorted(report[kind].items(), key=lambda kv: -kv[1]["auc_cost"]):
      mark = ""
      if threshold is not None and kind == "tables":
        mark = "  float32" if e["auc_cost"] > threshold else f"  {mode}"
      lines.append(f"{name[:48]:48s} {e['auc_cost']:+10.5f} {e['logloss_cost']:+13.5f}{mark}")
  a = report["all"]
  lines.append(f"{'all parts at once':48s} {a['auc_cost']:+10.5f} {a['logloss_cost']:+13.5f}")
  return "\n".join(lines)
