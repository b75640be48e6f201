r"""The whole pipeline on a Kaggle-Criteo-shaped synthetic file, one stage per process.

  python -m benchmarks.fullscale generate --scale=0.01 --out=data_cache/fullscale/s0.01
  python -m benchmarks.fullscale run --scale=0.01               # -> runs/benchmarks/fullscale.json
  python -m benchmarks.fullscale run --scale=1 --record=benchmarks/results/fullscale.json
  python -m benchmarks.fullscale run --scale=0.0001 --stage_runner=fork   # a quick check
  python -m benchmarks.fullscale render                          # table, PNG, projection
  make fullscale SCALE=0.1                                       # generate + run + render

`generate` writes the 7 day files of `ctr_zoo.datasets.synthetic_fullscale`
(45,840,617 rows at --scale=1, ~11 GB; --gzip compresses). `run` generates
them when absent (a complete manifest of the same world is reused), then runs
each stage as its own process with the `dcn_v2_criteo_x4` setup (integer
fields bucketized, embedding dim 16, Adam 1e-3, batch 10,000; the tables train
with lazy Adam, --embedding_optimizer, because Keras Adam's sparse update moves
every row of a table at every step), days 0-5 train,
day 6 halved into valid and test (the DCN-V2 paper's by-day protocol):

  preprocess_min10   experiments.preprocess --min_count=10 (one parse: fit + transform)
  preprocess_all     the same with --min_count=1: every id gets a row
  preprocess_base    day 0 only, --hash_buckets=384: the 10k-id reference tables
  train_min10        experiments.train, 1 epoch (valid scored at its end), no export
  train_all          the same on every id
  train_base         the same config on the 10k-id tables, at most --base_steps steps
  evaluate_min10     experiments.evaluate --eval_split=test (the run's best checkpoint)
  export_min10       experiments.export (float32 raw-feature SavedModel)
  export_all
  predict_min10      experiments.predict on the first min(1M, day 6) raw rows of day 6
  predict_all        the same through the all-id export (reloads it)

Per stage the record holds the wall time, cpu time, rows and rows/s (training: the
trainer's ex/s, and the step time at the start, middle and end of the epoch
from its TensorBoard windows), peak RSS (the VmHWM of the stage's own address
space, `benchmarks.own_peak_rss`; records before it hold `os.wait4`'s
ru_maxrss, which on Linux is at least the runner's own peak when it started
the stage: about 0.6 GiB), and the bytes the stage left on disk. Training adds the embedding
and optimizer-slot memory of the formula rows x dim x 4 bytes x (1 + slots)
next to the checkpoint's size; export stages the SavedModel's size. Every
stage reads its input once (preprocessing parses the raw text once:
`ctr_zoo.datasets.fit_transform`).

--stage_runner says how a stage's process starts (each stage records it as
"runner", the record as "stage_runner"):

  spawn  (the default, for the tracked records) `python -m <module> <flags>`,
         a process as a user runs it: its wall time includes the import of
         Python and TensorFlow. "startup_s" is the wall time of a process that
         only imports the CLIs' stack, and "rows_per_s_after_startup" leaves
         it out.
  fork   this program imports TensorFlow, ctr_zoo and the CLIs' library
         modules once ("fork_parent_import_s"; not the CLI modules, whose absl
         flags would collide with its own) and runs no TensorFlow op; each
         stage is a forked child that drops the project's flags, imports its
         CLI module and runs its main through `experiments.cli.run` with the
         stage's flags, then leaves with os._exit. Wall time, cpu time and
         peak RSS are still the child's own (os.wait4), with no import in
         them: a stage's "start_s" is the fork to its CLI's main, "startup_s"
         their median. Peak RSS counts the anonymous pages the child inherits
         and the library pages it touches, so at small scales it is not
         comparable with spawn's. For small scales and tests, whose stages
         take about as long as an import.

Records go to --results (default runs/benchmarks/fullscale.json); --record=PATH
also merges this scale's record into PATH (the tracked
benchmarks/results/fullscale.json holds one record per scale). `render`
writes the scaling table, the PNG plot and the 1TB projection from such a
file (`benchmarks.fullscale_report`).
"""

from __future__ import annotations

import functools
import glob
import importlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from typing import Dict, List, Optional

from absl import app
from absl import flags

