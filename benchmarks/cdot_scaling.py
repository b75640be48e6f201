"""CompressedDotProduct vs all-pairs dot interaction: time and peak memory against n.

For n fields of width d (batch B), times a forward + backward step (gradient
w.r.t. the inputs and the layer's weights) of
  - `DotInteraction` (DLRM, all pairs: builds the (B, n, n) Gram matrix), and
  - `CompressedDotProduct(k, "learned")` (X (X^T Y): O(n k d)),
and reports, per n: the median step time over several timed windows after a
warm-up, the ratio of the two, the largest tensor in each traced step graph
(exact, from the graph's static shapes), and the peak RSS growth of a fresh
subprocess that runs the step (measured; includes allocator overheads).

  .venv/bin/python benchmarks/cdot_scaling.py [--batch=512 --dim=16 --k=8 --fields=39,100,400]

The figures are appended as one JSON line to <results>/cdot_scaling.jsonl
(--results, default runs/benchmarks/) and, with --record=PATH, to PATH too.
"""

import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from experiments import cli  # noqa: E402

cli.import_tensorflow_quietly()  # Keras 2 before TensorFlow, without its start-up lines
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common_flags  # noqa: E402,F401  (--results, --record)
from benchmarks import records  # noqa: E402
from ctr_zoo.layers.compressed_dot import CompressedDotProduct  # noqa: E402
from ctr_zoo.layers.dot_interaction import DotInteraction  # noqa: E402

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(common_flags)
flags.DEFINE_integer("batch", 512, "Batch size B.")
flags.DEFINE_integer("dim", 16, "Field width d.")
flags.DEFINE_integer("k", 8, "CompressedDotProduct projections k.")
flags.DEFINE_list("fields", ["39", "100", "400"], "Numbers of fields n.")
flags.DEFINE_integer("windows", 5, "Timed windows (the median is reported).")
flags.DEFINE_integer("steps", 5, "Steps per timed window.")
flags.DEFINE_string("only", None, "Internal: run one 'layer:n' and print its peak RSS growth.")


def make_layer(name: str):
  if name == "dot":
    return DotInteraction()
  return CompressedDotProduct(FLAGS.k, projection="learned")


def make_step(layer, n: int):
  x = tf.constant(np.random.default_rng(0).normal(size=(FLAGS.batch, n, FLAGS.dim)).astype(np.float32))
  layer(x)  # build

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(tf.square(layer(x)))
    return tape.gradient(loss, [x] + layer.trainable_weights)

  return step, x


def largest_tensor_bytes(step, x) -> int:
  graph = step.get_concrete_function(x).graph
  best = 0
  for op in graph.get_operations():
    for t in op.outputs:
      if t.shape.rank is None or not t.shape.is_fully_defined() or t.dtype.size == 0:
        continue
      best = max(best, int(np.prod(t.shape.as_list(), dtype=np.int64)) * t.dtype.size)
  return best


def median_step_seconds(step, x) -> float:
  for _ in range(2):
    step(x)  # warm-up (tracing)
  times = []
  for _ in range(FLAGS.windows):
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
      out = step(x)
    _ = [o.numpy() for o in out]
    times.append((time.perf_counter() - start) / FLAGS.steps)
  return statistics.median(times)


def peak_rss_growth_mb(name: str, n: int) -> float:
  """Runs one step in a fresh process; returns its peak RSS growth in MiB."""
  argv = [sys.executable, os.path.abspath(__file__), f"--only={name}:{n}",
          f"--batch={FLAGS.batch}", f"--dim={FLAGS.dim}", f"--k={FLAGS.k}"]
  out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
  return float(out.strip().splitlines()[-1])


def run_only(spec: str) -> None:
  """Peak RSS (sampled every 0.5 ms) minus the RSS before the first step, in MiB."""
  name, n = spec.split(":")
  step, x = make_step(make_layer(name), int(n))
  step.get_concrete_function(x)  # trace outside the measured window
  process = psutil.Process()
  before = process.memory_info().rss
  peak = [before]
  done = threading.Event()

  def sample():
    while not done.is_set():
      peak[0] = max(peak[0], process.memory_info().rss)
      time.sleep(0.0005)

  sampler = threading.Thread(target=sample)
  sampler.start()
  for _ in range(3):
    _ = [o.numpy() for o in step(x)]
  done.set()
  sampler.join()
  print((peak[0] - before) / 2**20)


def main(argv):
  del argv
  if FLAGS.only:
    run_only(FLAGS.only)
    return
  print(f"B={FLAGS.batch} d={FLAGS.dim} k={FLAGS.k}; forward+backward step; "
        f"median of {FLAGS.windows} windows x {FLAGS.steps} steps; TF {tf.__version__}, "
        f"{os.cpu_count()} CPUs")
  header = (f"{'n':>5} | {'all-pairs ms':>12} {'CDot ms':>9} {'ratio':>6} | "
            f"{'largest tensor MiB (pairs / CDot)':>34} | {'peak RSS growth MiB (pairs / CDot)':>35}")
  print(header)
  print("-" * len(header))
  rows = []
  for n in (int(v) for v in FLAGS.fields):
    figures = {}
    for name in ("dot", "cdot"):
      step, x = make_step(make_layer(name), n)
      figures[name] = dict(ms=1e3 * median_step_seconds(step, x),
                           largest_mib=largest_tensor_bytes(step, x) / 2**20,
                           rss_mib=peak_rss_growth_mb(name, n))
    dot, cdot = figures["dot"], figures["cdot"]
    print(f"{n:>5} | {dot['ms']:>12.2f} {cdot['ms']:>9.2f} {dot['ms'] / cdot['ms']:>6.1f} | "
          f"{dot['largest_mib']:>16.1f} / {cdot['largest_mib']:<15.1f} | "
          f"{dot['rss_mib']:>17.1f} / {cdot['rss_mib']:<15.1f}")
    rows.append(dict(n=n, **{f"{k}_{m}": v for k, f in figures.items() for m, v in f.items()}))
  record = dict(benchmark="cdot_scaling", time=records.now(), git_revision=records.git_revision(),
                batch=FLAGS.batch, dim=FLAGS.dim, k=FLAGS.k, tf=tf.__version__, rows=rows)
  written = records.write_records([record], records.results_dir(FLAGS.results),
                                  "cdot_scaling.jsonl", FLAGS.record)
  print("appended the record to " + " and ".join(written))

if __name__ == "__main__":
  app.run(main)
