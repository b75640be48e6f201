"""Training, input and serving throughput of ctr_zoo, against DeepCTR 0.9.4.

For each model (dcn_v2, dcn_mix, deepfm, dnn, cdot, can) this trains ctr_zoo's
model and, in the same process, its DeepCTR 0.9.4 equivalent (see
deepctr_peers.py; skipped with a message when DeepCTR is absent) on identical
synthetic batches, and measures in the same run:

- the roofline: plain `tf.matmul` GFLOP/s of this machine;
- each model's analytic training FLOPs per example, F = 3 * (forward matmul
  FLOPs) (the backward pass costs two matmuls per forward matmul);
- training examples/s, the median over `num_windows` timed windows of
  `steps_per_window` steps after `warmup_steps` untimed ones;
- the fraction of the roofline: examples/s * F / (GFLOP/s * 1e9);
- peak RSS of the process while the model trained;
- the input pipeline alone (`ctr_zoo.datasets.make_dataset` over Parquet
  shards) against the train step fed from cached tensors and fed from it;
- batch-1 and batch-256 latency (p50/p99) of the exported raw-feature
  SavedModel.

Default sizes (the issue's): batch 4096, 26 categorical fields x 10k ids x dim
16 + 13 dense, MLP 256x3, 3 cross layers (DCN-Mix: rank 32, 4 experts).

Usage:
  .venv/bin/python benchmarks/throughput.py                    # all models
  .venv/bin/python benchmarks/throughput.py --models=dcn_v2,dnn --num_windows=5
  .venv/bin/python benchmarks/throughput.py --render_markdown  # table from the record

The machine is shared and noisy: compare the ratios measured in one run; an
absolute examples/s alone means little.
"""

import dataclasses
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

if __name__ == "__main__" and __package__ in (None, ""):
  # `python benchmarks/throughput.py`: make the project root importable.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app
from absl import flags
from absl import logging
import numpy as np

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT = os.path.join(PROJECT_ROOT, "benchmarks", "results", "throughput.json")
ALL_MODELS = ("dcn_v2", "dcn_mix", "deepfm", "dnn", "cdot", "can")

# Targets from issue 8: ctr_zoo examples/s over DeepCTR's, in one run.
TARGET_RATIOS = {"dcn_v2": 2.0, "dcn_mix": 3.0, "deepfm": 1.5}
TARGET_ROOFLINE = {"dcn_v2": 0.8}
TARGET_INPUT_OVER_STEP = 5.0

FLAGS = flags.FLAGS
flags.DEFINE_list("models", list(ALL_MODELS), "Models to benchmark.")
flags.DEFINE_integer("batch_size", 4096, "Training batch size.")
flags.DEFINE_integer("num_fields", 26, "Categorical fields.")
flags.DEFINE_integer("vocab_size", 10000, "Embedding rows per categorical field.")
flags.DEFINE_integer("embedding_width", 16, "Embedding width.")
flags.DEFINE_integer("num_dense", 13, "Dense (float) fields.")
flags.DEFINE_list("mlp", ["256", "256", "256"], "MLP hidden units.")
flags.DEFINE_integer("cross_layers", 3, "Cross layers (DCN-V2, DCN-Mix).")
flags.DEFINE_integer("low_rank", 32, "DCN-Mix expert rank.")
flags.DEFINE_integer("num_experts", 4, "DCN-Mix experts per layer.")
flags.DEFINE_integer("cdot_k", 8, "CDot compressed features k.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps before the timed windows.")
flags.DEFINE_integer("steps_per_window", 3, "Steps per timed window.")
flags.DEFINE_integer("num_windows", 5, "Timed windows; the median is reported.")
flags.DEFINE_integer("num_batches", 4, "Distinct cached batches cycled through.")
flags.DEFINE_enum("jit", "auto", ["auto", "on", "off"],
                  "XLA jit_compile of ctr_zoo's dense part: auto measures both and keeps the faster.")
flags.DEFINE_bool("bfloat16", True,
                  "Also time ctr_zoo's model built with precision='mixed_bfloat16' (reported "
                  "beside the float32 figures, against a bfloat16 matmul roofline).")
flags.DEFINE_bool("deepctr", True, "Also train the DeepCTR 0.9.4 peers (if installed).")
flags.DEFINE_bool("input_pipeline", True, "Measure make_dataset over Parquet shards.")
flags.DEFINE_bool("latency", True, "Measure exported SavedModel latency (batch 1 and 256).")
flags.DEFINE_integer("latency_calls", 200, "Timed calls per latency batch size.")
flags.DEFINE_integer("data_seed", 1234, "Seed of the synthetic data and models.")
flags.DEFINE_string("record", DEFAULT_OUTPUT, "JSON record to write ('' to skip).")
flags.DEFINE_bool("render_markdown", False,
                  "Print the table of --record as markdown and exit (no benchmark run).")


# --------------------------------------------------------------------------
# Sizes and analytic FLOPs (pure functions).
# --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BenchSizes:
  """The benchmark's shapes.

  Args:
    batch_size: int. B. Defaults to 4096.
    num_fields: int. n, categorical fields. Defaults to 26.
    vocab_size: int. Rows per field's table. Defaults to 10000.
    embedding_dim: int. e. Defaults to 16.
    num_dense: int. Dense float fields. Defaults to 13.
    mlp: tuple of int. MLP hidden units. Defaults to (256, 256, 256).
    cross_layers: int. L. Defaults to 3.
    low_rank: int. r of DCN-Mix experts. Defaults to 32.
    num_experts: int. K of DCN-Mix. Defaults to 4.
    cdot_k: int. k of CDot. Defaults to 8.
  """
  batch_size: int = 4096
  num_fields: int = 26
  vocab_size: int = 10000
  embedding_dim: int = 16
  num_dense: int = 13
  mlp: Tuple[int, ...] = (256, 256, 256)
  cross_layers: int = 3
  low_rank: int = 32
  num_experts: int = 4
  cdot_k: int = 8

  def __post_init__(self):
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      values = value if isinstance(value, tuple) else (value,)
      if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"BenchSizes.{f.name} must be a positive int (or a non-empty tuple "
                         f"of them), got {value!r}")

  @property
  def input_width(self) -> int:
    """d = n * e + num_dense: the width of the concatenated input x0."""
    return self.num_fields * self.embedding_dim + self.num_dense


