"""Smoke tests of the throughput harness: FLOP counting, timers, table, a tiny run."""

import itertools
import json

import numpy as np

from tests import testing  # noqa: F401  (imports ctr_zoo before TensorFlow)
from benchmarks import throughput

import tensorflow as tf

TINY = throughput.BenchSizes(batch_size=64, num_fields=3, vocab_size=50, embedding_dim=4,
                             num_dense=2, mlp=(8, 8), cross_layers=2, low_rank=2,
                             num_experts=2, cdot_k=2)
TINY_TIMING = {"warmup_steps": 1, "steps_per_window": 1, "num_windows": 2}


class FakeClock:
  """A settable clock: the fake steps advance `now` by their own durations."""

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


class FlopsTest(testing.TestCase):

  def test_mlp_flops_equal_the_explicit_sum(self):
    # 2 * (5*3 + 3*2 + 2*1): one multiply-add per weight.
    self.assertEqual(throughput.mlp_matmul_flops(5, (3, 2)), 2 * (15 + 6 + 2))

  def test_mlp_flops_match_a_counted_numpy_forward(self):
    rng = np.random.default_rng(0)
    widths = [7, 4, 3, 1]
    weights = [rng.standard_normal((a, b)) for a, b in zip(widths[:-1], widths[1:])]
    counted = 0
    x = rng.standard_normal((1, 7))
    for w in weights:
      counted += 2 * x.shape[1] * w.shape[1]  # one multiply and one add per product term
      x = x @ w
    self.assertEqual(throughput.mlp_matmul_flops(7, (4, 3)), counted)

  def test_dcn_v2_matches_the_issue_figure(self):
    sizes = throughput.BenchSizes()
    d = 26 * 16 + 13
    self.assertEqual(sizes.input_width, d)
    forward = 3 * 2 * d * d + 2 * (d * 256 + 256 * 256 + 256 * 256 + 256)
    self.assertEqual(throughput.forward_matmul_flops("dcn_v2", sizes), forward)
    # The issue: "about 4.8 MFLOP per example for forward and backward".
    self.assertAllClose(throughput.train_flops_per_example("dcn_v2", sizes) / 1e6, 4.8,
                        rtol=0, atol=0.05)

  def test_dcn_mix_counts_experts_and_gates(self):
    s = TINY
    d, r, k = s.input_width, s.low_rank, s.num_experts
    expected = (s.cross_layers * (k * 2 * (2 * d * r + r * r) + 2 * d * k)
                + throughput.mlp_matmul_flops(d, s.mlp))
    self.assertEqual(throughput.forward_matmul_flops("dcn_mix", s), expected)

  def test_deepfm_dnn_reads_raw_numeric_values(self):
    # FM over m = n + num_dense fields, and an MLP as wide as the flat input x0:
    # NumericFieldDense multiplies x (num_dense) rather than the x_j v_j block.
    s = TINY
    m, e = s.num_fields + s.num_dense, s.embedding_dim
    expected = 2 * 2 * m * e + throughput.mlp_matmul_flops(s.num_fields * e + s.num_dense, s.mlp)
    self.assertEqual(throughput.forward_matmul_flops("deepfm", s), expected)

  def test_training_is_three_forwards_and_roofline_divides(self):
    for model in throughput.ALL_MODELS:
      f = throughput.forward_matmul_flops(model, TINY)
      self.assertGreater(f, 0, msg=model)
      self.assertEqual(throughput.train_flops_per_example(model, TINY), 3 * f)
    self.assertAllClose(throughput.roofline_examples_per_sec(112.0, 4.8e6), 23333.33, rtol=1e-6)

  def test_errors_name_the_bad_value(self):
    with self.assertRaisesRegex(ValueError, "'nope'"):
      throughput.forward_matmul_flops("nope", TINY)
    with self.assertRaisesRegex(ValueError, r"BenchSizes.mlp .* got \(8, 0\)"):
      throughput.BenchSizes(mlp=(8, 0))
    with self.assertRaisesRegex(ValueError, "flops_per_example must be > 0, got 0"):
      throughput.roofline_examples_per_sec(1.0, 0)


