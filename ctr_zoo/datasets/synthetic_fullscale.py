"""A synthetic world with the shape of Kaggle Criteo (Display Advertising Challenge train.txt).

`generate_days` writes `rows` rows (45,840,617 at `scale=1`, the Kaggle
file's count) in the Criteo TSV layout (label, I1..I13, C1..C26, tab
separated, empty = missing), cut by row order into 7 "days", one file per day
(`day_0.tsv` .. `day_6.tsv`, optionally gzip): concatenated they are one
Criteo-layout file, and one file per day is what a by-day split reads. Each
day file has an oracle side file `<day file>.oracle.parquet` (columns `p`,
`label`, as `ctr_zoo.datasets.synthetic`), and `manifest.json`, written last,
records the world and what was written.

The world at scale s (rows = round(45,840,617 * s) unless given):

- Categorical field f has a target number of distinct values
  D_f(s) = min(D_f, max(round(D_f * s), 10)), where D_f are Kaggle Criteo's
  per-field counts (`KAGGLE_CARDINALITY`, 33.7M in all). Its values come
  from a mixture, the shape of Criteo's long tail:
  * a head of H_f values drawn Zipf-like, p_k ~ k^-a_f. For fields with
    D_f <= 20,000 the head is the whole field (a_f = `zipf`); for the eight
    larger fields H_f = c * sqrt(D_f) * s values (c chosen so the heads hold
    `kept_ids` ids in all at s = 1) and a_f is solved so the rarest head value
    is expected `head_min_count` times: the head is what min-count 10 keeps;
  * with probability q_f, a value drawn uniformly from a tail of T_f values.
    q_f and T_f are set so the tail is drawn 2 (D_f - H_f) times over
    T_f = 2 (D_f - H_f) / 1.5936 values, whose expected distinct count is
    T (1 - exp(-1.5936)) = D_f - H_f: almost every tail value is seen once or
    twice (Poisson mean 1.59; P(count >= 10) ~ 1e-6), so the tail adds the
    distinct values and almost nothing to a min-count-10 vocabulary.
  Every quantity scales with s (head, tail and draws), so a 1% world has
  1% of the rows, ids and kept ids of the full one.
- Tokens: value k of field f is the 8-hex-digit image of k under a
  bijection of 32-bit integers keyed by (world_seed, f), so no table of
  tokens is held: memory does not grow with the cardinality.
- Missing rates per field are Kaggle Criteo's (`KAGGLE_CAT_MISSING`,
  `KAGGLE_INT_MISSING`). Integer fields are heavy tailed,
  floor(exp(N(mu, sigma)) - 1) (I2 also -1..-3 at 5%), with the parameters of
  `ctr_zoo.datasets.synthetic`.
- logit = b0 + main effects + crosses (the signal and oracle of
  `ctr_zoo.datasets.synthetic`, on Kaggle's low-cardinality fields): one
  effect per value of every field, uniform with standard deviation 0.2 (0.1
  for fields over 1,000 values), computed from a hash of (field, value) so
  tail values have effects without any table; smooth effects of five
  integer fields; rank-4 second-order crosses between six pairs of fields of
  3 to 633 values, two third-order crosses and two integer x categorical
  crosses; b0 calibrated to `target_ctr`.

Generation is vectorised with NumPy in chunks of `CHUNK_ROWS` rows; chunk c
draws from `np.random.default_rng([seed, c])`, so the first N rows do not
depend on the total, and memory is bounded by the chunk and the heads'
CDFs (under 1M floats at s = 1), whatever the row count.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Dict, List, Optional

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ctr_zoo import checks
from ctr_zoo.datasets import synthetic

GENERATOR_VERSION = 1
KAGGLE_ROWS = 45_840_617
NUM_DAYS = 7
CHUNK_ROWS = 100_000
MANIFEST = "manifest.json"
KAGGLE_CARDINALITY = (1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683,
                      8351593, 3194, 27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15,
                      286181, 105, 142572)
# Share of empty values per field in Kaggle Criteo's train.txt.
KAGGLE_CAT_MISSING = (0.0, 0.0, 0.034, 0.034, 0.0, 0.121, 0.0, 0.0, 0.0, 0.0, 0.0, 0.034, 0.0,
                      0.0, 0.0, 0.034, 0.0, 0.0, 0.440, 0.440, 0.034, 0.763, 0.0, 0.034, 0.440,
                      0.034)
KAGGLE_INT_MISSING = (0.454, 0.0, 0.215, 0.224, 0.026, 0.223, 0.043, 0.0005, 0.043, 0.454,
                      0.043, 0.766, 0.224)
_HEAD_ONLY_MAX = 20_000  # fields up to this many values are all head
_MIN_CARDINALITY = 10
_TAIL_RATE = 1.5936  # draws per tail value: T (1 - e^-x) = m / 2 at x = m / T
# Crosses on Kaggle's low-cardinality fields (0-based C indices; values in the comment).
_PAIRS = ((8, 5), (19, 13), (16, 24), (22, 4), (21, 1), (5, 7))  # 3x24 4x27 10x105 15x305 18x583 24x633
_TRIPLES = ((8, 16, 13), (19, 22, 24))  # 3x10x27, 4x15x105
_INT_CAT_CROSSES = ((0, 5), (5, 24))  # (I field, C field)
_INT_MAIN = (0, 2, 5, 8, 10)
_RANK = 4
_M32 = np.uint64(0xFFFFFFFF)


@dataclasses.dataclass(frozen=True)
class FullScaleConfig:
  """The Kaggle-shaped world.

  Args:
    scale: float. Fraction of Kaggle Criteo's rows and ids (0 < scale <= 1,
      or more for a larger world). Defaults to 1.
    rows: int or None. Rows to write; None = round(45,840,617 * scale).
    world_seed: int. Seed of the ground truth. Defaults to 0.
    kept_ids: int. Ids held by the Zipf heads of the large fields and all
      of the small ones at scale 1 (what min-count 10 keeps). Defaults to 1M.
    head_min_count: float. Expected count of the rarest head value at the
      full row count. Defaults to 20.
    zipf: float. Zipf exponent of the small (all-head) fields. Defaults to 1.1.
    target_ctr: float. CTR the intercept is calibrated to (Kaggle: 0.256).
  """
  scale: float = 1.0
  rows: Optional[int] = None
  world_seed: int = 0
  kept_ids: int = 1_000_000
  head_min_count: float = 20.0
  zipf: float = 1.1
  target_ctr: float = 0.256

  def __post_init__(self):
    if not (isinstance(self.scale, (int, float)) and self.scale > 0 and math.isfinite(self.scale)):
      raise ValueError(f"FullScaleConfig.scale must be a number > 0, got {self.scale!r}")
    if self.rows is not None:
      checks.positive_int(self.rows, "FullScaleConfig.rows")
    checks.positive_int(self.kept_ids, "FullScaleConfig.kept_ids")

  @property
  def num_rows(self) -> int:
    return self.rows if self.rows is not None else max(NUM_DAYS, round(KAGGLE_ROWS * self.scale))


def target_cardinality(scale: float) -> List[int]:
  """D_f(s): the distinct values each C field is built to show at `scale`."""
  return [min(d, max(round(d * scale), _MIN_CARDINALITY)) for d in KAGGLE_CARDINALITY]


def _fmix32(x: np.ndarray) -> np.ndarray:
  """MurmurHash3's 32-bit finaliser: a bijection of uint32 (held in uint64)."""
  x = x & _M32
  x ^= x >> np.uint64(16)
  x = (x * np.uint64(0x85EBCA6B)) & _M32
  x ^= x >> np.uint64(13)
  x = (x * np.uint64(0xC2B2AE35)) & _M32
  x ^= x >> np.uint64(16)
  return x


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_SHIFTS = np.arange(28, -4, -4, dtype=np.uint64)


