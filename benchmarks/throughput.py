"""Training, input and serving throughput of ctr_zoo, against DeepCTR 0.9.4.

For each model (dcn_v2, dcn_mix, deepfm, dnn, cdot, can) this trains ctr_zoo's
model and, in the same process, its DeepCTR 0.9.4 equivalent (see
deepctr_peers.py; skipped with a message when DeepCTR is absent) on identical
synthetic batches, and measures in the same run:

- the roofline: plain `tf.matmul` GFLOP/s of this machine;
- each model's training FLOPs per example, F = 3 * (forward matmul FLOPs),
  counted from the model's own traced forward graph (`benchmarks/flops.py`;
  the backward pass costs two matmuls per forward matmul);
- training examples/s, the median over `num_windows` timed windows of
  `steps_per_window` steps after `warmup_steps` untimed ones;
- the fraction of the roofline: examples/s * F / (GFLOP/s * 1e9);
- peak RSS of the process while the model trained;
- with --bfloat16: ctr_zoo's model built with precision="mixed_bfloat16"
  against the DeepCTR peer built under the Keras policy "mixed_bfloat16"
  (equal precision), beside the float32 headline;
- the input pipeline alone (`ctr_zoo.datasets.make_dataset` over Parquet
  shards) against the train step fed from cached tensors and fed from it;
- batch-1 and batch-256 latency (p50/p99) of the exported raw-feature
  SavedModel.

Default sizes: batch 4096, 26 categorical fields x 10k ids x dim 16 + 13
dense, MLP 256x3, 3 cross layers (DCN-Mix: rank 32, 4 experts).

The record goes to <results>/throughput.json (--results, default
runs/benchmarks/); the tracked benchmarks/results/throughput.json is written
only with --record=benchmarks/results/throughput.json.

Usage:
  .venv/bin/python benchmarks/throughput.py                    # all models
  .venv/bin/python benchmarks/throughput.py --models=dcn_v2,dnn --num_windows=5
  .venv/bin/python benchmarks/throughput.py --render_markdown  # the tracked record's table

The machine is shared and noisy: compare the ratios measured in one run; an
absolute examples/s alone means little.
"""

import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence

if __name__ == "__main__" and __package__ in (None, ""):
  # `python benchmarks/throughput.py`: make the project root importable.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402

from experiments import cli  # noqa: E402

cli.import_tensorflow_quietly()  # Keras 2 before TensorFlow, without its start-up lines
import tensorflow as tf  # noqa: E402

from benchmarks import common_flags  # noqa: E402,F401  (--results, --record)
from benchmarks import harness  # noqa: E402
from benchmarks import records  # noqa: E402
from benchmarks import throughput_models as workload  # noqa: E402
from benchmarks import throughput_report as report  # noqa: E402

RECORD_FILE = "throughput.json"
TRACKED_RECORD = os.path.join(records.TRACKED_DIR, RECORD_FILE)
FLOP_COUNT = ("training FLOPs per example = 3 x the forward matmul FLOPs (MatMul, BatchMatMul, "
              "Einsum, Conv) counted from each model's traced forward graph")

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(common_flags)
flags.DEFINE_list("models", list(workload.ALL_MODELS), "Models to benchmark.")
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
                  "XLA jit_compile of ctr_zoo's dense part: auto measures both and keeps the "
                  "faster.")
flags.DEFINE_bool("bfloat16", True,
                  "Also time ctr_zoo's model built with precision='mixed_bfloat16' against the "
                  "DeepCTR peer built under the 'mixed_bfloat16' policy (reported beside the "
                  "float32 figures, against a bfloat16 matmul roofline).")
flags.DEFINE_bool("deepctr", True, "Also train the DeepCTR 0.9.4 peers (if installed).")
flags.DEFINE_bool("input_pipeline", True, "Measure make_dataset over Parquet shards.")
flags.DEFINE_bool("latency", True, "Measure exported SavedModel latency (batch 1 and 256).")
flags.DEFINE_integer("latency_calls", 200, "Timed calls per latency batch size.")
flags.DEFINE_integer("data_seed", 1234, "Seed of the synthetic data and models.")
flags.DEFINE_bool("render_markdown", False,
                  "Print the table of a record as markdown and exit (no benchmark run): the "
                  "--record file if given, else the tracked benchmarks/results/throughput.json.")


def _error(e: Exception) -> str:
  return f"{type(e).__name__}: {e}"[:300]


def _rates(timing: harness.WindowTiming) -> Dict[str, Any]:
  return {"examples_per_sec": timing.median, "windows": [round(r) for r in timing.rates]}


