r"""Serving benchmark: size, AUC and latency of float32, float16, int8, pruned and QAT exports.

  bazel run //benchmarks:serving -- --serving_models=dcn_v2,deepfm,dcn_mix \
      --data_setups=synthetic,criteo
  python -m benchmarks.serving --serving_models=dcn_v2 --data_setups=synthetic --epochs=1
  python -m benchmarks.serving --serving_render_only --results=runs/benchmarks

For every data setup and model, three models are trained (in temporary run
directories, removed at the end): the experiment as configured (float32), the
same with quantization-aware training (`model.params.embedding.fake_quant`),
and the same with group-lasso FTRL on the embedding tables (whole rows go to
zero). Their exports are the rows of the table:

  float32          the plain model's export (the reference of every delta)
  float16          float16 tables and dense kernels
  int8             per-row int8 tables, float16 dense kernels
  float32 (GL)     the group-lasso model, unpruned (its own reference)
  int8 + pruning   the group-lasso model: all-zero rows dropped, the rest int8
  int8 after QAT   the quantization-aware model, int8

Columns: SavedModel bytes (the whole directory: graph with the vocabularies,
variables), table bytes (the embedding tables as stored) and their ratio to
float32; test AUC and logloss on the run's test split scored from RAW rows
through the export's `serve_typed` signature, with the difference to float32
and the bootstrap standard deviation of that (paired) difference; p50 / p99
latency of `serve_tsv_labeled` on raw TSV lines at batch 1 and 256. The
variants are timed in turns (call by call), so a load change on a shared
machine hits them alike; TensorFlow runs one op at a time on one thread
(inter- and intra-op parallelism 1) for stable single-request latency.

With --predict_rate (on the first synthetic model), the `predict` command's
rate on the whole synthetic file is measured against `evaluate --model_dir
--data` on the same file, in this process, and recorded.

Records go to <results>/serving_records.jsonl (and with --record=PATH also
there); the markdown table is rendered from ALL records of that file into
<results>/serving.md. The maintainer's command:

  python -m benchmarks.serving --record=benchmarks/results/serving_records.jsonl
  make results     # re-renders the README's serving table from the tracked records
"""

import os
import re
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf

from benchmarks import common_flags  # noqa: F401  (--results, --record)
from benchmarks import records
from ctr_zoo import datasets
from ctr_zoo import metrics
from ctr_zoo import training
from experiments import configs
from experiments import data as data_lib
from experiments import evaluate
from experiments import predict
from experiments import resolve
from experiments import runner
from experiments import scorers

RECORDS_FILE = "serving_records.jsonl"
TABLE_FILE = "serving.md"
VARIANTS = ("float32", "float16", "int8", "float32 (GL)", "int8 + pruning", "int8 after QAT")
DATA_SETUPS = ("synthetic", "criteo")

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(common_flags)
flags.DEFINE_list("serving_models", ["dcn_v2", "deepfm", "dcn_mix"], "Models to benchmark.")
flags.DEFINE_list("data_setups", list(DATA_SETUPS), "Data setups: synthetic, criteo (the sample).")
flags.DEFINE_integer("epochs", 1, "Training epochs of every model.")
flags.DEFINE_float("group_lasso", 1e-3, "Group-lasso strength of the pruned model's FTRL.")
flags.DEFINE_float("group_lasso_learning_rate", 0.05, "Its FTRL learning rate.")
flags.DEFINE_integer("calls_batch1", 400, "Timed calls per variant at batch 1.")
flags.DEFINE_integer("calls_batch256", 40, "Timed calls per variant at batch 256.")
flags.DEFINE_integer("bootstrap", 200, "Bootstrap resamples for the AUC difference's std.")
flags.DEFINE_bool("predict_rate", True, "Measure predict vs evaluate on the synthetic file.")
flags.DEFINE_bool("serving_render_only", False,
                  "Only render the table from the records in --results.")


def experiment(model: str, setup: str, epochs: int, **overrides):
  """The resolved experiment `<model>_<setup>` with `epochs` and the dotted `overrides`."""
  return resolve.resolve(configs.get(f"{model}_{setup}", {"trainer.epochs": epochs, **overrides}))


def train(cfg, model_dir: str):
  """Trains `cfg` into `model_dir`; (metrics, spec, restored model, seconds)."""
  start = time.perf_counter()
  result = runner.run(cfg, model_dir, export=False)
  seconds = time.perf_counter() - start
  _, spec, model, _ = scorers.restore_run(model_dir)
  return result, spec, model, seconds


