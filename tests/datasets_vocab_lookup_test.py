"""Large vocabularies: the sorted lookup gives exactly pc.index_in's ids, and costs no per-batch rebuild."""

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ctr_zoo.datasets import encoding


def _reference(values, vocabulary):
  """The definition: 2 + index in the vocabulary, OOV 1, missing 0 (pc.index_in)."""
  index = pc.index_in(values, value_set=pa.array(vocabulary, pa.string()))
  ids = pc.fill_null(index, -1).to_numpy().astype(np.int64) + 2
  ids[~pc.is_valid(values).to_numpy(zero_copy_only=False)] = 0
  return ids


def _vocabulary(n, rng):
  tokens = {f"{x:x}" for x in rng.integers(0, 1 << 40, n)}
  tokens |= {"", "a", "ab", "abc", "é", "ü€", "x" * 40}
  return tuple(sorted(tokens, key=lambda _: rng.random()))


def test_sorted_lookup_matches_index_in():
  """Hits, misses, prefixes, longer-than-any-token values, empty strings, non-ASCII, nulls."""
  rng = np.random.default_rng(0)
  vocabulary = _vocabulary(encoding._SORTED_LOOKUP_MIN + 5000, rng)  # pylint: disable=protected-access
  picks = list(rng.choice(np.array(vocabulary, dtype=object), 3000))
  values = pa.array(picks + ["ab", "abcd", "a" * 100, "", None, "é", "ü", "zzzzzzzzzz", "x" * 41]
                    + [f"{x:x}" for x in rng.integers(0, 1 << 40, 500)], pa.string())
  got = encoding.vocab_ids(values, vocabulary)
  np.testing.assert_array_equal(got, _reference(values, vocabulary))
  _, ordered = encoding._lookup(vocabulary, False)  # pylint: disable=protected-access
  assert ordered is not None  # the sorted path was the one compared
  # A dictionary array maps its dictionary through the same lookup.
  dictionary = pc.dictionary_encode(values)
  np.testing.assert_array_equal(encoding.vocab_ids(dictionary, vocabulary), got)


def test_nul_bytes_fall_back_to_index_in():
  """A token or value holding a NUL byte cannot be a fixed-width key: exact ids all the same."""
  rng = np.random.default_rng(1)
  vocabulary = _vocabulary(encoding._SORTED_LOOKUP_MIN, rng) + ("ab\x00",)  # pylint: disable=protected-access
  values = pa.array(["ab", "ab\x00", vocabulary[0], "nope"], pa.string())
  np.testing.assert_array_equal(encoding.vocab_ids(values, vocabulary),
                                _reference(values, vocabulary))
  plain = vocabulary[:-1]
  np.testing.assert_array_equal(encoding.vocab_ids(values, plain), _reference(values, plain))


def test_lookup_cost_does_not_grow_with_batches():
  """Many small batches against a 1M-token vocabulary: built once, then each batch is cheap."""
  rng = np.random.default_rng(2)
  vocabulary = tuple(f"{x:08x}" for x in rng.permutation(1 << 20))
  batch = pa.array([f"{x:08x}" for x in rng.integers(0, 1 << 21, 2000)], pa.string())
  encoding.vocab_ids(batch, vocabulary)  # builds the lookup
  start = time.perf_counter()
  for _ in range(50):
    ids = encoding.vocab_ids(batch, vocabulary)
  per_batch = (time.perf_counter() - start) / 50
  np.testing.assert_array_equal(ids, _reference(batch, vocabulary))
  start = time.perf_counter()
  pc.index_in(batch, value_set=pa.array(vocabulary))
  rebuild = time.perf_counter() - start
  assert per_batch < rebuild, (per_batch, rebuild)
