"""Prefetch and SerialWorker: order, bounded look-ahead, errors in place, clean stops."""

import threading
import time

from tests import testing
from ctr_zoo.datasets import background


class PrefetchTest(testing.TestCase):

  def test_items_in_order_and_the_producer_runs_in_another_thread(self):
    threads = []

    def produce():
      for i in range(50):
        threads.append(threading.current_thread())
        yield i

    self.assertEqual(list(background.Prefetch(produce())), list(range(50)))
    self.assertTrue(all(t is not threading.current_thread() for t in threads))

  def test_look_ahead_is_bounded_by_depth(self):
    made = []

    def produce():
      for i in range(100):
        made.append(i)
        yield i

    with background.Prefetch(produce(), depth=3) as it:
      self.assertEqual(next(it), 0)
      deadline = time.monotonic() + 30
      while len(made) < 4 and time.monotonic() < deadline:  # the producer runs ahead...
        time.sleep(0.01)
      self.assertGreaterEqual(len(made), 4)
      time.sleep(0.3)  # ...and then stops:
      # 1 consumed + 3 queued + 1 made and waiting to be queued.
      self.assertLessEqual(len(made), 5)

  def test_an_error_is_raised_at_its_position_after_the_items_before_it(self):

    def produce():
      yield 1
      yield 2
      raise ValueError("bad row at line 3")

    got = []
    with self.assertRaisesRegex(ValueError, "bad row at line 3"):
      for x in background.Prefetch(produce()):
        got.append(x)
    self.assertEqual(got, [1, 2])

  def test_close_stops_the_producer_and_runs_its_finally(self):
    closed = threading.Event()

    def produce():
      try:
        i = 0
        while True:
          yield i
          i += 1
      finally:
        closed.set()

    it = background.Prefetch(produce(), depth=2)
    self.assertEqual([next(it), next(it)], [0, 1])
    it.close()
    self.assertTrue(closed.is_set())
    self.assertFalse(it._thread.is_alive())  # pylint: disable=protected-access
    with self.assertRaises(StopIteration):
      next(it)
    it.close()  # idempotent

  def test_a_consumer_error_inside_with_stops_the_producer(self):
    it = background.Prefetch(iter(range(10**9)), depth=2)
    with self.assertRaisesRegex(RuntimeError, "consumer"):
      with it:
        next(it)
        raise RuntimeError("consumer failed")
    self.assertFalse(it._thread.is_alive())  # pylint: disable=protected-access

  def test_bad_depth(self):
    with self.assertRaisesRegex(ValueError, "depth must be >= 1"):
      background.Prefetch([], depth=0)


class SerialWorkerTest(testing.TestCase):

  def test_calls_run_in_order_in_one_other_thread(self):
    out, threads = [], set()
    worker = background.SerialWorker(depth=2)
    for i in range(30):
      worker.submit(lambda i=i: (out.append(i), threads.add(threading.current_thread())))
    worker.close()
    self.assertEqual(out, list(range(30)))
    self.assertLen(threads, 1)
    self.assertNotIn(threading.current_thread(), threads)

  def test_first_error_is_raised_and_later_calls_are_dropped(self):
    out = []
    worker = background.SerialWorker(depth=1)
    worker.submit(lambda: out.append(1))
    worker.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))
    dropped = []
    try:
      for _ in range(5):  # one of these submits may already see the error
        worker.submit(lambda: dropped.append(1))
    except OSError:
      pass
    with self.assertRaisesRegex(OSError, "disk full"):
      worker.close()
    self.assertEqual(out, [1])
    self.assertEqual(dropped, [])
    with self.assertRaisesRegex(RuntimeError, "submit after close"):
      worker.submit(lambda: None)
