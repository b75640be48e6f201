"""Timing harness: interleaved timed windows, medians, the matmul roofline, peak RSS.

A step is timed in windows of `steps_per_window` calls after untimed warm-up
calls; a window's rate is examples_per_step * steps_per_window / seconds and
the reported figure is the median over windows. Several runners are timed with
their windows interleaved round-robin (`time_interleaved`): on a shared, noisy
machine they then see the same contention, so the ratio of their medians is
far steadier than that of separate runs.

The roofline is a plain `tf.matmul` chain timed the same way: the most matmul
FLOPs per second this machine gives TensorFlow, against which a model's
examples/s * FLOPs per example is compared.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf

# A runner: (step, sync). `step()` runs one step and returns something that
# `sync` blocks on (e.g. `.numpy()` of its loss).
Runner = Tuple[Callable[[], Any], Callable[[Any], Any]]


@dataclasses.dataclass
class WindowTiming:
  """Examples/s of each timed window, their median, and the peak RSS seen (MiB)."""
  rates: List[float]
  median: float
  peak_rss_mib: float


def _check_counts(warmup_steps: int, steps_per_window: int, num_windows: int) -> None:
  if num_windows < 1 or steps_per_window < 1 or warmup_steps < 0:
    raise ValueError(f"need num_windows >= 1, steps_per_window >= 1, warmup_steps >= 0; got "
                     f"{num_windows}, {steps_per_window}, {warmup_steps}")


def time_windows(step: Callable[[], Any], sync: Callable[[Any], Any], examples_per_step: int,
                 warmup_steps: int = 3, steps_per_window: int = 3, num_windows: int = 5,
                 clock: Callable[[], float] = time.perf_counter,
                 rss: Optional[Callable[[], float]] = None) -> WindowTiming:
  """Runs `step` warm-up + windows and returns the median examples/s of the windows.

  Each window is `steps_per_window` calls of `step()`; `sync` is applied to the
  window's last result so the time covers finished work. Rates are
  examples_per_step * steps_per_window / window seconds.

  Args:
    step: callable. One training (or input) step; returns something `sync` takes.
    sync: callable. Blocks until the step's result is ready (e.g. `.numpy()`).
    examples_per_step: int. Examples per step (the batch size).
    warmup_steps: int. Untimed steps first (tracing, allocation). Defaults to 3.
    steps_per_window: int. Steps per timed window. Defaults to 3.
    num_windows: int. Timed windows (>= 1). Defaults to 5.
    clock: callable. Seconds. Defaults to time.perf_counter.
    rss: callable or None. Current RSS in MiB, sampled after every window; the
      max is `peak_rss_mib`. Defaults to the process's current RSS.
  """
  _check_counts(warmup_steps, steps_per_window, num_windows)
  rss = rss or current_rss_mib
  peak = rss()
  out = None
  for _ in range(warmup_steps):
    out = step()
  if out is not None:
    sync(out)
  rates = []
  for _ in range(num_windows):
    start = clock()
    for _ in range(steps_per_window):
      out = step()
    sync(out)
    seconds = clock() - start
    rates.append(examples_per_step * steps_per_window / max(seconds, 1e-12))
    peak = max(peak, rss())
  return WindowTiming(rates=rates, median=float(statistics.median(rates)), peak_rss_mib=peak)


def time_interleaved(runners: Dict[str, Runner], examples_per_step: int, warmup_steps: int = 3,
                     steps_per_window: int = 3, num_windows: int = 5,
                     clock: Callable[[], float] = time.perf_counter,
                     rss: Optional[Callable[[], float]] = None) -> Dict[str, WindowTiming]:
  """`time_windows` for several runners, their windows interleaved round-robin.

  Every runner is warmed up first; then round w times window w of each runner
  in turn.

  Args:
    runners: dict name -> (step, sync), as in `time_windows`.
    examples_per_step, warmup_steps, steps_per_window, num_windows, clock, rss:
      as in `time_windows`.

  Returns:
    dict name -> WindowTiming (peak_rss_mib is the process's, over all runners).
  """
  _check_counts(warmup_steps, steps_per_window, num_windows)
  rss = rss or current_rss_mib
  peak = rss()
  for step, sync in runners.values():
    out = None
    for _ in range(warmup_steps):
      out = step()
    if out is not None:
      sync(out)
  rates = {name: [] for name in runners}
  for _ in range(num_windows):
    for name, (step, sync) in runners.items():
      start = clock()
      for _ in range(steps_per_window):
        out = step()
      sync(out)
      seconds = clock() - start
      rates[name].append(examples_per_step * steps_per_window / max(seconds, 1e-12))
      peak = max(peak, rss())
  return {name: WindowTiming(rates=r, median=float(statistics.median(r)), peak_rss_mib=peak)
          for name, r in rates.items()}


def cycle(step_fn: Callable[[Any, Any], Any],
          batches: Sequence[Tuple[Any, Any]]) -> Callable[[], Any]:
  """A zero-argument step that calls `step_fn(features, labels)` on `batches` in turn."""
  state = {"i": 0}

  def step():
    features, labels = batches[state["i"] % len(batches)]
    state["i"] += 1
    return step_fn(features, labels)

  return step


def sync_scalar(out) -> float:
  """Blocks on a scalar tensor (a step's loss) and returns it."""
  return float(out.numpy())


def latency_percentiles(seconds: Sequence[float]) -> Dict[str, float]:
  """p50 and p99 (milliseconds) of call latencies in seconds (linear interpolation)."""
  if not len(seconds):  # pylint: disable=g-explicit-length-test
    raise ValueError("latency_percentiles needs at least one latency")
  ms = np.asarray(seconds, np.float64) * 1e3
  return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def current_rss_mib() -> float:
  """Current resident set size of this process in MiB."""
  try:
    import psutil  # pylint: disable=g-import-not-at-top
    return psutil.Process().memory_info().rss / 2**20
  except ImportError:  # pragma: no cover
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_peak_rss_mib() -> float:
  """The process's peak RSS so far (ru_maxrss; KiB on Linux) in MiB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------
# The roofline.
# --------------------------------------------------------------------------
def roofline_examples_per_sec(gflops: float, flops_per_example: float) -> float:
  """The most examples/s a machine of `gflops` GFLOP/s can train at `flops_per_example`."""
  if not flops_per_example or flops_per_example <= 0:
    raise ValueError(f"flops_per_example must be > 0, got {flops_per_example!r}")
  return gflops * 1e9 / flops_per_example


def ceiling_examples_per_sec(gflops: float, flops_per_example: float, batch_size: int,
                             embedding_step_ms: float) -> float:
  """Examples/s of a step whose matmuls run at the roofline, plus the embedding step.

  1 / (F / (G 1e9) + t_emb / B): the matmul FLOPs take F / G seconds per example
  at G GFLOP/s and, on a machine the matmuls keep busy, the embedding work
  (t_emb seconds per step of B) cannot hide behind them. A model with this
  embedding step cannot train faster than this.
  """
  if embedding_step_ms < 0 or batch_size < 1:
    raise ValueError(f"need embedding_step_ms >= 0 and batch_size >= 1, got "
                     f"{embedding_step_ms!r} and {batch_size!r}")
  return 1.0 / (1.0 / roofline_examples_per_sec(gflops, flops_per_example)
                + embedding_step_ms / 1000.0 / batch_size)


def measure_matmul_gflops(m: int = 4096, k: int = 1024, n: int = 1024, repeats: int = 4,
                          num_windows: int = 5) -> Dict[str, Any]:
  """Plain float32 tf.matmul GFLOP/s, the median of `num_windows` timed windows.

  One window is one tf.function call doing `repeats` dependent (m, k) @ (k, n)
  products (2 m k n FLOPs each).
  """
  if k != n:
    raise ValueError(f"matmul roofline chains products: need k == n, got k={k}, n={n}")
  rng = np.random.default_rng(0)
  a = tf.constant(rng.standard_normal((m, k)).astype(np.float32))
  b = tf.constant((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32))

  @tf.function
  def chain(x):
    for _ in range(repeats):
      x = tf.matmul(x, b)  # (m, n)
    return tf.reduce_sum(x)

  chain(a).numpy()
  flops = 2.0 * m * k * n * repeats
  rates = []
  for _ in range(num_windows):
    start = time.perf_counter()
    chain(a).numpy()
    rates.append(flops / (time.perf_counter() - start) / 1e9)
  return {"gflops": float(statistics.median(rates)), "shape": [m, k, n],
          "windows_gflops": [round(r, 2) for r in rates]}


def matmul_runner(m: int = 4096, k: int = 1024, repeats: int = 2,
                  dtype=tf.float32) -> Tuple[Callable[[], Any], Callable[[Any], Any], float]:
  """(step, sync, flops_per_step) of a chained (m, k) @ (k, k) tf.matmul, for interleaving."""
  rng = np.random.default_rng(0)
  a = tf.cast(tf.constant(rng.standard_normal((m, k)).astype(np.float32)), dtype)
  b = tf.cast(tf.constant((rng.standard_normal((k, k)) / np.sqrt(k)).astype(np.float32)), dtype)

  @tf.function
  def chain():
    x = a
    for _ in range(repeats):
      x = tf.matmul(x, b)  # (m, k)
    return tf.reduce_sum(tf.cast(x, tf.float32))

  return chain, sync_scalar, 2.0 * m * k * k * repeats


def gflops_of(timing: WindowTiming, examples_per_step: int, flops_per_step: float) -> List[float]:
  """GFLOP/s of each window of a matmul runner timed with `examples_per_step` per step."""
  return [r / examples_per_step * flops_per_step / 1e9 for r in timing.rates]
