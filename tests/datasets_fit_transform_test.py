"""fit_transform (text parsed once, staged) == fit then transform, exactly."""

import collections
import glob
import os
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tests import testing
from ctr_zoo import datasets
from ctr_zoo.datasets import encoding
from ctr_zoo.datasets import preprocessing
from ctr_zoo.feature_columns import spec as spec_lib


def _spec(min_count=2):
  """Criteo raw layout with every kind of fitted / hashed feature."""
  dense = [spec_lib.DenseFeature(f"I{i}", transform=t) for i, t in
           zip(range(1, 14), ["log1p", "standardize", "bucketize", "none"] * 4)]
  cats = [spec_lib.CategoricalFeature(f"C{i}", min_count=min_count) if i % 5 else
          spec_lib.CategoricalFeature(f"C{i}", hash_buckets=97) for i in range(1, 27)]
  return spec_lib.FeatureSpec(features=tuple(dense + cats))


def _read_split(out_dir, split):
  paths = sorted(glob.glob(os.path.join(out_dir, split, "*.parquet")))
  return pa.concat_tables([pq.read_table(p) for p in paths]) if paths else None


class FitTransformTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    self.tmp = self.make_temp_dir()
    self.tsv = os.path.join(self.tmp, "raw.tsv")
    datasets.generate_criteo_tsv(self.tsv, 3000, seed=1)

  def _assert_same_output(self, a, b, split_names):
    for name in split_names:
      ta, tb = _read_split(a, name), _read_split(b, name)
      self.assertIsNotNone(ta)
      self.assertEqual(ta.schema, tb.schema)
      self.assertTrue(ta.equals(tb), f"split {name} differs")

  def test_same_as_fit_then_transform(self):
    split = datasets.RandomSplit(seed=5)
    spec = _spec()
    # Small batches: several staged batches, each with its own dictionaries.
    kw = dict(split=split, batch_rows=512, block_size=1 << 16)
    fitted, fit_summary = datasets.fit(self.tsv, spec, return_summary=True, **kw)
    ref_summary = datasets.transform(self.tsv, fitted, os.path.join(self.tmp, "ref"), **kw)
    got_spec, got_fit, got = datasets.fit_transform(self.tsv, spec, os.path.join(self.tmp, "ft"),
                                                    **kw)
    self.assertEqual(got_spec.to_json(), fitted.to_json())
    self.assertEqual((got_fit.rows, got_fit.positives, got_fit.vocabulary_sizes),
                     (fit_summary.rows, fit_summary.positives, fit_summary.vocabulary_sizes))
    self.assertEqual(got.rows, ref_summary.rows)
    self.assertEqual(got.oov_rate, ref_summary.oov_rate)
    self.assertEqual(got.missing_rate, ref_summary.missing_rate)
    self._assert_same_output(os.path.join(self.tmp, "ref"), os.path.join(self.tmp, "ft"),
                             split.names)
    self.assertGreater(max(ref_summary.oov_rate.values()), 0.0)  # min_count bites somewhere
    self.assertFalse(os.path.exists(os.path.join(self.tmp, "ft", ".fit_transform_stage.arrows")))

  def test_same_with_many_merges_and_max_vocab_size(self):
    """Provisional ids merged every few batch dictionaries, capped vocabularies, whole batches
    outside the fitted split (a by-file split): still identical."""
    split = datasets.FileSplit(num_train_files=1)
    second = os.path.join(self.tmp, "day_1.tsv")
    datasets.generate_criteo_tsv(second, 1000, seed=3)
    spec = _spec()
    spec = spec.with_features([
        spec_lib.CategoricalFeature(f.name, min_count=1, max_vocab_size=5)
        if f.name in ("C3", "C4") else f for f in spec.features])
    kw = dict(split=split, batch_rows=256, block_size=1 << 14)
    files = [self.tsv, second]
    fitted = datasets.fit(files, spec, **kw)
    datasets.transform(files, fitted, os.path.join(self.tmp, "ref"), **kw)
    with mock.patch.object(preprocessing, "_MERGE_EVERY", 40):
      got_spec, _, _ = datasets.fit_transform(files, spec, os.path.join(self.tmp, "ft"), **kw)
    self.assertEqual(got_spec.to_json(), fitted.to_json())
    self.assertLen(fitted["C3"].vocabulary, 5)
    self._assert_same_output(os.path.join(self.tmp, "ref"), os.path.join(self.tmp, "ft"),
                             split.names)
    self.assertEqual([n for n in os.listdir(os.path.join(self.tmp, "ft")) if n.startswith(".")],
                     [])

  def test_fallback_without_staging_and_no_split(self):
    spec = _spec(min_count=3)
    fitted = datasets.fit(self.tsv, spec)
    datasets.transform(self.tsv, fitted, os.path.join(self.tmp, "ref"))
    got_spec, _, _ = datasets.fit_transform(self.tsv, spec, os.path.join(self.tmp, "staged"))
    got_spec2, _, _ = datasets.fit_transform(self.tsv, spec, os.path.join(self.tmp, "two_pass"),
                                             max_stage_bytes=0)
    self.assertEqual(got_spec.to_json(), fitted.to_json())
    self.assertEqual(got_spec2.to_json(), fitted.to_json())
    for out in ("staged", "two_pass"):
      self._assert_same_output(os.path.join(self.tmp, "ref"), os.path.join(self.tmp, out),
                               ("train",))

  def test_bad_row_skipped_and_error(self):
    with open(self.tsv, "a") as fh:
      fh.write("1\tx" + "\t" * 38 + "\n")  # I1 not an integer
    spec = _spec()
    with self.assertRaisesRegex(datasets.DataError, "line 3001, field 'I1'"):
      datasets.fit_transform(self.tsv, spec, os.path.join(self.tmp, "err"))
    self.assertFalse(os.path.exists(os.path.join(self.tmp, "err", ".fit_transform_stage.arrows")))
    _, fit_summary, summary = datasets.fit_transform(self.tsv, spec, os.path.join(self.tmp, "ok"),
                                                     on_bad_rows="skip")
    self.assertEqual(fit_summary.read["rows_skipped"], 1)
    self.assertEqual(summary.read["rows_skipped"], 1)
    self.assertEqual(summary.rows["train"], 3000)