def mlp_matmul_flops(input_width: int, units: Sequence[int], output_units: int = 1) -> int:
  """Forward matmul FLOPs per example of an MLP plus its output layer.

  F = 2 * sum_l u_{l-1} u_l, with u_0 = input_width and a final u_L -> output_units.
  """
  widths = [input_width] + list(units) + [output_units]
  return 2 * sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def forward_matmul_flops(model: str, sizes: BenchSizes) -> int:
  """Forward matmul FLOPs per example of ctr_zoo's `model` at `sizes`.

  n = num_fields, e = embedding_dim, m = n + num_dense (fields once the dense
  values are embedded as x_j v_j), d = n e + num_dense (the flat input x0),
  L = cross_layers, r = low_rank, K = num_experts, k = cdot_k:
  - dnn:     MLP(d).
  - dcn_v2:  L * 2 d^2 (x0 (.) (W x_l + b) + x_l, W d x d) + MLP(d) (stacked).
  - dcn_mix: L * [K * 2 (d r + r^2 + r d) + 2 d K (gates)] + MLP(d).
  - deepfm:  FM 2 * 2 m e (sum-of-squares trick) + MLP(d): the DNN reads the m
             fields [e_1 ; .. ; x_j v_j ; ..] (m e wide), but its first layer
             (`NumericFieldDense`) multiplies the raw x (num_dense wide) by
             M = V (.) K_num, an (num_dense, h) matrix formed once per batch
             (not counted: 2 * num_dense * e * h / B FLOPs per example).
  - cdot:    Z = Y^T X and D = X Z^T, X (m, e): 2 * 2 m e k; MLP(m e + k e + m k).
  - can:     3 co-action pairs (T = 1, orders 3, micro-MLP 16 -> 8 -> 4):
             3 * 3 * 2 (16 * 8 + 8 * 4); MLP(d + 3 * 3 * (8 + 4)).
  Element-wise work (Hadamard products, activations, the optimizer) is not
  counted: the roofline is a matmul rate.
  """
  n, e = sizes.num_fields, sizes.embedding_dim
  m = n + sizes.num_dense
  d = sizes.input_width
  r, k_exp = sizes.low_rank, sizes.num_experts
  if model == "dnn":
    return mlp_matmul_flops(d, sizes.mlp)
  if model == "dcn_v2":
    return sizes.cross_layers * 2 * d * d + mlp_matmul_flops(d, sizes.mlp)
  if model == "dcn_mix":
    per_layer = k_exp * 2 * (d * r + r * r + r * d) + 2 * d * k_exp
    return sizes.cross_layers * per_layer + mlp_matmul_flops(d, sizes.mlp)
  if model == "deepfm":
    return 2 * 2 * m * e + mlp_matmul_flops(d, sizes.mlp)
  if model == "cdot":
    k = sizes.cdot_k
    return 2 * 2 * m * e * k + mlp_matmul_flops(m * e + k * e + m * k, sizes.mlp)
  if model == "can":
    pairs, orders = 3, 3
    return pairs * orders * 2 * (16 * 8 + 8 * 4) + mlp_matmul_flops(d + pairs * orders * 12, sizes.mlp)
  raise ValueError(f"unknown model {model!r}; known: {list(ALL_MODELS)}")


def train_flops_per_example(model: str, sizes: BenchSizes) -> int:
  """Training FLOPs per example: 3x the forward matmul FLOPs (forward + 2 backward)."""
  return 3 * forward_matmul_flops(model, sizes)


def roofline_examples_per_sec(gflops: float, flops_per_example: float) -> float:
  """The most examples/s a machine of `gflops` GFLOP/s can train at `flops_per_example`."""
  if flops_per_example <= 0:
    raise ValueError(f"flops_per_example must be > 0, got {flops_per_example!r}")
  return gflops * 1e9 / flops_per_example


