"""Step time of one embedding-table update against vocabulary size.

One table of shape (V, dim); each step gathers a batch of ids, takes the
gradient of a linear loss (a tf.IndexedSlices) and applies it. The ids are
drawn from the first `id_range` rows at every V (the same id batches at every
size), so the set of touched rows is fixed and only the table size changes.
Figures are medians over timed windows after a warm-up; the windows of the
different sizes interleave (rotating order), so machine noise hits all sizes
alike. The figure that
matters is the ratio of the largest to the smallest V for each optimizer.

    .venv/bin/python benchmarks/sparse_step_time.py
    .venv/bin/python benchmarks/sparse_step_time.py --vocab_sizes=10000,1000000 --optimizers=ftrl
    .venv/bin/python benchmarks/sparse_step_time.py --optimizers=lazy_adam,keras_adam

The record is appended to <results>/sparse_step_time.jsonl (--results, default
runs/benchmarks/) and, with --record=PATH, to PATH too.
"""

import gc
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from experiments import cli  # noqa: E402

cli.import_tensorflow_quietly()  # Keras 2 before TensorFlow, without its start-up lines
import tensorflow as tf  # noqa: E402

from benchmarks import common_flags  # noqa: E402,F401  (--results, --record)
from benchmarks import records  # noqa: E402
from ctr_zoo.optimizers import adagrad  # noqa: E402
from ctr_zoo.optimizers import ftrl  # noqa: E402
from ctr_zoo.optimizers import group_lasso_ftrl  # noqa: E402
from ctr_zoo.optimizers import lazy_adam  # noqa: E402

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(common_flags)
flags.DEFINE_list("vocab_sizes", ["10000", "1000000", "10000000"], "Table sizes V.")
flags.DEFINE_list("optimizers", ["ftrl", "group_lasso_ftrl", "adagrad", "lazy_adam", "keras_adagrad", "keras_adam"],
                  "Optimizers to time.")
flags.DEFINE_integer("dim", 16, "Embedding width.")
flags.DEFINE_integer("batch", 4096, "Ids per step.")
flags.DEFINE_integer("id_range", 10000, "Ids are drawn from the first id_range rows (<= the smallest V).")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps (tracing, slot creation).")
flags.DEFINE_integer("windows", 5, "Timed windows; the median is reported.")
flags.DEFINE_float("window_seconds", 1.0, "Target length of one window (steps per window derive from it).")
flags.DEFINE_integer("seed", 0, "Seed of the id batches and the table.")

OPTIMIZERS = {
    "ftrl": lambda: ftrl.Ftrl(learning_rate=0.01),
    "group_lasso_ftrl": lambda: group_lasso_ftrl.GroupLassoFtrl(learning_rate=0.01, group_lasso=1e-3),
    # ctr_zoo's Adagrad: vectorised sparse rows; its dense path (V <= 4 x ids in
    # the batch) must never apply to these tables.
    "adagrad": lambda: adagrad.Adagrad(learning_rate=0.01),
    # Adam on the touched rows only (untouched rows keep w, m, v).
    "lazy_adam": lambda: lazy_adam.LazyAdam(learning_rate=1e-3),
    # Keras' legacy Adam: decays the whole m, v and moves every row each step.
    "keras_adam": lambda: tf.keras.optimizers.legacy.Adam(learning_rate=1e-3),
    "keras_adagrad": lambda: tf.keras.optimizers.legacy.Adagrad(learning_rate=0.01),
}


def make_step(name, vocab, weights):
  """Returns (run(steps, offset, id_batches), keepalive) for one table size."""
  table = tf.Variable(tf.random.uniform((vocab, FLAGS.dim), -0.05, 0.05, seed=FLAGS.seed), name="embedding/table")
  opt = OPTIMIZERS[name]()

  @tf.function
  def step(ids):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.gather(table, ids) * weights)  # (B, dim) -> ()
    grad = tape.gradient(loss, table)  # IndexedSlices over B ids
    opt.apply_gradients([(grad, table)])
    return opt.iterations.read_value()  # ordered after the update

  def run(steps, offset, id_batches):
    for s in range(steps):
      result = step(id_batches[(offset + s) % len(id_batches)])
    np.asarray(result)  # block until done

  return run, (table, opt)


