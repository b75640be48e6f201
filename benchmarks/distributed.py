r"""Distributed training on one machine: examples/s and the bytes each step moves between tasks.

  python -m benchmarks.distributed                      # writes to runs/benchmarks/
  python -m benchmarks.distributed --record=benchmarks/results/distributed.jsonl
  python -m benchmarks.distributed --render_table    # the tracked record's table

The dcn_v2 benchmark layout (as benchmarks/throughput.py: batch 4096, 26
fields x 10k hashed ids x dim 16 + 13 dense fields, 3 cross layers, MLP
256x3) on the built-in synthetic data, trained by `experiments.train` as:

- single: one process (trainer.distribute=none);
- mirrored2: MultiWorkerMirroredStrategy, 2 workers of per-worker batch 4096
  (global batch 8192), started by experiments/local_cluster.py;
- ps1, ps2, ps4: ParameterServerStrategy, a chief, 2 workers (batch 4096 a
  step) and 1, 2 or 4 ps tasks, every table split into one shard per ps.

Examples/s: the median over the timed windows (`--window_steps` steps each,
after one untimed window that includes tracing) of the chief's own window
rate (progress lines), input pipeline and synchronisation included.

Bytes between tasks: before and after each window the TCP counters of every
loopback connection to or from a port of the cluster are read (`ss -tin`:
tcp_info bytes_received, summed over both ends: each byte once). Per step:
the window's bytes / its steps. Parameter servers: a worker's step reads
every dense variable and sends its gradient (2 x 4 bytes x P_dense, P_dense
the dense parameters); the rest is the tables' traffic, compared with the
rows the step touches: U x 16 x 4 bytes, U = the distinct ids of a batch
summed over the tables (counted on batches of the training split). The
tables move each touched row twice (read, gradient) plus its id, so the
ratio is a little over 2; it must stay <= 3 (a step that moved whole tables
would be orders of magnitude above).

On this 2-core machine every process shares the same two cores: the table
shows the overhead of the distributed modes, not a speed-up. The
communication per step and the single-process step time predict scaling
(see `render`).
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

if __name__ == "__main__" and __package__ in (None, ""):
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common_flags  # noqa: E402,F401  (--results, --record)
from benchmarks import records  # noqa: E402
from experiments import local_cluster  # noqa: E402

RECORD_FILE = "distributed.jsonl"
TRACKED_RECORD = os.path.join(records.TRACKED_DIR, RECORD_FILE)
CONFIGS = {
    "single": {"workers": 0, "ps": 0},
    "mirrored2": {"workers": 2, "ps": 0},
    "ps1": {"workers": 2, "ps": 1},
    "ps2": {"workers": 2, "ps": 2},
    "ps4": {"workers": 2, "ps": 4},
}
PROGRESS = re.compile(r"epoch (\d+) \[[#.]*\] (\d+)/(\d+) .* ([\d,]+) ex/s")
CLUSTER = re.compile(r"^\[launcher\] cluster (.*)$")
BYTES_RECEIVED = re.compile(r"bytes_received:(\d+)")
# gRPC's sockets are dual-stack: loopback peers show as [::ffff:127.0.0.1]:port.
ADDRESS = re.compile(r"127\.0\.0\.1\]?:(\d+)\s+(?:\[::ffff:)?127\.0\.0\.1\]?:(\d+)")
LINK_GBITS = 10.0  # the network the scaling figures assume

FLAGS = flags.FLAGS
flags.adopt_module_key_flags(common_flags)
flags.DEFINE_list("modes", list(CONFIGS), f"Configurations to run, of {list(CONFIGS)}.")
flags.DEFINE_integer("examples_per_step", 4096, "Examples per step and worker.")
flags.DEFINE_integer("table_rows", 10000, "Hash buckets (table rows) per categorical field.")
flags.DEFINE_integer("synthetic_rows", 250000, "Synthetic rows generated (80% train).")
flags.DEFINE_integer("window_steps", 8, "Steps per timed window (the chief's log cadence).")
flags.DEFINE_integer("timed_windows", 3, "Timed windows after the untimed first one.")
flags.DEFINE_integer("mode_timeout_seconds", 900, "Per configuration.")
flags.DEFINE_bool("render_table", False,
                  "Print the table of the last record of --record (default: the tracked "
                  "benchmarks/results/distributed.jsonl) and exit.")


def layout_overrides(batch_size: int, vocab_size: int, rows: int, steps: int,
                     window: int) -> str:
  """--params_override of dcn_v2_synthetic for the benchmark layout."""
  return ",".join([
      f"data.synthetic_rows={rows}", f"data.hash_buckets={vocab_size}",
      f"input.batch_size={batch_size}", "input.eval_batch_size=16384",
      "model.params.embedding.dim=16", "model.params.tower.dims=[256,256,256]",
      "model.params.tower.dropout=0", "model.params.num_cross_layers=3",
      f"trainer.max_steps={steps}", f"trainer.log_every_steps={window}",
      "trainer.checkpoint_every_steps=100000", "trainer.min_shard_bytes=65536"])


def loopback_bytes(ports: set) -> int:
  """Bytes received by every established loopback TCP socket with an end on `ports`."""
  out = subprocess.run(["ss", "-tinH", "state", "established"], capture_output=True, text=True,
                       check=True, timeout=30).stdout
  total = 0
  include = False
  for line in out.splitlines():
    address = ADDRESS.search(line)
    if address:
      include = int(address.group(1)) in ports or int(address.group(2)) in ports
      continue
    received = BYTES_RECEIVED.search(line)
    if include and received:
      total += int(received.group(1))
      include = False
  return total


class Run:
  """One configuration's processes, read line by line; windows measured at progress lines."""

  def __init__(self, name: str, argv: List[str], env: Dict[str, str]):
    self.name = name
    self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=records.REPO_ROOT)
    self.ports: set = set()
    self.marks = []  # (seconds, step, rate, bytes)
    self.tail: List[str] = []
    self._thread = threading.Thread(target=self._read, daemon=True)
    self._thread.start()

  def _read(self):
    pending = b""
    while True:
      chunk = self.process.stdout.read1(65536)
      if not chunk:
        break
      lines, pending = local_cluster.split_output(pending, chunk)
      for raw in lines:
        self._line(raw.decode(errors="replace"))

  def _line(self, line: str):
    self.tail = (self.tail + [line])[-40:]
    cluster = CLUSTER.match(line)
    if cluster:
      self.ports = {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", cluster.group(1))}
      return
    chief = line.startswith(("[chief] ", "[worker:0] ")) or not line.startswith("[")
    progress = PROGRESS.search(line)
    if chief and progress and progress.group(2) != progress.group(3):
      step = (int(progress.group(1)) - 1) * int(progress.group(3)) + int(progress.group(2))
      rate = float(progress.group(4).replace(",", ""))
      self.marks.append((time.perf_counter(), step, rate,
                         loopback_bytes(self.ports) if self.ports else 0))

  def wait(self, timeout: float) -> int:
    try:
      return self.process.wait(timeout)
    except subprocess.TimeoutExpired:
      self.process.terminate()
      try:
        self.process.wait(30)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()
      return 124
    finally:
      self._thread.join(10)

  def result(self) -> Dict:
    """Median rate and bytes/step over the windows after the first progress line."""
    windows = []
    for (_, s0, _, b0), (_, s1, rate, b1) in zip(self.marks, self.marks[1:]):
      if s1 > s0:
        windows.append({"steps": s1 - s0, "examples_per_sec": rate,
                        "bytes_per_step": (b1 - b0) / (s1 - s0)})
    if not windows:
      return {"error": "no timed window; last lines:\n" + "\n".join(self.tail[-15:])}
    return {"examples_per_sec": statistics.median(w["examples_per_sec"] for w in windows),
            "bytes_per_step": statistics.median(w["bytes_per_step"] for w in windows),
            "windows": windows}


def layout_facts(overrides: str, batch_size: int, cache: Optional[str]) -> Dict:
  """Dense and table parameters of the layout's model and the rows a batch touches."""
  import ctr_zoo  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  from ctr_zoo.datasets import input_pipeline  # pylint: disable=g-import-not-at-top
  from experiments import data as data_lib  # pylint: disable=g-import-not-at-top
  from experiments import runner  # pylint: disable=g-import-not-at-top
  from experiments import zoo  # pylint: disable=g-import-not-at-top
  if cache:
    os.environ["CTR_ZOO_CACHE"] = cache
  cfg = runner.resolve_config("dcn_v2_synthetic", overrides)
  prepared = data_lib.prepare(cfg.data)
  model = zoo.build_model(cfg.model, prepared.spec)
  dense = sum(int(np.prod(v.shape)) for v in model.dense_variables)
  tables = sum(int(np.prod(v.shape)) for v in model.embedding_variables)
  features, _ = input_pipeline.read_encoded(prepared.split_dir("train"), prepared.spec)
  rng = np.random.default_rng(0)
  n = len(next(iter(features.values())))
  touched = []
  for _ in range(8):
    rows = rng.choice(n, batch_size, replace=False)
    touched.append(sum(len(np.unique(features[f.name][rows])) for f in prepared.spec.id_features))
  dims = {d for _, _, d in prepared.spec.with_embedding_dim(16).embedding_tables()}
  return {"dense_params": dense, "table_params": tables, "touched_rows": float(np.mean(touched)),
          "embedding_dim": dims.pop() if len(dims) == 1 else 16,
          "train_rows": prepared.rows.get("train")}


def run_config(name: str, overrides: str, work: str, timeout: float) -> Dict:
  setup = CONFIGS[name]
  model_dir = os.path.join(work, name)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=records.REPO_ROOT)
  common = ["--experiment=dcn_v2_synthetic", f"--model_dir={model_dir}",
            f"--params_override={overrides}", "--export=false"]
  if setup["workers"]:
    # On the host's network: `ss` here must see the tasks' sockets.
    argv = [sys.executable, "-u", "-m", "experiments.local_cluster", "--isolate_network=false",
            f"--workers={setup['workers']}", f"--ps={setup['ps']}"] + common
  else:
    argv = [sys.executable, "-u", "-m", "experiments.train", "--progress=true"] + common
  start = time.perf_counter()
  run = Run(name, argv, env)
  code = run.wait(timeout)
  out = run.result()
  processes = (1 + setup["workers"] + setup["ps"]) if setup["ps"] else max(1, setup["workers"])
  out.update(exit_code=code, wall_seconds=round(time.perf_counter() - start, 1),
             processes=processes)
  if code != 0 and "error" not in out:
    out["error"] = f"exit code {code}; last lines:\n" + "\n".join(run.tail[-15:])
  metrics = os.path.join(model_dir, "metrics.json")
  if os.path.exists(metrics):
    with open(metrics) as fh:
      m = json.load(fh)
    out["test_auc"] = m.get("test", {}).get("auc")
    out["steps"] = m.get("train", {}).get("steps")
  return out