# --------------------------------------------------------------------------
# Timing helpers (pure functions).
# --------------------------------------------------------------------------
@dataclasses.dataclass
class WindowTiming:
  """Examples/s of each timed window and their median."""
  rates: List[float]
  median: float
  peak_rss_mib: float


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
    rss: callable or None. Current RSS in MiB, sampled after every step; the
      max is `peak_rss_mib`. Defaults to the process's current RSS.
  """
  if num_windows < 1 or steps_per_window < 1 or warmup_steps < 0:
    raise ValueError(f"need num_windows >= 1, steps_per_window >= 1, warmup_steps >= 0; got "
                     f"{num_windows}, {steps_per_window}, {warmup_steps}")
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


def time_interleaved(runners: Dict[str, Tuple[Callable[[], Any], Callable[[Any], Any]]],
                     examples_per_step: int, warmup_steps: int = 3, steps_per_window: int = 3,
                     num_windows: int = 5, clock: Callable[[], float] = time.perf_counter,
                     rss: Optional[Callable[[], float]] = None) -> Dict[str, WindowTiming]:
  """`time_windows` for several runners, their windows interleaved round-robin.

  Every runner is warmed up first; then round w times window w of each runner
  in turn. On a shared, noisy machine the runners see the same contention, so
  the ratio of their medians is far steadier than that of separate runs.

  Args:
    runners: dict name -> (step, sync), as in `time_windows`.
    examples_per_step, warmup_steps, steps_per_window, num_windows, clock, rss:
      as in `time_windows`.

  Returns:
    dict name -> WindowTiming (peak_rss_mib is the process's, over all runners).
  """
  if num_windows < 1 or steps_per_window < 1 or warmup_steps < 0:
    raise ValueError(f"need num_windows >= 1, steps_per_window >= 1, warmup_steps >= 0; got "
                     f"{num_windows}, {steps_per_window}, {warmup_steps}")
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
# Roofline.
# --------------------------------------------------------------------------
def measure_matmul_gflops(m: int = 4096, k: int = 1024, n: int = 1024, repeats: int = 4,
                          num_windows: int = 5) -> Dict[str, float]:
  """Plain float32 tf.matmul GFLOP/s, the median of `num_windows` timed windows.

  One window is one tf.function call doing `repeats` dependent (m, k) @ (k, n)
  products (2 m k n FLOPs each).
  """
  rng = np.random.default_rng(0)
  a = tf.constant(rng.standard_normal((m, k)).astype(np.float32))
  b = tf.constant((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32))
  if k != n:
    raise ValueError(f"matmul roofline chains products: need k == n, got k={k}, n={n}")

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


def matmul_runner(m: int = 4096, k: int = 1024, repeats: int = 2, dtype=tf.float32):
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

  return chain, _sync, 2.0 * m * k * k * repeats


# --------------------------------------------------------------------------
# Synthetic data.
# --------------------------------------------------------------------------
def feature_names(sizes: BenchSizes) -> Tuple[List[str], List[str]]:
  """(dense names I1.., categorical names C1..), Criteo style."""
  return ([f"I{i}" for i in range(1, sizes.num_dense + 1)],
          [f"C{i}" for i in range(1, sizes.num_fields + 1)])


def benchmark_spec(sizes: BenchSizes):
  """A hashed Criteo-style FeatureSpec with exactly `vocab_size` ids per field."""
  from ctr_zoo import feature_columns as fc  # pylint: disable=g-import-not-at-top
  if sizes.vocab_size <= fc.NUM_RESERVED_IDS:
    raise ValueError(f"vocab_size must exceed the {fc.NUM_RESERVED_IDS} reserved ids, "
                     f"got {sizes.vocab_size}")
  dense, cats = feature_names(sizes)
  features = ([fc.DenseFeature(n, transform="log1p", embedding_dim=sizes.embedding_dim)
               for n in dense] +
              [fc.CategoricalFeature(n, hash_buckets=sizes.vocab_size - fc.NUM_RESERVED_IDS,
                                     embedding_dim=sizes.embedding_dim) for n in cats])
  return fc.FeatureSpec(features=tuple(features), label="label", name="throughput")


def synthetic_batches(sizes: BenchSizes, num_batches: int, seed: int):
  """`num_batches` (features, labels) pairs of model inputs (NumPy).

  Ids are uniform over [0, vocab_size) (int64 (B,)); dense values are
  log1p(Exp(1) * 10) (float32 (B,)); labels ~ Bernoulli(0.25) (float32 (B,)).
  """
  rng = np.random.default_rng(seed)
  dense, cats = feature_names(sizes)
  out = []
  for _ in range(num_batches):
    features = {}
    for n in dense:
      features[n] = np.log1p(rng.exponential(10.0, sizes.batch_size)).astype(np.float32)
    for n in cats:
      features[n] = rng.integers(0, sizes.vocab_size, sizes.batch_size, dtype=np.int64)
    labels = (rng.random(sizes.batch_size) < 0.25).astype(np.float32)
    out.append((features, labels))
  return out


# --------------------------------------------------------------------------
# Output.
# --------------------------------------------------------------------------
def _fmt_rate(x: Optional[float]) -> str:
  if x is None:
    return "-"
  return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def _fmt(x, spec: str, suffix: str = "") -> str:
  return "-" if x is None else f"{x:{spec}}{suffix}"


def render_table(record: Dict[str, Any], markdown: bool = False) -> str:
  """The results table of a throughput record (plain text, or markdown for the README)."""
  headers = ["model", "ctr_zoo ex/s", "DeepCTR peer", "DeepCTR ex/s", "ratio", "MFLOP/ex",
             "matmul GFLOP/s", "roofline ex/s", "of roofline", "DeepCTR of roofline",
             "best possible ratio", "embedding step ms", "ceiling ex/s", "ceiling ratio",
             "bf16 ex/s", "bf16 ratio", "bf16 of bf16 roofline",
             "peak RSS MiB", "jit", "notes"]
  rows = []
  for r in record.get("models", []):
    peer = r.get("deepctr") or {}
    ratio = r.get("ratio_to_deepctr")
    target = TARGET_RATIOS.get(r["model"])
    ratio_s = _fmt(ratio, ".2f", "x")
    if ratio is not None and target is not None:
      ratio_s += f" (target {target:.1f}x)"
    frac = r.get("fraction_of_roofline")
    frac_s = _fmt(None if frac is None else 100 * frac, ".0f", "%")
    if frac is not None and r["model"] in TARGET_ROOFLINE:
      frac_s += f" (target {100 * TARGET_ROOFLINE[r['model']]:.0f}%)"
    peer_frac = peer.get("fraction_of_roofline")
    # At 100% of the roofline ctr_zoo would be 1 / peer_frac times DeepCTR: no ratio above that is
    # reachable on this machine, whatever the implementation.
    best = None if not peer_frac else 1.0 / peer_frac
    rss = max([v for v in (r.get("peak_rss_mib"), peer.get("peak_rss_mib")) if v] or [0]) or None
    rows.append([
        r["model"], _fmt_rate(r.get("examples_per_sec")), peer.get("name", "-"),
        _fmt_rate(peer.get("examples_per_sec")), ratio_s,
        _fmt(r.get("train_mflop_per_example"), ".2f"), _fmt(r.get("roofline_gflops"), ".1f"),
        _fmt_rate(r.get("roofline_examples_per_sec")),
        frac_s, _fmt(None if peer_frac is None else 100 * peer_frac, ".0f", "%"),
        _fmt(best, ".2f", "x"), _fmt(r.get("embedding_step_ms"), ".1f"),
        _fmt_rate(r.get("ceiling_examples_per_sec")), _fmt(r.get("ceiling_ratio_to_deepctr"), ".2f", "x"),
        _fmt_rate(r.get("bf16_examples_per_sec")),
        _fmt(r.get("bf16_ratio_to_deepctr"), ".2f", "x"),
        _fmt(None if r.get("bf16_fraction_of_bf16_roofline") is None
             else 100 * r["bf16_fraction_of_bf16_roofline"], ".0f", "%"), _fmt(rss, ".0f"),
        r.get("jit_compile", "-") if r.get("examples_per_sec") else "-",
        r.get("note", "")])
  lines = []
  extra = []
  roof = record.get("roofline") or {}
  if roof:
    extra.append(f"matmul roofline at start: {roof['gflops']:.1f} GFLOP/s (tf.matmul "
                 f"{'x'.join(map(str, roof['shape']))}); each model's 'matmul GFLOP/s' is measured "
                 "in windows interleaved with its own training windows (same contention)")
  if any(r.get("embedding_step_ms") is not None for r in record.get("models", [])):
    extra.append("embedding step ms: the float32 model's lookups, row regularizers and sparse "
                 "AdaGrad table updates alone (no interaction, tower or Adam), timed in the same "
                 "windows; ceiling ex/s = 1 / (matmul FLOPs at the roofline + embedding step): no "
                 "step that keeps this embedding work is faster; ceiling ratio = ceiling / DeepCTR")
  bf16_roofs = [r["roofline_bf16_gflops"] for r in record.get("models", [])
                if r.get("roofline_bf16_gflops")]
  if bf16_roofs:
    extra.append(
        "bf16 columns: the same ctr_zoo model built with precision='mixed_bfloat16' (bfloat16 "
        "compute, float32 variables and loss), timed in the same interleaved windows against the "
        "same float32 DeepCTR peer; its roofline is a bfloat16 tf.matmul (median "
        f"{statistics.median(bf16_roofs):.0f} GFLOP/s). The float32 columns are the headline.")
  pipe = record.get("input_pipeline") or {}
  if pipe.get("examples_per_sec"):
    extra.append(
        f"input pipeline ({pipe.get('model', '?')}): make_dataset alone "
        f"{_fmt_rate(pipe['examples_per_sec'])} ex/s; train step cached "
        f"{_fmt_rate(pipe.get('step_cached_examples_per_sec'))} ex/s, fed by make_dataset "
        f"{_fmt_rate(pipe.get('step_fed_examples_per_sec'))} ex/s; input/step = "
        f"{_fmt(pipe.get('input_over_step'), '.1f', 'x')} (target {TARGET_INPUT_OVER_STEP:.0f}x)")
  elif pipe.get("note"):
    extra.append(f"input pipeline: {pipe['note']}")
  lat = record.get("latency") or {}
  if lat.get("batches"):
    parts = [f"batch {b}: p50 {v['p50_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms"
             for b, v in sorted(lat["batches"].items(), key=lambda kv: int(kv[0]))]
    extra.append(f"exported SavedModel latency on raw rows ({lat.get('model', '?')}): "
                 + "; ".join(parts))
  elif lat.get("note"):
    extra.append(f"latency: {lat['note']}")
  cfg = record.get("config", {})
  if cfg:
    extra.append(f"sizes: batch {cfg.get('batch_size')}, {cfg.get('num_fields')} fields x "
                 f"{cfg.get('vocab_size')} ids x dim {cfg.get('embedding_dim')} + "
                 f"{cfg.get('num_dense')} dense, MLP {cfg.get('mlp')}, {cfg.get('cross_layers')} "
                 f"cross layers; median of {cfg.get('num_windows')} windows x "
                 f"{cfg.get('steps_per_window')} steps after {cfg.get('warmup_steps')} warm-up")
  if record.get("machine"):
    extra.append(f"machine: {record['machine']}")
  if markdown:
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
      lines.append("| " + " | ".join(str(c) for c in row) + " |")
    lines.append("")
    lines.extend(f"- {e}" for e in extra)
  else:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for row in rows:
      lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    lines.extend(extra)
  return "\n".join(lines)


def git_revision() -> str:
  try:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=10, check=True).stdout.strip()
  except Exception:  # pylint: disable=broad-except
    return "unknown"


def machine_description() -> str:
  cpu = "unknown CPU"
  try:
    with open("/proc/cpuinfo") as fh:
      for line in fh:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  load = os.getloadavg() if hasattr(os, "getloadavg") else (0, 0, 0)
  return (f"{os.cpu_count()} cores, {cpu}; TF {tf.__version__}; load average at start "
          f"{load[0]:.1f} (shared machine)")


# --------------------------------------------------------------------------
# The DeepCTR side.
# --------------------------------------------------------------------------
def prepare_deepctr(model_name: str, sizes: BenchSizes, batches, seed: int):
  """Builds the DeepCTR peer of `model_name`: ((step, sync) or None, info dict)."""
  from benchmarks import deepctr_peers  # pylint: disable=g-import-not-at-top
  if model_name not in deepctr_peers.PEER_NAMES:
    return None, {"note": "no DeepCTR equivalent"}
  ok, why = deepctr_peers.availability()
  if not ok:
    return None, {"note": why}
  dense, cats = feature_names(sizes)
  tf.keras.utils.set_random_seed(seed)
  model = deepctr_peers.build(model_name, cats, dense, sizes.vocab_size, sizes.embedding_dim,
                              sizes.mlp, sizes.cross_layers, sizes.low_rank, sizes.num_experts)
  peer_batches = [(deepctr_peers.to_peer_inputs(f, cats, dense), y) for f, y in batches]
  runner = deepctr_peers.make_train_step(model, peer_batches)
  return runner, {"name": f"DeepCTR {why} {deepctr_peers.PEER_NAMES[model_name]}",
                  "optimizer": "Adam (all variables), model.fit's train function"}


# --------------------------------------------------------------------------
# The ctr_zoo side.
# --------------------------------------------------------------------------
def ctr_zoo_overrides(model_name: str, sizes: BenchSizes, config_class) -> Dict[str, Any]:
  """Config overrides that set the benchmark's sizes, for the fields `config_class` has."""
  wanted = {
      "dnn_dims": tuple(sizes.mlp), "num_cross_layers": sizes.cross_layers,
      "low_rank": sizes.low_rank, "num_experts": sizes.num_experts,
      "num_projections": sizes.cdot_k,
      "dropout": 0.0,  # DeepCTR's default dnn_dropout is 0 too
  }
  fields = {f.name for f in dataclasses.fields(config_class)}
  return {k: v for k, v in wanted.items() if k in fields and v is not None}


def split_optimizer(model, embedding_optimizer: str = "adagrad"):
  """ctr_zoo's embedding/dense split: a sparse optimizer on tables, Adam on the rest.

  Uses `ctr_zoo.optimizers.split.SplitOptimizer` (embedding set = the model's
  `embedding_variables`); falls back to TFRS's CompositeOptimizer over two
  legacy optimizers while that module is absent. Both hand IndexedSlices to
  the sparse kernels. AdaGrad on the tables matches the issue's measurement
  and the models' `default_optimizers` hint.

  Returns:
    (optimizer, description).
  """
  try:
    from ctr_zoo.optimizers import split  # pylint: disable=g-import-not-at-top
  except ImportError:
    split = None
  if split is not None:
    opt = split.SplitOptimizer(embedding_optimizer=embedding_optimizer, dense_optimizer="adam",
                               embedding_variables=lambda: model.embedding_variables)
    kind = type(opt.embedding_optimizer)
    return opt, (f"SplitOptimizer({embedding_optimizer} [{kind.__module__.split('.')[0]}.{kind.__name__}] "
                 "on embedding_variables, adam on dense)")
  import tensorflow_recommenders as tfrs  # pylint: disable=g-import-not-at-top
  emb = list(model.embedding_variables)
  dense = list(model.dense_variables)
  opt = tfrs.experimental.optimizers.CompositeOptimizer([
      (tf.keras.optimizers.legacy.Adagrad(0.05, initial_accumulator_value=1e-6), lambda: emb),
      (tf.keras.optimizers.legacy.Adam(1e-3), lambda: dense)])
  return opt, "CompositeOptimizer(legacy Adagrad on embeddings, legacy Adam on dense)"


def make_trainer_step(model, optimizer, jit_compile: bool):
  """The product's step: ctr_zoo.training.Trainer's tf.function train step."""
  from ctr_zoo.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  trainer = trainer_lib.Trainer(model, optimizer, trainer_lib.TrainerConfig(
      deterministic=False, jit_compile=jit_compile))
  return trainer._train_step  # pylint: disable=protected-access


def embedding_layers(model) -> list:
  """The model's top-level layers that own tables (FeatureEmbedding, LinearLogit)."""
  return [layer for layer in model.layers if getattr(layer, "embedding_variables", None)]


def make_embedding_step(model):
  """The model's embedding work alone: its lookups, row regularizers and table updates.

  Each layer of `embedding_layers(model)` looks up the batch as in the model;
  the loss is sum_o mean((o - 1)^2) over their outputs plus their regularization
  losses, so every looked-up row gets a gradient, and a fresh
  `split_optimizer(model)` applies those to the tables (its sparse AdaGrad:
  the same kernels as the model's step). No interaction, tower or dense
  optimizer work. It trains the model's tables on a meaningless loss, so it
  is for timing only.

  Raises:
    ValueError: the model has no embedding layers.
  """
  layers = embedding_layers(model)
  if not layers:
    raise ValueError(f"{model.name}: no layer with embedding_variables")
  variables = [v for layer in layers for v in layer.embedding_variables]
  optimizer, _ = split_optimizer(model)

  @tf.function
  def step(features, labels):
    del labels
    with tf.GradientTape() as tape:
      outputs = []
      for layer in layers:
        out = layer(features, training=True)
        outputs.extend(out.values() if isinstance(out, dict) else [out])
      loss = tf.add_n([tf.reduce_mean(tf.square(tf.cast(o, tf.float32) - 1.0)) for o in outputs])
      losses = [l for layer in layers for l in layer.losses]
      if losses:
        loss += tf.add_n([tf.cast(l, tf.float32) for l in losses])
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss

  return step


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


# Layers whose output starts the purely dense part of ctr_zoo's models.
DENSE_PART_INPUTS = ("x0", "fields")


def make_dense_part_jit_step(model, optimizer):
  """Embedding lookups plain, the dense part XLA-compiled, the optimizer outside XLA.

  The model is cut at its first layer in DENSE_PART_INPUTS (x0 (B, d), or
  the field stack (B, n, e)): everything after it must depend on that tensor
  only. The lookups and the sparse optimizer kernels stay out of XLA (on CPU
  XLA turns the table gradients into dense scatters); forward and backward of
  the dense part run as XLA clusters.

  Raises:
    ValueError: the model has no such cut (e.g. a linear part reads the inputs).
  """
  for name in DENSE_PART_INPUTS:
    try:
      cut = model.get_layer(name).output
    except ValueError:
      continue
    front = tf.keras.Model(model.inputs, cut)
    back = tf.keras.Model(cut, model.output)  # ValueError when the graph is not cut here
    break
  else:
    raise ValueError(f"{model.name}: no layer named one of {DENSE_PART_INPUTS} to cut at")
  variables = model.trainable_variables
  dense_part = tf.function(lambda x: back(x, training=True), jit_compile=True)

  @tf.function
  def step(features, labels):
    labels = tf.reshape(tf.cast(labels, tf.float32), (-1, 1))  # (B, 1)
    with tf.GradientTape() as tape:
      probs = dense_part(front(features, training=True))  # (B, 1)
      loss = tf.reduce_mean(tf.keras.losses.binary_crossentropy(labels, probs))
      if model.losses:
        loss += tf.add_n(model.losses)
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss

  return step


def _cycle(step_fn, batches):
  state = {"i": 0}

  def step():
    features, labels = batches[state["i"] % len(batches)]
    state["i"] += 1
    return step_fn(features, labels)

  return step


def _sync(out):
  return float(out.numpy())


def build_ctr_zoo_model(model_name: str, spec, sizes: BenchSizes, seed: int,
                        precision: str = "float32"):
  """ctr_zoo.models.build(name, spec, precision=precision, **size overrides)."""
  from ctr_zoo.models import registry  # pylint: disable=g-import-not-at-top
  try:
    import ctr_zoo.models as zoo_models  # pylint: disable=g-import-not-at-top
    build = getattr(zoo_models, "build", registry.build)
  except ImportError:
    build = registry.build
  _import_model_modules()
  tf.keras.backend.clear_session()
  tf.keras.utils.set_random_seed(seed)
  overrides = ctr_zoo_overrides(model_name, sizes, registry.config_class(model_name))
  return build(model_name, spec, precision=precision, **overrides), overrides


def _import_model_modules():
  """Imports every module of ctr_zoo/models so they register (until __init__ does)."""
  import importlib  # pylint: disable=g-import-not-at-top
  import pkgutil  # pylint: disable=g-import-not-at-top
  import ctr_zoo.models as zoo_models  # pylint: disable=g-import-not-at-top
  for info in pkgutil.iter_modules(zoo_models.__path__):
    if not info.name.endswith("_test"):
      try:
        importlib.import_module(f"ctr_zoo.models.{info.name}")
      except Exception as e:  # pylint: disable=broad-except
        logging.warning("could not import ctr_zoo.models.%s: %s", info.name, e)


JIT_MODES = {"off": "off", "dense": "dense part"}
# The mixed-precision variant: no XLA, layers in bfloat16, float32 variables.
BF16_MODE = "bf16"


def make_ctr_zoo_step(mode: str, model, optimizer):
  if mode in ("off", BF16_MODE):
    return make_trainer_step(model, optimizer, jit_compile=False)
  return make_dense_part_jit_step(model, optimizer)


def prepare_ctr_zoo(model_name: str, sizes: BenchSizes, spec, tf_batches, jit: str, seed: int,
                    bfloat16: bool = False):
  """Builds ctr_zoo's model once per mode: ({mode: (step, sync)}, {mode: model}, info).

  Modes: the float32 jit modes of `jit` ("off", "dense"), plus BF16_MODE
  (precision="mixed_bfloat16", no XLA) when `bfloat16`.
  """
  runners, models, info = {}, {}, {"modes": {}}
  modes = {"auto": ["off", "dense"], "on": ["dense"], "off": ["off"]}[jit]
  for mode in modes + ([BF16_MODE] if bfloat16 else []):
    precision = "mixed_bfloat16" if mode == BF16_MODE else "float32"
    try:
      model, overrides = build_ctr_zoo_model(model_name, spec, sizes, seed, precision)
    except Exception as e:  # pylint: disable=broad-except
      if mode == BF16_MODE:
        info["modes"][mode] = {"error": f"{type(e).__name__}: {e}"[:300]}
        continue
      return {}, {}, {"note": f"ctr_zoo model unavailable: {type(e).__name__}: {e}"[:300]}
    info["overrides"] = {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}
    optimizer, info["optimizer"] = split_optimizer(model)
    try:
      step_fn = make_ctr_zoo_step(mode, model, optimizer)
    except Exception as e:  # pylint: disable=broad-except
      info["modes"][mode] = {"error": f"{type(e).__name__}: {e}"[:300]}
      continue
    runners[mode] = (_cycle(step_fn, tf_batches), _sync)
    models[mode] = model
    if hasattr(model, "parameter_counts"):
      info["parameters"] = model.parameter_counts()
  return runners, models, info


def benchmark_model(model_name: str, sizes: BenchSizes, spec, batches, timing: Dict[str, int],
                    jit: str, seed: int, with_deepctr: bool, bfloat16: bool = False):
  """ctr_zoo's model (each jit mode) and its DeepCTR peer, windows interleaved.

  Returns:
    (zoo result dict, peer result dict or None, the fastest ctr_zoo model or None).
  """
  tf.keras.backend.clear_session()
  tf_batches = [({k: tf.constant(v) for k, v in f.items()}, tf.constant(y)) for f, y in batches]
  runners, models, zoo = prepare_ctr_zoo(model_name, sizes, spec, tf_batches, jit, seed, bfloat16)
  peer = None
  runners = {f"ctr_zoo/{m}": r for m, r in runners.items()}
  if with_deepctr:
    try:
      peer_runner, peer = prepare_deepctr(model_name, sizes, batches, seed)
      if peer_runner is not None:
        runners["deepctr"] = peer_runner
    except Exception as e:  # pylint: disable=broad-except
      peer = {"note": f"DeepCTR peer failed: {type(e).__name__}: {e}"[:300]}
  if not runners:
    return zoo, peer, None
  if "off" in models:
    try:
      runners["embedding_only"] = (_cycle(make_embedding_step(models["off"]), tf_batches), _sync)
    except Exception as e:  # pylint: disable=broad-except
      zoo["embedding_step_error"] = f"{type(e).__name__}: {e}"[:300]
  mm_step, mm_sync, mm_flops = matmul_runner()
  runners["matmul"] = (mm_step, mm_sync)
  if BF16_MODE in models:
    bf_step, bf_sync, _ = matmul_runner(dtype=tf.bfloat16)
    runners["matmul_bf16"] = (bf_step, bf_sync)
  try:
    timings = time_interleaved(runners, sizes.batch_size, **timing)
  except Exception as e:  # pylint: disable=broad-except
    # One runner failed at run time: time the others separately.
    timings = {}
    for name, (step, sync) in runners.items():
      try:
        timings[name] = time_windows(step, sync, sizes.batch_size, **timing)
      except Exception as e2:  # pylint: disable=broad-except
        target = zoo["modes"].setdefault(name.split("/")[1], {}) if name.startswith("ctr_zoo/") else peer
        target["error"] = f"{type(e2).__name__}: {e2}"[:300]
    logging.warning("interleaved timing failed (%s); timed the runners one by one", e)
  if "matmul" in timings:
    # Rates are "batch_size per step"; a matmul step does mm_flops.
    gflops = [r / sizes.batch_size * mm_flops / 1e9 for r in timings["matmul"].rates]
    zoo["roofline_gflops"] = float(statistics.median(gflops))
    zoo["roofline_windows_gflops"] = [round(g, 1) for g in gflops]
  if "matmul_bf16" in timings:
    gflops = [r / sizes.batch_size * mm_flops / 1e9 for r in timings["matmul_bf16"].rates]
    zoo["roofline_bf16_gflops"] = float(statistics.median(gflops))
  if "embedding_only" in timings:
    zoo["embedding_step_ms"] = 1000.0 * sizes.batch_size / timings["embedding_only"].median
  if "deepctr" in timings:
    t = timings["deepctr"]
    peer.update({"examples_per_sec": t.median, "windows": [round(r) for r in t.rates]})
  best = None
  for mode in models:
    t = timings.get(f"ctr_zoo/{mode}")
    if t is None:
      continue
    zoo["modes"][mode] = {"examples_per_sec": t.median, "windows": [round(r) for r in t.rates]}
    # The headline is float32, like the peer and the roofline; bfloat16 is reported beside it.
    if mode != BF16_MODE and (best is None or t.median > zoo["modes"][best]["examples_per_sec"]):
      best = mode
  peak = max([t.peak_rss_mib for t in timings.values()] or [0])
  zoo["peak_rss_mib"] = peak
  if best is None:
    zoo["note"] = zoo.get("note") or "every ctr_zoo step variant failed: " + "; ".join(
        f"{m}: {v.get('error')}" for m, v in zoo["modes"].items())
    return zoo, peer, None
  zoo["examples_per_sec"] = zoo["modes"][best]["examples_per_sec"]
  zoo["windows"] = zoo["modes"][best]["windows"]
  zoo["jit_compile"] = JIT_MODES[best]
  return zoo, peer, models[best]


# --------------------------------------------------------------------------
# Input pipeline and serving latency.
# --------------------------------------------------------------------------
def write_parquet_shards(directory: str, spec, sizes: BenchSizes, num_shards: int, rows_per_shard: int,
                         seed: int) -> List[str]:
  """Writes transformed (model-input) Parquet shards: label, float dense, int64 ids."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  shard_sizes = dataclasses.replace(sizes, batch_size=rows_per_shard)
  paths = []
  for i, (features, labels) in enumerate(synthetic_batches(shard_sizes, num_shards, seed)):
    columns = {spec.label: pa.array(labels.astype(np.int64))}
    for f in spec.features:
      columns[f.name] = pa.array(features[f.name])
    path = os.path.join(directory, f"part-{i:05d}.parquet")
    pq.write_table(pa.table(columns), path)
    paths.append(path)
  return paths


def make_input_dataset(paths: Sequence[str], spec, batch_size: int, seed: int) -> tf.data.Dataset:
  """ctr_zoo.datasets.make_dataset over `paths`, shuffled, repeating forever."""
  from ctr_zoo.datasets import input_pipeline  # pylint: disable=g-import-not-at-top
  make_dataset = getattr(input_pipeline, "make_dataset")
  return make_dataset(list(paths), spec, batch_size=batch_size, shuffle=True, seed=seed,
                      epochs=None, drop_remainder=True)


def measure_input_pipeline(spec, sizes: BenchSizes, batches, timing: Dict[str, int], seed: int,
                           step_fn=None) -> Dict[str, Any]:
  """Examples/s of make_dataset alone, and of the train step fed by it vs by cached tensors.

  The three runners' windows are interleaved (see `time_interleaved`). The
  input-alone windows are `4 * steps_per_window` batches long.
  """
  with tempfile.TemporaryDirectory(prefix="ctr_zoo_throughput_") as directory:
    rows = sizes.batch_size * 4
    paths = write_parquet_shards(directory, spec, sizes, num_shards=4, rows_per_shard=rows, seed=seed)
    iterator = iter(make_input_dataset(paths, spec, sizes.batch_size, seed))
    alone = time_windows(lambda: next(iterator), lambda out: out, sizes.batch_size,
                         warmup_steps=timing["warmup_steps"],
                         steps_per_window=4 * timing["steps_per_window"],
                         num_windows=timing["num_windows"])
    out = {"examples_per_sec": alone.median, "windows": [round(r) for r in alone.rates],
           "shards": len(paths), "rows_per_shard": rows}
    if step_fn is not None:
      fed_iter = iter(make_input_dataset(paths, spec, sizes.batch_size, seed))

      def fed_step():
        features, labels = next(fed_iter)
        return step_fn(features, labels)

      tf_batches = [({k: tf.constant(v) for k, v in f.items()}, tf.constant(y)) for f, y in batches]
      t = time_interleaved({"fed": (fed_step, _sync), "cached": (_cycle(step_fn, tf_batches), _sync)},
                           sizes.batch_size, **timing)
      out["step_fed_examples_per_sec"] = t["fed"].median
      out["step_cached_examples_per_sec"] = t["cached"].median
      out["input_over_step"] = alone.median / t["cached"].median
      out["fed_over_cached"] = t["fed"].median / t["cached"].median
    return out


def raw_rows(spec, batch_size: int, seed: int) -> Dict[str, np.ndarray]:
  """Raw string values (Criteo-like) for every feature: (B,) tf.string-able arrays."""
  rng = np.random.default_rng(seed)
  out = {}
  for f in spec.features:
    if f in spec.dense_features:
      vals = rng.integers(0, 500, batch_size).astype(str)
    else:
      vals = np.array([f"{x:08x}" for x in rng.integers(0, 2**32, batch_size)])
    vals[rng.random(batch_size) < 0.05] = ""  # missing values
    out[f.name] = vals.astype(object)
  return out


def measure_serving_latency(model, spec, seed: int, calls: int,
                            batch_sizes: Sequence[int] = (1, 256)) -> Dict[str, Any]:
  """p50/p99 latency of the exported raw-feature SavedModel's serving_default."""
  from ctr_zoo.training import export  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory(prefix="ctr_zoo_export_") as directory:
    path = os.path.join(directory, "saved_model")
    export.export_saved_model(model, spec, path)
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    out = {}
    for b in batch_sizes:
      inputs = {k: tf.constant(v.astype(str)) for k, v in raw_rows(spec, b, seed).items()}
      for _ in range(10):
        serve(**inputs)["probability"].numpy()
      seconds = []
      for _ in range(calls):
        start = time.perf_counter()
        serve(**inputs)["probability"].numpy()
        seconds.append(time.perf_counter() - start)
      out[str(b)] = latency_percentiles(seconds)
      out[str(b)]["calls"] = calls
    return out


# --------------------------------------------------------------------------
# main.
# --------------------------------------------------------------------------
def model_row(model_name: str, sizes: BenchSizes, gflops: float, zoo: Dict[str, Any],
              peer: Optional[Dict[str, Any]]) -> Dict[str, Any]:
  """One model's record: rates, ratio to DeepCTR, FLOPs and fraction of the roofline."""
  flops = train_flops_per_example(model_name, sizes)
  gflops = zoo.get("roofline_gflops") or gflops  # measured in this model's own rounds
  roof = roofline_examples_per_sec(gflops, flops)
  row = {"model": model_name, "train_mflop_per_example": flops / 1e6,
         "roofline_examples_per_sec": roof}
  row.update({k: v for k, v in zoo.items() if k != "model"})
  rate = zoo.get("examples_per_sec")
  row["fraction_of_roofline"] = rate / roof if rate else None
  if zoo.get("embedding_step_ms") is not None:
    row["ceiling_examples_per_sec"] = ceiling_examples_per_sec(
        gflops, flops, sizes.batch_size, zoo["embedding_step_ms"])
  if peer is not None:
    row["deepctr"] = peer
    if rate and peer.get("examples_per_sec"):
      row["ratio_to_deepctr"] = rate / peer["examples_per_sec"]
      peer["fraction_of_roofline"] = peer["examples_per_sec"] / roof
    if row.get("ceiling_examples_per_sec") and peer.get("examples_per_sec"):
      row["ceiling_ratio_to_deepctr"] = row["ceiling_examples_per_sec"] / peer["examples_per_sec"]
  bf16 = (zoo.get("modes") or {}).get(BF16_MODE) or {}
  if bf16.get("examples_per_sec"):
    row["bf16_examples_per_sec"] = bf16["examples_per_sec"]
    if zoo.get("roofline_bf16_gflops"):
      row["bf16_fraction_of_bf16_roofline"] = bf16["examples_per_sec"] / roofline_examples_per_sec(
          zoo["roofline_bf16_gflops"], flops)
    if peer is not None and peer.get("examples_per_sec"):
      row["bf16_ratio_to_deepctr"] = bf16["examples_per_sec"] / peer["examples_per_sec"]
  notes = [n for n in (zoo.get("note"), (peer or {}).get("note")) if n]
  row["note"] = "; ".join(notes)
  return row


def _json_default(x):
  if isinstance(x, (np.floating, np.integer)):
    return x.item()
  return str(x)


def main(argv):
  del argv
  if not FLAGS.is_parsed() or FLAGS["verbosity"].using_default_value:
    logging.set_verbosity(logging.WARNING)  # the library's INFO lines would drown the table
  if FLAGS.render_markdown:
    with open(FLAGS.record) as fh:
      print(render_table(json.load(fh), markdown=True))
    return
  unknown = [m for m in FLAGS.models if m not in ALL_MODELS]
  if unknown:
    raise app.UsageError(f"--models has unknown model(s) {unknown}; known: {list(ALL_MODELS)}")
  sizes = BenchSizes(batch_size=FLAGS.batch_size, num_fields=FLAGS.num_fields,
                     vocab_size=FLAGS.vocab_size, embedding_dim=FLAGS.embedding_width,
                     num_dense=FLAGS.num_dense, mlp=tuple(int(u) for u in FLAGS.mlp),
                     cross_layers=FLAGS.cross_layers, low_rank=FLAGS.low_rank,
                     num_experts=FLAGS.num_experts, cdot_k=FLAGS.cdot_k)
  timing = {"warmup_steps": FLAGS.warmup_steps, "steps_per_window": FLAGS.steps_per_window,
            "num_windows": FLAGS.num_windows}
  record = {"benchmark": "throughput", "time": datetime.datetime.now().isoformat(timespec="seconds"),
            "git_revision": git_revision(), "machine": machine_description(), "seed": FLAGS.data_seed,
            "config": dict(dataclasses.asdict(sizes), **timing, jit=FLAGS.jit,
                           bfloat16=FLAGS.bfloat16),
            "models": []}
  print(f"measuring the matmul roofline ({record['machine']}) ...", flush=True)
  roof = measure_matmul_gflops()
  record["roofline"] = roof
  print(f"  tf.matmul: {roof['gflops']:.1f} GFLOP/s", flush=True)
  batches = synthetic_batches(sizes, FLAGS.num_batches, FLAGS.data_seed)
  spec = benchmark_spec(sizes)
  kept_models = {}
  for name in FLAGS.models:
    print(f"{name}: ctr_zoo and its DeepCTR peer, windows interleaved ...", flush=True)
    zoo, peer, model = benchmark_model(name, sizes, spec, batches, timing, FLAGS.jit, FLAGS.data_seed,
                                       FLAGS.deepctr, FLAGS.bfloat16)
    if model is not None:
      kept_models[name] = model
    row = model_row(name, sizes, roof["gflops"], zoo, peer)
    record["models"].append(row)
    print(f"  ctr_zoo {_fmt_rate(row.get('examples_per_sec'))} ex/s (jit {row.get('jit_compile')}), "
          f"DeepCTR {_fmt_rate((peer or {}).get('examples_per_sec'))} ex/s, ratio "
          f"{_fmt(row.get('ratio_to_deepctr'), '.2f', 'x')}; mixed_bfloat16 "
          f"{_fmt_rate(row.get('bf16_examples_per_sec'))} ex/s, ratio "
          f"{_fmt(row.get('bf16_ratio_to_deepctr'), '.2f', 'x')} {row.get('note', '')}", flush=True)
  pipe_model = next((m for m in ("dcn_v2", "dnn") if m in kept_models), None) or next(iter(kept_models), None)
  if FLAGS.input_pipeline:
    print("input pipeline ...", flush=True)
    try:
      step_fn = None
      if pipe_model is not None:
        row = next(r for r in record["models"] if r["model"] == pipe_model)
        model = kept_models[pipe_model]
        optimizer, _ = split_optimizer(model)
        mode = {v: k for k, v in JIT_MODES.items()}[row["jit_compile"]]
        step_fn = make_ctr_zoo_step(mode, model, optimizer)
      record["input_pipeline"] = measure_input_pipeline(spec, sizes, batches, timing, FLAGS.data_seed, step_fn)
      record["input_pipeline"]["model"] = pipe_model
    except Exception as e:  # pylint: disable=broad-except
      record["input_pipeline"] = {"note": f"not measured: {type(e).__name__}: {e}"[:300]}
  if FLAGS.latency:
    print("serving latency ...", flush=True)
    if pipe_model is None:
      record["latency"] = {"note": "not measured: no ctr_zoo model was built"}
    else:
      try:
        record["latency"] = {"model": pipe_model, "batches": measure_serving_latency(
            kept_models[pipe_model], spec, FLAGS.data_seed, FLAGS.latency_calls)}
      except Exception as e:  # pylint: disable=broad-except
        record["latency"] = {"note": f"not measured: {type(e).__name__}: {e}"[:300]}
  record["process_peak_rss_mib"] = process_peak_rss_mib()
  print()
  print(render_table(record))
  if FLAGS.record:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.record)), exist_ok=True)
    with open(FLAGS.record, "w") as fh:
      json.dump(record, fh, indent=1, default=_json_default)
    print(f"\nwrote {FLAGS.record}")


if __name__ == "__main__":
  app.run(main)
