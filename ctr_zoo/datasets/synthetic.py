"""Synthetic Criteo-style data with a known ground truth (the built-in default).

`generate_criteo_tsv` writes the real Criteo TSV format (label, I1..I13,
C1..C26, tab separated, empty = missing), so the real pipeline runs end to
end, and records the oracle click probability of every row in a side file
`<path>.oracle.parquet` (columns `p` float64 and `label` int8, row-aligned with
the TSV). `oracle_metrics` gives the AUC / logloss of the oracle on a split:
the best any model can do. It scores with `ctr_zoo.metrics`, the same code
that scores the models.

The world (fixed by `world_seed`, independent of the row seed, so train and
test files drawn with different seeds share it):

- I1..I13: non-negative heavy-tailed integers floor(exp(N(mu, sigma))) (I2
  also takes -1..-3 now and then), missing at Criteo-like rates (0-76%).
- C1..C26: 8-hex-digit tokens, Zipf-like frequencies p_k ~ (k + 1)^-a, with
  cardinalities from 3 to 100,000 (times `cardinality_scale`), missing at
  realistic rates.
- logit = b0 + main effects + crosses, b0 calibrated so the CTR is about
  `target_ctr`:
  * main effects: one N(0, s) effect per value of every categorical field
    (moderate, smaller on the high-cardinality fields) and smooth effects of
    log1p of five integer fields;
  * second-order crosses <u_f[v], u_g[w]> (rank-4 value vectors) between six
    pairs of LOW cardinality fields (3 to 300 values), plus two
    integer x categorical crosses tanh(z_I) * a_f[v];
  * two third-order crosses sum_k a[v,k] b[w,k] c[x,k] on low-cardinality
    fields.
  The interactions sit on fields whose values are seen often enough to be
  learned from ~100k rows, so crossing models (DCN-V2, FM) have something to
  find that a linear model cannot represent, and the models' distance to the
  oracle is mostly estimation error, not unlearnable rare values. With the
  default config the logit variance is about 0.66 (main) + 1.48 (pairs) +
  0.62 (triples) + 0.88 (integers and integer x categorical); oracle AUC
  about 0.86, CTR 0.22; an additive model with the true main effects reaches
  only ~0.67 (what `lr` can learn), so crosses carry most of the signal.

Generation is vectorised with NumPy in chunks of `chunk_rows` rows; chunk c
uses `np.random.default_rng([seed, c])`, so the first N rows are the same
whatever the total row count.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Dict, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ctr_zoo import checks
from ctr_zoo.feature_columns import criteo as criteo_lib
from ctr_zoo.metrics import auc, logloss  # noqa: F401  (also reachable as synthetic.auc / .logloss)

ORACLE_SUFFIX = ".oracle.parquet"
# Bump whenever a change here alters the rows a (config, seed) produces: caches
# of generated files are keyed by it.
GENERATOR_VERSION = 2

# Per field: cardinality, Zipf exponent, missing rate (Criteo-like shapes).
_CAT_CARDINALITY = (3, 4, 5, 8, 10, 12, 20, 30, 50, 80, 100, 150, 200, 300, 500, 800, 1000,
                    2000, 3000, 5000, 10000, 20000, 30000, 50000, 80000, 100000)
_CAT_MISSING = (0.0, 0.0, 0.02, 0.0, 0.04, 0.0, 0.0, 0.12, 0.0, 0.03, 0.0, 0.0, 0.04, 0.0,
                0.44, 0.0, 0.03, 0.0, 0.44, 0.0, 0.03, 0.76, 0.0, 0.04, 0.44, 0.0)
_INT_MISSING = (0.45, 0.0, 0.21, 0.22, 0.03, 0.22, 0.04, 0.0, 0.04, 0.45, 0.04, 0.76, 0.22)
_INT_MU = (0.8, 3.0, 2.0, 1.8, 8.0, 4.5, 2.2, 2.5, 4.0, 0.5, 1.0, 0.3, 2.0)
_INT_SIGMA = (1.2, 1.8, 1.3, 1.0, 2.0, 1.8, 1.5, 1.1, 1.4, 0.9, 1.0, 1.0, 1.2)

# Interactions, as 0-based indices into C1..C26 (cardinality in the comment).
# Pairs on low-cardinality fields (3 to 300 values): seen often enough to be learned
# from ~100k rows. An earlier layout with 80x500 and 200x1000 pairs and a
# dense_scale of 0.3 left every model near LR (dnn - lr ~ 1 seed std at 120k rows).
_PAIRS = ((0, 6), (3, 8), (5, 9), (4, 10), (7, 11), (2, 13))  # 3x20, 8x50, 12x80, 10x100, 30x150, 5x300
_TRIPLES = ((1, 4, 7), (2, 6, 10))  # 4x10x30, 5x20x100
_INT_CAT_CROSSES = ((0, 2), (5, 9))  # (I field, C field)
_INT_MAIN = (0, 2, 5, 8, 10)
_RANK = 4


@dataclasses.dataclass(frozen=True)
class SyntheticCriteoConfig:
  """Knobs of the synthetic Criteo world.

  Args:
    world_seed: int. Seed of the ground truth (effects, tokens). Defaults to 0.
    cardinality_scale: float. Multiplies every cardinality (min 2). Defaults to 1.
    target_ctr: float. CTR the intercept is calibrated to. Defaults to 0.22.
    main_scale: float. Scale of the per-value main effects. Defaults to 0.2.
    cross_scale: float. Scale of the second-order crosses. Defaults to 1.0.
    triple_scale: float. Scale of the third-order crosses. Defaults to 1.5.
    dense_scale: float. Scale of the integer effects and crosses. Defaults to 0.5.
    zipf: float. Zipf exponent of the categorical frequencies. Defaults to 1.1.
    pairs: tuple of (f, g). 0-based C fields of the second-order crosses.
      Defaults to six low-cardinality pairs (3x20 ... 5x300 values).
    triples: tuple of (f, g, h). C fields of the third-order crosses.
      Defaults to ((1, 4, 7), (2, 6, 10)) (4x10x30, 5x20x100).
    int_cat_crosses: tuple of (i, f). (I field, C field) of the integer x
      categorical crosses. Defaults to ((0, 2), (5, 9)).
  """
  world_seed: int = 0
  cardinality_scale: float = 1.0
  target_ctr: float = 0.22
  main_scale: float = 0.2
  cross_scale: float = 1.0
  triple_scale: float = 1.5
  dense_scale: float = 0.5
  zipf: float = 1.1
  pairs: Tuple[Tuple[int, int], ...] = _PAIRS
  triples: Tuple[Tuple[int, int, int], ...] = _TRIPLES
  int_cat_crosses: Tuple[Tuple[int, int], ...] = _INT_CAT_CROSSES

  def __post_init__(self):
    # JSON configs give lists; the world is cached by config, so keep it hashable.
    for name, arity in (("pairs", 2), ("triples", 3), ("int_cat_crosses", 2)):
      value = tuple(tuple(int(i) for i in item) for item in getattr(self, name))
      for item in value:
        limit = 13 if name == "int_cat_crosses" else 26
        if len(item) != arity or min(item) < 0 or (name != "int_cat_crosses" and max(item) > 25) \
            or (name == "int_cat_crosses" and (item[0] >= limit or item[1] > 25)):
          raise ValueError(f"SyntheticCriteoConfig.{name}: bad entry {item!r} (want {arity} "
                           "0-based field indices: C fields 0..25, I fields 0..12)")
      object.__setattr__(self, name, value)


class _World:
  """The fixed ground truth drawn from `world_seed`."""

  def __init__(self, config: SyntheticCriteoConfig):
    self.config = config
    rng = np.random.default_rng([config.world_seed, 7919])
    self.cards = [max(2, int(round(c * config.cardinality_scale))) for c in _CAT_CARDINALITY]
    self.cdfs = []
    self.tokens = []
    self.main = []
    for f, k in enumerate(self.cards):
      p = 1.0 / np.arange(1, k + 1) ** config.zipf
      self.cdfs.append(np.cumsum(p / p.sum()))
      codes = rng.choice(1 << 32, size=k, replace=False)
      self.tokens.append(pa.array(np.char.mod("%08x", codes).astype(object), pa.string()))
      scale = config.main_scale * (1.0 if k <= 1000 else 0.5)
      self.main.append(rng.normal(0.0, scale, size=k))
    self.dense_w = rng.normal(0.0, config.dense_scale, size=len(_INT_MAIN))
    self.pair_u = [(rng.normal(0, 1 / np.sqrt(_RANK), (self.cards[a], _RANK)),
                    rng.normal(0, 1 / np.sqrt(_RANK), (self.cards[b], _RANK))) for a, b in config.pairs]
    self.triple_v = [tuple(rng.normal(0, 1 / _RANK ** (1 / 3), (self.cards[f], _RANK)) for f in t)
                     for t in config.triples]
    self.int_cat = [rng.normal(0, config.dense_scale * 2, self.cards[c])
                    for _, c in config.int_cat_crosses]
    pilot_ints, pilot_cats = self.sample_features(np.random.default_rng([config.world_seed, 104729]),
                                                  100_000)
    z = self.logit_without_intercept(pilot_ints, pilot_cats)
    self.intercept = _calibrate(z, config.target_ctr)

  def sample_features(self, rng, n: int):
    ints = np.empty((n, 13), np.float64)  # nan = missing
    for i in range(13):
      x = np.floor(np.exp(rng.normal(_INT_MU[i], _INT_SIGMA[i], n)) - 1.0)
      if i == 1:
        x = np.where(rng.random(n) < 0.05, -rng.integers(1, 4, n), x)
      x[rng.random(n) < _INT_MISSING[i]] = np.nan
      ints[:, i] = x
    cats = np.empty((n, 26), np.int64)  # -1 = missing
    for f in range(26):
      v = np.searchsorted(self.cdfs[f], rng.random(n), side="right")
      v = np.minimum(v, self.cards[f] - 1)
      v[rng.random(n) < _CAT_MISSING[f]] = -1
      cats[:, f] = v
    return ints, cats

  def logit_without_intercept(self, ints, cats) -> np.ndarray:
    n = len(cats)
    z = np.zeros(n)
    present = cats >= 0
    safe = np.where(present, cats, 0)
    for f in range(26):
      z += np.where(present[:, f], self.main[f][safe[:, f]], 0.0)
    logx = np.log1p(np.maximum(np.nan_to_num(ints, nan=0.0), 0.0))
    for w, i in zip(self.dense_w, _INT_MAIN):
      zi = (logx[:, i] - _INT_MU[i]) / _INT_SIGMA[i]
      z += w * np.tanh(zi)
    c = self.config
    for (a, b), (ua, ub) in zip(c.pairs, self.pair_u):
      both = present[:, a] & present[:, b]
      z += np.where(both, c.cross_scale * np.sum(ua[safe[:, a]] * ub[safe[:, b]], axis=1), 0.0)
    for t, vs in zip(c.triples, self.triple_v):
      allp = present[:, t[0]] & present[:, t[1]] & present[:, t[2]]
      prod = vs[0][safe[:, t[0]]] * vs[1][safe[:, t[1]]] * vs[2][safe[:, t[2]]]
      z += np.where(allp, c.triple_scale * prod.sum(axis=1), 0.0)
    for (i, f), a in zip(c.int_cat_crosses, self.int_cat):
      zi = np.tanh((logx[:, i] - _INT_MU[i]) / _INT_SIGMA[i])
      z += np.where(present[:, f], zi * a[safe[:, f]], 0.0)
    return z


def _calibrate(z: np.ndarray, target_ctr: float) -> float:
  lo, hi = -20.0, 20.0
  for _ in range(60):
    mid = (lo + hi) / 2
    if np.mean(1 / (1 + np.exp(-(z + mid)))) < target_ctr:
      lo = mid
    else:
      hi = mid
  return (lo + hi) / 2


@functools.lru_cache(maxsize=4)
def _world(config: SyntheticCriteoConfig) -> _World:
  return _World(config)


def draw_chunk(world, seed: int, chunk_index: int, n: int):
  """Chunk `chunk_index` of a world: (ints, cats, oracle p, labels).

  `world` has `sample_features(rng, n)` -> (ints (n, 13) float, NaN missing;
  cats (n, 26) int, -1 missing), `logit_without_intercept(ints, cats)` and
  `intercept`. The chunk's draws come from its own generator seeded by
  (seed, chunk_index), so chunks can be made in any order.
  """
  rng = np.random.default_rng([seed, chunk_index])
  ints, cats = world.sample_features(rng, n)
  p = 1.0 / (1.0 + np.exp(-(world.logit_without_intercept(ints, cats) + world.intercept)))
  labels = (rng.random(n) < p).astype(np.int8)
  return ints, cats, p, labels


def raw_table(labels: np.ndarray, ints: np.ndarray, categorical_columns) -> pa.Table:
  """The 40 raw Criteo columns: labels int8, the 13 integer fields int64 (NaN -> null), then the
  26 categorical string columns as given."""
  columns = [pa.array(labels, pa.int8())]
  for i in range(13):
    missing = np.isnan(ints[:, i])
    columns.append(pa.array(np.where(missing, 0, ints[:, i]).astype(np.int64), pa.int64(),
                            mask=missing))
  return pa.Table.from_arrays(columns + list(categorical_columns),
                              names=list(criteo_lib.RAW_COLUMNS))


def generate_chunk(config: SyntheticCriteoConfig, seed: int, chunk_index: int, n: int):
  """One chunk: (pa.Table of the 40 raw columns, oracle p float64 (n,), labels int8 (n,))."""
  world = _world(config)
  ints, cats, p, labels = draw_chunk(world, seed, chunk_index, n)
  categorical = []
  for f in range(26):
    missing = cats[:, f] < 0
    idx = pa.array(np.where(missing, 0, cats[:, f]), pa.int64(), mask=missing)
    categorical.append(world.tokens[f].take(idx))
  return raw_table(labels, ints, categorical), p, labels


def generate_criteo_tsv(path: str, num_rows: int, seed: int = 0,
                        config: Optional[SyntheticCriteoConfig] = None,
                        chunk_rows: int = 100_000) -> Dict[str, float]:
  """Writes `num_rows` synthetic rows in Criteo TSV format, plus the oracle side file.

  Args:
    path: str. Output path (".gz" compresses).
    num_rows: int. Rows to write.
    seed: int. Row seed. Defaults to 0.
    config: SyntheticCriteoConfig or None (the default world).
    chunk_rows: int. Rows generated per chunk (memory bound). Defaults to 100_000.

  Returns:
    dict with rows, ctr, oracle_auc, oracle_logloss and the oracle file path.
  """
  checks.positive_int(num_rows, "num_rows")
  config = config or SyntheticCriteoConfig()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  oracle_path = path + ORACLE_SUFFIX
  compression = "gzip" if path.endswith(".gz") else None
  options = pa_csv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
  oracle_schema = pa.schema([("p", pa.float64()), ("label", pa.int8())])
  all_p, all_y = [], []
  tmp = f".tmp-{os.getpid()}"  # private: concurrent generators of one path never share a file
  with pa.output_stream(path + tmp, compression=compression) as sink, \
      pq.ParquetWriter(oracle_path + tmp, oracle_schema) as oracle_writer:
    writer = None
    for c, start in enumerate(range(0, num_rows, chunk_rows)):
      n = min(chunk_rows, num_rows - start)
      table, p, labels = generate_chunk(config, seed, c, n)
      if writer is None:
        writer = pa_csv.CSVWriter(sink, table.schema, write_options=options)
      writer.write_table(table)
      oracle_writer.write_table(pa.table({"p": p, "label": labels}, schema=oracle_schema))
      all_p.append(p.astype(np.float32))
      all_y.append(labels)
    writer.close()
  os.replace(oracle_path + tmp, oracle_path)
  os.replace(path + tmp, path)
  metrics = oracle_metrics(np.concatenate(all_p), np.concatenate(all_y))
  return {"rows": num_rows, "ctr": metrics["ctr"], "oracle_auc": metrics["auc"],
          "oracle_logloss": metrics["logloss"], "oracle_path": oracle_path}


def oracle_metrics(probs: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
  """AUC, logloss, CTR and row count of given oracle probabilities and labels."""
  return {"auc": auc(labels, probs), "logloss": logloss(labels, probs),
          "ctr": float(np.mean(labels)), "rows": int(len(labels))}


def load_oracle(path: str) -> Tuple[np.ndarray, np.ndarray]:
  """(oracle p float64 (n,), labels int8 (n,)) of a generated TSV (row-aligned)."""
  side = path if path.endswith(ORACLE_SUFFIX) else path + ORACLE_SUFFIX
  t = pq.read_table(side)
  return t.column("p").to_numpy(), t.column("label").to_numpy()


def split_oracle_metrics(paths, split=None, split_name: str = "test") -> Dict[str, float]:
  """Oracle metrics of one split of generated files (same split as `transform`).

  Args:
    paths: str or list of str. Generated TSV files, in the order given to
      `transform` (the file index matters for the split).
    split: RandomSplit, FileSplit or None (all rows). Defaults to None.
    split_name: str. Which split. Defaults to "test".
  """
  paths = [paths] if isinstance(paths, str) else list(paths)
  ps, ys = [], []
  for i, path in enumerate(paths):
    p, y = load_oracle(path)
    if split is not None:
      keep = split.assign(i, np.arange(len(p), dtype=np.int64)) == list(split.names).index(split_name)
      p, y = p[keep], y[keep]
    ps.append(p)
    ys.append(y)
  return oracle_metrics(np.concatenate(ps), np.concatenate(ys))
