"""Synthetic behaviour sequences for CAN, and the history-building helpers.

`generate_sequence_data` returns `(frame, spec)`: a pandas DataFrame of RAW
values (ids as strings, histories as tokens joined by "|", oldest first) and
an UNFITTED FeatureSpec whose history SequenceFeatures share the vocabulary of
the target item / category (`shares_vocabulary_with`), like the MovieLens
reader (`ctr_zoo.datasets.movielens`). `datasets.fit(frame, spec)` fits it and
`datasets.make_dataset(frame, fitted_spec, ...)` (or `transform`) consumes it
like any other source. Extra columns (`oracle_p`) are ignored by the readers.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ctr_zoo.feature_columns import spec as spec_lib


def join_histories(tokens: pa.Array, flat_index: np.ndarray, lengths: np.ndarray) -> pa.Array:
  """Strings "t1|t2|..." per row from a flat index into `tokens` (vectorised)."""
  offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
  values = tokens.take(pa.array(flat_index, pa.int64()))
  lists = pa.ListArray.from_arrays(pa.array(offsets), values)
  return pc.binary_join(lists, "|")


def ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
  """Concatenation of arange(s, e) for every (s, e), without a Python loop."""
  lengths = ends - starts
  total = int(lengths.sum())
  if total == 0:
    return np.zeros((0,), np.int64)
  row_first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
  return np.repeat(starts - row_first, lengths) + np.arange(total)


# --- synthetic ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SyntheticSequenceConfig:
  """Knobs of the synthetic behaviour-sequence world.

  Args:
    num_users: int. Defaults to 2000.
    num_items: int. Defaults to 3000.
    num_categories: int. Defaults to 40.
    max_len: int. Longest history. Defaults to 30.
    min_len: int. Shortest history. Defaults to 3.
    coaction_scale: float. Weight of the item-history co-action. Defaults to 4.0.
    category_scale: float. Weight of the category-history co-action. Defaults to 2.5.
    main_scale: float. Per-item / per-user main effects. Defaults to 0.3.
    target_ctr: float. Calibrated CTR. Defaults to 0.3.
    world_seed: int. Seed of the ground truth. Defaults to 0.
  """
  num_users: int = 2000
  num_items: int = 3000
  num_categories: int = 40
  max_len: int = 30
  min_len: int = 3
  coaction_scale: float = 4.0
  category_scale: float = 2.5
  main_scale: float = 0.3
  target_ctr: float = 0.3
  world_seed: int = 0


def sequence_spec(max_len: int, embedding_dim: int = 16, min_count: int = 1,
                  name: str = "sequence") -> spec_lib.FeatureSpec:
  """The unfitted spec of `generate_sequence_data`'s frame."""
  return spec_lib.FeatureSpec(features=(
      spec_lib.CategoricalFeature("user_id", min_count=min_count, embedding_dim=embedding_dim),
      spec_lib.CategoricalFeature("item_id", min_count=min_count, embedding_dim=embedding_dim),
      spec_lib.CategoricalFeature("cat_id", min_count=min_count, embedding_dim=embedding_dim),
      spec_lib.SequenceFeature("hist_item_id", max_len=max_len, embedding_dim=embedding_dim,
                               shares_vocabulary_with="item_id"),
      spec_lib.SequenceFeature("hist_cat_id", max_len=max_len, embedding_dim=embedding_dim,
                               shares_vocabulary_with="cat_id"),
  ), label="label", name=name)