def test_rows(cfg, spec):
  """The raw typed test rows of a run's data (the run's split), as one Arrow table."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  files = data_lib._sources(cfg.data)  # pylint: disable=protected-access
  split = data_lib._split_of(cfg.data, len(files))  # pylint: disable=protected-access
  test = list(split.names).index("test")
  parts = []
  for batch in datasets.read_batches(files, spec):
    keep = split.assign(batch.file_index, batch.row_keys) == test
    parts.append(batch.table.filter(pa.array(keep)))
  return pa.concat_tables(parts).combine_chunks()


def raw_lines(table, spec, n: int) -> list:
  """The first n rows of a typed raw table as label-first TSV lines."""
  columns = [spec.label] + spec.feature_names
  cols = []
  for c in columns:
    values = table.column(c).slice(0, n).to_pylist()
    cols.append(["" if v is None else (str(int(v)) if isinstance(v, float) else str(v))
                 for v in values])
  return ["\t".join(row) for row in zip(*cols)]


def score(export_dir: str, table, spec, batch_size: int = 8192) -> np.ndarray:
  scorer = scorers.ExportScorer(export_dir)
  return np.concatenate([scorer(table.slice(i, batch_size))
                         for i in range(0, table.num_rows, batch_size)]).astype(np.float64)


def bootstrap_delta_std(labels, base, other, n: int, seed: int = 0) -> float:
  """Std of AUC(other) - AUC(base) over bootstrap resamples of the (shared) test rows."""
  rng = np.random.default_rng(seed)
  deltas = []
  for _ in range(n):
    idx = rng.integers(0, len(labels), len(labels))
    y = labels[idx]
    if y.min() == y.max():
      continue
    deltas.append(metrics.auc(y, other[idx]) - metrics.auc(y, base[idx]))
  return float(np.std(deltas)) if deltas else float("nan")


def latencies(export_dirs: dict, lines: list, calls: dict) -> dict:
  """{variant: {batch: {"p50_ms", "p99_ms"}}}, the variants timed in turns."""
  fns = {name: tf.saved_model.load(path).signatures["serve_tsv_labeled"]
         for name, path in export_dirs.items()}
  out = {name: {} for name in fns}
  for batch, n in calls.items():
    for fn in fns.values():
      for i in range(10):  # warm up
        fn(lines=tf.constant(lines[i:i + batch]))
    times = {name: [] for name in fns}
    for i in range(n):
      start = (i * batch) % max(len(lines) - batch, 1)
      x = tf.constant(lines[start:start + batch])
      for name, fn in fns.items():
        t = time.perf_counter()
        fn(lines=x)
        times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
      out[name][str(batch)] = {"p50_ms": float(np.percentile(ts, 50) * 1e3),
                               "p99_ms": float(np.percentile(ts, 99) * 1e3)}
  return out


def benchmark_model(model: str, setup: str, work: str, log) -> list:
  """The records of one (model, data setup): every variant."""
  epochs = FLAGS.epochs
  runs = {
      "plain": experiment(model, setup, epochs),
      "qat": experiment(model, setup, epochs, **{"model.params.embedding.fake_quant": True}),
      "gl": experiment(model, setup, epochs, **{
          "optimizer.embedding": "group_lasso_ftrl",
          "optimizer.embedding_learning_rate": FLAGS.group_lasso_learning_rate,
          "optimizer.embedding_params": {"group_lasso": FLAGS.group_lasso}}),
  }
  trained = {}
  for key, cfg in runs.items():
    log(f"{setup}/{model}: training {key} ({epochs} epoch(s))")
    trained[key] = train(cfg, os.path.join(work, f"{setup}_{model}_{key}"))
  plan = {  # variant -> (trained model key, export options)
      "float32": ("plain", {}),
      "float16": ("plain", {"quantize": "float16"}),
      "int8": ("plain", {"quantize": "int8"}),
      "float32 (GL)": ("gl", {}),
      "int8 + pruning": ("gl", {"quantize": "int8", "prune_zero_rows": True}),
      "int8 after QAT": ("qat", {"quantize": "int8"}),
  }
  cfg = runs["plain"]
  spec = trained["plain"][1]
  table = test_rows(cfg, spec)
  labels = table.column(spec.label).to_numpy().astype(np.float64)
  exports, infos, preds = {}, {}, {}
  for variant, (key, options) in plan.items():
    _, key_spec, keras_model, _ = trained[key]
    path = os.path.join(work, f"{setup}_{model}_{variant.replace(' ', '_')}")
    log(f"{setup}/{model}: exporting {variant}")
    infos[variant] = training.export_saved_model(keras_model, key_spec, path, **options)
    exports[variant] = path
    preds[variant] = score(path, table, key_spec)
  log(f"{setup}/{model}: timing {len(exports)} exports")
  lines = raw_lines(table, spec, min(table.num_rows, 2048))
  lat = latencies(exports, lines, {1: FLAGS.calls_batch1, 256: FLAGS.calls_batch256})
  base = preds["float32"]
  base_auc, base_ll = metrics.auc(labels, base), metrics.logloss(labels, base)
  out = []
  for variant in plan:
    key = plan[variant][0]
    result, _, _, seconds = trained[key]
    p = preds[variant]
    info = infos[variant]
    tb = info["table_bytes"]
    auc, ll = metrics.auc(labels, p), metrics.logloss(labels, p)
    zero_rows = sum(e["zero_rows"] for e in info["tables"].values())
    rows = sum(e["rows"] for e in info["tables"].values())
    out.append({
        "benchmark": "serving", "data": cfg.data.name, "setup": setup, "model": model,
        "variant": variant, "epochs": epochs, "test_rows": int(table.num_rows),
        "saved_model_bytes": info["saved_model_bytes"], "variables_bytes": info["variables_bytes"],
        "table_bytes": tb["exported"], "table_bytes_float32": tb["float32"],
        "table_ratio": tb["exported"] / tb["float32"],
        "dense_kernel_bytes": info["dense_kernel_bytes"]["exported"],
        "zero_row_fraction": zero_rows / max(rows, 1),
        "test_auc": auc, "test_logloss": ll,
        "auc_delta": auc - base_auc, "logloss_delta": ll - base_ll,
        "auc_delta_std": bootstrap_delta_std(labels, base, p, FLAGS.bootstrap),
        "auc_std": bootstrap_delta_std(labels, np.full_like(base, 0.5), p, FLAGS.bootstrap),
        "run_test_auc": result["test"]["auc"], "train_seconds": seconds,
        "latency": lat[variant], "threads": "inter_op=1, intra_op=1",
        "git_revision": records.git_revision(), "machine": records.machine_description(),
        "time": records.now(),
    })
  return out


def predict_rate(work: str, log) -> dict:
  """predict (run and export) against evaluate --model_dir --data on the whole synthetic file."""
  cfg = experiment("dcn_v2", "synthetic", FLAGS.epochs)
  model_dir = os.path.join(work, "synthetic_dcn_v2_plain")
  source = data_lib._sources(cfg.data)[0]  # pylint: disable=protected-access
  export_dir = os.path.join(work, "synthetic_dcn_v2_float32")
  int8_dir = os.path.join(work, "synthetic_dcn_v2_int8")
  out = {"benchmark": "serving_predict_rate", "data": cfg.data.name, "model": "dcn_v2",
         "file_rows": None}
  log("predict rate: evaluate --model_dir --data")
  start = time.perf_counter()
  labels, _ = evaluate.predict_run(model_dir, "test", source)
  out["evaluate_seconds"] = time.perf_counter() - start
  out["file_rows"] = int(len(labels))
  for name, scorer_fn in (("predict_model_dir", lambda: scorers.RunScorer(model_dir)),
                          ("predict_export_float32", lambda: scorers.ExportScorer(export_dir)),
                          ("predict_export_int8", lambda: scorers.ExportScorer(int8_dir))):
    log(f"predict rate: {name}")
    start = time.perf_counter()
    result = predict.predict_file(scorer_fn(), source, os.path.join(work, f"{name}.parquet"))
    out[f"{name}_seconds"] = time.perf_counter() - start
    assert result["rows"] == out["file_rows"], (result["rows"], out["file_rows"])
  for name in ("predict_model_dir", "predict_export_float32", "predict_export_int8"):
    out[f"{name}_vs_evaluate"] = out["evaluate_seconds"] / out[f"{name}_seconds"]
  out.update(git_revision=records.git_revision(), machine=records.machine_description(),
             time=records.now())
  return out


def _mb(n) -> str:
  return f"{n / 1e6:.2f}"


def render(records_list: list) -> str:
  """The markdown serving table (the latest record of each data/model/variant) and the
  predict-rate line."""
  latest = {}
  for r in records_list:
    if r.get("benchmark") == "serving":
      latest[(r["data"], r["model"], r["variant"])] = r
  if not latest:
    return "No serving records yet.\n"
  lines = ["| data | model | variant | SavedModel MB | tables MB (x float32) | test AUC | "
           "ΔAUC ± std | logloss | Δlogloss | batch 1 p50 / p99 ms | batch 256 p50 / p99 ms |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  order = {v: i for i, v in enumerate(VARIANTS)}
  for key in sorted(latest, key=lambda k: (k[0], k[1], order.get(k[2], 99))):
    r = latest[key]
    l1, l256 = r["latency"]["1"], r["latency"]["256"]
    delta = ("—" if r["variant"] == "float32"
             else f"{r['auc_delta']:+.4f} ± {r['auc_delta_std']:.4f}")
    dll = "—" if r["variant"] == "float32" else f"{r['logloss_delta']:+.4f}"
    lines.append(
        f"| {r['data']} | {r['model']} | {r['variant']} | {_mb(r['saved_model_bytes'])} | "
        f"{_mb(r['table_bytes'])} ({r['table_ratio']:.3f}x) | {r['test_auc']:.4f} | {delta} | "
        f"{r['test_logloss']:.4f} | {dll} | {l1['p50_ms']:.2f} / {l1['p99_ms']:.2f} | "
        f"{l256['p50_ms']:.1f} / {l256['p99_ms']:.1f} |")
  shown = list(latest.values())
  times = sorted({r["time"] for r in shown})
  revisions = ", ".join(sorted({r["git_revision"] for r in shown}))
  machines = "; ".join(sorted({r["machine"].split("; load average")[0] for r in shown}))
  loads = sorted(float(m.group(1)) for m in (re.search(r"load average at start ([\d.]+)",
                                                       r["machine"]) for r in shown) if m)
  if loads:
    machines += (f" (shared; load average {loads[0]:.1f}" +
                 (f" to {loads[-1]:.1f})" if loads[-1] != loads[0] else ")"))
  when = times[0] if len(times) == 1 else f"{times[0]} to {times[-1]}"
  epochs = "/".join(str(e) for e in sorted({r["epochs"] for r in shown}))
  text = [f"Measured {when} on {machines} (git {revisions}); "
          f"{epochs} epoch(s) per model; ΔAUC against the float32 export on the same "
          "test rows, ± the std of that difference over bootstrap resamples of those rows; "
          "latency of serve_tsv_labeled on raw lines, one thread.", "",
          "\n".join(lines)]
  rates = [r for r in records_list if r.get("benchmark") == "serving_predict_rate"]
  if rates:
    r = rates[-1]
    text += ["", f"predict on the {r['file_rows']:,}-row {r['data']} file: "
             f"{r['predict_model_dir_vs_evaluate']:.2f}x the rate of `evaluate --model_dir --data` "
             f"with --model_dir, {r['predict_export_float32_vs_evaluate']:.2f}x with the float32 "
             f"export, {r['predict_export_int8_vs_evaluate']:.2f}x with the int8 export "
             f"(evaluate {r['evaluate_seconds']:.1f}s)."]
  return "\n".join(text) + "\n"


def main(argv):
  del argv
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  results = records.results_dir(FLAGS.results)
  path = os.path.join(results, RECORDS_FILE)
  if not FLAGS.serving_render_only:
    bad = [s for s in FLAGS.data_setups if s not in DATA_SETUPS]
    if bad:
      print(f"error: --data_setups {bad}: each must be one of {list(DATA_SETUPS)}", file=sys.stderr)
      return 2
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.keras.backend.experimental.enable_tf_random_generator()
    start = time.perf_counter()

    def log(message):
      print(f"[{time.perf_counter() - start:7.1f}s] {message}", flush=True)

    work = tempfile.mkdtemp(prefix="ctr_zoo_serving_")
    new = []
    try:
      for setup in FLAGS.data_setups:
        for model in FLAGS.serving_models:
          new.extend(benchmark_model(model, setup, work, log))
      if (FLAGS.predict_rate and "synthetic" in FLAGS.data_setups
          and "dcn_v2" in FLAGS.serving_models):
        new.append(predict_rate(work, log))
    finally:
      shutil.rmtree(work, ignore_errors=True)
    written = records.write_records(new, results, RECORDS_FILE, FLAGS.record or None)
    print(f"benchmark took {time.perf_counter() - start:.0f}s; records: {', '.join(written)}")
  if not os.path.exists(path):
    print(f"error: no records at {path}", file=sys.stderr)
    return 1
  table = render(records.load_jsonl(path))
  with open(os.path.join(results, TABLE_FILE), "w") as fh:
    fh.write(table)
  print(table)
  return 0


if __name__ == "__main__":
  app.run(main)