def render(record: Dict, markdown: bool = True) -> str:
  """The table of one record, with the notes that read it."""
  facts = record["layout"]
  touched_bytes = facts["touched_rows"] * facts["embedding_dim"] * 4
  dense_bytes = 2 * 4 * facts["dense_params"]
  single = record["configs"].get("single", {}).get("examples_per_sec")
  lines = ["| configuration | processes | examples/s | vs one process | bytes/step between tasks "
           "| dense variables (read + gradient) | tables | touched rows x 16 x 4 | tables / "
           "touched |", "|---|---|---|---|---|---|---|---|---|"]
  for name in CONFIGS:
    r = record["configs"].get(name)
    if r is None:
      continue
    if "error" in r and "examples_per_sec" not in r:
      lines.append(f"| {name} | - | failed: {r['error'].splitlines()[0][:60]} | | | | | | |")
      continue
    rate = r["examples_per_sec"]
    ratio = f"{rate / single:.2f}x" if single else "-"
    total = r["bytes_per_step"]
    if name.startswith("ps"):
      tables = total - dense_bytes
      cells = (f"{total / 1e6:.2f} MB", f"{dense_bytes / 1e6:.2f} MB", f"{tables / 1e6:.2f} MB",
               f"{touched_bytes / 1e6:.2f} MB", f"{tables / touched_bytes:.2f}")
    elif name == "single":
      cells = ("0", "-", "-", f"{touched_bytes / 1e6:.2f} MB", "-")
    else:
      cells = (f"{total / 1e6:.2f} MB", "all-reduce", "all-gather", f"{touched_bytes / 1e6:.2f} MB",
               "-")
    lines.append(f"| {name} | {r['processes']} | {rate:,.0f} | {ratio} | " + " | ".join(cells)
                 + " |")
  step = record["batch_size"] / single if single else float("nan")
  ps2 = record["configs"].get("ps2", {}).get("bytes_per_step")
  notes = [
      "",
      f"Measured {record['time']} on {record['machine']} (git {record['git_revision']}). "
      "Every process of a configuration shares the same 2 cores, so these ratios are not "
      "scaling figures: they are what the modes cost (more processes, gRPC, "
      "synchronisation) on one small machine. Where a distributed row beats one process, "
      "it is because one process leaves the 2 cores partly idle (input pipeline and host "
      "work between steps) and a second worker process fills them.",
  ]
  if ps2 and single:
    seconds = ps2 * 8 / (LINK_GBITS * 1e9)
    notes.append(
        f"Scaling: one worker step of {record['batch_size']} examples computes for about "
        f"{step * 1e3:.0f} ms here and moves {ps2 / 1e6:.1f} MB to and from the ps tasks "
        f"({dense_bytes / 1e6:.1f} MB of dense variables and gradients, the rest table rows); "
        f"at {LINK_GBITS:g} Gbit/s that is {seconds * 1e3:.0f} ms of network per step. With W "
        f"workers the ps tasks together carry W x {ps2 / 1e6:.1f} MB per step time, spread "
        "over their links by the shards (tables) and round-robin (dense variables), so P ps "
        f"tasks keep up while W / P x {ps2 / 1e6:.1f} MB fits in one step time of one link.")
  text = "\n".join(lines + notes) + "\n"
  return text if markdown else text.replace("|", " ")