from benchmarks import common_flags  # noqa: F401  (--results, --record)
from benchmarks import own_peak_rss
from benchmarks import records

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the CLI's own flags (only when run as a program: tests import several modules)."""
  flags.DEFINE_float("scale", 0.01, "Fraction of Kaggle Criteo's rows and ids (1 = 45,840,617 rows).")
  flags.DEFINE_integer("rows", None, "Rows to generate (default: 45,840,617 x --scale).")
  flags.DEFINE_integer("seed", 0, "Row seed of the generated file.")
  flags.DEFINE_bool("gzip", False, "generate: gzip the day files.")
  flags.DEFINE_string("out", "", "generate: output directory (default: --data_dir).")
  flags.DEFINE_string("data_dir", "", "Where the generated days live (default: "
                      "<cache root>/fullscale/scale<scale>-rows<rows>-seed<seed>).")
  flags.DEFINE_string("work_dir", "", "Stage outputs (default: runs/fullscale/scale<scale>); "
                      "emptied first.")
  flags.DEFINE_integer("batch_size", 10000, "Training batch size (dcn_v2_criteo_x4: 10000).")
  flags.DEFINE_integer("base_steps", 60, "Most steps of the 10k-id reference training.")
  flags.DEFINE_integer("base_hash_buckets", 384, "Hash buckets per field of the reference tables.")
  flags.DEFINE_string("embedding_optimizer", DEFAULT_EMBEDDING_OPTIMIZER,
                      "optimizer.embedding of the three trainings (dcn_v2_criteo_x4 itself: adam, "
                      "whose sparse update touches every row of a table at every step).")
  flags.DEFINE_integer("predict_rows", 1_000_000, "Raw rows scored by predict (at most day 6).")
  flags.DEFINE_enum("stage_runner", "spawn", list(STAGE_RUNNERS),
                    "How each stage runs. spawn (the default, for the records): a fresh "
                    "`python -m` process, as a user runs it; its wall time includes Python's and "
                    "TensorFlow's start-up, its peak RSS is its own. fork: this process imports "
                    "TensorFlow and ctr_zoo once and forks a child per stage; no start-up per "
                    "stage, and the peak RSS includes the pages the child inherits (small "
                    "scales and tests).")
  flags.DEFINE_integer("stage_jobs", 1,
                       "Stages run at once where none needs another's outputs (1: one at a "
                       "time, for the records; more: each stage's wall time includes the "
                       "others' competition for the cores; a quick check of the pipeline).")
  flags.DEFINE_list("stages", [], "Only these stages (default: all), keeping the other stages' "
                    "outputs and, in the record of this scale, their figures.")
  flags.DEFINE_string("input", "", "render: the record file (default benchmarks/results/fullscale.json).")
  flags.DEFINE_string("readme_out", "", "render: also write the markdown section to this file.")


EXPERIMENT = "dcn_v2_criteo_x4"
# Keras Adam's sparse update decays m and v and moves every row of every table
# at every step, so its step time grows with the vocabulary; lazy Adam updates
# the rows in the batch only (ctr_zoo.optimizers.LazyAdam; sparse_step_time).
DEFAULT_EMBEDDING_OPTIMIZER = "lazy_adam"
RECORD_FILE = "fullscale.json"
STAGES = ("generate", "preprocess_min10", "preprocess_all", "preprocess_base", "train_min10",
          "train_all", "train_base", "evaluate_min10", "export_min10", "export_all",
          "predict_min10", "predict_all")
STAGE_RUNNERS = ("spawn", "fork")
_SLOTS = {"adam": 2, "adagrad": 1, "ftrl": 2, "sgd": 0, "lazy_adam": 2, "rowwise_adagrad": 1}


# --- measuring one stage ----------------------------------------------------------

def dir_bytes(path: str) -> int:
  """Bytes of the files under `path` (a file: its size; absent: 0)."""
  if os.path.isfile(path):
    return os.path.getsize(path)
  total = 0
  for root, _, files in os.walk(path):
    for name in files:
      try:
        total += os.path.getsize(os.path.join(root, name))
      except OSError:
        pass
  return total


class Running:
  """A stage's process under way (`start_stage`); `finish_stage` waits for it and measures it."""

  def __init__(self, name, log, log_file, outputs, before, start, runner, pid, ready_fd,
               peak_file=None):
    self.name, self.log, self.log_file, self.outputs = name, log, log_file, outputs
    self.before, self.start, self.runner, self.pid, self.ready_fd = (before, start, runner, pid,
                                                                      ready_fd)
    self.peak_file = peak_file  # where benchmarks.own_peak_rss leaves the stage's own peak


def start_stage(name: str, argv: List[str], log_dir: str, outputs: List[str],
                env: Optional[dict] = None, runner: str = "spawn") -> Running:
  """Starts `argv` (`_python(module, ...)`) as one process; its output goes to <log_dir>/<name>.log.

  spawn: `argv` is a fresh process; a `python -m MODULE` one runs through
  `benchmarks.own_peak_rss`, which leaves its own peak RSS in
  <log_dir>/<name>.peak_rss. fork: a child of this process runs the module's
  `main` (`fork_stage`).
  """
  before = sum(dir_bytes(p) for p in outputs)
  log = os.path.join(log_dir, f"{name}.log")
  peak_file = None
  env = dict(env or {})
  if runner != "fork" and len(argv) > 2 and argv[1] == "-m":
    peak_file = os.path.join(log_dir, f"{name}.peak_rss")
    _remove(peak_file)
    argv = [argv[0], "-m", "benchmarks.own_peak_rss", *argv[2:]]
    env[own_peak_rss.ENV] = peak_file
  fh = open(log, "w")  # pylint: disable=consider-using-with  (closed by finish_stage)
  try:
    start = time.perf_counter()
    if runner == "fork":
      pid, ready_fd = fork_stage(argv, fh.fileno(), env)
    else:
      pid, ready_fd = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT,
                                       env={**os.environ, **env}).pid, None
  except BaseException:
    fh.close()
    raise
  return Running(name, log, fh, outputs, before, start, runner, pid, ready_fd, peak_file)


