r"""Benchmark-only anchor: scikit-learn LogisticRegression on one-hot Criteo features.

  python -m benchmarks.sklearn_anchor                       # the Criteo sample
  python -m benchmarks.sklearn_anchor --anchor_experiment=lr_criteo --data=PATH

A well-regularised linear model on one-hot features is the small-data bar
every deep model should clear (issue 6). The rows of train / valid / test are
exactly those of the named experiment: the split is built by
`experiments.data._split_of` from the experiment's DataConfig and applied to
the same row ordinals (0-based line numbers) the project's readers use.

Features (fit on train only):
- categorical C1..C26: one indicator per (field, value) seen at least
  `min_count` times in train; rarer and unseen values share one "rare"
  indicator per field, missing values one "missing" indicator per field;
- integer I1..I13: bucketed as in the Criteo winners' solution,
  b(x) = floor(ln(x)^2) for x > 2, else x (so -3..2 keep their own bucket),
  then one-hot like a categorical (missing has its own indicator).

Model: p = sigma(w^T onehot(x) + b), fit with L2 penalty 1 / (2C) ||w||^2
(lbfgs). C and min_count are chosen by validation AUC on the grid below; the
chosen model is evaluated on test. lbfgs is deterministic, so one record is
written (seeds do not matter), with model "sklearn_lr", in the same format as
`benchmarks/auc.py` writes, so the AUC tables show an `sklearn_lr` row. It is
appended to <results>/auc_records.jsonl (--results, default runs/benchmarks/,
the same file `benchmarks.auc` renders) and, only with
--record=benchmarks/results/auc_records.jsonl, to the tracked records.
This file is never imported by the library; scikit-learn is a benchmark-only
dependency.
"""

import os
import sys
import time

from absl import app
from absl import flags

import numpy as np
import pandas as pd

from experiments import cli

cli.import_tensorflow_quietly()  # Keras 2 before TensorFlow, without its start-up lines

from benchmarks import common_flags  # noqa: F401  (--results, --record)
from benchmarks import records
from ctr_zoo.datasets import synthetic
from ctr_zoo.feature_columns import criteo as criteo_lib
from experiments import common_flags as experiment_flags  # noqa: F401  (--data)
from experiments import configs
from experiments import data as data_lib

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(common_flags)
flags.adopt_module_key_flags(experiment_flags)
flags.DEFINE_string("anchor_experiment", "lr_criteo",
                    "Experiment whose data config and split are used.")
# --data (a raw Criteo TSV; default: the experiment's data.path) is the shared flag.
flags.DEFINE_list("c_grid", ["0.003", "0.01", "0.03", "0.1", "0.3", "1"],
                  "Inverse L2 strengths tried.")
flags.DEFINE_list("min_counts", ["1", "2", "3", "5"], "Rare-value thresholds tried.")


def bucketize_int(values: pd.Series) -> pd.Series:
  """Criteo-winner bucket of integer strings: floor(ln(x)^2) for x > 2, else x; "" stays ""."""
  x = pd.to_numeric(values, errors="coerce")
  big = x > 2
  out = x.copy()
  out[big] = np.floor(np.log(x[big]) ** 2)
  return out.map(lambda v: "" if pd.isna(v) else str(int(v)))


def read_criteo(path: str) -> pd.DataFrame:
  """The raw TSV as strings (empty = missing); label as int8."""
  df = pd.read_csv(path, sep="\t", header=None, names=list(criteo_lib.RAW_COLUMNS), dtype=str,
                   keep_default_na=False, quoting=3)
  bad = ~df["label"].isin(["0", "1"])
  if bad.any():
    line = int(np.argmax(bad.to_numpy())) + 1
    raise ValueError(f"{path}:{line}: field 'label' must be 0 or 1, got {df['label'][line - 1]!r}")
  return df


def tokens(df: pd.DataFrame) -> pd.DataFrame:
  """One token column per field: categorical values as is, integers bucketed."""
  out = {}
  for name in criteo_lib.RAW_COLUMNS[1:]:
    out[name] = bucketize_int(df[name]) if name.startswith("I") else df[name]
  return pd.DataFrame(out)