class ProvisionalIdsTest(testing.TestCase):

  def _check(self, tokens, value_type, arrow_type, long_after=None, max_vocab_size=None):
    """Counts in the fitted rows, ids by (count desc, value asc as strings), OOV / missing."""
    rng = np.random.default_rng(0)
    batches, masks, counts = [], [], collections.Counter()
    for b in range(30):
      n = int(rng.integers(1, 40))
      rows = [None if rng.random() < 0.1 else tokens[int(rng.zipf(1.5)) % len(tokens)]
              for _ in range(n)]
      if long_after is not None and b >= long_after:
        rows[0] = "a value longer than eight bytes"
      mask = rng.random(n) < 0.7
      counts.update(str(v) for v, m in zip(rows, mask) if m and v is not None)
      batches.append(rows)
      masks.append(mask)
    path = os.path.join(self.make_temp_dir(), "ids.int32")
    with mock.patch.object(preprocessing, "_MERGE_EVERY", 25):
      ids = preprocessing._ProvisionalIds(path, value_type)  # pylint: disable=protected-access
      for rows, mask in zip(batches, masks):
        ids.add_dictionary(pa.array(rows, arrow_type).dictionary_encode(), mask)
      vocab = ids.vocabulary(min_count=2, max_vocab_size=max_vocab_size)
    self.assertEqual(ids.values is None, long_after is None)  # keys mode until a long value
    expected = sorted((v for v, c in counts.items() if c >= 2),
                      key=lambda v: (-counts[v], v.encode()))[:max_vocab_size]
    self.assertEqual(vocab, tuple(expected))
    self.assertEqual(ids.distinct, len(counts))
    want = {v: 2 + i for i, v in enumerate(expected)}
    for rows in batches:
      indices = pa.array(rows, arrow_type).dictionary_encode().indices
      got = ids.batch_ids(pc.fill_null(indices, -1).to_numpy())
      np.testing.assert_array_equal(got, [0 if v is None else want.get(str(v), 1) for v in rows])
    ids.close()

  def test_string_keys_order_as_bytes_and_invert(self):
    values = ["abcdefgh", "ab", "", "é", "b", "abcdefg", "0000ffff"]
    keys = encoding.string_keys(pa.array(values).slice(0))
    self.assertEqual(encoding.key_strings(keys).to_pylist(), values)
    self.assertEqual([values[i] for i in np.argsort(keys)],
                     sorted(values, key=lambda v: v.encode()))
    eights = pa.array(["abcdefgh", "12345678", "zzzzzzzz"]).slice(1)  # the zero-copy path
    self.assertEqual(encoding.key_strings(encoding.string_keys(eights)).to_pylist(),
                     ["12345678", "zzzzzzzz"])
    for bad in (["abcdefghi"], ["a\x00b"], ["12345678", None]):
      self.assertIsNone(encoding.string_keys(pa.array(bad)), bad)

  def test_short_strings_as_keys(self):
    self._check([f"v{i}" for i in range(60)] + ["", "é", "abcdefgh", "abcdefg"],
                pa.large_string(), pa.string())

  def test_eight_byte_tokens_capped(self):
    self._check([f"{i * 7919:08x}" for i in range(80)], pa.large_string(), pa.string(),
                max_vocab_size=7)

  def test_moves_to_values_at_a_long_string(self):
    self._check([f"v{i}" for i in range(60)], pa.large_string(), pa.string(), long_after=12)

  def test_integers_tie_as_strings(self):
    self._check([-3, 0, 1, 2, 9, 10, 11, 100, 1 << 40], pa.int64(), pa.int64())


class DictionaryEncodingTest(testing.TestCase):

  def test_dictionary_arrays_encode_like_plain_ones(self):
    values = pa.array(["b", None, "a", "zz", "b", None, "A"])
    dictionary = values.dictionary_encode()
    np.testing.assert_array_equal(encoding.vocab_ids(dictionary, ("a", "b")),
                                  [3, 0, 2, 1, 3, 0, 1])
    np.testing.assert_array_equal(encoding.vocab_ids(values, ("a", "b")), [3, 0, 2, 1, 3, 0, 1])
    np.testing.assert_array_equal(encoding.hash_ids(dictionary, 13), encoding.hash_ids(values, 13))
    empty = pa.array([None, None], pa.string()).dictionary_encode()
    np.testing.assert_array_equal(encoding.vocab_ids(empty, ("a",)), [0, 0])


if __name__ == "__main__":
  testing.main()
