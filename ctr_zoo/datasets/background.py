"""Overlapping a producer with its consumer: an iterator run ahead in a thread.

Parsing text (Arrow's CSV reader), dictionary-encoding, Parquet encoding and
compression all release the GIL, so a reader thread that parses batch i + 1
while the caller encodes and counts batch i keeps two cores busy where a
plain loop keeps one.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_END = object()


class Prefetch(Iterator[T]):
  """Iterates `iterable` in a daemon thread, at most `depth` items ahead of the caller.

  Items come out in the iterable's order. An exception raised by the iterable
  is raised by `next()` at the same position, after every item before it. The
  producer stops (and a generator is closed in its thread, so its `finally`
  blocks run) when the caller calls `close()`, leaves a `with` block, or the
  Prefetch is exhausted. `close()` waits for the thread to end.

  Args:
    iterable: the items; iterated in the background thread only.
    depth: int >= 1. Items held ready beyond the one being consumed.
    name: str. The thread's name.
  """

  def __init__(self, iterable: Iterable[T], depth: int = 2, name: str = "prefetch"):
    if int(depth) < 1:
      raise ValueError(f"depth must be >= 1, got {depth!r}")
    self._queue: "queue.Queue" = queue.Queue(maxsize=int(depth))
    self._stop = threading.Event()
    self._done = False
    self._thread = threading.Thread(target=self._run, args=(iterable,), name=name, daemon=True)
    self._thread.start()

  def _put(self, entry) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(entry, timeout=0.05)
        return True
      except queue.Full:
        continue
    return False

  def _run(self, iterable) -> None:
    it = iter(iterable)
    try:
      for item in it:
        if not self._put((item, None)):
          return
      self._put((_END, None))
    except BaseException as e:  # pylint: disable=broad-except  (re-raised by the consumer)
      self._put((_END, e))
    finally:
      close = getattr(it, "close", None)
      if close is not None:
        close()

  def __iter__(self) -> "Prefetch[T]":
    return self

  def __next__(self) -> T:
    if self._done:
      raise StopIteration
    item, error = self._queue.get()
    if item is _END:
      self._done = True
      self._thread.join()
      if error is not None:
        raise error
      raise StopIteration
    return item

  def close(self) -> None:
    """Stops the producer and waits for its thread (idempotent)."""
    self._done = True
    self._stop.set()
    while True:  # unblock a producer waiting on a full queue
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    self._thread.join()

  def __enter__(self) -> "Prefetch[T]":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


class SerialWorker:
  """Runs submitted calls one at a time, in submission order, in a daemon thread.

  At most `depth` calls wait; `submit` blocks beyond that, so memory held by
  pending calls stays bounded. The first exception a call raises stops the
  calls after it (they are dropped) and is raised by the next `submit` or by
  `close`, which waits for the queued calls to finish.

  Args:
    depth: int >= 1. Calls allowed to wait.
    name: str. The thread's name.
  """

  def __init__(self, depth: int = 2, name: str = "serial-worker"):
    if int(depth) < 1:
      raise ValueError(f"depth must be >= 1, got {depth!r}")
    self._queue: "queue.Queue" = queue.Queue(maxsize=int(depth))
    self._error = None
    self._closed = False
    self._thread = threading.Thread(target=self._run, name=name, daemon=True)
    self._thread.start()

  def _run(self) -> None:
    while True:
      call = self._queue.get()
      if call is None:
        return
      if self._error is None:
        try:
          call()
        except BaseException as e:  # pylint: disable=broad-except  (raised by submit / close)
          self._error = e

  def _raise(self) -> None:
    if self._error is not None:
      raise self._error

  def submit(self, call) -> None:
    """Queues `call()` (no arguments); raises an earlier call's exception instead, if any."""
    if self._closed:
      raise RuntimeError("submit after close")
    self._raise()
    self._queue.put(call)

  def close(self) -> None:
    """Waits for the queued calls, stops the thread, and raises the first call's exception."""
    if not self._closed:
      self._closed = True
      self._queue.put(None)
      self._thread.join()
    self._raise()
