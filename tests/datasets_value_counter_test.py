"""preprocessing._ValueCounter: exact streaming counts, and merge work linear in the input."""

from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tests import testing
from ctr_zoo.datasets import preprocessing


def _counts(counter):
  values, counts = counter.histogram()
  return dict(zip(values.tolist(), counts.tolist()))


class ValueCounterTest(testing.TestCase):

  def test_counts_match_numpy_over_many_merges(self):
    rng = np.random.default_rng(0)
    counter = preprocessing._ValueCounter(pa.string())
    seen = []
    with mock.patch.object(preprocessing, "_MERGE_EVERY", 16):
      for _ in range(60):
        ints = rng.zipf(1.3, size=200) % 5000
        values = [f"v{x}" for x in ints]
        if rng.random() < 0.5:
          counter.add(pa.array(values))
          seen.extend(values)
        else:  # the staged path: a dictionary array and a row mask
          mask = rng.random(len(values)) < 0.7
          counter.add_dictionary(pc.dictionary_encode(pa.array(values)), mask)
          seen.extend(v for v, m in zip(values, mask) if m)
    want = dict(zip(*np.unique(np.array(seen), return_counts=True)))
    self.assertEqual(_counts(counter), {k: int(v) for k, v in want.items()})
    self.assertEqual(counter.distinct, len(want))
    vocab = counter.vocabulary(min_count=3, max_vocab_size=None)
    expected = sorted((k for k, v in want.items() if v >= 3), key=lambda k: (-want[k], k))
    self.assertEqual(list(vocab), expected)

  def test_merge_work_is_linear_in_the_pending_rows(self):
    # Every batch brings only new values, the worst case for the merged table's
    # growth: a merge every fixed number of rows would re-aggregate the whole
    # table each time (quadratic); the counter's merges stay within 3x the rows added.
    counter = preprocessing._ValueCounter(pa.string())
    work = []
    original = preprocessing._ValueCounter._merge

    def counted_merge(self):
      work.append(self._merged_rows + self.pending_rows)
      original(self)

    batches, size = 400, 50
    with mock.patch.object(preprocessing, "_MERGE_EVERY", 100), \
        mock.patch.object(preprocessing._ValueCounter, "_merge", counted_merge):
      for b in range(batches):
        counter.add(pa.array([f"b{b}_{i}" for i in range(size)]))
      self.assertEqual(counter.distinct, batches * size)
    total = batches * size
    self.assertLessEqual(sum(work), 3 * total + total)  # (+ the final merge of everything)
    self.assertLess(len(work), 20)  # geometric: ~log_1.5(20000 / 100) merges, not 200


if __name__ == "__main__":
  testing.main()