def finish_stage(running: Running, block: bool = True) -> Optional[Dict[str, object]]:
  """The stage's figures once its process ended (None while it runs and not `block`).

  Wall time, cpu time and peak RSS of the stage's process, the bytes left
  in its outputs, and for a forked stage "start_s" (fork to the module's
  main). Peak RSS is the process's own VmHWM where `benchmarks.own_peak_rss`
  left it ("peak_rss_source": "VmHWM"), else wait4's ru_maxrss ("wait4"),
  which is at least this process's peak when it started the stage; wait4's
  figure is kept as "peak_rss_wait4_bytes". Raises RuntimeError naming the
  stage and its log when the process failed.
  """
  pid, status, usage = os.wait4(running.pid, 0 if block else os.WNOHANG)
  if pid == 0:
    return None
  wall = time.perf_counter() - running.start
  running.log_file.close()
  extra = {}
  if running.ready_fd is not None:
    with os.fdopen(running.ready_fd, "rb") as fh:
      message = fh.read()
    if message:  # the child's perf_counter (the system's monotonic clock) when main was called
      extra["start_s"] = round(float(message) - running.start, 3)
  code = os.waitstatus_to_exitcode(status)
  if code != 0:
    with open(running.log) as fh:
      tail = fh.read()[-2000:]
    raise RuntimeError(f"stage {running.name} failed (exit {code}); log {running.log}:\n{tail}")
  wait4_peak = int(usage.ru_maxrss) * 1024
  own_peak = None
  if running.peak_file and os.path.exists(running.peak_file):
    with open(running.peak_file) as fh:
      own_peak = int(fh.read().strip())
  return {"wall_s": round(wall, 3), "peak_rss_bytes": own_peak or wait4_peak,
          "peak_rss_source": "VmHWM" if own_peak else "wait4", "peak_rss_wait4_bytes": wait4_peak,
          "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
          "disk_written_bytes": sum(dir_bytes(p) for p in running.outputs) - running.before,
          "log": running.log, "runner": running.runner, **extra}


def run_stage(name: str, argv: List[str], log_dir: str, outputs: List[str],
              env: Optional[dict] = None, runner: str = "spawn") -> Dict[str, object]:
  """`start_stage` and `finish_stage`: runs one stage and measures it."""
  return finish_stage(start_stage(name, argv, log_dir, outputs, env, runner))


# --- the fork runner --------------------------------------------------------------------
#
# The parent imports TensorFlow, ctr_zoo and the library side of the CLIs once
# (`prepare_fork`), never the CLI modules themselves (their absl flags are
# defined at import and would collide with this program's), and runs no
# TensorFlow op: a forked child inherits no eager context, no thread pools of
# TensorFlow's runtime. Each child drops the project's flags, imports its CLI
# module (which defines its flags), runs its `main` through
# `experiments.cli.run` with the stage's argv and leaves with `os._exit`.

# The library modules the CLIs import (none defines a flag).
_FORK_PREIMPORT = ("ctr_zoo", "tensorflow", "tf_keras", "ctr_zoo.datasets", "ctr_zoo.training",
                   "ctr_zoo.models", "pyarrow.csv", "pyarrow.parquet", "experiments.configs",
                   "experiments.data", "experiments.progress", "experiments.run_dir",
                   "experiments.runner", "experiments.scorers")


def prepare_fork() -> float:
  """Imports what every stage imports (quietly, as the CLIs do); returns the seconds it took."""
  from experiments import cli  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  defined = set(FLAGS)
  cli.import_tensorflow_quietly()
  for module in _FORK_PREIMPORT:
    importlib.import_module(module)
  new = sorted(n for n in set(FLAGS) - defined if _project_flag(n))
  if new:  # a CLI's flags defined here would collide with its own import in the child
    raise RuntimeError(f"fork runner: importing {_FORK_PREIMPORT} defined the flags {new}")
  return round(time.perf_counter() - start, 3)


def _project_flag(name: str) -> bool:
  """Whether this repository's code (benchmarks.*, experiments.*, a main script) defined `name`."""
  module = FLAGS.find_module_defining_flag(name, default="")
  if module.endswith(".py"):  # a module run as a script: absl names it by its path
    return os.path.abspath(module).startswith(records.REPO_ROOT + os.sep)
  return module.startswith(("benchmarks.", "experiments.")) or module == "__main__"


def _check_fork_safe() -> None:
  from tensorflow.python.eager import context  # pylint: disable=g-import-not-at-top
  ctx = context.context_safe()
  if ctx is not None and getattr(ctx, "_initialized", False):
    raise RuntimeError("fork runner: TensorFlow's eager context is initialized in the parent; "
                       "a forked stage would share its runtime (use --stage_runner=spawn)")


def fork_stage(argv: List[str], log_fd: int, env: dict):
  """Forks a child that runs `python -m <module> <args>`'s main; (its pid, a pipe's read end).

  The child writes its `time.perf_counter()` to the pipe when the module's
  main is called; stdout and stderr go to `log_fd`.
  """
  if argv[:2] != [sys.executable, "-m"]:
    raise ValueError(f"fork runner: not a `python -m` command: {argv}")
  module, args = argv[2], argv[3:]
  _check_fork_safe()
  read_end, write_end = os.pipe()
  sys.stdout.flush()
  sys.stderr.flush()
  pid = os.fork()
  if pid == 0:  # the child: never returns
    code = 1
    try:
      os.close(read_end)
      os.dup2(log_fd, 1)
      os.dup2(log_fd, 2)
      os.environ.update(env)
      code = _child_main(module, args, write_end)
    except BaseException:  # pylint: disable=broad-except
      traceback.print_exc()
    finally:
      try:
        sys.stdout.flush()
        sys.stderr.flush()
      finally:
        os._exit(code)  # pylint: disable=protected-access
  os.close(write_end)
  return pid, read_end