def _hex_tokens(codes: np.ndarray, present: np.ndarray) -> pa.Array:
  """8-hex-digit strings of uint32 `codes` (null where not `present`), built from buffers."""
  n = len(codes)
  digits = _HEX[((codes[:, None] >> _SHIFTS[None, :]) & np.uint64(15)).astype(np.intp)]
  offsets = np.arange(0, 8 * (n + 1), 8, dtype=np.int32)
  validity = np.packbits(present.astype(np.uint8), bitorder="little")
  return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(digits.tobytes()),
                                     pa.py_buffer(validity.tobytes()),
                                     null_count=int(n - present.sum()))


class _Field:
  """One categorical field's value distribution: a Zipf head and a uniform tail."""

  def __init__(self, index: int, target: int, full: int, head: int, rows: int, cfg,
               salt: int):
    self.index, self.target, self.salt = index, target, np.uint64(salt)
    present_rows = rows * (1.0 - KAGGLE_CAT_MISSING[index])
    if head >= target:
      self.head, self.tail, self.q, self.a = target, 0, 0.0, cfg.zipf
    else:
      self.head = max(1, head)
      draws = 2.0 * (target - self.head)
      self.q = min(0.95, draws / max(present_rows, 1.0))
      self.tail = max(1, int(round(draws / _TAIL_RATE)))
      self.a = _solve_exponent(self.head, (1 - self.q) * present_rows, cfg.head_min_count)
    p = 1.0 / np.arange(1, self.head + 1, dtype=np.float64) ** self.a
    self.cdf = np.cumsum(p / p.sum())
    self.cardinality = self.head + self.tail

  def sample(self, rng, n: int) -> np.ndarray:
    v = np.minimum(np.searchsorted(self.cdf, rng.random(n), side="right"), self.head - 1)
    if self.tail:
      tail = rng.random(n) < self.q
      v = np.where(tail, self.head + rng.integers(0, self.tail, n), v)
    v[rng.random(n) < KAGGLE_CAT_MISSING[self.index]] = -1
    return v

  def codes(self, v: np.ndarray) -> np.ndarray:
    return _fmix32(np.maximum(v, 0).astype(np.uint64) ^ self.salt)


