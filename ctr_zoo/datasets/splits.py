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
- `KFoldSplit(k, fold, seed, valid_fraction)`: K-fold cross-validation. Row r
  of file f is in fold floor(k * u) with u = splitmix64(seed, f, r) / 2**64
  (the same partition for every `fold`); the rows of fold `fold` are test,
  and of the others a share `valid_fraction` (drawn with a second,
  independent hash) is valid, for early stopping, the rest train.
- `ConstantSplit(name)`: every row in one named split (a separate valid or
  test file).

Split names are "train", "valid" and "test" everywhere (`SPLIT_NAMES`).
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


@dataclasses.dataclass(frozen=True)
class KFoldSplit:
  """Fold `fold` of K-fold cross-validation: its rows are test, the others train + valid.

  Args:
    k: int. Number of folds (>= 2).
    fold: int. The test fold, 0 <= fold < k.
    seed: int. Hash seed of the partition (the same for every fold). Defaults to 0.
    valid_fraction: float. Share of the non-test rows carved out as valid
      (early stopping), in [0, 1). Defaults to 0.1.
  """
  k: int
  fold: int
  seed: int = 0
  valid_fraction: float = 0.1
  names: Tuple[str, ...] = SPLIT_NAMES

  def __post_init__(self):
    if checks.positive_int(self.k, "KFoldSplit: k") < 2:
      raise ValueError(f"KFoldSplit: k must be >= 2, got {self.k}")
    checks.positive_int(self.fold, "KFoldSplit: fold", allow_zero=True)
    if self.fold >= self.k:
      raise ValueError(f"KFoldSplit: fold must be in 0..{self.k - 1}, got {self.fold}")
    if not 0 <= self.valid_fraction < 1:
      raise ValueError(f"KFoldSplit: valid_fraction must be in [0, 1), got {self.valid_fraction}")

  def fold_of(self, file_index: int, row_keys: np.ndarray) -> np.ndarray:
    """The fold (0..k-1) of each row, int64 (n,): the same for every `fold`."""
    u = uniform_hash(self.seed, file_index, row_keys)
    return np.minimum((u * self.k).astype(np.int64), self.k - 1)

  def assign(self, file_index: int, row_keys: np.ndarray) -> np.ndarray:
    test = self.fold_of(file_index, row_keys) == self.fold
    v = uniform_hash(self.seed ^ 0x5EED5A17, file_index, row_keys)
    return np.where(test, 2, np.where(v < self.valid_fraction, 1, 0)).astype(np.int8)


@dataclasses.dataclass(frozen=True)
class ConstantSplit:
  """Every row in the one split `name` (e.g. a separate valid or test file)."""
  name: str = "train"

  def __post_init__(self):
    checks.choice(self.name, "ConstantSplit: name", SPLIT_NAMES)

  @property
  def names(self) -> Tuple[str, ...]:
    return (self.name,)

  def assign(self, file_index: int, row_keys: np.ndarray) -> np.ndarray:
    del file_index
    return np.zeros((len(row_keys),), np.int8)


SPLIT_FORMS = ("'random:0.8,0.1,0.1' (train, valid, test)", "'random:0.9,0.1' (train, valid)",
               "'random:train=0.8,test=0.2' (named)", "'files:N' (the first N files train)",
               "'kfold:K,F[,V]' (fold F of K test, a share V of the rest valid)", "'none'")


def _bad(text: str, why: str) -> ValueError:
  return ValueError(f"bad split {text!r}: {why}; accepted: {', '.join(SPLIT_FORMS)}")


def parse_split(text: str, seed: int = 0):
  """Parses a split flag (see SPLIT_FORMS).

  - "random:a,b,c": fractions of train, valid, test; "random:a,b": train,
    valid; "random:a": train only; "random:train=0.8,test=0.2": named
    fractions (names from SPLIT_NAMES, train first);
  - "files:N": `FileSplit(N)`;
  - "kfold:K,F[,V]": `KFoldSplit(K, F, valid_fraction=V)` (V defaults to 0.1);
  - "none" or "": no split (everything is "train").

  Returns:
    A RandomSplit, FileSplit, KFoldSplit, or None.

  Raises:
    ValueError: naming the flag and the accepted forms.
  """
  if text in ("", "none", None):
    return None
  kind, _, arg = text.partition(":")
  if kind == "random":
    items = [x.strip() for x in (arg or "0.8,0.1,0.1").split(",")]
    named = [x.partition("=") for x in items]
    try:
      if all(sep for _, sep, _ in named):
        names = tuple(n.strip() for n, _, _ in named)
        fractions = tuple(float(v) for _, _, v in named)
        if len(set(names)) != len(names) or any(n not in SPLIT_NAMES for n in names) \
            or names[0] != "train":
          raise _bad(text, f"split names must be distinct, among {SPLIT_NAMES}, train first")
      elif any(sep for _, sep, _ in named):
        raise _bad(text, "give every fraction a name, or none")
      else:
        fractions = tuple(float(x) for x in items)
        if len(fractions) > 3:
          raise _bad(text, f"at most 3 fractions ({', '.join(SPLIT_NAMES)})")
        names = SPLIT_NAMES[:len(fractions)]
    except ValueError as e:
      if str(e).startswith("bad split"):
        raise
      raise _bad(text, "fractions must be numbers") from e
    try:
      return RandomSplit(fractions, seed, names)
    except ValueError as e:
      raise _bad(text, str(e)) from e
  if kind == "files":
    try:
      return FileSplit(int(arg), seed)
    except ValueError as e:
      raise _bad(text, "expected files:<number of train files>") from e
  if kind == "kfold":
    parts = arg.split(",")
    try:
      if len(parts) not in (2, 3):
        raise ValueError("expected kfold:K,F or kfold:K,F,V")
      valid = float(parts[2]) if len(parts) == 3 else 0.1
      return KFoldSplit(int(parts[0]), int(parts[1]), seed, valid)
    except ValueError as e:
      raise _bad(text, str(e)) from e
  raise _bad(text, f"unknown kind {kind!r}")


def split_names(split) -> Sequence[str]:
  """The split names of `split` (None: one split, "train")."""
  return ("train",) if split is None else tuple(split.names)


def check_fit_split(split, fit_split: str, error=ValueError) -> None:
  """Raises `error` naming the accepted names when `fit_split` is not a split of `split`."""
  names = split_names(split)
  if fit_split not in names:
    raise error(f"fit split {fit_split!r} is not one of the split names {tuple(names)}")


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
