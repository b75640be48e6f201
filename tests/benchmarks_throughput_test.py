"""The throughput benchmark: FLOPs from graphs, timers, the record and its table, a tiny run."""

import itertools
import json
import os

import numpy as np

from tests import testing  # noqa: F401  (imports ctr_zoo before TensorFlow)
from benchmarks import flops
from benchmarks import harness
from benchmarks import throughput
from benchmarks import throughput_models as workload
from benchmarks import throughput_report as report

import tensorflow as tf

TINY = workload.BenchSizes(batch_size=64, num_fields=3, vocab_size=50, embedding_dim=4,
                           num_dense=2, mlp=(8, 8), cross_layers=2, low_rank=2,
                           num_experts=2, cdot_k=2)
TINY_TIMING = {"warmup_steps": 1, "steps_per_window": 1, "num_windows": 2}


def analytic_forward_flops(model: str, sizes: workload.BenchSizes) -> int:
  """The per-model FLOP formulas the benchmark used before counting graphs (the reference).

  n fields, e width, m = n + num_dense, d = n e + num_dense, L cross layers,
  r rank, K experts, k CDot projections; MLP(w) = 2 sum_l u_{l-1} u_l with
  u_0 = w and a last layer to 1.
  """
  def mlp(width):
    widths = [width] + list(sizes.mlp) + [1]
    return 2 * sum(a * b for a, b in zip(widths[:-1], widths[1:]))
  n, e = sizes.num_fields, sizes.embedding_dim
  m, d = n + sizes.num_dense, sizes.input_width
  if model == "dnn":
    return mlp(d)
  if model == "dcn_v2":
    return sizes.cross_layers * 2 * d * d + mlp(d)
  if model == "deepfm":
    return 2 * 2 * m * e + mlp(d)  # FM by the sum-of-squares trick, then the DNN on x0
  raise ValueError(model)


class FakeClock:
  """A settable clock: the fake steps advance `now` by their own durations."""

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


class OpFlopsTest(testing.TestCase):
  """Each matmul-like op's count against its multiply-adds written out by hand."""

  def _count(self, fn, *inputs):
    return flops.graph_matmul_flops(flops.forward_graph(fn, *inputs))

  def test_matmul_with_and_without_transposes(self):
    a, b = tf.ones((5, 7)), tf.ones((7, 3))
    self.assertEqual(self._count(lambda x: tf.matmul(x, b), a), 2 * 5 * 7 * 3)
    self.assertEqual(self._count(lambda x: tf.matmul(x, tf.transpose(b), transpose_b=True), a),
                     2 * 5 * 7 * 3)
    self.assertEqual(self._count(lambda x: tf.matmul(x, b, transpose_a=True), tf.ones((7, 5))),
                     2 * 5 * 7 * 3)

  def test_batch_matmul_broadcasts_its_leading_dimensions(self):
    a, b = tf.ones((4, 1, 16)), tf.ones((4, 16, 8))
    self.assertEqual(self._count(lambda x: tf.matmul(x, b), a), 2 * 4 * 1 * 16 * 8)
    shared = tf.ones((16, 8))
    self.assertEqual(self._count(lambda x: tf.linalg.matmul(x, shared), tf.ones((3, 4, 5, 16))),
                     2 * 3 * 4 * 5 * 16 * 8)

  def test_einsum_counts_one_multiply_add_per_term(self):
    x, w = tf.ones((4, 39, 16)), tf.ones((39, 8))
    # Z = Y^T X: every (b, k, d) output sums over n: 2 b n k d.
    self.assertEqual(self._count(lambda t: tf.einsum("nk,bnd->bkd", w, t), x),
                     2 * 4 * 39 * 8 * 16)
    # No summed index: an element-wise product, one multiply per term.
    self.assertEqual(self._count(lambda t: tf.einsum("bi,bj->bij", t, t), tf.ones((4, 5))),
                     4 * 5 * 5)

  def test_conv_counts_output_times_filter(self):
    conv = tf.keras.layers.Conv1D(6, 3)
    x = tf.ones((2, 10, 4))
    conv(x)
    # Output (2, 8, 6); each output sums 3 taps x 4 channels.
    self.assertEqual(self._count(conv, x), 2 * (2 * 8 * 6) * 3 * 4)

  def test_element_wise_ops_are_not_counted(self):
    x = tf.ones((8, 16))
    self.assertEqual(self._count(lambda t: tf.reduce_sum(tf.square(t) * t, axis=1), x), 0)

  def test_a_dense_mlp_counts_its_weights_twice(self):
    model = tf.keras.Sequential([tf.keras.layers.Dense(4, activation="relu"),
                                 tf.keras.layers.Dense(3), tf.keras.layers.Dense(1)])
    model(tf.ones((1, 7)))
    per_example = flops.forward_matmul_flops(flops.keras_forward(model),
                                             lambda b: tf.ones((b, 7)))
    self.assertEqual(per_example, 2 * (7 * 4 + 4 * 3 + 3 * 1))
    self.assertEqual(flops.train_flops_per_example(per_example), 3 * per_example)

  def test_work_done_once_per_batch_is_left_out(self):
    v, k = tf.ones((13, 16)), tf.ones((13, 16, 32))

    def forward(x):
      m = tf.einsum("jd,jdh->jh", v, k)  # (13, 32), whatever the batch size
      return tf.matmul(x, m)  # (B, 32)

    self.assertEqual(flops.forward_matmul_flops(forward, lambda b: tf.ones((b, 13))),
                     2 * 13 * 32)

  def test_called_functions_are_counted(self):
    w = tf.ones((8, 3))
    inner = tf.function(lambda x: tf.matmul(x, w))
    self.assertEqual(flops.forward_matmul_flops(lambda x: inner(x) * 2.0,
                                                lambda b: tf.ones((b, 8))), 2 * 8 * 3)

  def test_unknown_shapes_and_bad_batches_raise(self):
    graph = tf.function(lambda x: tf.matmul(x, tf.ones((3, 2)))).get_concrete_function(
        tf.TensorSpec((None, 3))).graph
    with self.assertRaisesRegex(flops.FlopCountError, "MatMul op .* non-static shape"):
      flops.graph_matmul_flops(graph)
    with self.assertRaisesRegex(ValueError, r"0 < B1 < B2, got \(4, 2\)"):
      flops.forward_matmul_flops(lambda x: x, lambda b: tf.ones((b, 1)), batch_sizes=(4, 2))

  def test_dtype_share_of_a_mixed_graph(self):
    def forward(x):
      y = tf.matmul(tf.cast(x, tf.bfloat16), tf.cast(tf.ones((8, 8)), tf.bfloat16))  # bf16
      return tf.matmul(tf.cast(y, tf.float32), tf.ones((8, 2)))  # float32

    graph = flops.forward_graph(forward, tf.ones((4, 8)))
    self.assertEqual(flops.dtype_share(graph, tf.bfloat16),
                     (2 * 4 * 8 * 8, 2 * 4 * 8 * 8 + 2 * 4 * 8 * 2))