def prepare_peers(model_name: str, sizes: workload.BenchSizes, batches, seed: int,
                  bfloat16: bool):
  """The DeepCTR peer's runners ({name: (step, sync)}) and its record entry (or None).

  "deepctr" is the float32 peer; with `bfloat16`, "deepctr_bf16" is the same
  peer built under the 'mixed_bfloat16' policy, recorded under peer["bf16"]
  (or the reason it could not run).
  """
  runners = {}
  try:
    runner, peer = workload.prepare_deepctr(model_name, sizes, batches, seed)
  except Exception as e:  # pylint: disable=broad-except
    return runners, {"note": f"DeepCTR peer failed: {_error(e)}"}
  if runner is None:
    return runners, peer
  runners["deepctr"] = runner
  if bfloat16:
    try:
      runner_bf16, info = workload.prepare_deepctr(model_name, sizes, batches, seed,
                                                   policy=workload.BF16_POLICY)
      runners["deepctr_bf16"] = runner_bf16
      peer["bf16"] = {k: v for k, v in info.items() if k in (
          "policy", "matmul_flop_share_bfloat16", "output_dtype")}
    except Exception as e:  # pylint: disable=broad-except
      peer["bf16"] = {"note": f"DeepCTR under {workload.BF16_POLICY} failed: {_error(e)}"}
  return runners, peer


def benchmark_model(model_name: str, sizes: workload.BenchSizes, spec, batches,
                    timing: Dict[str, int], jit: str, seed: int, with_deepctr: bool,
                    bfloat16: bool = False):
  """ctr_zoo's model (each jit mode, and bfloat16) and its DeepCTR peers, windows interleaved.

  Returns:
    (zoo result dict, peer result dict or None, the fastest float32 ctr_zoo model or None).
  """
  tf.keras.backend.clear_session()
  tf_batches = workload.to_tensors(batches)
  runners, models, zoo = workload.prepare_ctr_zoo(model_name, sizes, spec, tf_batches, jit, seed,
                                                  bfloat16)
  runners = {f"ctr_zoo/{m}": r for m, r in runners.items()}
  peer = None
  if with_deepctr:
    peer_runners, peer = prepare_peers(model_name, sizes, batches, seed, bfloat16)
    runners.update(peer_runners)
  if not runners:
    return zoo, peer, None
  if "off" in models:
    try:
      runners["embedding_only"] = (harness.cycle(workload.make_embedding_step(models["off"]),
                                                 tf_batches), harness.sync_scalar)
    except Exception as e:  # pylint: disable=broad-except
      zoo["embedding_step_error"] = _error(e)
  mm_step, mm_sync, mm_flops = harness.matmul_runner()
  runners["matmul"] = (mm_step, mm_sync)
  if workload.BF16_MODE in models:
    bf_step, bf_sync, _ = harness.matmul_runner(dtype=tf.bfloat16)
    runners["matmul_bf16"] = (bf_step, bf_sync)
  try:
    timings = harness.time_interleaved(runners, sizes.batch_size, **timing)
  except Exception as e:  # pylint: disable=broad-except
    # One runner failed at run time: time the others separately.
    timings = {}
    for name, (step, sync) in runners.items():
      try:
        timings[name] = harness.time_windows(step, sync, sizes.batch_size, **timing)
      except Exception as e2:  # pylint: disable=broad-except
        if name.startswith("ctr_zoo/"):
          zoo["modes"].setdefault(name.split("/")[1], {})["error"] = _error(e2)
        elif name == "deepctr_bf16":
          peer.setdefault("bf16", {})["note"] = (
              f"DeepCTR under {workload.BF16_POLICY}: {_error(e2)}")
        elif name == "deepctr":
          peer["error"] = _error(e2)
        else:
          zoo[f"{name}_error"] = _error(e2)
    logging.warning("interleaved timing failed (%s); timed the runners one by one", e)
  if "matmul" in timings:
    gflops = harness.gflops_of(timings["matmul"], sizes.batch_size, mm_flops)
    zoo["roofline_gflops"] = float(statistics.median(gflops))
    zoo["roofline_windows_gflops"] = [round(g, 1) for g in gflops]
  if "matmul_bf16" in timings:
    gflops = harness.gflops_of(timings["matmul_bf16"], sizes.batch_size, mm_flops)
    zoo["roofline_bf16_gflops"] = float(statistics.median(gflops))
  if "embedding_only" in timings:
    zoo["embedding_step_ms"] = 1000.0 * sizes.batch_size / timings["embedding_only"].median
  if "deepctr" in timings:
    peer.update(_rates(timings["deepctr"]))
  if "deepctr_bf16" in timings:
    peer["bf16"].update(_rates(timings["deepctr_bf16"]))
  best = None
  for mode in models:
    t = timings.get(f"ctr_zoo/{mode}")
    if t is None:
      continue
    zoo["modes"].setdefault(mode, {}).update(_rates(t))
    # The headline is float32, like the peer and the roofline; bfloat16 is reported beside it.
    if mode != workload.BF16_MODE and (
        best is None or t.median > zoo["modes"][best]["examples_per_sec"]):
      best = mode
  zoo["peak_rss_mib"] = max([t.peak_rss_mib for t in timings.values()] or [0])
  if best is None:
    zoo["note"] = zoo.get("note") or "every ctr_zoo step variant failed: " + "; ".join(
        f"{m}: {v.get('error')}" for m, v in zoo["modes"].items())
    return zoo, peer, None
  zoo["examples_per_sec"] = zoo["modes"][best]["examples_per_sec"]
  zoo["windows"] = zoo["modes"][best]["windows"]
  zoo["jit_compile"] = workload.JIT_MODES[best]
  return zoo, peer, models[best]