def main(argv):
  del argv
  if FLAGS.render_table:
    path = records.user_path(FLAGS.record) if FLAGS.record else TRACKED_RECORD
    print(render(records.load_jsonl(path)[-1]), end="")
    return 0
  unknown = [c for c in FLAGS.modes if c not in CONFIGS]
  if unknown:
    print(f"error: unknown --modes {unknown}; known: {list(CONFIGS)}", file=sys.stderr)
    return 1
  steps = FLAGS.window_steps * (FLAGS.timed_windows + 1)
  overrides = layout_overrides(FLAGS.examples_per_step, FLAGS.table_rows, FLAGS.synthetic_rows, steps,
                               FLAGS.window_steps)
  record = {"time": records.now(), "git_revision": records.git_revision(),
            "machine": records.machine_description(), "batch_size": FLAGS.examples_per_step,
            "overrides": overrides, "configs": {}}
  record["layout"] = layout_facts(overrides, FLAGS.examples_per_step, None)
  with tempfile.TemporaryDirectory(prefix="ctr_zoo_distributed_bench_") as work:
    for name in FLAGS.modes:
      print(f"{name} ...", file=sys.stderr, flush=True)
      record["configs"][name] = run_config(name, overrides, work, FLAGS.mode_timeout_seconds)
  paths = records.write_records([record], records.results_dir(FLAGS.results), RECORD_FILE,
                                FLAGS.record or None)
  print(render(record), end="")
  print("records: " + ", ".join(paths), file=sys.stderr)
  return 0


if __name__ == "__main__":
  app.run(main)