class ModelFlopsTest(testing.TestCase):
  """The counts derived from the built models against the hand-written formulas they replace."""

  def test_benchmark_sizes_match_the_analytic_formulas(self):
    sizes = workload.BenchSizes()
    for model in ("dcn_v2", "dnn", "deepfm"):
      derived = workload.flops_of(model, sizes)
      reference = analytic_forward_flops(model, sizes)
      self.assertAllClose(derived, reference, rtol=0.02, atol=0, msg=model)
    # Exact where the model is only matmuls: the MLP and the cross layers.
    self.assertEqual(workload.flops_of("dcn_v2", sizes), analytic_forward_flops("dcn_v2", sizes))
    # "About 4.8 MFLOP per example for forward and backward" for DCN-V2 at these sizes.
    self.assertAllClose(flops.train_flops_per_example(workload.flops_of("dcn_v2", sizes)) / 1e6,
                        4.8, rtol=0, atol=0.05)

  def test_every_benchmarked_model_has_a_count(self):
    for model in workload.ALL_MODELS:
      self.assertGreater(workload.flops_of(model, TINY), 0, msg=model)


class TimerTest(testing.TestCase):

  def test_median_of_windows_with_a_fake_clock(self):
    clock = FakeClock()
    durations = itertools.chain([100.0], [1.0, 2.0, 4.0, 0.5, 1.0])  # warm-up, then windows
    synced = []

    def step():
      clock.now += next(durations)
      return clock.now

    timing = harness.time_windows(step, synced.append, examples_per_step=10, warmup_steps=1,
                                  steps_per_window=1, num_windows=5, clock=clock,
                                  rss=lambda: 7.0)
    self.assertAllClose(timing.rates, [10.0, 5.0, 2.5, 20.0, 10.0])
    self.assertEqual(timing.median, 10.0)  # the warm-up's 100 s is not timed
    self.assertEqual(len(synced), 6)  # once after warm-up, once per window
    self.assertEqual(timing.peak_rss_mib, 7.0)

  def test_windows_span_several_steps(self):
    clock = FakeClock()

    def step():
      clock.now += 0.25
      return 0

    timing = harness.time_windows(step, lambda _: None, 8, warmup_steps=0,
                                  steps_per_window=4, num_windows=3, clock=clock)
    self.assertAllClose(timing.rates, [32.0, 32.0, 32.0])  # 8 * 4 examples per 1 s

  def test_interleaved_windows_alternate_runners(self):
    clock = FakeClock()
    order = []

    def make(name, seconds):
      def step():
        order.append(name)
        clock.now += seconds
        return 0
      return step, lambda _: None

    out = harness.time_interleaved({"a": make("a", 1.0), "b": make("b", 4.0)}, 4,
                                   warmup_steps=1, steps_per_window=1, num_windows=3,
                                   clock=clock)
    self.assertEqual(order, ["a", "b"] + ["a", "b"] * 3)
    self.assertAllClose(out["a"].rates, [4.0] * 3)
    self.assertAllClose(out["b"].rates, [1.0] * 3)

  def test_bad_window_counts_raise(self):
    with self.assertRaisesRegex(ValueError, "num_windows >= 1"):
      harness.time_windows(lambda: 0, lambda _: None, 1, num_windows=0)

  def test_latency_percentiles_match_numpy(self):
    seconds = self.rng.exponential(0.01, 1000)
    got = harness.latency_percentiles(seconds)
    self.assertAllClose(got["p50_ms"], np.percentile(seconds * 1e3, 50), rtol=1e-12, atol=0)
    self.assertAllClose(got["p99_ms"], np.percentile(seconds * 1e3, 99), rtol=1e-12, atol=0)
    with self.assertRaisesRegex(ValueError, "at least one"):
      harness.latency_percentiles([])

  def test_roofline_divides_and_rejects_zero_flops(self):
    self.assertAllClose(harness.roofline_examples_per_sec(112.0, 4.8e6), 23333.33, rtol=1e-6)
    with self.assertRaisesRegex(ValueError, "flops_per_example must be > 0, got 0"):
      harness.roofline_examples_per_sec(1.0, 0)

  def test_sizes_are_checked(self):
    with self.assertRaisesRegex(ValueError, r"BenchSizes.mlp .* got \(8, 0\)"):
      workload.BenchSizes(mlp=(8, 0))
    with self.assertRaisesRegex(ValueError, r"BenchSizes.num_fields .* got 0"):
      workload.BenchSizes(num_fields=0)