# --------------------------------------------------------------------------
# Input pipeline and serving latency.
# --------------------------------------------------------------------------
def write_parquet_shards(directory: str, spec, sizes: workload.BenchSizes, num_shards: int,
                         rows_per_shard: int, seed: int) -> List[str]:
  """Writes transformed (model-input) Parquet shards: label, float dense, int64 ids."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  shard_sizes = dataclasses.replace(sizes, batch_size=rows_per_shard)
  paths = []
  for i, (features, labels) in enumerate(workload.synthetic_batches(shard_sizes, num_shards, seed)):
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
  return input_pipeline.make_dataset(list(paths), spec, batch_size=batch_size, shuffle=True,
                                     seed=seed, epochs=None, drop_remainder=True)


def measure_input_pipeline(spec, sizes: workload.BenchSizes, batches, timing: Dict[str, int],
                           seed: int, step_fn=None) -> Dict[str, Any]:
  """Examples/s of make_dataset alone, and of the train step fed by it vs by cached tensors.

  The three runners' windows are interleaved (see `harness.time_interleaved`).
  The input-alone windows are `4 * steps_per_window` batches long.
  """
  with tempfile.TemporaryDirectory(prefix="ctr_zoo_throughput_") as directory:
    rows = sizes.batch_size * 4
    paths = write_parquet_shards(directory, spec, sizes, num_shards=4, rows_per_shard=rows,
                                 seed=seed)
    iterator = iter(make_input_dataset(paths, spec, sizes.batch_size, seed))
    alone = harness.time_windows(lambda: next(iterator), lambda out: out, sizes.batch_size,
                                 warmup_steps=timing["warmup_steps"],
                                 steps_per_window=4 * timing["steps_per_window"],
                                 num_windows=timing["num_windows"])
    out = dict(_rates(alone), shards=len(paths), rows_per_shard=rows)
    if step_fn is not None:
      fed_iter = iter(make_input_dataset(paths, spec, sizes.batch_size, seed))

      def fed_step():
        features, labels = next(fed_iter)
        return step_fn(features, labels)

      cached = harness.cycle(step_fn, workload.to_tensors(batches))
      t = harness.time_interleaved({"fed": (fed_step, harness.sync_scalar),
                                    "cached": (cached, harness.sync_scalar)},
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
      out[str(b)] = harness.latency_percentiles(seconds)
      out[str(b)]["calls"] = calls
    return out


# --------------------------------------------------------------------------
# main.
# --------------------------------------------------------------------------
def _input_and_latency(record, kept_models, spec, sizes, batches, timing) -> None:
  """Adds "input_pipeline" and "latency" to `record` (as the flags ask)."""
  pipe_model = next((m for m in ("dcn_v2", "dnn") if m in kept_models), None) or next(
      iter(kept_models), None)
  if FLAGS.input_pipeline:
    print("input pipeline ...", flush=True)
    try:
      step_fn = None
      if pipe_model is not None:
        row = next(r for r in record["models"] if r["model"] == pipe_model)
        model = kept_models[pipe_model]
        optimizer, _ = workload.split_optimizer(model)
        mode = {v: k for k, v in workload.JIT_MODES.items()}[row["jit_compile"]]
        step_fn = workload.make_ctr_zoo_step(mode, model, optimizer)
      record["input_pipeline"] = measure_input_pipeline(spec, sizes, batches, timing,
                                                        FLAGS.data_seed, step_fn)
      record["input_pipeline"]["model"] = pipe_model
    except Exception as e:  # pylint: disable=broad-except
      record["input_pipeline"] = {"note": f"not measured: {_error(e)}"}
  if FLAGS.latency:
    print("serving latency ...", flush=True)
    if pipe_model is None:
      record["latency"] = {"note": "not measured: no ctr_zoo model was built"}
    else:
      try:
        record["latency"] = {"model": pipe_model, "batches": measure_serving_latency(
            kept_models[pipe_model], spec, FLAGS.data_seed, FLAGS.latency_calls)}
      except Exception as e:  # pylint: disable=broad-except
        record["latency"] = {"note": f"not measured: {_error(e)}"}


def render_markdown(path: str) -> int:
  """Prints the markdown table of the throughput record at `path`."""
  try:
    with open(path) as fh:
      record = json.load(fh)
  except (OSError, ValueError) as e:
    print(f"error: cannot read the throughput record {path}: {e}", file=sys.stderr)
    return 1
  print(report.render_table(record, markdown=True))
  return 0


def main(argv):
  del argv
  if not FLAGS.is_parsed() or not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # the library's INFO lines would drown the table
  tracked = records.user_path(FLAGS.record)
  if FLAGS.render_markdown:
    return render_markdown(tracked or TRACKED_RECORD)
  unknown = [m for m in FLAGS.models if m not in workload.ALL_MODELS]
  if unknown:
    raise app.UsageError(f"--models has unknown model(s) {unknown}; known: "
                         f"{list(workload.ALL_MODELS)}")
  try:
    sizes = workload.BenchSizes(
        batch_size=FLAGS.batch_size, num_fields=FLAGS.num_fields, vocab_size=FLAGS.vocab_size,
        embedding_dim=FLAGS.embedding_width, num_dense=FLAGS.num_dense,
        mlp=tuple(int(u) for u in FLAGS.mlp), cross_layers=FLAGS.cross_layers,
        low_rank=FLAGS.low_rank, num_experts=FLAGS.num_experts, cdot_k=FLAGS.cdot_k)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  timing = {"warmup_steps": FLAGS.warmup_steps, "steps_per_window": FLAGS.steps_per_window,
            "num_windows": FLAGS.num_windows}
  record = {"benchmark": "throughput", "time": records.now(),
            "git_revision": records.git_revision(), "machine": records.machine_description(),
            "seed": FLAGS.data_seed,
            "config": dict(dataclasses.asdict(sizes), **timing, jit=FLAGS.jit,
                           bfloat16=FLAGS.bfloat16),
            "flop_count": FLOP_COUNT, "models": []}
  print(f"measuring the matmul roofline ({record['machine']}) ...", flush=True)
  roof = harness.measure_matmul_gflops()
  record["roofline"] = roof
  print(f"  tf.matmul: {roof['gflops']:.1f} GFLOP/s", flush=True)
  batches = workload.synthetic_batches(sizes, FLAGS.num_batches, FLAGS.data_seed)
  spec = workload.benchmark_spec(sizes)
  kept_models = {}
  for name in FLAGS.models:
    print(f"{name}: ctr_zoo and its DeepCTR peer, windows interleaved ...", flush=True)
    zoo, peer, model = benchmark_model(name, sizes, spec, batches, timing, FLAGS.jit,
                                       FLAGS.data_seed, FLAGS.deepctr, FLAGS.bfloat16)
    if model is not None:
      kept_models[name] = model
    row = report.model_row(name, sizes.batch_size, roof["gflops"], zoo, peer)
    record["models"].append(row)
    peer_bf16 = (peer or {}).get("bf16") or {}
    print(f"  float32: ctr_zoo {report.fmt_rate(row.get('examples_per_sec'))} ex/s "
          f"(jit {row.get('jit_compile')}), DeepCTR "
          f"{report.fmt_rate((peer or {}).get('examples_per_sec'))} ex/s, ratio "
          f"{report.fmt(row.get('ratio_to_deepctr'), '.2f', 'x')}; mixed_bfloat16: ctr_zoo "
          f"{report.fmt_rate(row.get('bf16_examples_per_sec'))} ex/s, DeepCTR "
          f"{report.fmt_rate(peer_bf16.get('examples_per_sec'))} ex/s, ratio "
          f"{report.fmt(row.get('bf16_ratio_to_deepctr'), '.2f', 'x')} {row.get('note', '')}",
          flush=True)
  _input_and_latency(record, kept_models, spec, sizes, batches, timing)
  record["process_peak_rss_mib"] = harness.process_peak_rss_mib()
  print()
  print(report.render_table(record))
  written = [records.write_json(os.path.join(records.results_dir(FLAGS.results), RECORD_FILE),
                                record)]
  if tracked:
    written.append(records.write_json(tracked, record))
  print("\nwrote " + " and ".join(written))
  return 0


if __name__ == "__main__":
  app.run(main)
