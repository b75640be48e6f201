"""MovieLens-100K as CTR rows with leakage-free behaviour histories (for CAN)."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from ctr_zoo.datasets import readers
from ctr_zoo.datasets import sequences
from ctr_zoo.feature_columns import spec as spec_lib

_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
           "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
           "Romance", "Sci-Fi", "Thriller", "War", "Western")


def movielens_spec(max_len: int = 50, embedding_dim: int = 16,
                   min_count: int = 1) -> spec_lib.FeatureSpec:
  """The unfitted spec of `read_movielens_100k`'s frame."""
  cat = lambda n: spec_lib.CategoricalFeature(n, min_count=min_count, embedding_dim=embedding_dim)
  return spec_lib.FeatureSpec(features=(
      cat("user_id"), cat("item_id"), cat("genre"), cat("gender"), cat("age"), cat("occupation"),
      spec_lib.SequenceFeature("hist_item_id", max_len=max_len, embedding_dim=embedding_dim,
                               shares_vocabulary_with="item_id"),
      spec_lib.SequenceFeature("hist_genre", max_len=max_len, embedding_dim=embedding_dim,
                               shares_vocabulary_with="genre"),
  ), label="label", name="movielens_100k")


def read_movielens_100k(directory: str, max_len: int = 50):
  """MovieLens-100K as CTR rows with leakage-free behaviour histories.

  label = rating >= 4. For a rating by user u at time t, the history holds the
  items u rated STRICTLY before t (ratings at the same second are neither
  history nor future of each other), oldest first, the last `max_len` kept;
  `hist_genre` holds each history item's genre. An item's genre is its first
  genre flag in u.item ("unknown" if none). The frame is sorted by (timestamp,
  user, item) and keeps `timestamp` for time-based splits (`split_by_time`).

  Args:
    directory: str. Folder with u.data, u.item, u.user.
    max_len: int. Longest history. Defaults to 50.

  Returns:
    (pandas DataFrame, unfitted FeatureSpec).
  """
  import pandas as pd  # pylint: disable=g-import-not-at-top
  paths = {n: os.path.join(directory, n) for n in ("u.data", "u.item", "u.user")}
  for name, path in paths.items():
    if not os.path.exists(path):
      raise readers.DataError(f"cannot read {path}: MovieLens-100K file {name} not found",
                              path=path)
  data = pd.read_csv(paths["u.data"], sep="\t", header=None,
                     names=["user", "item", "rating", "timestamp"], dtype=np.int64)
  items = pd.read_csv(paths["u.item"], sep="|", header=None, encoding="latin-1")
  if items.shape[1] != 5 + len(_GENRES):
    raise readers.DataError(f"{paths['u.item']}: expected {5 + len(_GENRES)} fields, got "
                            f"{items.shape[1]}", path=paths["u.item"], field="field count")
  flags = items.iloc[:, 5:].to_numpy(np.int64)
  first = np.where(flags.any(axis=1), flags.argmax(axis=1), 0)
  genre_of = dict(zip(items.iloc[:, 0].to_numpy(np.int64), np.array(_GENRES)[first]))
  users = pd.read_csv(paths["u.user"], sep="|", header=None,
                      names=["user", "age", "gender", "occupation", "zip"])
  data = data.sort_values(["user", "timestamp", "item"], kind="mergesort").reset_index(drop=True)
  u = data["user"].to_numpy()
  ts = data["timestamp"].to_numpy()
  n = len(data)
  idx = np.arange(n)
  new_user = np.concatenate([[True], u[1:] != u[:-1]])
  new_time = new_user | np.concatenate([[True], ts[1:] != ts[:-1]])
  user_start = np.maximum.accumulate(np.where(new_user, idx, 0))
  end = np.maximum.accumulate(np.where(new_time, idx, 0))  # first event at the same second
  start = np.maximum(user_start, end - max_len)
  flat = sequences.ranges(start, end)
  item_str = data["item"].astype(str).to_numpy().astype(object)
  genre_str = np.array([genre_of.get(i, "unknown") for i in data["item"].to_numpy()], dtype=object)
  item_tokens = pa.array(item_str, pa.string())
  genre_tokens = pa.array(genre_str, pa.string())
  lengths = end - start
  frame = pd.DataFrame({
      "label": (data["rating"].to_numpy() >= 4).astype(np.int64),
      "user_id": data["user"].astype(str).to_numpy(),
      "item_id": item_str,
      "genre": genre_str,
      "hist_item_id": sequences.join_histories(item_tokens, flat, lengths).to_pylist(),
      "hist_genre": sequences.join_histories(genre_tokens, flat, lengths).to_pylist(),
      "timestamp": ts,
  })
  users = users.set_index("user")
  frame["gender"] = users.loc[data["user"], "gender"].astype(str).to_numpy()
  frame["age"] = users.loc[data["user"], "age"].astype(str).to_numpy()
  frame["occupation"] = users.loc[data["user"], "occupation"].astype(str).to_numpy()
  frame = frame.sort_values(["timestamp", "user_id", "item_id"], kind="mergesort")
  return frame.reset_index(drop=True), movielens_spec(max_len)