def _child_main(module: str, args: List[str], ready_fd: int) -> int:
  """In the forked child: `python -m module *args` without the start-up; the exit code."""
  import gc  # pylint: disable=g-import-not-at-top
  from experiments import cli  # pylint: disable=g-import-not-at-top
  if module == "benchmarks.fullscale":  # generate: this program, its flags already defined
    if "scale" not in FLAGS:
      define_flags()
    entry = main
  else:
    for name in list(FLAGS):  # the CLI module defines its own
      if name in FLAGS and _project_flag(name):
        delattr(FLAGS, name)
    entry = importlib.import_module(module).main
  FLAGS.unparse_flags()
  sys.argv = [module, *args]

  def ready_then_main(argv):
    os.write(ready_fd, repr(time.perf_counter()).encode())
    os.close(ready_fd)
    return entry(argv)

  try:
    cli.run(ready_then_main)  # exits with main's code (absl's app.run)
    code = 0
  except SystemExit as e:
    if isinstance(e.code, str):
      print(e.code, file=sys.stderr)
    code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
  gc.collect()  # writers left to the garbage collector close (os._exit runs no finalizers)
  return code


def _python(module: str, *args: str) -> List[str]:
  return [sys.executable, "-m", module, *args]


# --- what the stages produced -------------------------------------------------------

def tensorboard_windows(run: str) -> List[Dict[str, float]]:
  """(step, examples_per_sec) of every logged training window of a run, in step order."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out = {}
  for path in sorted(glob.glob(os.path.join(run, "tensorboard", "train", "events.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "examples_per_sec":
          out[int(event.step)] = float(tf.make_ndarray(value.tensor))
  return [{"step": s, "examples_per_sec": v} for s, v in sorted(out.items())]


def step_profile(windows: List[Dict[str, float]], batch_size: int,
                 last_full_step: Optional[int] = None) -> Dict[str, object]:
  """Step time at the start, middle and end of the epoch from the trainer's logged windows.

  The first window holds the tracing of the step function, and a window past
  `last_full_step` holds the epoch's last, smaller batch (and the retrace its
  new shape costs): both are left out, so each figure is batch_size / ex/s of
  full batches. "start" is the first window kept, "end" the last;
  "steady" ex/s is the median of the kept windows.
  """
  kept = [w for w in windows[1:] if last_full_step is None or w["step"] <= last_full_step]
  kept = kept or windows[1:] or windows
  if not kept:
    return {}
  rates = sorted(w["examples_per_sec"] for w in kept)
  median = rates[len(rates) // 2]
  pick = {"start": kept[0], "middle": kept[len(kept) // 2], "end": kept[-1]}
  out = {f"step_s_{k}": batch_size / w["examples_per_sec"] for k, w in pick.items()}
  out.update({f"step_{k}": w["step"] for k, w in pick.items()})
  out["steady_examples_per_sec"] = median
  out["windows"] = len(windows)
  out["windows_kept"] = len(kept)
  out["end_over_start"] = out["step_s_end"] / out["step_s_start"]
  return out


def spec_ids(directory: str) -> Dict[str, int]:
  """Embedding rows per id feature of a preprocessed directory (reserved ids included).

  Read from its summary.json (the TransformSummary's vocabulary_sizes, num_ids
  per id feature), not spec.json: loading the spec of every id (500 MB of JSON,
  31.6M strings at full scale) would raise this process's peak RSS by GBs, and
  Linux hands a parent's peak RSS to every process it starts afterwards
  (wait4's ru_maxrss), so each later stage's figure would carry it.
  """
  with open(os.path.join(directory, "summary.json")) as fh:
    return {name: int(n) for name, n in json.load(fh)["vocabulary_sizes"].items()}


def latest_checkpoint_bytes(run: str) -> int:
  """Bytes of the run's newest checkpoint (its .index and .data files)."""
  index = sorted(glob.glob(os.path.join(run, "checkpoints", "ckpt-*.index")),
                 key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))
  if not index:
    return 0
  prefix = index[-1][:-len(".index")]
  return sum(os.path.getsize(p) for p in glob.glob(prefix + ".*"))


def memory_formula(ids: int, dim: int, slots: int) -> int:
  """rows x dim x 4 bytes x (1 + slots): float32 tables and their optimizer slots."""
  return ids * dim * 4 * (1 + slots)


