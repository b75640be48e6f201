r"""Benchmark-only anchor: scikit-learn LogisticRegression on one-hot features of any spec.

  python -m benchmarks.sklearn_anchor                       # the Criteo sample
  python -m benchmarks.sklearn_anchor --anchor_experiment=lr_criteo --data=PATH
  python -m benchmarks.sklearn_anchor --data=PATH --folds=5   # 5-fold cross-validation
  python -m benchmarks.sklearn_anchor --anchor_experiment=lr_avazu --folds=5
  python -m benchmarks.sklearn_anchor --anchor_experiment=lr_synthetic   # the built-in data

A well-regularised linear model on one-hot features is the small-data bar
every deep model should clear. The rows of train / valid / test are exactly
those of the named experiment: the split is built by `experiments.data._split_of`
from the experiment's DataConfig and applied to the row ordinals (0-based
line numbers) that the project's readers give every row.

The file is read by the project's own reader (`ctr_zoo.datasets.read_batches`)
with the experiment's spec (data.spec: Criteo TSV, Avazu CSV, Frappe libFM, a
schema file, ...), so a bad row gets the pipeline's file/line/field error.
Features (fit on train only), one token field per raw field of the spec:
- categorical fields: one indicator per (field, value) seen at least
  `min_count` times in train; rarer and unseen values share one "rare"
  indicator per field, missing values one "missing" indicator per field;
  a derived field (Avazu's hour of day, weekday) is derived as the spec says;
- numeric fields (Criteo's I1..I13): bucketed as in the Criteo winners'
  solution, b(x) = floor(ln(x)^2) for x > 2, else floor(x) (so -3..2 keep
  their own bucket), then one-hot like a categorical (missing has its own
  indicator). A numeric field read twice by the spec (continuous and
  bucketized) is one token field here.

Model: p = sigma(w^T onehot(x) + b), fit with L2 penalty 1 / (2C) ||w||^2
(lbfgs). C and min_count are chosen by validation AUC on the grid below; the
chosen model is evaluated on test. lbfgs is deterministic, so one record is
written (seeds do not matter), with model "sklearn_lr", in the same format as
`benchmarks/auc.py` writes, so the AUC tables show an `sklearn_lr` row.

--folds=K repeats all of this for each fold f of K-fold cross-validation on
the rows of `data.split=kfold,data.folds=K,data.fold=f` of the experiment
(fold f is test, a `data.valid_fraction` share of the rest is valid, the
remainder train; the features are refit on each fold's train rows and C and
min_count are chosen on each fold's valid rows), writing one record per fold
with data label `<data>_<K>fold` and `fold` = f, as `benchmarks.auc --folds=K`
labels its runs, so the tables average the anchor over the same folds.

The experiment must read one file (data.path, or the built-in synthetic TSV,
generated and cached as the deep models' runs do; no separate valid / test
files). Records are appended to <results>/auc_records.jsonl (--results,
default runs/benchmarks/, the same file `benchmarks.auc` renders) and, only
with --record=benchmarks/results/auc_records.jsonl, to the tracked records.
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
import pyarrow as pa
import pyarrow.compute as pc

from experiments import cli

cli.import_tensorflow_quietly()  # Keras 2 before TensorFlow, without its start-up lines

from benchmarks import common_flags  # noqa: F401  (--results, --record)
from benchmarks import fold_flags  # noqa: F401  (--folds)
from benchmarks import records
from ctr_zoo.datasets import synthetic
from ctr_zoo.datasets import readers
from ctr_zoo.feature_columns import spec as spec_lib
from experiments import common_flags as experiment_flags  # noqa: F401  (--data)
from experiments import data as data_lib
from experiments import runner

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(common_flags)
flags.adopt_module_key_flags(fold_flags)
flags.adopt_module_key_flags(experiment_flags)
flags.DEFINE_string("anchor_experiment", "lr_criteo",
                    "Experiment whose data config and split are used.")
# --data (a raw Criteo TSV; default: the experiment's data.path) is the shared flag.
flags.DEFINE_list("c_grid", ["0.003", "0.01", "0.03", "0.1", "0.3", "1"],
                  "Inverse L2 strengths tried.")
flags.DEFINE_list("min_counts", ["1", "2", "3", "5"], "Rare-value thresholds tried.")


class UsageError(Exception):
  """A bad flag value or data file: reported as one line on stderr."""


def bucketize_int(values: pd.Series) -> pd.Series:
  """Criteo-winner bucket of integer strings: floor(ln(x)^2) for x > 2, else x; "" stays ""."""
  x = pd.to_numeric(values, errors="coerce")
  big = x > 2
  out = x.copy()
  out[big] = np.floor(np.log(x[big]) ** 2)
  return out.map(lambda v: "" if pd.isna(v) else str(int(v)))


def _numeric_tokens(column) -> np.ndarray:
  """Winner buckets of a numeric arrow column as strings: floor(ln(x)^2) for x > 2, else floor(x)."""
  x = column.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> nan
  out = np.full(len(x), "", dtype=object)
  present = ~np.isnan(x)
  big = present & (x > 2)
  small = present & ~big
  out[big] = np.floor(np.log(x[big]) ** 2).astype(np.int64).astype(str)
  out[small] = np.floor(x[small]).astype(np.int64).astype(str)
  return out


def _string_tokens(column) -> np.ndarray:
  """The column's strings as an object array; a missing value is the empty token."""
  return pc.fill_null(column.cast(pa.string()), "").to_numpy(zero_copy_only=False)


