"""Offline CTR metrics on collected predictions: exact AUC, logloss, calibration.

The one implementation of these metrics: models (`ctr_zoo.training`) and the
synthetic data's oracle (`ctr_zoo.datasets.synthetic`) are scored by the same
code. NumPy only; it imports nothing else from ctr_zoo but `checks`.

All functions take NumPy arrays of labels y in {0, 1} and predicted click
probabilities p in [0, 1], both of shape (N,) (a trailing (N, 1) is flattened).

- AUC (exact, ties counted as one half): the Mann-Whitney statistic
  AUC = (sum_{i: y_i = 1} rank(p_i) - P (P + 1) / 2) / (P N_neg),
  with average ranks for tied scores, P positives and N_neg negatives. With
  only one class present (P = 0 or N_neg = 0) the AUC is undefined and the
  functions return NaN; a caller that reports it says why (see
  `single_class`).
- Logloss: -mean(y log p + (1 - y) log(1 - p)), p clipped to [eps, 1 - eps].
- Calibration: predicted CTR mean(p) vs observed CTR mean(y), their ratio,
  and per-bin (predicted, observed, count) for a reliability plot.
"""

from typing import Dict, Optional

import numpy as np

from ctr_zoo import checks

LOGLOSS_EPS = 1e-7


def _as_arrays(labels, predictions):
  y = np.asarray(labels, dtype=np.float64).reshape(-1)
  p = np.asarray(predictions, dtype=np.float64).reshape(-1)
  if y.shape != p.shape:
    raise ValueError(f"labels and predictions differ in size: {y.shape[0]} vs {p.shape[0]}")
  if y.size == 0:
    raise ValueError("labels and predictions are empty")
  bad = ~np.isin(y, (0.0, 1.0))
  if bad.any():
    i = int(np.argmax(bad))
    raise ValueError(f"labels must be 0 or 1; labels[{i}] = {float(y[i])!r}")
  if not np.all(np.isfinite(p)):
    i = int(np.argmax(~np.isfinite(p)))
    raise ValueError(f"predictions must be finite; predictions[{i}] = {float(p[i])!r}")
  return y, p


def _average_ranks(x: np.ndarray) -> np.ndarray:
  """1-based ranks of x, ties given the mean of the ranks they span."""
  order = np.argsort(x, kind="mergesort")
  sorted_x = x[order]
  # Start index of each run of equal values.
  starts = np.concatenate([[True], sorted_x[1:] != sorted_x[:-1]])
  run_id = np.cumsum(starts) - 1  # (N,)
  run_start = np.flatnonzero(starts)  # (R,)
  run_end = np.concatenate([run_start[1:], [x.size]])  # (R,) exclusive
  run_rank = (run_start + 1 + run_end) / 2.0  # mean of ranks start+1..end
  ranks = np.empty(x.size, dtype=np.float64)
  ranks[order] = run_rank[run_id]
  return ranks


def auc(labels, predictions) -> float:
  """Exact ROC AUC (ties count one half); NaN when only one class is present."""
  y, p = _as_arrays(labels, predictions)
  num_pos = float(y.sum())
  num_neg = float(y.size - num_pos)
  if num_pos == 0 or num_neg == 0:
    return float("nan")
  ranks = _average_ranks(p)
  return float((ranks[y == 1].sum() - num_pos * (num_pos + 1) / 2.0) / (num_pos * num_neg))


def single_class(labels) -> Optional[str]:
  """Why the AUC of `labels` is NaN ("only positives" / "only negatives"), else None."""
  y = np.asarray(labels, dtype=np.float64).reshape(-1)
  if y.size and np.all(y == 1):
    return f"only positives ({y.size} rows): AUC is undefined"
  if y.size and np.all(y == 0):
    return f"only negatives ({y.size} rows): AUC is undefined"
  return None


def logloss(labels, predictions, eps: float = LOGLOSS_EPS) -> float:
  """Mean binary cross-entropy of probabilities clipped to [eps, 1 - eps]."""
  y, p = _as_arrays(labels, predictions)
  p = np.clip(p, eps, 1.0 - eps)
  return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))


def calibration(labels, predictions, num_bins: int = 10) -> Dict[str, object]:
  """Predicted vs observed CTR overall and in `num_bins` equal-count bins of p.

  Returns a dict with predicted_ctr, observed_ctr, calibration (their ratio,
  1 is perfect) and bins: a list of {predicted, observed, count} ordered by p.
  """
  checks.positive_int(num_bins, "num_bins")
  y, p = _as_arrays(labels, predictions)
  order = np.argsort(p, kind="mergesort")
  bins = []
  for chunk in np.array_split(order, min(num_bins, y.size)):
    bins.append({"predicted": float(p[chunk].mean()), "observed": float(y[chunk].mean()),
                 "count": int(chunk.size)})
  observed = float(y.mean())
  predicted = float(p.mean())
  return {"predicted_ctr": predicted, "observed_ctr": observed,
          "calibration": predicted / observed if observed > 0 else float("nan"), "bins": bins}


def evaluate_predictions(labels, predictions) -> Dict[str, float]:
  """AUC, logloss, CTRs and the example count of one split."""
  y, p = _as_arrays(labels, predictions)
  return {"auc": auc(y, p), "logloss": logloss(y, p), "num_examples": int(y.size),
          "observed_ctr": float(y.mean()), "predicted_ctr": float(p.mean())}