def one_hot(tok: pd.DataFrame, train_mask: np.ndarray, min_count: int):
  """CSR one-hot matrix (n, V) with rare/missing merged per field, from train counts."""
  from scipy import sparse  # pylint: disable=g-import-not-at-top
  n = len(tok)
  cols, offset = [], 0
  for name in tok.columns:
    values = tok[name].to_numpy(dtype=object)
    counts = pd.Series(values[train_mask]).value_counts()
    keep = [v for v, c in counts.items() if c >= min_count and v != ""]
    index = {v: i + 2 for i, v in enumerate(keep)}  # 0: missing, 1: rare / unseen
    ids = np.fromiter((0 if v == "" else index.get(v, 1) for v in values), np.int64, n)
    cols.append(ids + offset)
    offset += len(keep) + 2
  col = np.stack(cols, axis=1).reshape(-1)  # (n * fields,)
  row = np.repeat(np.arange(n), len(tok.columns))
  return sparse.csr_matrix((np.ones(len(col), np.float32), (row, col)), shape=(n, offset))


def main(argv):
  del argv
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  cfg = configs.get(FLAGS.anchor_experiment)
  path = FLAGS.data or cfg.data.path
  if not os.path.isfile(path):
    print(f"error: data file {path!r} does not exist", file=sys.stderr)
    return 1
  split = data_lib._split_of(cfg.data, 1)  # pylint: disable=protected-access
  df = read_criteo(path)
  which = split.assign(0, np.arange(len(df), dtype=np.int64))  # same ordinals as the readers
  masks = {name: which == i for i, name in enumerate(split.names)}
  y = df["label"].astype(np.int8).to_numpy()
  tok = tokens(df)
  start = time.perf_counter()
  best, sweep = None, []
  for min_count in (int(m) for m in FLAGS.min_counts):
    x = one_hot(tok, masks["train"], min_count)
    for c in (float(c) for c in FLAGS.c_grid):
      clf = LogisticRegression(C=c, max_iter=2000)
      clf.fit(x[masks["train"]], y[masks["train"]])
      valid_auc = synthetic.auc(y[masks["valid"]], clf.predict_proba(x[masks["valid"]])[:, 1])
      sweep.append({"min_count": min_count, "C": c, "valid_auc": valid_auc})
      print(f"min_count {min_count} C {c:g}: valid AUC {valid_auc:.4f}", flush=True)
      if best is None or valid_auc > best[0]:
        best = (valid_auc, min_count, c, clf, x)
  valid_auc, min_count, c, clf, x = best
  seconds = time.perf_counter() - start
  p = {s: clf.predict_proba(x[masks[s]])[:, 1] for s in ("valid", "test")}
  record = {
      "experiment": "sklearn_lr_" + cfg.data.name, "model": "sklearn_lr", "data": cfg.data.name,
      "seed": 0, "git_revision": records.git_revision(),
      "data_fingerprint": data_lib._fingerprint([path], cfg.data),  # pylint: disable=protected-access
      "split_rows": {s: int(m.sum()) for s, m in masks.items()},
      "auc": synthetic.auc(y[masks["test"]], p["test"]),
      "logloss": synthetic.logloss(y[masks["test"]], p["test"]),
      "valid_auc": valid_auc, "valid_logloss": synthetic.logloss(y[masks["valid"]], p["valid"]),
      "params": int(x.shape[1]) + 1, "train_seconds": seconds,
      "examples_per_sec": int(masks["train"].sum()) * len(sweep) / seconds,
      "oracle_auc": None, "oracle_logloss": None,
      "config": {"min_count": min_count, "C": c, "int_buckets": "floor(ln(x)^2) for x > 2",
                 "sweep": sweep, "split": {"fractions": list(split.fractions),
                                           "seed": split.seed}},
      "time": records.now(),
  }
  print(f"chosen min_count {min_count}, C {c:g}: valid AUC {valid_auc:.4f}, test AUC "
        f"{record['auc']:.4f}, logloss {record['logloss']:.4f} ({x.shape[1]:,} features)")
  written = records.write_records([record], records.results_dir(FLAGS.results),
                                  "auc_records.jsonl", FLAGS.record)
  print("appended the record to " + " and ".join(written))
  return 0

if __name__ == "__main__":
  app.run(main)
