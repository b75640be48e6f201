"""Throughput and peak memory of fit + transform vs a pandas + LabelEncoder baseline.

  python -m benchmarks.pipeline_throughput            # 2M rows (and 1M for RSS)
  python -m benchmarks.pipeline_throughput --rows=200000 --repeats=1

Generates synthetic Criteo TSVs (cached under data_cache/, git-ignored) of N/2
and N rows, then runs, each in a fresh subprocess so peak RSS is its own:

- ours: `datasets.fit_transform` (= `fit` then `transform`, identical
  output, the text parsed once; criteo_spec(min_count=2), random 8:1:1 split,
  snappy Parquet shards written);
- baseline: `pandas.read_csv` (default C engine; categoricals read as str,
  as they must be: hex tokens such as "1e5" would parse as floats) + one
  sklearn `LabelEncoder.fit_transform` per categorical field + log1p of the
  integers, results kept in memory (no split, no min_count, nothing written:
  all of which favours the baseline).

Runs are interleaved (repeat r runs every (size, method) before repeat r+1)
so that machine load hits both methods alike. Prints the median wall time
and rows/s over --repeats, CPU seconds (user + sys of the worker), the ratio
of medians at N rows, and peak RSS (VmHWM, max over repeats) at N/2 and N
rows; appends a JSON record to <results>/pipeline_throughput.jsonl (--results,
default runs/benchmarks/) and, only with --record=PATH, to that tracked file
(benchmarks/results/pipeline_throughput.jsonl).
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags

from benchmarks import common_flags  # noqa: F401  (--results, --record)
from benchmarks import own_peak_rss
from benchmarks import records

ROOT = records.REPO_ROOT
RECORDS_FILE = "pipeline_throughput.jsonl"

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(common_flags)
flags.DEFINE_integer("rows", 2_000_000, "Rows of the large file (the small one has half).")
flags.DEFINE_integer("repeats", 3, "Timed runs per (method, size); the median is reported.")
flags.DEFINE_string("cache_dir", os.path.join(ROOT, "data_cache", "pipeline_bench"), "Data cache.")
flags.DEFINE_enum("worker", None, ["ours", "baseline"], "Internal: run one measurement.")
flags.DEFINE_string("path", None, "Internal: the TSV of a worker run.")
flags.DEFINE_string("out", None, "Internal: output dir of a worker run.")


def _peak_rss_mib() -> float:
  """Peak resident set of this process (VmHWM; ru_maxrss would carry the parent's over exec)."""
  peak = own_peak_rss.own_peak_rss_bytes()
  if peak is not None:
    return peak / 2**20
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _cpu_seconds() -> float:
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def _worker_ours(path: str, out: str) -> dict:
  import ctr_zoo  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from ctr_zoo import datasets  # pylint: disable=g-import-not-at-top
  from ctr_zoo.feature_columns import criteo_spec  # pylint: disable=g-import-not-at-top
  rss_before = _peak_rss_mib()
  split = datasets.RandomSplit(seed=0)
  start, cpu = time.perf_counter(), _cpu_seconds()
  _, fit_summary, summary = datasets.fit_transform(path, criteo_spec(min_count=2), out,
                                                   split=split)
  total = time.perf_counter() - start
  return {"rows": sum(summary.rows.values()), "seconds": total,
          "fit_seconds": fit_summary.seconds, "cpu_seconds": _cpu_seconds() - cpu,
          "peak_rss_mib": _peak_rss_mib(), "rss_after_imports_mib": rss_before}


def _worker_baseline(path: str) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  import pandas as pd  # pylint: disable=g-import-not-at-top
  from sklearn.preprocessing import LabelEncoder  # pylint: disable=g-import-not-at-top
  rss_before = _peak_rss_mib()
  ints = [f"I{i}" for i in range(1, 14)]
  cats = [f"C{i}" for i in range(1, 27)]
  start, cpu = time.perf_counter(), _cpu_seconds()
  df = pd.read_csv(path, sep="\t", header=None, names=["label"] + ints + cats,
                   dtype={c: str for c in cats})
  out = {"label": df["label"].to_numpy(np.float32)}
  for c in ints:
    out[c] = np.log1p(np.maximum(df[c].fillna(0).to_numpy(np.float64), 0)).astype(np.float32)
  for c in cats:
    out[c] = LabelEncoder().fit_transform(df[c].fillna("").to_numpy()).astype(np.int64)
  total = time.perf_counter() - start
  return {"rows": len(df), "seconds": total, "cpu_seconds": _cpu_seconds() - cpu,
          "peak_rss_mib": _peak_rss_mib(),
          "rss_after_imports_mib": rss_before}


def _run_worker(kind: str, path: str, out: str) -> dict:
  cmd = [sys.executable, "-m", "benchmarks.pipeline_throughput", f"--worker={kind}",
         f"--path={path}", f"--out={out}"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
  if res.returncode != 0:
    raise RuntimeError(f"{kind} worker failed:\n{res.stderr[-3000:]}")
  return json.loads(res.stdout.strip().splitlines()[-1])


def _ensure_data(rows: int) -> str:
  import ctr_zoo  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from ctr_zoo import datasets  # pylint: disable=g-import-not-at-top
  path = os.path.join(FLAGS.cache_dir, f"synthetic_{rows}_seed0.tsv")
  if not (os.path.exists(path) and os.path.exists(path + datasets.synthetic.ORACLE_SUFFIX)):
    start = time.perf_counter()
    info = datasets.generate_criteo_tsv(path, rows, seed=0)
    print(f"generated {rows:,} rows in {time.perf_counter() - start:.1f}s -> {path} "
          f"(CTR {info['ctr']:.4f}, oracle AUC {info['oracle_auc']:.4f})")
  return path


def _median(xs):
  xs = sorted(xs)
  return xs[len(xs) // 2]


def main(argv):
  del argv
  if FLAGS.worker:
    if FLAGS.worker == "ours":
      result = _worker_ours(FLAGS.path, FLAGS.out)
    else:
      result = _worker_baseline(FLAGS.path)
    print(json.dumps(result))
    return 0
  sizes = [FLAGS.rows // 2, FLAGS.rows]
  paths = {n: _ensure_data(n) for n in sizes}
  kinds = ("ours", "baseline")
  runs = {(k, n): [] for n in sizes for k in kinds}
  for rep in range(FLAGS.repeats):  # interleaved: load drifts hit both methods alike
    for n in sizes:
      for kind in kinds:
        r = _run_worker(kind, paths[n], os.path.join(FLAGS.cache_dir, f"out_{n}"))
        runs[(kind, n)].append(r)
        print(f"  repeat {rep + 1}/{FLAGS.repeats} {kind:<9}{n:>11,} rows {r['seconds']:7.2f}s "
              f"(cpu {r['cpu_seconds']:.2f}s)", flush=True)
  results = {}
  for n in sizes:
    for kind in kinds:
      rs = runs[(kind, n)]
      secs = _median([r["seconds"] for r in rs])
      cpu = _median([r["cpu_seconds"] for r in rs])
      results[(kind, n)] = {"rows_per_s": n / secs, "seconds": secs,
                            "seconds_all": [round(r["seconds"], 3) for r in rs],
                            "cpu_seconds": cpu,
                            "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
                            "rss_after_imports_mib": rs[0]["rss_after_imports_mib"]}
      print(f"{kind:<9}{n:>11,} rows {secs:8.1f}s {n / secs:12,.0f} rows/s  cpu {cpu:6.1f}s  "
            f"peak RSS {results[(kind, n)]['peak_rss_mib']:8.0f} MiB "
            f"(after imports {rs[0]['rss_after_imports_mib']:.0f} MiB)", flush=True)
  big = FLAGS.rows
  ratio = results[("ours", big)]["rows_per_s"] / results[("baseline", big)]["rows_per_s"]
  growth = {k: results[(k, big)]["peak_rss_mib"] / results[(k, big // 2)]["peak_rss_mib"]
            for k in ("ours", "baseline")}
  ratio_small = (results[("ours", big // 2)]["rows_per_s"] /
                 results[("baseline", big // 2)]["rows_per_s"])
  cpu_ratio = results[("baseline", big)]["cpu_seconds"] / results[("ours", big)]["cpu_seconds"]
  print(f"\nfit+transform vs pandas+LabelEncoder at {big:,} rows: {ratio:.2f}x "
        f"(at {big // 2:,}: {ratio_small:.2f}x; CPU-time ratio at {big:,}: {cpu_ratio:.2f}x)")
  print(f"peak RSS growth {big // 2:,} -> {big:,} rows: ours {growth['ours']:.2f}x, "
        f"baseline {growth['baseline']:.2f}x")
  record = {
      "benchmark": "pipeline_throughput", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
      "git": records.git_revision(), "rows": big, "repeats": FLAGS.repeats, "ratio": ratio,
      "ratio_half": ratio_small, "cpu_ratio": cpu_ratio,
      "rss_growth": growth,
      "results": {f"{k}_{n}": v for (k, n), v in results.items()}}
  written = records.write_records([record], records.results_dir(FLAGS.results), RECORDS_FILE,
                                  FLAGS.record)
  print("appended the record to " + " and ".join(written))
  return 0


if __name__ == "__main__":
  app.run(main)