def _solve_exponent(head: int, draws: float, min_count: float) -> float:
  """Zipf exponent a in [0.05, 1.5] with draws * H^-a / sum_k k^-a ~ min_count (by bisection)."""
  k = np.arange(1, head + 1, dtype=np.float64)
  lo, hi = 0.05, 1.5
  for _ in range(40):
    mid = (lo + hi) / 2
    rarest = draws * head ** -mid / np.sum(k ** -mid)
    if rarest < min_count:
      hi = mid
    else:
      lo = mid
  return lo


class FullScaleWorld:
  """The ground truth and the value distributions of one `FullScaleConfig`."""

  def __init__(self, config: FullScaleConfig):
    self.config = config
    rng = np.random.default_rng([config.world_seed, 31337])
    rows = config.num_rows
    targets = target_cardinality(config.scale)
    big = [f for f, d in enumerate(KAGGLE_CARDINALITY) if d > _HEAD_ONLY_MAX]
    small_ids = sum(d for d in KAGGLE_CARDINALITY if d <= _HEAD_ONLY_MAX)
    c = (config.kept_ids - small_ids) / sum(math.sqrt(KAGGLE_CARDINALITY[f]) for f in big)
    salts = rng.integers(0, 1 << 32, size=26)
    self.fields = []
    for f, (target, full) in enumerate(zip(targets, KAGGLE_CARDINALITY)):
      head = full if full <= _HEAD_ONLY_MAX else round(c * math.sqrt(full) * config.scale)
      head = min(head, target)
      self.fields.append(_Field(f, target, full, head, rows, config, int(salts[f])))
    self.cards = [fld.cardinality for fld in self.fields]
    self.main_salt = np.uint64(int(rng.integers(0, 1 << 32)))
    self.main_scale = [0.2 if d <= 1000 else 0.1 for d in KAGGLE_CARDINALITY]
    self.dense_w = rng.normal(0.0, 0.5, size=len(_INT_MAIN))
    self.pair_u = [(rng.normal(0, 1 / np.sqrt(_RANK), (self.cards[a], _RANK)),
                    rng.normal(0, 1 / np.sqrt(_RANK), (self.cards[b], _RANK))) for a, b in _PAIRS]
    self.triple_v = [tuple(rng.normal(0, 1 / _RANK ** (1 / 3), (self.cards[f], _RANK)) for f in t)
                     for t in _TRIPLES]
    self.int_cat = [rng.normal(0, 1.0, self.cards[f]) for _, f in _INT_CAT_CROSSES]
    ints, cats = self.sample_features(np.random.default_rng([config.world_seed, 104729]), 100_000)
    self.intercept = synthetic._calibrate(self.logit_without_intercept(ints, cats),  # pylint: disable=protected-access
                                          config.target_ctr)

  def sample_features(self, rng, n: int):
    ints = np.empty((n, 13), np.float64)  # nan = missing
    for i in range(13):
      x = np.floor(np.exp(rng.normal(synthetic._INT_MU[i], synthetic._INT_SIGMA[i], n)) - 1.0)  # pylint: disable=protected-access
      if i == 1:
        x = np.where(rng.random(n) < 0.05, -rng.integers(1, 4, n), x)
      x[rng.random(n) < KAGGLE_INT_MISSING[i]] = np.nan
      ints[:, i] = x
    cats = np.empty((n, 26), np.int64)  # -1 = missing
    for f, field in enumerate(self.fields):
      cats[:, f] = field.sample(rng, n)
    return ints, cats

  def _main_effect(self, f: int, values: np.ndarray) -> np.ndarray:
    h = _fmix32(_fmix32(values.astype(np.uint64) ^ self.main_salt) ^ np.uint64(f * 0x9E3779B1))
    u = h.astype(np.float64) / 4294967296.0  # uniform [0, 1)
    return self.main_scale[f] * np.sqrt(12.0) * (u - 0.5)  # std main_scale

  def logit_without_intercept(self, ints, cats) -> np.ndarray:
    mu, sigma = synthetic._INT_MU, synthetic._INT_SIGMA  # pylint: disable=protected-access
    z = np.zeros(len(cats))
    present = cats >= 0
    safe = np.where(present, cats, 0)
    for f in range(26):
      z += np.where(present[:, f], self._main_effect(f, safe[:, f]), 0.0)
    logx = np.log1p(np.maximum(np.nan_to_num(ints, nan=0.0), 0.0))
    for w, i in zip(self.dense_w, _INT_MAIN):
      z += w * np.tanh((logx[:, i] - mu[i]) / sigma[i])
    for (a, b), (ua, ub) in zip(_PAIRS, self.pair_u):
      both = present[:, a] & present[:, b]
      z += np.where(both, np.sum(ua[safe[:, a]] * ub[safe[:, b]], axis=1), 0.0)
    for t, vs in zip(_TRIPLES, self.triple_v):
      allp = present[:, t[0]] & present[:, t[1]] & present[:, t[2]]
      prod = vs[0][safe[:, t[0]]] * vs[1][safe[:, t[1]]] * vs[2][safe[:, t[2]]]
      z += np.where(allp, 1.5 * prod.sum(axis=1), 0.0)
    for (i, f), a in zip(_INT_CAT_CROSSES, self.int_cat):
      zi = np.tanh((logx[:, i] - mu[i]) / sigma[i])
      z += np.where(present[:, f], zi * a[safe[:, f]], 0.0)
    return z

  def chunk(self, seed: int, chunk_index: int, n: int):
    """Chunk `chunk_index`: (pa.Table of the 40 raw columns, oracle p (n,), labels int8 (n,))."""
    ints, cats, p, labels = synthetic.draw_chunk(self, seed, chunk_index, n)
    tokens = [_hex_tokens(field.codes(cats[:, f]), cats[:, f] >= 0)
              for f, field in enumerate(self.fields)]
    return synthetic.raw_table(labels, ints, tokens), p, labels

  def describe(self) -> Dict[str, object]:
    return {"rows": self.config.num_rows, "target_cardinality": [f.target for f in self.fields],
            "head": [f.head for f in self.fields], "tail": [f.tail for f in self.fields],
            "tail_share": [round(f.q, 6) for f in self.fields],
            "zipf": [round(f.a, 4) for f in self.fields], "intercept": self.intercept}