class RecordTest(testing.TestCase):

  FORWARD = 1000  # forward matmul FLOPs per example of the rows below

  def test_model_row_ratio_and_roofline_fraction(self):
    zoo = {"examples_per_sec": 2000.0, "roofline_gflops": 10.0,
           "forward_flops_per_example": self.FORWARD}
    row = report.model_row("dnn", TINY.batch_size, 99.0, zoo, {"examples_per_sec": 1000.0})
    self.assertAllClose(row["ratio_to_deepctr"], 2.0)
    self.assertAllClose(row["train_mflop_per_example"], 3 * self.FORWARD / 1e6)
    # The roofline measured in the model's own rounds (10 GFLOP/s) wins over the start one.
    self.assertAllClose(row["fraction_of_roofline"], 2000.0 * 3 * self.FORWARD / 10e9)

  def test_ceiling_adds_the_embedding_step_to_the_matmul_time(self):
    flops_ = 3 * self.FORWARD
    # 10 GFLOP/s: flops / 1e10 s per example; plus 8 ms per step of B examples.
    want = 1.0 / (flops_ / 10e9 + 0.008 / TINY.batch_size)
    self.assertAllClose(harness.ceiling_examples_per_sec(10.0, flops_, TINY.batch_size, 8.0),
                        want, rtol=1e-12, atol=0)
    self.assertAllClose(harness.ceiling_examples_per_sec(10.0, flops_, TINY.batch_size, 0.0),
                        harness.roofline_examples_per_sec(10.0, flops_), rtol=1e-12, atol=0)
    zoo = {"examples_per_sec": 2000.0, "roofline_gflops": 10.0, "embedding_step_ms": 8.0,
           "forward_flops_per_example": self.FORWARD}
    row = report.model_row("dnn", TINY.batch_size, 99.0, zoo, {"examples_per_sec": 1000.0})
    self.assertAllClose(row["ceiling_examples_per_sec"], want, rtol=1e-12, atol=0)
    self.assertAllClose(row["ceiling_ratio_to_deepctr"], want / 1000.0, rtol=1e-12, atol=0)
    with self.assertRaisesRegex(ValueError, "embedding_step_ms >= 0"):
      harness.ceiling_examples_per_sec(10.0, flops_, TINY.batch_size, -1.0)

  def test_bf16_ratio_is_over_the_bf16_peer_only(self):
    zoo = {"examples_per_sec": 2000.0, "forward_flops_per_example": self.FORWARD,
           "roofline_gflops": 10.0, "roofline_bf16_gflops": 20.0,
           "modes": {report.BF16_MODE: {"examples_per_sec": 3000.0}}}
    equal = report.model_row("dnn", 64, 1.0, dict(zoo), {
        "examples_per_sec": 1000.0, "bf16": {"examples_per_sec": 1500.0,
                                             "matmul_flop_share_bfloat16": 1.0}})
    self.assertAllClose(equal["bf16_ratio_to_deepctr"], 3000.0 / 1500.0)
    self.assertAllClose(equal["ratio_to_deepctr"], 2.0)  # float32 over float32
    no_peer_bf16 = report.model_row("dnn", 64, 1.0, dict(zoo), {
        "examples_per_sec": 1000.0, "bf16": {"note": "DeepCTR under mixed_bfloat16 failed: X"}})
    self.assertNotIn("bf16_ratio_to_deepctr", no_peer_bf16)
    self.assertIn("failed: X", no_peer_bf16["note"])
    text = report.render_table({"models": [equal, no_peer_bf16]}, markdown=True)
    self.assertIn("| 3.0k | 1.5k | 2.00x |", text)
    self.assertIn("| 3.0k | - | - |", text)

  def test_markdown_table_has_a_row_per_model(self):
    record = {"models": [
        report.model_row("dcn_v2", TINY.batch_size, 50.0,
                         {"examples_per_sec": 3000.0, "jit_compile": "off",
                          "forward_flops_per_example": self.FORWARD},
                         {"name": "DeepCTR DCN", "examples_per_sec": 1000.0}),
        report.model_row("can", TINY.batch_size, 50.0,
                         {"examples_per_sec": 500.0, "forward_flops_per_example": self.FORWARD},
                         {"note": "no DeepCTR equivalent"})],
        "roofline": {"gflops": 50.0, "shape": [8, 8, 8]}}
    text = report.render_table(json.loads(json.dumps(record)), markdown=True)
    lines = text.splitlines()
    self.assertTrue(lines[0].startswith("| model | ctr_zoo ex/s"))
    self.assertIn("| dcn_v2 | 3.0k | DeepCTR DCN | 1.0k | 3.00x (target 2.0x)", text)
    self.assertIn("| can | 500 | - | - | - |", text)
    self.assertIn("no DeepCTR equivalent", text)

  def test_the_tracked_record_still_renders(self):
    path = os.path.join(testing.PROJECT_ROOT, "benchmarks", "results", "throughput.json")
    with open(path) as fh:
      record = json.load(fh)
    text = report.render_table(record, markdown=True)
    for row in record["models"]:
      self.assertIn(f"| {row['model']} | ", text)
      # Its DeepCTR peers ran float32 only: no bf16 ratio is claimed.
      self.assertIsNone(report.bf16_ratio(row))
    self.assertIn("No bf16 ratio: this record has no DeepCTR run under 'mixed_bfloat16'", text)
    first_row = text.splitlines()[2]
    self.assertEqual(len(first_row.strip().strip("|").split("|")), len(report.HEADERS))


