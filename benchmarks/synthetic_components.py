r"""Which parts of the synthetic world's true logit a trained run has learned.

  python -m benchmarks.synthetic_components --model_dirs=runs/dcn_v2_synthetic,runs/cdot_synthetic

The built-in synthetic world (`ctr_zoo.datasets.synthetic`) draws every click
from a known logit, a sum of parts:

  cat_main    main effects of the 26 categorical fields
  int_main    tanh effects of 5 integer fields
  pairs       6 rank-4 crosses <u_f[v], u_g[w]> between low-cardinality fields
  triples     2 third-order crosses sum_k a[v,k] b[w,k] c[x,k]
  int_cat     2 integer x categorical crosses tanh(z_i) a_f[v]

For each run (a `train` run directory on the synthetic data) this scores the
run's test split with its best checkpoint, recomputes every part of the true
logit for the same rows from the raw file (their sum plus the world's
intercept must reproduce the oracle probabilities written beside the file,
checked), and fits the model's logit log(p / (1 - p)) by least squares on the
parts and a constant. A coefficient of 1 means the model carries that part at
its true scale; 0 means it did not learn it. The table also gives the R^2 of
the model's logit against the true logit, and the standard deviation of the
model's logit and of its residual after that fit: variance that belongs to no
part of the world (noise the model fitted, or structure it invented).

Benchmark-only: the library never imports this file.
"""

import os
import sys

from absl import app
from absl import flags

import numpy as np
import pandas as pd

from experiments import cli

cli.import_tensorflow_quietly()  # Keras 2 before TensorFlow, without its start-up lines

from ctr_zoo.datasets import synthetic  # noqa: E402
from experiments import data as data_lib  # noqa: E402
from experiments import evaluate  # noqa: E402
from experiments import scorers  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("model_dirs", [], "Run directories trained on the synthetic data.")
flags.DEFINE_string("table_out", "", "Also write the markdown table to this file.")

PARTS = ("cat_main", "int_main", "pairs", "triples", "int_cat")


def read_raw(path: str, world) -> tuple:
  """(ints float (n, 13) NaN = missing, cats int (n, 26) -1 = missing, labels int (n,)) of a file."""
  frame = pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False,
                      na_filter=False)
  labels = frame[0].astype(np.int64).to_numpy()
  ints = np.full((len(frame), 13), np.nan)
  for i in range(13):
    col = frame[1 + i]
    present = col != ""
    ints[present.to_numpy(), i] = col[present].astype(np.float64).to_numpy()
  cats = np.full((len(frame), 26), -1, np.int64)
  for f in range(26):
    index = {token: k for k, token in enumerate(world.tokens[f].to_pylist())}
    col = frame[14 + f].to_numpy()
    cats[:, f] = [index[t] if t else -1 for t in col]
  return ints, cats, labels


def logit_parts(world, ints: np.ndarray, cats: np.ndarray) -> dict:
  """{part: (n,) float64}: the terms of `world.logit_without_intercept`, grouped by part."""
  # The same expressions as synthetic._World.logit_without_intercept, kept apart.
  mu, sigma = synthetic._INT_MU, synthetic._INT_SIGMA  # pylint: disable=protected-access
  n = len(cats)
  out = {p: np.zeros(n) for p in PARTS}
  present = cats >= 0
  safe = np.where(present, cats, 0)
  for f in range(26):
    out["cat_main"] += np.where(present[:, f], world.main[f][safe[:, f]], 0.0)
  logx = np.log1p(np.maximum(np.nan_to_num(ints, nan=0.0), 0.0))
  for w, i in zip(world.dense_w, synthetic._INT_MAIN):  # pylint: disable=protected-access
    out["int_main"] += w * np.tanh((logx[:, i] - mu[i]) / sigma[i])
  c = world.config
  for (a, b), (ua, ub) in zip(c.pairs, world.pair_u):
    both = present[:, a] & present[:, b]
    out["pairs"] += np.where(both, c.cross_scale * np.sum(ua[safe[:, a]] * ub[safe[:, b]], axis=1),
                             0.0)
  for t, vs in zip(c.triples, world.triple_v):
    allp = present[:, t[0]] & present[:, t[1]] & present[:, t[2]]
    prod = vs[0][safe[:, t[0]]] * vs[1][safe[:, t[1]]] * vs[2][safe[:, t[2]]]
    out["triples"] += np.where(allp, c.triple_scale * prod.sum(axis=1), 0.0)
  for (i, f), a in zip(c.int_cat_crosses, world.int_cat):
    zi = np.tanh((logx[:, i] - mu[i]) / sigma[i])
    out["int_cat"] += np.where(present[:, f], zi * a[safe[:, f]], 0.0)
  return out