def oracle_test_metrics(day_files: List[str], num_train_files: int) -> Dict[str, float]:
  """Oracle AUC / logloss on the test half of the last day (the split preprocess writes)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ctr_zoo.datasets import splits  # pylint: disable=g-import-not-at-top
  from ctr_zoo.datasets import synthetic  # pylint: disable=g-import-not-at-top
  split = splits.FileSplit(num_train_files, 0)
  last = len(day_files) - 1
  p, y = synthetic.load_oracle(day_files[last])
  keep = split.assign(last, np.arange(len(p), dtype=np.int64)) == 2
  return synthetic.oracle_metrics(p[keep], y[keep])


# --- the pipeline -----------------------------------------------------------------------

def default_data_dir(scale: float, rows: Optional[int], seed: int) -> str:
  from experiments import paths  # pylint: disable=g-import-not-at-top
  from ctr_zoo.datasets import synthetic_fullscale as sf  # pylint: disable=g-import-not-at-top
  n = rows or sf.FullScaleConfig(scale=scale).num_rows
  return os.path.join(paths.cache_root(), "fullscale", f"scale{scale:g}-rows{n}-seed{seed}")


def _same_world(manifest: Optional[dict], scale: float, rows: Optional[int], seed: int,
                gzip: bool) -> bool:
  from ctr_zoo.datasets import synthetic_fullscale as sf  # pylint: disable=g-import-not-at-top
  if not manifest:
    return False
  cfg = manifest["config"]
  return (manifest.get("generator_version") == sf.GENERATOR_VERSION and cfg["scale"] == scale
          and cfg["rows"] == rows and manifest["seed"] == seed and manifest["gzip"] == gzip)


def run_pipeline(scale: float, rows: Optional[int], seed: int, gzip: bool, data_dir: str,
                 work_dir: str, batch_size: int = 10000, base_steps: int = 60,
                 base_hash_buckets: int = 384, predict_rows: int = 1_000_000,
                 stages=(), say=print, runner: str = "spawn",
                 jobs: int = 1,
                 embedding_optimizer: str = DEFAULT_EMBEDDING_OPTIMIZER) -> Dict[str, object]:
  """Generates (when absent) and runs every stage; returns the record of this scale.

  `runner` is how each stage runs: "spawn" (its own `python -m` process) or
  "fork" (a child of this process, which imports TensorFlow once first:
  `fork_stage`). `jobs` > 1 runs up to that many stages that do not need each
  other's outputs at once (the three preprocessings, the three trainings,
  evaluation and the exports, the predictions): their wall times then
  include the others' competition for the cores. `embedding_optimizer` is
  the trainings' optimizer.embedding.
  """
  if runner not in STAGE_RUNNERS:
    raise ValueError(f"runner must be one of {STAGE_RUNNERS}, got {runner!r}")
  fork_import_s = prepare_fork() if runner == "fork" else None  # (before ctr_zoo's import)
  from ctr_zoo import checks  # pylint: disable=g-import-not-at-top
  jobs = checks.positive_int(jobs, "jobs")
  from ctr_zoo.datasets import synthetic_fullscale as sf  # pylint: disable=g-import-not-at-top
  wanted = set(stages or STAGES)
  if not stages:  # a partial rerun keeps the other stages' outputs
    shutil.rmtree(work_dir, ignore_errors=True)
  logs = os.path.join(work_dir, "logs")
  os.makedirs(logs, exist_ok=True)
  env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": records.REPO_ROOT + os.pathsep +
         os.environ.get("PYTHONPATH", "")}
  record: Dict[str, object] = {
      "benchmark": "fullscale", "experiment": EXPERIMENT, "scale": scale,
      "git_revision": records.git_revision(), "machine": records.machine_description(),
      "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_before": os.getloadavg(),
      "batch_size": batch_size, "stage_runner": runner, "stage_jobs": jobs, "stages": {}}
  if runner == "fork":
    record["fork_parent_import_s"] = fork_import_s
  st = record["stages"]

  queued = []

  def stage(name, argv, outputs, rows_done=None, then=None):
    """Queues a stage; `then(result)` adds what its outputs say once it ended (`run_queued`)."""
    st[name] = {}  # (the record lists the stages in this order)
    queued.append((name, argv, outputs, rows_done, then))

  def finished(name, result, rows_done, then):
    if rows_done is not None:
      result["rows"] = rows_done
      result["rows_per_s"] = rows_done / result["wall_s"] if result["wall_s"] > 0 else None
    result["load_after"] = os.getloadavg()
    st[name] = result
    say(f"    {name}: {result['wall_s']:.1f}s, peak RSS "
        f"{result['peak_rss_bytes'] / 2**20:.0f} MiB, "
        f"{result['disk_written_bytes'] / 2**20:.1f} MiB written"
        + (f", {result['rows_per_s']:,.0f} rows/s" if result.get("rows_per_s") else ""))
    if then is not None:
      then(result)

  def run_queued():
    """Runs the queued stages, `jobs` at a time, each `then` as its stage ends."""
    todo, running = list(queued), []
    queued.clear()
    try:
      while todo or running:
        while todo and len(running) < jobs:
          name, argv, outputs, rows_done, then = todo.pop(0)
          say(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(argv[2:])}")
          if name != "generate":
            for path in outputs:  # a stage starts from nothing (a train run would resume)
              _remove(path)
          running.append((start_stage(name, argv, logs, outputs, env, runner), rows_done, then))
        for item in list(running):
          try:
            result = finish_stage(item[0], block=len(running) == 1)
          except RuntimeError:  # (its process is reaped)
            running.remove(item)
            raise
          if result is not None:
            running.remove(item)
            finished(item[0].name, result, item[1], item[2])
        if len(running) > 1:
          time.sleep(0.05)
    finally:  # a stage failed: the others are stopped, not left behind
      for item in running:
        os.kill(item[0].pid, signal.SIGTERM)
        os.waitpid(item[0].pid, 0)
        item[0].log_file.close()
        if item[0].ready_fd is not None:
          os.close(item[0].ready_fd)

  # 1. The file.
  manifest = sf.read_manifest(data_dir)
  if _same_world(manifest, scale, rows, seed, gzip):
    st["generate"] = {"skipped": True, "rows": sum(manifest["rows_per_day"]),
                      "file_bytes": manifest["bytes"]}
    say(f"generate: {data_dir} is complete ({manifest['bytes'] / 2**30:.2f} GiB), reused")
  else:
    args = [f"--scale={scale}", f"--seed={seed}", f"--out={data_dir}", f"--gzip={gzip}"]
    if rows:
      args.append(f"--rows={rows}")
    n = rows or sf.FullScaleConfig(scale=scale).num_rows
    stage("generate", _python("benchmarks.fullscale", "generate", *args), [data_dir], n)
    run_queued()
    manifest = sf.read_manifest(data_dir)
    st["generate"]["file_bytes"] = manifest["bytes"]
  days = manifest["files"]
  total_rows = sum(manifest["rows_per_day"])
  record.update(rows=total_rows, file_bytes=manifest["bytes"], world=manifest["world"],
                rows_per_day=manifest["rows_per_day"])

  # 2. Preprocessing: min-count 10, every id, and the 10k-id reference tables.
  variants = {"min10": ["--min_count=10"], "all": ["--min_count=1"]}
  prep = {}

  def prep_ids(out, per_field):
    def then(result):
      ids = spec_ids(out)
      result["ids"] = sum(ids.values())
      if per_field:
        result["ids_per_field"] = ids
    return then

  for key, extra in variants.items():
    out = os.path.join(work_dir, f"prep_{key}")
    prep[key] = out
    if f"preprocess_{key}" in wanted:
      stage(f"preprocess_{key}", _python(
          "experiments.preprocess", f"--input={','.join(days)}", f"--output={out}",
          "--spec=criteo", "--dense_transform=bucketize", f"--split=files:{sf.NUM_DAYS - 1}",
          *extra), [out], total_rows, prep_ids(out, True))
  prep["base"] = os.path.join(work_dir, "prep_base")
  if "preprocess_base" in wanted:
    stage("preprocess_base", _python(
        "experiments.preprocess", f"--input={days[0]}", f"--output={prep['base']}",
        "--spec=criteo", "--dense_transform=bucketize", "--split=random:0.98,0.01,0.01",
        f"--hash_buckets={base_hash_buckets}"), [prep["base"]], manifest["rows_per_day"][0],
          prep_ids(prep["base"], False))
  run_queued()

  # 3. Training, 1 epoch each (the reference at most base_steps steps).
  train_rows = sum(manifest["rows_per_day"][:-1])
  steps = math.ceil(train_rows / batch_size)
  runs = {}
  for key in ("min10", "all", "base"):
    run = os.path.join(work_dir, f"run_{key}")
    runs[key] = run
    name = f"train_{key}"
    if name not in wanted:
      continue
    key_steps = min(steps, base_steps) if key == "base" else steps
    log_every = max(1, key_steps // 20)
    overrides = [f"input.batch_size={batch_size}", "trainer.epochs=1",
                 f"optimizer.embedding={embedding_optimizer}",
                 f"trainer.log_every_steps={log_every}",
                 f"trainer.checkpoint_every_steps={10 * key_steps + 1}"]
    if key == "base":
      overrides.append(f"trainer.max_steps={key_steps}")
    stage(name, _python("experiments.train", f"--experiment={EXPERIMENT}", f"--data={prep[key]}",
                        f"--model_dir={run}", "--noexport", "--noprogress",
                        "--params_override=" + ",".join(overrides)), [run],
          then=functools.partial(_train_figures, run=run, data=prep[key], batch_size=batch_size))
  run_queued()

  # 4. Evaluation of the min-count-10 run on the test half of day 6.
  if "evaluate_min10" in wanted:
    out = os.path.join(work_dir, "evaluate_min10.json")
    with open(os.path.join(prep["min10"], "summary.json")) as fh:
      test_rows = json.load(fh)["rows"]["test"]

    def evaluated(result, out=out):
      with open(out) as fh:
        result["auc"] = json.load(fh).get("auc")

    stage("evaluate_min10", _python("experiments.evaluate", f"--model_dir={runs['min10']}",
                                    "--eval_split=test", f"--metrics_json={out}", "--noprogress"),
          [out], test_rows, evaluated)

  # 5. Export, then predict through each export (the all-id one is reloaded there).
  for key in ("min10", "all"):
    out = os.path.join(work_dir, f"export_{key}")
    if f"export_{key}" in wanted:

      def exported(result, out=out):
        result["export_bytes"] = dir_bytes(out)

      stage(f"export_{key}", _python("experiments.export", f"--model_dir={runs[key]}",
                                     f"--output={out}"), [out], then=exported)
  run_queued()
  predict_input = os.path.join(work_dir, "predict_input.tsv")
  n_predict = min(predict_rows, manifest["rows_per_day"][-1])
  if any(f"predict_{k}" in wanted for k in ("min10", "all")):
    _head_rows(days[-1], predict_input, n_predict)
  for key in ("min10", "all"):
    if f"predict_{key}" not in wanted:
      continue
    out = os.path.join(work_dir, f"predictions_{key}.parquet")
    stage(f"predict_{key}", _python("experiments.predict",
                                    f"--export_dir={os.path.join(work_dir, 'export_' + key)}",
                                    f"--data={predict_input}", f"--output={out}", "--noprogress"),
          [out], n_predict)
  run_queued()
  # (After the stages: reading Parquet starts Arrow's thread pool, which a fork would copy.)
  record["oracle_test"] = oracle_test_metrics(days, sf.NUM_DAYS - 1)
  if runner == "fork":  # each stage's own start: fork to its CLI's main
    starts = [r["start_s"] for r in st.values() if r.get("start_s") is not None]
    startup = round(sorted(starts)[len(starts) // 2], 3) if starts else 0.0
  elif any(not r.get("skipped") for r in st.values()):
    startup = _startup_seconds(env)
  else:  # nothing ran (a rerun that only found the days): nothing to correct
    startup = 0.0
  record["startup_s"] = startup
  for result in st.values():  # training has its own rate: the trainer's (steady) ex/s
    if result.get("rows") and result.get("wall_s") and "examples_per_sec" not in result:
      start = result.get("start_s", startup)
      if result["wall_s"] > start:
        result["rows_per_s_after_startup"] = result["rows"] / (result["wall_s"] - start)
  record["load_after"] = os.getloadavg()
  record["targets"] = targets(record)
  return record


def _train_figures(result: dict, run: str, data: str, batch_size: int) -> None:
  """What a training run's files say: its metrics, step profile, tables and checkpoint sizes."""
  with open(os.path.join(run, "metrics.json")) as fh:
    metrics = json.load(fh)
  with open(os.path.join(run, "params.json")) as fh:
    params = json.load(fh)
  result["examples"] = metrics["train"]["examples"]
  result["steps"] = metrics["train"]["steps"]
  result["train_seconds"] = metrics["train"]["train_seconds"]
  result["examples_per_sec"] = metrics["train"]["examples_per_sec"]
  result["rows"] = result["examples"]
  result["rows_per_s"] = result["examples_per_sec"]
  full_steps = result["examples"] // batch_size  # steps before a last, smaller batch
  result.update(step_profile(tensorboard_windows(run), batch_size, full_steps))
  result["params"] = metrics["params"]
  result["test_auc"] = metrics["test"]["auc"]
  result["test_logloss"] = metrics["test"]["logloss"]
  ids = sum(spec_ids(data).values())
  dim = int(params["model"]["params"].get("embedding", {}).get("dim", 16)
            if isinstance(params["model"].get("params"), dict) else 16)
  slots = _SLOTS.get(params["optimizer"]["embedding"], 0)
  result.update(ids=ids, embedding_dim=dim, optimizer_slots=slots,
                embedding_optimizer=params["optimizer"]["embedding"],
                embedding_formula_bytes=memory_formula(ids, dim, slots),
                checkpoint_bytes=latest_checkpoint_bytes(run))