def token_fields(spec) -> list:
  """[(token field name, raw column, derive or None, kind)] of the spec's features, each once."""
  out, seen = [], set()
  for f in spec.features:
    if isinstance(f, spec_lib.SequenceFeature):
      raise UsageError(f"feature {f.name!r} is a sequence; the sklearn anchor reads "
                       "categorical and numeric fields only")
    derive = getattr(f, "derive", None)
    kind = "numeric" if isinstance(f, spec_lib.DenseFeature) else "categorical"
    key = (f.raw_column, derive, kind)
    if key not in seen:
      seen.add(key)
      out.append((f.name if derive else f.raw_column, f.raw_column, derive, kind))
  return out


def read_tokens(cfg, path: str = "") -> tuple:
  """(labels int8 (n,), token DataFrame (n, fields)) of the experiment's file, rows in line order.

  Read with the project's reader and the experiment's (unfitted) spec, so
  every format and every bad-row error of the pipeline applies.
  """
  path = path or source_path(cfg)
  spec = data_lib.load_spec_arg(cfg.data.spec, cfg.data)
  fields = token_fields(spec)
  labels, keys, columns = [], [], {name: [] for name, *_ in fields}
  options = data_lib.reader_options(cfg.data)
  for batch in readers.read_batches(path, spec, **options):
    labels.append(batch.table.column(spec.label).to_numpy(zero_copy_only=False))
    keys.append(batch.row_keys)
    for name, raw, derive, kind in fields:
      column = batch.table.column(raw)
      if derive:
        tokens = _string_tokens(readers.derive_tokens(column, derive)[0])
      elif kind == "numeric":
        tokens = _numeric_tokens(column)
      else:
        tokens = _string_tokens(column)
      columns[name].append(tokens)
  keys = np.concatenate(keys)
  if not np.array_equal(keys, np.arange(len(keys))):
    raise UsageError(f"{path}: rows were skipped or reordered by the reader; the anchor "
                     "needs every row (fix the file or use on_bad_rows=error)")
  y = np.concatenate(labels).astype(np.int8)
  return y, pd.DataFrame({name: np.concatenate(parts) for name, parts in columns.items()})


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


def fold_config(experiment: str, data: str = "", folds: int = 0, fold: int = 0,
                overrides: str = ""):
  """The resolved config of `experiment` with --data and, for folds >= 2, fold `fold` of K-fold.

  The same overrides `benchmarks.auc --folds` applies, so the split is that
  of the deep models' runs on the same fold. `overrides` (dotted, as
  --params_override) come first, e.g. `data.synthetic_rows=3000`.
  """
  kfold = f"data.split=kfold,data.folds={folds},data.fold={fold}" if folds else ""
  overrides = ",".join(o for o in (overrides, kfold) if o)
  try:
    cfg = runner.resolve_config(experiment, overrides, data)
  except (KeyError, ValueError) as e:  # ConfigError is a ValueError
    raise UsageError(e.args[0] if isinstance(e, KeyError) and e.args else str(e)) from e
  if cfg.data.source not in ("file", "synthetic") or getattr(cfg.data, "valid_path", "") or \
      getattr(cfg.data, "test_path", ""):
    raise UsageError(f"--anchor_experiment={experiment}: the sklearn anchor reads one data file "
                     "(data.path or the built-in synthetic file), not separate valid / test files")
  return cfg


def source_path(cfg) -> str:
  """The one file the experiment reads: data.path, or the cached synthetic TSV (generated if absent)."""
  if cfg.data.source == "synthetic":
    return data_lib.synthetic_source(cfg.data)
  return cfg.data.path


def split_masks(cfg, num_rows: int) -> dict:
  """{split name: boolean mask (num_rows,)} of the experiment's split of a one-file source.

  `experiments.data._split_of` builds the split from the DataConfig; it is
  applied to file 0 with the 0-based line numbers as row keys, as the
  project's readers do.
  """
  split = data_lib._split_of(cfg.data, 1)  # pylint: disable=protected-access
  which = split.assign(0, np.arange(num_rows, dtype=np.int64))
  return {name: which == i for i, name in enumerate(split.names)}