def analyse(model_dir: str) -> dict:
  """The decomposition of one run's test-split logit (see the module docstring)."""
  cfg, _ = scorers.load_run(model_dir)
  if cfg.data.source != "synthetic":
    raise ValueError(f"{model_dir}: trained on {cfg.data.source!r} data, not the synthetic world")
  path = data_lib.synthetic_path(cfg.data)
  world = synthetic._world(synthetic.SyntheticCriteoConfig(**cfg.data.synthetic_options))  # pylint: disable=protected-access
  ints, cats, labels = read_raw(path, world)
  split = data_lib._split_of(cfg.data, 1)  # pylint: disable=protected-access
  test = split.assign(0, np.arange(len(labels), dtype=np.int64)) == list(split.names).index("test")
  parts = logit_parts(world, ints[test], cats[test])
  true_logit = sum(parts.values()) + world.intercept
  oracle_p, oracle_labels = synthetic.load_oracle(path)
  np.testing.assert_array_equal(oracle_labels[test], labels[test])
  np.testing.assert_allclose(1 / (1 + np.exp(-true_logit)), oracle_p[test], rtol=1e-9, atol=1e-12)
  model_labels, p = evaluate.predict_run(model_dir, "test", "")
  model_labels = np.asarray(model_labels).reshape(-1)
  p = np.clip(np.asarray(p, np.float64).reshape(-1), 1e-7, 1 - 1e-7)
  if not np.array_equal(model_labels.astype(np.int64), labels[test]):
    raise ValueError(f"{model_dir}: its test split is not the file's test rows in line order")
  model_logit = np.log(p / (1 - p))
  x = np.stack([parts[k] for k in PARTS] + [np.ones(len(p))], axis=1)
  coef, *_ = np.linalg.lstsq(x, model_logit, rcond=None)
  resid = model_logit - true_logit
  unexplained = model_logit - x @ coef  # what no part of the world accounts for
  return {
      "model_dir": model_dir, "model": cfg.model.name, "seed": cfg.trainer.seed,
      "rows": int(test.sum()),
      "auc": synthetic.auc(labels[test], p),
      "oracle_auc": synthetic.auc(labels[test], oracle_p[test]),
      "r2_true_logit": 1 - float(np.var(resid)) / float(np.var(true_logit)),
      "logit_std": float(np.std(model_logit)),
      "unexplained_std": float(np.std(unexplained)),
      "coef": {k: float(c) for k, c in zip(PARTS, coef)},
      "corr2": {k: float(np.corrcoef(parts[k], model_logit)[0, 1] ** 2) for k in PARTS},
      "part_std": {k: float(np.std(parts[k])) for k in PARTS},
  }


def table(results) -> str:
  head = (["run", "test AUC", "R^2 vs true logit"] + [f"{k} coef" for k in PARTS]
          + ["logit std", "unexplained std"])
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in results:
    run = os.path.basename(os.path.normpath(r["model_dir"]))
    cells = [f"{run}: {r['model']} (seed {r['seed']})", f"{r['auc']:.4f}",
             f"{r['r2_true_logit']:.3f}"]
    cells += [f"{r['coef'][k]:.2f}" for k in PARTS]
    cells += [f"{r['logit_std']:.2f}", f"{r['unexplained_std']:.2f}"]
    lines.append("| " + " | ".join(cells) + " |")
  r = results[0]
  lines.append("")
  lines.append(f"Test rows {r['rows']:,}; oracle AUC {r['oracle_auc']:.4f}. Standard deviation of each "
               "part of the true logit: " +
               ", ".join(f"{k} {r['part_std'][k]:.2f}" for k in PARTS) + ".")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  if not FLAGS.model_dirs:
    print("error: --model_dirs is required", file=sys.stderr)
    return 2
  try:
    results = [analyse(d) for d in FLAGS.model_dirs]
  except (FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  text = table(results)
  print(text)
  if FLAGS.table_out:
    with open(FLAGS.table_out, "w") as fh:
      fh.write(text)
  return 0


if __name__ == "__main__":
  sys.exit(app.run(main))
