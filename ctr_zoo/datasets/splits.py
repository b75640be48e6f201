"""Train/valid/test splits that are a pure function of (file index, row key).

Both split kinds assign each row from its file index and its row key (its
ordinal in the file, see `readers`), never from the batch it arrived in, so a
split is the same in `fit` and `transform`, for any batch size, and is
reproducible from the seed alone.

- `RandomSplit(fractions=(0.8, 0.1, 0.1), seed)`: as BARS Criteo_x4 (8:1:1).
  Row r of file f draws u = splitmix64(seed, f, r) / 2**64 in [0, 1) and goes
  to the first split whose cumulative fraction exceeds u. Sizes are
  Binomial(n, fraction): within a few sqrt(n) of the fractions.
- `FileSplit(num_train_files, seed)`: as the DCN-V2 paper on Criteo 1TB: the
  first `num_train_files` files (days) are train; the rows of the remaining
  files are split in half into valid and test with the same hash.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Tuple

import numpy as np

from ctr_zoo import checks

SPLIT_NAMES = ("train", "valid", "test")

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
  """SplitMix64 finaliser of uint64 values (vectorised, wraps mod 2**64)."""
  with np.errstate(over="ignore"):
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def uniform_hash(seed: int, file_index: int, row_keys: np.ndarray) -> np.ndarray:
  """Deterministic uniforms in [0, 1), float64 (n,), from (seed, file, row)."""
  with np.errstate(over="ignore"):
    base = _splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], np.uint64))[0]
    base = _splitmix64(np.array([base ^ np.uint64(file_index)], np.uint64))[0]
    z = _splitmix64(np.asarray(row_keys).astype(np.uint64) ^ base)
  return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


@dataclasses.dataclass(frozen=True)
class RandomSplit:
  """Random split by fraction with a seed.

  Args:
    fractions: tuple of float. Fractions of (train, valid, test); must sum to 1.
      Defaults to (0.8, 0.1, 0.1).
    seed: int. Hash seed. Defaults to 0.
    names: tuple of str. Split names. Defaults to ("train", "valid", "test").
  """
  fractions: Tuple[float, ...] = (0.8, 0.1, 0.1)
  seed: int = 0
  names: Tuple[str, ...] = SPLIT_NAMES

  def __post_init__(self):
    if len(self.fractions) != len(self.names):
      raise ValueError(f"RandomSplit: {len(self.fractions)} fractions for {len(self.names)} "
                       f"names {self.names}")
    if any(f < 0 for f in self.fractions) or abs(sum(self.fractions) - 1.0) > 1e-9:
      raise ValueError(f"RandomSplit: fractions must be >= 0 and sum to 1, got {self.fractions}")

  def assign(self, file_index: int, row_keys: np.ndarray) -> np.ndarray:
    """Split index (into `names`) of each row: int8 (n,)."""
    u = uniform_hash(self.seed, file_index, row_keys)
    edges = np.cumsum(self.fractions)[:-1]
    return np.searchsorted(edges, u, side="right").astype(np.int8)


@dataclasses.dataclass(frozen=True)
class FileSplit:
  """Split by file (day): first files train, the rest halved into valid/test.

  Args:
    num_train_files: int. How many leading files are train (DCN-V2 on Criteo
      1TB: the first days). Must be >= 1.
    seed: int. Hash seed of the valid/test halving. Defaults to 0.
  """
  num_train_files: int
  seed: int = 0
  names: Tuple[str, ...] = SPLIT_NAMES

  def __post_init__(self):
    checks.positive_int(self.num_train_files, "FileSplit: num_train_files")

  def assign(self, file_index: int, row_keys: np.ndarray) -> np.ndarray:
    n = len(row_keys)
    if file_index < self.num_train_files:
      return np.zeros((n,), np.int8)
    u = uniform_hash(self.seed, file_index, row_keys)
    return np.where(u < 0.5, 1, 2).astype(np.int8)


def parse_split(text: str, seed: int = 0):
  """Parses a split flag: "random:0.8,0.1,0.1", "files:6" or "none".

  Returns:
    A RandomSplit, a FileSplit, or None (everything is one split, "train").
  """
  if text in ("", "none", None):
    return None
  kind, _, arg = text.partition(":")
  if kind == "random":
    try:
      fractions = tuple(float(x) for x in (arg or "0.8,0.1,0.1").split(","))
    except ValueError as e:
      raise ValueError(f"bad split {text!r}: fractions must be numbers") from e
    names = SPLIT_NAMES if len(fractions) == 3 else tuple(f"split{i}" for i in range(len(fractions)))
    return RandomSplit(fractions, seed, names)
  if kind == "files":
    try:
      return FileSplit(int(arg), seed)
    except ValueError as e:
      raise ValueError(f"bad split {text!r}: expected files:<number of train files>") from e
  raise ValueError(f"bad split {text!r}: expected 'random:0.8,0.1,0.1', 'files:N' or 'none'")


def split_names(split) -> Sequence[str]:
  return ("train",) if split is None else tuple(split.names)


def split_by_time(frame, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                  time_column: str = "timestamp") -> Tuple:
  """Splits a frame into consecutive time ranges with the given row fractions.

  Rows sharing a timestamp stay in the same part.
  """
  if abs(sum(fractions) - 1.0) > 1e-9 or any(f < 0 for f in fractions):
    raise ValueError(f"fractions must be >= 0 and sum to 1, got {tuple(fractions)}")
  frame = frame.sort_values(time_column, kind="mergesort").reset_index(drop=True)
  t = frame[time_column].to_numpy()
  cuts = [0]
  for c in np.cumsum(fractions)[:-1]:
    cuts.append(int(np.searchsorted(t, t[min(int(c * len(t)), len(t) - 1)], side="left")))
  cuts.append(len(t))
  return tuple(frame.iloc[cuts[i]:cuts[i + 1]].reset_index(drop=True) for i in range(len(fractions)))