def generate_sequence_data(num_rows: int, seed: int = 0,
                           config: Optional[SyntheticSequenceConfig] = None):
  """Synthetic CTR rows with behaviour histories and a known oracle.

  World: item i has a category c(i) (Zipf-like), an "induction" vector a_i
  and a "feed" vector b_i in R^8; category k has vectors g_k, h_k. Each user
  prefers a few categories; the history holds L ~ U[min_len, max_len] items
  from those categories (70%) or popular items (30%); the target item is drawn
  the same way. Click logit:

    z = b0 + m_item[t] + m_user[u]
        + coaction_scale * mean_h tanh(<a_t, b_h>)
        + category_scale * mean_h tanh(<g_c(t), h_c(h)>)

  (a co-action between the target and every history item, which is what the
  CAN unit models); b0 is calibrated to `target_ctr`. Columns: label, user_id,
  item_id, cat_id, hist_item_id, hist_cat_id, oracle_p.

  Args:
    num_rows: int. Rows.
    seed: int. Row seed. Defaults to 0.
    config: SyntheticSequenceConfig or None.

  Returns:
    (pandas DataFrame, unfitted FeatureSpec).
  """
  config = config or SyntheticSequenceConfig()
  w = np.random.default_rng([config.world_seed, 31337])
  n_items, n_cats, n_users = config.num_items, config.num_categories, config.num_users
  cat_p = 1.0 / np.arange(1, n_cats + 1) ** 0.8
  item_cat = w.choice(n_cats, size=n_items, p=cat_p / cat_p.sum())
  item_pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
  item_pop /= item_pop.sum()
  a = w.normal(0, 1 / np.sqrt(8), (n_items, 8)) * 1.8
  b = w.normal(0, 1 / np.sqrt(8), (n_items, 8)) * 1.8
  g = w.normal(0, 1 / np.sqrt(8), (n_cats, 8)) * 1.8
  h = w.normal(0, 1 / np.sqrt(8), (n_cats, 8)) * 1.8
  m_item = w.normal(0, config.main_scale, n_items)
  m_user = w.normal(0, config.main_scale, n_users)
  user_cats = w.choice(n_cats, size=(n_users, 3))
  items_by_cat = [np.flatnonzero(item_cat == k) for k in range(n_cats)]
  for k in range(n_cats):  # every category needs at least one item
    if len(items_by_cat[k]) == 0:
      items_by_cat[k] = np.array([k % n_items])

  def draw_items(rng, users, n):
    """n items per user row: 70% from the user's categories, else popular."""
    cats = user_cats[users[:, None], rng.integers(0, 3, (len(users), n))]  # (R, n)
    sizes = np.array([len(x) for x in items_by_cat])
    pick = (rng.random(cats.shape) * sizes[cats]).astype(np.int64)
    concat = np.concatenate(items_by_cat)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pref = concat[starts[cats] + pick]
    pop = rng.choice(n_items, size=cats.shape, p=item_pop)
    return np.where(rng.random(cats.shape) < 0.7, pref, pop)

  def logits(users, targets, hist, lengths):
    mask = np.arange(config.max_len)[None, :] < lengths[:, None]  # (R, T)
    co = np.tanh(np.einsum("rd,rtd->rt", a[targets], b[hist]))
    cc = np.tanh(np.einsum("rd,rtd->rt", g[item_cat[targets]], h[item_cat[hist]]))
    denom = lengths.astype(np.float64)
    return (m_item[targets] + m_user[users]
            + config.coaction_scale * (co * mask).sum(1) / denom
            + config.category_scale * (cc * mask).sum(1) / denom)

  def sample(rng, n):
    users = rng.integers(0, n_users, n)
    lengths = rng.integers(config.min_len, config.max_len + 1, n)
    hist = draw_items(rng, users, config.max_len)  # (n, T), positions >= length unused
    targets = draw_items(rng, users, 1)[:, 0]
    return users, lengths, hist, targets

  pilot = sample(np.random.default_rng([config.world_seed, 7]), 50_000)
  z0 = logits(pilot[0], pilot[3], pilot[2], pilot[1])
  lo, hi = -20.0, 20.0
  for _ in range(60):
    mid = (lo + hi) / 2
    lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(z0 + mid)))) < config.target_ctr else (lo, mid)
  b0 = (lo + hi) / 2

  rng = np.random.default_rng([seed, 1])
  users, lengths, hist, targets = sample(rng, num_rows)
  p = 1 / (1 + np.exp(-(logits(users, targets, hist, lengths) + b0)))
  labels = (rng.random(num_rows) < p).astype(np.int64)
  item_tokens = pa.array([f"i{i}" for i in range(n_items)], pa.string())
  cat_tokens = pa.array([f"c{k}" for k in range(n_cats)], pa.string())
  flat = ranges(np.arange(num_rows) * config.max_len,
                 np.arange(num_rows) * config.max_len + lengths)
  hist_flat = hist.reshape(-1)[flat]
  import pandas as pd  # pylint: disable=g-import-not-at-top
  frame = pd.DataFrame({
      "label": labels,
      "user_id": [f"u{u}" for u in users],
      "item_id": item_tokens.take(pa.array(targets)).to_pylist(),
      "cat_id": cat_tokens.take(pa.array(item_cat[targets])).to_pylist(),
      "hist_item_id": join_histories(item_tokens, hist_flat, lengths).to_pylist(),
      "hist_cat_id": join_histories(cat_tokens, item_cat[hist_flat], lengths).to_pylist(),
      "oracle_p": p,
  })
  return frame, sequence_spec(config.max_len)