class TimerTest(testing.TestCase):

  def test_median_of_windows_with_a_fake_clock(self):
    clock = FakeClock()
    durations = itertools.chain([100.0], [1.0, 2.0, 4.0, 0.5, 1.0])  # warm-up, then windows
    synced = []

    def step():
      clock.now += next(durations)
      return clock.now

    timing = throughput.time_windows(step, synced.append, examples_per_step=10, warmup_steps=1,
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

    timing = throughput.time_windows(step, lambda _: None, 8, warmup_steps=0,
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

    out = throughput.time_interleaved({"a": make("a", 1.0), "b": make("b", 4.0)}, 4,
                                      warmup_steps=1, steps_per_window=1, num_windows=3,
                                      clock=clock)
    self.assertEqual(order, ["a", "b"] + ["a", "b"] * 3)
    self.assertAllClose(out["a"].rates, [4.0] * 3)
    self.assertAllClose(out["b"].rates, [1.0] * 3)

  def test_bad_window_counts_raise(self):
    with self.assertRaisesRegex(ValueError, "num_windows >= 1"):
      throughput.time_windows(lambda: 0, lambda _: None, 1, num_windows=0)

  def test_latency_percentiles_match_numpy(self):
    seconds = self.rng.exponential(0.01, 1000)
    got = throughput.latency_percentiles(seconds)
    self.assertAllClose(got["p50_ms"], np.percentile(seconds * 1e3, 50), rtol=1e-12, atol=0)
    self.assertAllClose(got["p99_ms"], np.percentile(seconds * 1e3, 99), rtol=1e-12, atol=0)
    with self.assertRaisesRegex(ValueError, "at least one"):
      throughput.latency_percentiles([])


class RecordTest(testing.TestCase):

  def test_model_row_ratio_and_roofline_fraction(self):
    zoo = {"examples_per_sec": 2000.0, "roofline_gflops": 10.0}
    peer = {"examples_per_sec": 1000.0}
    row = throughput.model_row("dnn", TINY, 99.0, zoo, peer)
    flops = throughput.train_flops_per_example("dnn", TINY)
    self.assertAllClose(row["ratio_to_deepctr"], 2.0)
    # The roofline measured in the model's own rounds (10 GFLOP/s) wins over the start one.
    self.assertAllClose(row["fraction_of_roofline"], 2000.0 * flops / 10e9)

  def test_ceiling_adds_the_embedding_step_to_the_matmul_time(self):
    flops = throughput.train_flops_per_example("dnn", TINY)
    # 10 GFLOP/s: flops / 1e10 s per example; plus 8 ms per step of B examples.
    want = 1.0 / (flops / 10e9 + 0.008 / TINY.batch_size)
    self.assertAllClose(throughput.ceiling_examples_per_sec(10.0, flops, TINY.batch_size, 8.0),
                        want, rtol=1e-12, atol=0)
    self.assertAllClose(throughput.ceiling_examples_per_sec(10.0, flops, TINY.batch_size, 0.0),
                        throughput.roofline_examples_per_sec(10.0, flops), rtol=1e-12, atol=0)
    zoo = {"examples_per_sec": 2000.0, "roofline_gflops": 10.0, "embedding_step_ms": 8.0}
    row = throughput.model_row("dnn", TINY, 99.0, zoo, {"examples_per_sec": 1000.0})
    self.assertAllClose(row["ceiling_examples_per_sec"], want, rtol=1e-12, atol=0)
    self.assertAllClose(row["ceiling_ratio_to_deepctr"], want / 1000.0, rtol=1e-12, atol=0)
    with self.assertRaisesRegex(ValueError, "embedding_step_ms >= 0"):
      throughput.ceiling_examples_per_sec(10.0, flops, TINY.batch_size, -1.0)

  def test_markdown_table_has_a_row_per_model(self):
    record = {"models": [
        throughput.model_row("dcn_v2", TINY, 50.0, {"examples_per_sec": 3000.0, "jit_compile": "off"},
                             {"name": "DeepCTR DCN", "examples_per_sec": 1000.0}),
        throughput.model_row("can", TINY, 50.0, {"examples_per_sec": 500.0},
                             {"note": "no DeepCTR equivalent"})],
        "roofline": {"gflops": 50.0, "shape": [8, 8, 8]}}
    text = throughput.render_table(json.loads(json.dumps(record)), markdown=True)
    lines = text.splitlines()
    self.assertTrue(lines[0].startswith("| model | ctr_zoo ex/s"))
    self.assertIn("| dcn_v2 | 3.0k | DeepCTR DCN | 1.0k | 3.00x (target 2.0x)", text)
    self.assertIn("| can | 500 | - | - | - |", text)
    self.assertIn("no DeepCTR equivalent", text)


class TinyRunTest(testing.TestCase):

  def test_synthetic_batches_follow_the_spec(self):
    spec = throughput.benchmark_spec(TINY)
    (features, labels), = throughput.synthetic_batches(TINY, 1, seed=0)
    self.assertEqual(sorted(features), sorted(spec.feature_names))
    for f in spec.id_features:
      self.assertEqual(features[f.name].dtype, np.int64)
      self.assertTrue((features[f.name] >= 0).all() and (features[f.name] < f.num_ids).all())
      self.assertEqual(f.num_ids, TINY.vocab_size)
    self.assertEqual(labels.shape, (TINY.batch_size,))

  def test_a_few_steps_of_ctr_zoo_dnn(self):
    spec = throughput.benchmark_spec(TINY)
    batches = throughput.synthetic_batches(TINY, 2, seed=0)
    zoo, peer, model = throughput.benchmark_model("dnn", TINY, spec, batches, TINY_TIMING,
                                                  jit="off", seed=0, with_deepctr=False,
                                                  bfloat16=True)
    self.assertIsNotNone(model, zoo.get("note"))
    self.assertIsNone(peer)
    self.assertGreater(zoo["examples_per_sec"], 0)
    self.assertLen(zoo["windows"], 2)
    # The headline is the float32 model; the bfloat16 one is timed beside it.
    self.assertEqual(zoo["jit_compile"], "off")
    self.assertEqual(model.precision, "float32")
    self.assertEqual(zoo["examples_per_sec"], zoo["modes"]["off"]["examples_per_sec"])
    self.assertGreater(zoo["modes"][throughput.BF16_MODE]["examples_per_sec"], 0)
    # The embedding work alone is timed in the same windows.
    self.assertGreater(zoo["embedding_step_ms"], 0)
    self.assertNotIn("embedding_step_error", zoo)
    self.assertGreater(zoo["roofline_gflops"], 0)
    self.assertGreater(zoo["roofline_bf16_gflops"], 0)
    row = throughput.model_row("dnn", TINY, 1.0, zoo, {"examples_per_sec": 1000.0})
    self.assertAllClose(row["bf16_ratio_to_deepctr"],
                        zoo["modes"][throughput.BF16_MODE]["examples_per_sec"] / 1000.0)
    self.assertGreater(row["bf16_fraction_of_bf16_roofline"], 0)
    self.assertGreater(row["ceiling_ratio_to_deepctr"], 0)
    # The split gave the tables to the sparse optimizer and the rest to Adam.
    self.assertLen(model.embedding_variables, TINY.num_fields)
    self.assertIn("SplitOptimizer", zoo["optimizer"])

  def test_embedding_step_trains_only_the_tables(self):
    spec = throughput.benchmark_spec(TINY)
    (features, labels), = throughput.synthetic_batches(TINY, 1, seed=0)
    features = {k: tf.constant(v) for k, v in features.items()}
    model, _ = throughput.build_ctr_zoo_model("deepfm", spec, TINY, seed=0)
    layers = throughput.embedding_layers(model)
    self.assertEqual(sorted(type(l).__name__ for l in layers), ["FeatureEmbedding", "LinearLogit"])
    tables = {v.ref() for v in model.embedding_variables}
    before = {v.ref(): v.numpy().copy() for v in model.trainable_variables}
    step = throughput.make_embedding_step(model)
    self.assertGreater(float(step(features, tf.constant(labels))), 0)
    for v in model.trainable_variables:
      changed = not np.array_equal(before[v.ref()], v.numpy())
      self.assertEqual(changed, v.ref() in tables, v.name)
    with self.assertRaisesRegex(ValueError, "no layer with embedding_variables"):
      inputs = tf.keras.Input((3,))
      throughput.make_embedding_step(tf.keras.Model(inputs, tf.keras.layers.Dense(1)(inputs)))

  def test_a_few_steps_of_the_deepctr_peer_or_skip(self):
    from benchmarks import deepctr_peers  # pylint: disable=g-import-not-at-top
    ok, why = deepctr_peers.availability()
    if not ok:
      self.skipTest(why)
    batches = throughput.synthetic_batches(TINY, 2, seed=0)
    runner, info = throughput.prepare_deepctr("dcn_v2", TINY, batches, seed=0)
    self.assertIn("DCN", info["name"])
    timing = throughput.time_windows(*runner, TINY.batch_size, **TINY_TIMING)
    self.assertGreater(timing.median, 0)
    runner, info = throughput.prepare_deepctr("can", TINY, batches, seed=0)
    self.assertIsNone(runner)
    self.assertEqual(info["note"], "no DeepCTR equivalent")


if __name__ == "__main__":
  tf.test.main()