def time_sizes(name, vocab_sizes, id_batches, weights):
  """Median ms per step for each V; windows of all sizes interleave (same noise)."""
  runs, keep, steps = {}, [], {}
  for vocab in vocab_sizes:
    run, objects = make_step(name, vocab, weights)
    run(FLAGS.warmup_steps, 0, id_batches)  # tracing, slot creation
    start = time.perf_counter()
    run(1, 0, id_batches)
    one = time.perf_counter() - start
    runs[vocab], steps[vocab] = run, int(np.clip(round(FLAGS.window_seconds / max(one, 1e-6)), 1, 50))
    keep.append(objects)
  per_step = {vocab: [] for vocab in vocab_sizes}
  for w in range(FLAGS.windows):
    order = vocab_sizes[w % len(vocab_sizes):] + vocab_sizes[:w % len(vocab_sizes)]  # rotate
    for vocab in order:
      start = time.perf_counter()
      runs[vocab](steps[vocab], w * steps[vocab], id_batches)
      per_step[vocab].append((time.perf_counter() - start) / steps[vocab])
  del runs, keep
  gc.collect()
  tf.keras.backend.clear_session()
  return {vocab: 1000.0 * float(np.median(t)) for vocab, t in per_step.items()}


def main(argv):
  del argv
  vocab_sizes = [int(v) for v in FLAGS.vocab_sizes]
  if FLAGS.id_range > min(vocab_sizes):
    raise app.UsageError(f"--id_range={FLAGS.id_range} exceeds the smallest vocabulary {min(vocab_sizes)}.")
  unknown = [o for o in FLAGS.optimizers if o not in OPTIMIZERS]
  if unknown:
    raise app.UsageError(f"unknown --optimizers {unknown}; known: {sorted(OPTIMIZERS)}")
  rng = np.random.default_rng(FLAGS.seed)
  id_batches = [tf.constant(rng.integers(0, FLAGS.id_range, FLAGS.batch), tf.int64) for _ in range(8)]
  weights = tf.constant(rng.normal(size=(FLAGS.batch, FLAGS.dim)), tf.float32)
  unique = np.mean([len(np.unique(b.numpy())) for b in id_batches])
  print(f"table dim {FLAGS.dim}, batch {FLAGS.batch} ids from the first {FLAGS.id_range} rows "
        f"(~{unique:.0f} unique per batch); median of {FLAGS.windows} windows, ms per step")
  results = {}
  print(f"{'optimizer':<18}" + "".join(f"{v:>14,}" for v in vocab_sizes) + f"{'ratio max/min V':>18}")
  for name in FLAGS.optimizers:
    row = time_sizes(name, vocab_sizes, id_batches, weights)
    results[name] = row
    ratio = row[max(vocab_sizes)] / row[min(vocab_sizes)]
    print(f"{name:<18}" + "".join(f"{row[v]:>14.2f}" for v in vocab_sizes) + f"{ratio:>17.2f}x", flush=True)
  record = {"benchmark": "sparse_step_time", "time": records.now(),
            "git_revision": records.git_revision(), "seed": FLAGS.seed,
            "dim": FLAGS.dim, "batch": FLAGS.batch, "id_range": FLAGS.id_range, "windows": FLAGS.windows,
            "tensorflow": tf.__version__, "ms_per_step": {k: {str(v): t for v, t in r.items()} for k, r in results.items()}}
  print(json.dumps(record))
  written = records.write_records([record], records.results_dir(FLAGS.results),
                                  "sparse_step_time.jsonl", FLAGS.record)
  print("appended the record to " + " and ".join(written))


if __name__ == "__main__":
  app.run(main)