def _remove(path: str) -> None:
  if os.path.isdir(path):
    shutil.rmtree(path)
  elif os.path.exists(path):
    os.remove(path)


def _head_rows(src: str, dst: str, n: int) -> None:
  """The first `n` lines of a (possibly gzip) text file."""
  import gzip as gzip_lib  # pylint: disable=g-import-not-at-top
  opener = gzip_lib.open if src.endswith(".gz") else open
  with opener(src, "rt") as fin, open(dst, "w") as fout:
    for i, line in enumerate(fin):
      if i >= n:
        break
      fout.write(line)


def _startup_seconds(env) -> float:
  """Wall time of a process that imports the CLIs' stack and exits (what every stage pays)."""
  start = time.perf_counter()
  subprocess.run(_python("experiments.predict", "--helpshort"), env={**os.environ, **env},
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
  return round(time.perf_counter() - start, 3)


GIB = 2 ** 30


def targets(record: dict) -> Dict[str, object]:
  """The measured figures against the targets (None where the stage did not run)."""
  st = record["stages"]

  def get(stage, key):
    return st.get(stage, {}).get(key)

  def check(value, ok):
    return {"value": value, "met": None if value is None else bool(ok(value))}

  base = get("train_base", "steady_examples_per_sec")
  out = {
      "preprocess_rows_per_s>=250k": check(get("preprocess_min10", "rows_per_s"),
                                           lambda v: v >= 250_000),
      "preprocess_min10_peak_rss<=4GiB": check(get("preprocess_min10", "peak_rss_bytes"),
                                               lambda v: v <= 4 * GIB),
      "evaluate_rows_per_s>=100k": check(get("evaluate_min10", "rows_per_s"),
                                         lambda v: v >= 100_000),
      "predict_rows_per_s>=50k": check(get("predict_min10", "rows_per_s"), lambda v: v >= 50_000),
      "train_all_peak_rss<=12GiB": check(get("train_all", "peak_rss_bytes"),
                                         lambda v: v <= 12 * GIB),
      "export_reload_all_ids": check(get("predict_all", "rows"), lambda v: v > 0),
  }
  for key in ("min10", "all"):
    rate = get(f"train_{key}", "steady_examples_per_sec")
    ratio = rate / base if rate and base else None
    out[f"train_{key}_ex_per_s>=0.8x_10k_ids"] = check(ratio, lambda v: v >= 0.8)
    out[f"train_{key}_step_flat(end/start<=1.2)"] = check(get(f"train_{key}", "end_over_start"),
                                                         lambda v: v <= 1.2)
  return out


def merge_record(path: str, record: dict, partial: bool = False) -> None:
  """Writes `record` into the JSON file `path` ({"records": [...]}, one per scale).

  With `partial` (a --stages rerun) the stages measured now replace those of
  the file's record of the same scale, and the others are kept.
  """
  existing = {"records": []}
  if os.path.exists(path):
    with open(path) as fh:
      existing = json.load(fh)
  old = [r for r in existing.get("records", []) if r.get("scale") == record["scale"]]
  if partial and old:
    merged = dict(old[0])
    merged["stages"] = {**old[0]["stages"], **{k: v for k, v in record["stages"].items()
                                               if not v.get("skipped")}}
    for name in record["stages"]:
      if not record["stages"][name].get("skipped"):
        merged["stages"][name]["rerun"] = {"time": record["time"],
                                           "git_revision": record["git_revision"],
                                           "machine": record.get("machine")}
    merged["targets"] = targets(merged)
    record = merged
  kept = [r for r in existing.get("records", []) if r.get("scale") != record["scale"]]
  kept.append(record)
  kept.sort(key=lambda r: r["scale"])
  tmp = path + f".tmp-{os.getpid()}"
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(tmp, "w") as fh:
    json.dump({"records": kept}, fh, indent=1)
  os.replace(tmp, path)


# --- the CLI ------------------------------------------------------------------------------

def _generate() -> int:
  from ctr_zoo.datasets import synthetic_fullscale as sf  # pylint: disable=g-import-not-at-top
  out = records.user_path(FLAGS.out or FLAGS.data_dir or
                          default_data_dir(FLAGS.scale, FLAGS.rows, FLAGS.seed))
  config = sf.FullScaleConfig(scale=FLAGS.scale, rows=FLAGS.rows)
  last = [0.0]

  def progress(done, total):
    now = time.perf_counter()
    if now - last[0] > 10 or done == total:
      last[0] = now
      print(f"  {done:,} / {total:,} rows", flush=True)

  start = time.perf_counter()
  manifest = sf.generate_days(out, config, seed=FLAGS.seed, gzip=FLAGS.gzip, progress=progress)
  seconds = time.perf_counter() - start
  print(f"wrote {config.num_rows:,} rows in 7 days to {out} ({manifest['bytes'] / 2**30:.2f} GiB, "
        f"CTR {manifest['ctr']:.4f}) in {seconds:.1f}s")
  return 0


def _run() -> int:
  unknown = [s for s in FLAGS.stages if s not in STAGES]
  if unknown:
    print(f"error: unknown --stages {unknown}; stages are {', '.join(STAGES)}", file=sys.stderr)
    return 2
  if FLAGS.stage_jobs < 1:
    print(f"error: --stage_jobs must be >= 1, got {FLAGS.stage_jobs}", file=sys.stderr)
    return 2
  scale = FLAGS.scale
  data_dir = records.user_path(FLAGS.data_dir) if FLAGS.data_dir else default_data_dir(
      scale, FLAGS.rows, FLAGS.seed)
  from experiments import paths  # pylint: disable=g-import-not-at-top
  work_dir = records.user_path(FLAGS.work_dir) if FLAGS.work_dir else os.path.join(
      paths.runs_root(), "fullscale", f"scale{scale:g}")
  try:
    record = run_pipeline(scale, FLAGS.rows, FLAGS.seed, FLAGS.gzip, data_dir, work_dir,
                          batch_size=FLAGS.batch_size, base_steps=FLAGS.base_steps,
                          base_hash_buckets=FLAGS.base_hash_buckets,
                          predict_rows=FLAGS.predict_rows, stages=FLAGS.stages,
                          runner=FLAGS.stage_runner, jobs=FLAGS.stage_jobs,
                          embedding_optimizer=FLAGS.embedding_optimizer)
  except RuntimeError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  results = os.path.join(records.results_dir(FLAGS.results), RECORD_FILE)
  partial = bool(FLAGS.stages)
  merge_record(results, record, partial)
  print(f"wrote {results}")
  if FLAGS.record:
    merge_record(records.user_path(FLAGS.record), record, partial)
    print(f"merged into {records.user_path(FLAGS.record)}")
  for name, value in record["targets"].items():
    print(f"  {name}: {value['value']!r} -> {'met' if value['met'] else 'NOT met' if value['met'] is False else 'not run'}")
  return 0


def _render() -> int:
  from benchmarks import fullscale_report  # pylint: disable=g-import-not-at-top
  path = records.user_path(FLAGS.input) if FLAGS.input else os.path.join(records.TRACKED_DIR,
                                                                         RECORD_FILE)
  if not os.path.exists(path):
    print(f"error: no record file {path} (run `python -m benchmarks.fullscale run` first)",
          file=sys.stderr)
    return 1
  out_dir = os.path.dirname(path)
  text = fullscale_report.render(path, out_dir)
  if FLAGS.readme_out:
    with open(records.user_path(FLAGS.readme_out), "w") as fh:
      fh.write(text)
  print(text)
  return 0


def main(argv):
  commands = {"generate": _generate, "run": _run, "render": _render}
  if len(argv) != 2 or argv[1] not in commands:
    print(f"usage: python -m benchmarks.fullscale {{{'|'.join(commands)}}} [--flags]",
          file=sys.stderr)
    return 2
  return commands[argv[1]]()


if __name__ == "__main__":
  define_flags()
  app.run(main)