class TinyRunTest(testing.TestCase):

  def test_synthetic_batches_follow_the_spec(self):
    spec = workload.benchmark_spec(TINY)
    (features, labels), = workload.synthetic_batches(TINY, 1, seed=0)
    self.assertEqual(sorted(features), sorted(spec.feature_names))
    for f in spec.id_features:
      self.assertEqual(features[f.name].dtype, np.int64)
      self.assertTrue((features[f.name] >= 0).all() and (features[f.name] < f.num_ids).all())
      self.assertEqual(f.num_ids, TINY.vocab_size)
    self.assertEqual(labels.shape, (TINY.batch_size,))

  def test_a_few_steps_of_ctr_zoo_dnn(self):
    spec = workload.benchmark_spec(TINY)
    batches = workload.synthetic_batches(TINY, 2, seed=0)
    zoo, peer, model = throughput.benchmark_model("dnn", TINY, spec, batches, TINY_TIMING,
                                                  jit="off", seed=0, with_deepctr=False,
                                                  bfloat16=True)
    self.assertIsNotNone(model, zoo.get("note"))
    self.assertIsNone(peer)
    self.assertGreater(zoo["examples_per_sec"], 0)
    self.assertLen(zoo["windows"], 2)
    # The FLOPs are the built model's own: an MLP over x0 and its head.
    self.assertEqual(zoo["forward_flops_per_example"],
                     2 * (TINY.input_width * 8 + 8 * 8 + 8 * 1))
    # The headline is the float32 model; the bfloat16 one is timed beside it.
    self.assertEqual(zoo["jit_compile"], "off")
    self.assertEqual(model.precision, "float32")
    self.assertEqual(zoo["examples_per_sec"], zoo["modes"]["off"]["examples_per_sec"])
    bf16 = zoo["modes"][workload.BF16_MODE]
    self.assertGreater(bf16["examples_per_sec"], 0)
    self.assertGreater(bf16["matmul_flop_share_bfloat16"], 0.9)
    # The embedding work alone is timed in the same windows.
    self.assertGreater(zoo["embedding_step_ms"], 0)
    self.assertNotIn("embedding_step_error", zoo)
    self.assertGreater(zoo["roofline_gflops"], 0)
    self.assertGreater(zoo["roofline_bf16_gflops"], 0)
    row = report.model_row("dnn", TINY.batch_size, 1.0, zoo,
                           {"examples_per_sec": 1000.0, "bf16": {"examples_per_sec": 500.0}})
    self.assertAllClose(row["bf16_ratio_to_deepctr"], bf16["examples_per_sec"] / 500.0)
    self.assertGreater(row["bf16_fraction_of_bf16_roofline"], 0)
    self.assertGreater(row["ceiling_ratio_to_deepctr"], 0)
    # The split gave the tables to the sparse optimizer and the rest to Adam.
    self.assertLen(model.embedding_variables, TINY.num_fields)
    self.assertIn("SplitOptimizer", zoo["optimizer"])

  def test_embedding_step_trains_only_the_tables(self):
    spec = workload.benchmark_spec(TINY)
    (features, labels), = workload.synthetic_batches(TINY, 1, seed=0)
    features = {k: tf.constant(v) for k, v in features.items()}
    model, _ = workload.build_ctr_zoo_model("deepfm", spec, TINY, seed=0)
    layers = workload.embedding_layers(model)
    self.assertEqual(sorted(type(l).__name__ for l in layers), ["FeatureEmbedding", "LinearLogit"])
    tables = {v.ref() for v in model.embedding_variables}
    before = {v.ref(): v.numpy().copy() for v in model.trainable_variables}
    step = workload.make_embedding_step(model)
    self.assertGreater(float(step(features, tf.constant(labels))), 0)
    for v in model.trainable_variables:
      changed = not np.array_equal(before[v.ref()], v.numpy())
      self.assertEqual(changed, v.ref() in tables, v.name)
    with self.assertRaisesRegex(ValueError, "no layer with embedding_variables"):
      inputs = tf.keras.Input((3,))
      workload.make_embedding_step(tf.keras.Model(inputs, tf.keras.layers.Dense(1)(inputs)))

  def test_the_deepctr_peers_float32_and_bfloat16_or_skip(self):
    from benchmarks import deepctr_peers  # pylint: disable=g-import-not-at-top
    ok, why = deepctr_peers.availability()
    if not ok:
      self.skipTest(why)
    batches = workload.synthetic_batches(TINY, 2, seed=0)
    runners, peer = throughput.prepare_peers("dcn_v2", TINY, batches, seed=0, bfloat16=True)
    self.assertIn("DCN", peer["name"])
    self.assertEqual(sorted(runners), ["deepctr", "deepctr_bf16"])
    # The policy reached DeepCTR's layers, and was put back afterwards.
    self.assertEqual(peer["bf16"]["policy"], "mixed_bfloat16")
    self.assertGreater(peer["bf16"]["matmul_flop_share_bfloat16"], 0.9)
    self.assertEqual(tf.keras.mixed_precision.global_policy().name, "float32")
    timings = harness.time_interleaved(runners, TINY.batch_size, **TINY_TIMING)
    self.assertGreater(timings["deepctr"].median, 0)
    self.assertGreater(timings["deepctr_bf16"].median, 0)
    runner, info = workload.prepare_deepctr("can", TINY, batches, seed=0)
    self.assertIsNone(runner)
    self.assertEqual(info["note"], "no DeepCTR equivalent")


if __name__ == "__main__":
  tf.test.main()