def fit_anchor(tok: pd.DataFrame, y: np.ndarray, masks: dict, c_grid, min_counts, say=print):
  """Fits every (min_count, C) on train; returns the best by valid AUC and the sweep.

  Returns:
    dict with valid_auc, min_count, C, model, x (the one-hot matrix of that
    min_count), sweep (one dict per grid point) and seconds.
  """
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  best, sweep = None, []
  for min_count in min_counts:
    x = one_hot(tok, masks["train"], min_count)
    for c in c_grid:
      clf = LogisticRegression(C=c, max_iter=2000)
      clf.fit(x[masks["train"]], y[masks["train"]])
      valid_auc = synthetic.auc(y[masks["valid"]], clf.predict_proba(x[masks["valid"]])[:, 1])
      sweep.append({"min_count": min_count, "C": c, "valid_auc": valid_auc})
      say(f"min_count {min_count} C {c:g}: valid AUC {valid_auc:.4f}")
      if best is None or valid_auc > best["valid_auc"]:
        best = {"valid_auc": valid_auc, "min_count": min_count, "C": c, "model": clf, "x": x}
  best.update(sweep=sweep, seconds=time.perf_counter() - start)
  return best


def anchor_record(cfg, path: str, y: np.ndarray, masks: dict, best: dict) -> dict:
  """The benchmark record of one fitted anchor (one fold with data.split=kfold)."""
  clf, x = best["model"], best["x"]
  p = {s: clf.predict_proba(x[masks[s]])[:, 1] for s in ("valid", "test")}
  kfold = cfg.data.split == "kfold"
  split = data_lib._split_of(cfg.data, 1)  # pylint: disable=protected-access
  oracle = (synthetic.split_oracle_metrics([path], split, "test")
            if os.path.exists(path + synthetic.ORACLE_SUFFIX) else {})
  split_config = ({"folds": cfg.data.folds, "fold": cfg.data.fold,
                   "valid_fraction": split.valid_fraction, "seed": split.seed} if kfold else
                  {"fractions": list(split.fractions), "seed": split.seed})
  return {
      "experiment": "sklearn_lr_" + cfg.data.name, "model": "sklearn_lr",
      "data": f"{cfg.data.name}_{cfg.data.folds}fold" if kfold else cfg.data.name,
      "folds": cfg.data.folds if kfold else None, "fold": cfg.data.fold if kfold else None,
      "seed": 0, "git_revision": records.git_revision(),
      "data_fingerprint": data_lib._fingerprint([path], cfg.data),  # pylint: disable=protected-access
      "split_rows": {s: int(m.sum()) for s, m in masks.items()},
      "auc": synthetic.auc(y[masks["test"]], p["test"]),
      "logloss": synthetic.logloss(y[masks["test"]], p["test"]),
      "valid_auc": best["valid_auc"],
      "valid_logloss": synthetic.logloss(y[masks["valid"]], p["valid"]),
      "params": int(x.shape[1]) + 1, "train_seconds": best["seconds"],
      "examples_per_sec": int(masks["train"].sum()) * len(best["sweep"]) / best["seconds"],
      "oracle_auc": oracle.get("auc"), "oracle_logloss": oracle.get("logloss"),
      "config": {"min_count": best["min_count"], "C": best["C"],
                 "int_buckets": "floor(ln(x)^2) for x > 2, else floor(x)", "sweep": best["sweep"],
                 "split": split_config},
      "time": records.now(),
  }


def run(experiment: str, data: str, folds: int, c_grid, min_counts, results: str,
        tracked: str, say=print, overrides: str = "") -> list:
  """Fits the anchor on the experiment's split (or each of `folds` folds); returns the records."""
  if folds == 1 or folds < 0:
    raise UsageError(f"--folds must be 0 (the experiment's split) or >= 2, got {folds}")
  cfgs = [fold_config(experiment, data, folds, f, overrides) for f in range(max(folds, 1))]
  path = source_path(cfgs[0])
  if not os.path.isfile(path):
    raise UsageError(f"data file {path!r} does not exist (give it with --data)")
  y, tok = read_tokens(cfgs[0], path)
  out = []
  for cfg in cfgs:
    fold = f"fold {cfg.data.fold} of {folds}: " if folds else ""
    masks = split_masks(cfg, len(y))
    best = fit_anchor(tok, y, masks, c_grid, min_counts, lambda m: say(fold + m))  # pylint: disable=cell-var-from-loop
    record = anchor_record(cfg, path, y, masks, best)
    say(f"{fold}chosen min_count {best['min_count']}, C {best['C']:g}: valid AUC "
        f"{best['valid_auc']:.4f}, test AUC {record['auc']:.4f}, logloss {record['logloss']:.4f} "
        f"({best['x'].shape[1]:,} features)")
    written = records.write_records([record], results, "auc_records.jsonl", tracked)
    say("appended the record to " + " and ".join(written))
    out.append(record)
  return out


def main(argv):
  del argv
  try:
    run(FLAGS.anchor_experiment, FLAGS.data, FLAGS.folds, [float(c) for c in FLAGS.c_grid],
        [int(m) for m in FLAGS.min_counts], records.results_dir(FLAGS.results), FLAGS.record,
        say=lambda m: print(m, flush=True), overrides=FLAGS.params_override)
  except UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except ValueError as e:  # a bad row of the TSV, named by file and line
    print(f"error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(app.run(main))