def day_files(directory: str, gzip: bool = False) -> List[str]:
  """The 7 day files of a generated directory, in order."""
  return [os.path.join(directory, f"day_{d}.tsv" + (".gz" if gzip else "")) for d in range(NUM_DAYS)]


def read_manifest(directory: str) -> Optional[dict]:
  """The manifest of a complete generated directory, or None."""
  path = os.path.join(directory, MANIFEST)
  if not os.path.exists(path):
    return None
  with open(path) as fh:
    manifest = json.load(fh)
  if not all(os.path.exists(p) for p in manifest.get("files", [])):
    return None
  return manifest


def generate_days(directory: str, config: FullScaleConfig, seed: int = 0, gzip: bool = False,
                  progress=None) -> dict:
  """Writes the 7 day files, their oracle side files and manifest.json (last) into `directory`.

  Args:
    directory: str. Output directory (created).
    config: FullScaleConfig.
    seed: int. Row seed. Defaults to 0.
    gzip: bool. Compress the day files. Defaults to False.
    progress: callable(rows_done, rows_total) or None.

  Returns:
    The manifest dict: config, world description, files, rows per day, bytes.
  """
  world = FullScaleWorld(config)
  rows = config.num_rows
  os.makedirs(directory, exist_ok=True)
  files = day_files(directory, gzip)
  bounds = [d * rows // NUM_DAYS for d in range(NUM_DAYS + 1)]
  options = pa_csv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
  oracle_schema = pa.schema([("p", pa.float64()), ("label", pa.int8())])
  tmp = f".tmp-{os.getpid()}"
  positives = 0
  done = 0
  cached = (None, None)  # a chunk cut by a day boundary is generated once
  for day in range(NUM_DAYS):
    start, stop = bounds[day], bounds[day + 1]
    with pa.output_stream(files[day] + tmp, compression="gzip" if gzip else None) as sink, \
        pq.ParquetWriter(files[day] + synthetic.ORACLE_SUFFIX + tmp, oracle_schema) as oracle:
      writer = None
      first, last = start // CHUNK_ROWS, (stop - 1) // CHUNK_ROWS
      for c in range(first, last + 1):
        lo, hi = max(start, c * CHUNK_ROWS), min(stop, (c + 1) * CHUNK_ROWS)
        n = min(CHUNK_ROWS, rows - c * CHUNK_ROWS)
        if cached[0] != c:
          cached = (c, world.chunk(seed, c, n))
        table, p, labels = cached[1]
        a, b = lo - c * CHUNK_ROWS, hi - c * CHUNK_ROWS
        table = table.slice(a, b - a)
        if writer is None:
          writer = pa_csv.CSVWriter(sink, table.schema, write_options=options)
        writer.write_table(table)
        oracle.write_table(pa.table({"p": p[a:b], "label": labels[a:b]}, schema=oracle_schema))
        positives += int(labels[a:b].sum())
        done += b - a
        if progress is not None:
          progress(done, rows)
      writer.close()
    os.replace(files[day] + synthetic.ORACLE_SUFFIX + tmp, files[day] + synthetic.ORACLE_SUFFIX)
    os.replace(files[day] + tmp, files[day])
  manifest = {"generator_version": GENERATOR_VERSION, "seed": seed, "gzip": gzip,
              "config": dataclasses.asdict(config), "world": world.describe(),
              "files": files, "rows_per_day": [bounds[d + 1] - bounds[d] for d in range(NUM_DAYS)],
              "ctr": positives / rows,
              "bytes": sum(os.path.getsize(p) for p in files)}
  with open(os.path.join(directory, MANIFEST + tmp), "w") as fh:
    json.dump(manifest, fh, indent=1)
  os.replace(os.path.join(directory, MANIFEST + tmp), os.path.join(directory, MANIFEST))
  return manifest
