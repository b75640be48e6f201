r"""Runs one experiment as a real tf.distribute cluster of local processes (127.0.0.1).

  bazel run //experiments:local_cluster -- --workers=2 --ps=2 --experiment=dcn_v2_synthetic
  bazel run //experiments:local_cluster -- --workers=2 --experiment=dcn_v2_synthetic  # synchronous

Every task is `experiments.train` with the same flags and its own TF_CONFIG:
with --ps > 0 a chief, --workers workers and --ps parameter servers
(trainer.distribute=parameter_server); with --ps=0 --workers synchronous
workers, worker 0 the chief (trainer.distribute=multi_worker). Ports are
free ports of 127.0.0.1. Each task's output is streamed line by line,
prefixed by its role ("[chief] ", "[worker:1] ", "[ps:0] "); the launcher's
own lines are prefixed "[launcher] " and name the pid of every process it
starts.

The job ends when the chief ends (parameter servers) or when every worker has
ended (synchronous). Then, or when a task fails, or on Ctrl-C / SIGTERM /
SIGHUP / --job_timeout_seconds, the launcher stops every process it started
(SIGTERM to each task's process group, SIGKILL after --grace_seconds) and
waits for them. Every task also gets the parent-death signal (Linux
PR_SET_PDEATHSIG = SIGKILL), so even a launcher killed with SIGKILL leaves no
task behind.

Network. TensorFlow's gRPC servers listen on every interface
(`grpc_server_lib.cc` binds 0.0.0.0:port whatever address TF_CONFIG gives)
and run whatever a client sends them. With --isolate_network (the default)
the launcher first re-executes itself in a new user and network namespace
(`unshare --user --map-root-user --net`) whose only interface is the
loopback, so the job is reachable from nowhere else; where that is not
permitted it says so and runs on the host's network.

Failures. Parameter servers: a worker that dies is started again (same
TF_CONFIG and port, at most --max_worker_restarts times per worker); the
coordinator gives it its steps and data part again. A ps task that dies takes
its variables with it: the chief stops with an error naming the last
checkpoint and the job ends; run the same command again to resume from it.
Synchronous workers: a worker that fails ends the job; the same command
resumes from the last checkpoint.

The data is prepared once here, before the tasks start (so that they do not
prepare the same cache entry at once).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

from absl import app
from absl import flags

from experiments import common_flags  # noqa: F401  (--data, --spec, --model_dir, --quantize, ...)
from experiments import configs
from experiments import paths
# The task program: its flags --experiment, --overwrite and --export are the launcher's too,
# given to every task (one definition of each flag in a process).
from experiments import train  # noqa: F401

FLAGS = flags.FLAGS
flags.DEFINE_integer("workers", 2, "Worker tasks.")
flags.DEFINE_integer("ps", 0, "Parameter-server tasks (0: synchronous multi-worker training).")
flags.DEFINE_integer("max_worker_restarts", 3,
                     "Parameter servers: times a dead worker is started again.")
flags.DEFINE_float("grace_seconds", 5.0, "Seconds between SIGTERM and SIGKILL when stopping.")
flags.DEFINE_float("job_timeout_seconds", 0.0, "Stop the job after this many seconds (0: never).")
flags.DEFINE_bool(
    "isolate_network", True,
    "Linux: run the job in a private network namespace (unshare -rn) whose only interface is "
    "the loopback. TensorFlow's servers listen on every interface (0.0.0.0:port, whatever "
    "TF_CONFIG says) and serve anyone who connects; isolated, nothing off this loopback "
    "reaches them. Where user namespaces are not permitted the job runs without it (with a "
    "warning).")

# Set in the environment of a launcher that already runs in its own network namespace.
NETNS_ENV = "CTR_ZOO_LOCAL_CLUSTER_NETNS"

# Exec'd by each task's process first: the kernel sends SIGKILL to the task when
# the launcher dies (PR_SET_PDEATHSIG = 1 survives execve), then the real program.
_EXEC_WITH_PARENT_DEATH_SIGNAL = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "  os._exit(1)\n"
    "os.execv(sys.executable, [sys.executable] + sys.argv[2:])\n")


# What every task runs (after the interpreter): the train target's module.
TRAIN_PROGRAM = ("-m", "experiments.train")


class LaunchError(Exception):
  """A bad launcher flag or a job that cannot start."""


def free_ports(count: int) -> List[int]:
  """`count` distinct free TCP ports of 127.0.0.1 (bound together, then released)."""
  sockets = []
  try:
    for _ in range(count):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind(("127.0.0.1", 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def cluster_spec(workers: int, ps: int) -> Dict[str, List[str]]:
  """The TF_CONFIG cluster of the job on 127.0.0.1."""
  if ps:
    ports = free_ports(1 + workers + ps)
    return {"chief": [f"127.0.0.1:{ports[0]}"],
            "worker": [f"127.0.0.1:{p}" for p in ports[1:1 + workers]],
            "ps": [f"127.0.0.1:{p}" for p in ports[1 + workers:]]}
  return {"worker": [f"127.0.0.1:{p}" for p in free_ports(workers)]}


def split_output(pending: bytes, chunk: bytes):
  """(complete lines, new pending bytes) of a task's output after reading `chunk`.

  Lines end with "\n" or "\r". A progress bar redraws its line as "\r" + text
  in one flushed write, with nothing after it until the next redraw: text
  after the chunk's last "\r" is such a redraw, complete, and is a line now
  (not when the next redraw arrives). Other unterminated text waits.
  """
  data = pending + chunk
  head, newline, tail = data.rpartition(b"\n")
  lines = head.replace(b"\r", b"\n").split(b"\n") if newline else []
  if b"\r" in tail:
    lines += tail.replace(b"\r", b"\n").split(b"\n")
    tail = b""
  return [line for line in lines if line], tail


class Task:
  """One process of the job, its output streamed with a role prefix."""

  def __init__(self, job: str, index: int, cluster: Dict[str, List[str]], argv: List[str],
               env: Dict[str, str], out, lock: threading.Lock):
    self.job, self.index = job, index
    self.role = f"{job}:{index}" if job != "chief" else "chief"
    self.cluster = cluster
    self.argv, self.env, self.out, self.lock = argv, env, out, lock
    self.process: Optional[subprocess.Popen] = None
    self.restarts = 0
    self.reported = False
    self.pids: List[int] = []
    self._reader: Optional[threading.Thread] = None

  def start(self) -> None:
    import json  # pylint: disable=g-import-not-at-top
    env = dict(self.env, TF_CONFIG=json.dumps(
        {"cluster": self.cluster, "task": {"type": self.job, "index": self.index}}))
    argv = [sys.executable, "-c", _EXEC_WITH_PARENT_DEATH_SIGNAL, str(os.getpid())] + self.argv
    self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
    self.pids.append(self.process.pid)
    self._reader = threading.Thread(target=self._stream, args=(self.process.stdout,),
                                    daemon=True)
    self._reader.start()

  def _stream(self, pipe) -> None:
    pending = b""
    while True:
      chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
      if not chunk:
        break
      lines, pending = split_output(pending, chunk)
      self._write(lines)
    self._write([pending] if pending else [])

  def _write(self, lines) -> None:
    if not lines:
      return
    with self.lock:
      for line in lines:
        if line.strip():
          self.out.write(f"[{self.role}] {line.decode(errors='replace').rstrip()}\n")
      self.out.flush()

  def poll(self) -> Optional[int]:
    return self.process.poll() if self.process else None

  def signal_group(self, sig) -> None:
    if self.process and self.process.poll() is None:
      try:
        os.killpg(self.process.pid, sig)
      except ProcessLookupError:
        pass

  def join_output(self, timeout: float = 5.0) -> None:
    if self._reader:
      self._reader.join(timeout)


def _describe(code: int) -> str:
  if code < 0:
    try:
      return f"killed by {signal.Signals(-code).name}"
    except ValueError:
      return f"killed by signal {-code}"
  return f"exit code {code}"


class Launcher:
  """Starts, watches and stops the tasks of one job."""

  def __init__(self, workers: int, ps: int, train_argv: List[str], out=None,
               max_worker_restarts: int = 3, grace_seconds: float = 5.0,
               timeout_seconds: float = 0.0, program: Optional[List[str]] = None):
    if workers < 1:
      raise LaunchError(f"--workers must be >= 1, got {workers}")
    if ps < 0:
      raise LaunchError(f"--ps must be >= 0, got {ps}")
    self.out = out or sys.stdout
    self.lock = threading.Lock()
    self.ps_mode = ps > 0
    self.grace_seconds = grace_seconds
    self.timeout_seconds = timeout_seconds
    self.max_worker_restarts = max_worker_restarts
    self.cluster = cluster_spec(workers, ps)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    self.tasks: List[Task] = []
    for job in ("chief", "worker", "ps"):
      for i in range(len(self.cluster.get(job, []))):
        writes = job == "chief" or (not self.ps_mode and i == 0)
        argv = list(program or TRAIN_PROGRAM) + train_argv + [
            f"--progress={str(writes).lower()}"]
        self.tasks.append(Task(job, i, self.cluster, argv, env, self.out, self.lock))
    self._stop = None

  def say(self, text: str) -> None:
    with self.lock:
      self.out.write(f"[launcher] {text}\n")
      self.out.flush()

  @property
  def pids(self) -> List[int]:
    return [pid for task in self.tasks for pid in task.pids]

  def request_stop(self, reason: str) -> None:
    if self._stop is None:
      self._stop = reason

  def _start(self, task: Task) -> None:
    task.start()
    self.say(f"started {task.role} pid {task.process.pid} at {self.cluster[task.job][task.index]}")

  def stop_all(self) -> None:
    """SIGTERM to every running task's process group, SIGKILL after the grace period."""
    running = [t for t in self.tasks if t.poll() is None]
    for task in running:
      task.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + self.grace_seconds
    while time.monotonic() < deadline and any(t.poll() is None for t in running):
      time.sleep(0.05)
    for task in running:
      if task.poll() is None:
        self.say(f"{task.role} ignored SIGTERM for {self.grace_seconds:g}s: SIGKILL")
        task.signal_group(signal.SIGKILL)
    for task in self.tasks:
      if task.process:
        task.process.wait()
        task.join_output()

  def run(self) -> int:
    """Runs the job to its end; returns the launcher's exit code."""
    self.say("cluster " + ", ".join(f"{job}: {' '.join(addrs)}"
                                    for job, addrs in self.cluster.items()))
    code = 1
    try:
      for task in self.tasks:
        self._start(task)
      code = self._watch()
    finally:
      self.stop_all()
      self.say(f"stopped; pids {' '.join(map(str, self.pids))} all ended")
    return code

  def _watch(self) -> int:
    start = time.monotonic()
    chief = self.tasks[0]
    while True:
      if self._stop is not None:
        self.say(f"{self._stop}: stopping every task")
        return 130 if "SIGINT" in self._stop else 143
      if self.timeout_seconds and time.monotonic() - start > self.timeout_seconds:
        self.say(f"timeout after {self.timeout_seconds:g}s: stopping every task")
        return 124
      if self.ps_mode:
        code = chief.poll()
        if code is not None:
          self.say(f"chief ended ({_describe(code)})")
          return code if code >= 0 else 1
        for task in self.tasks[1:]:
          code = task.poll()
          if code is None:
            continue
          if task.job == "worker" and task.restarts < self.max_worker_restarts:
            task.restarts += 1
            self.say(f"{task.role} ended ({_describe(code)}); restarting it "
                     f"({task.restarts}/{self.max_worker_restarts})")
            self._start(task)
          elif task.job == "worker":
            self.say(f"{task.role} ended ({_describe(code)}) after {task.restarts} restarts: "
                     "stopping the job")
            return 1
          elif not task.reported:
            task.reported = True
            self.say(f"{task.role} ended ({_describe(code)}): its variables are lost; the chief "
                     "stops and a new run resumes from the last checkpoint")
      else:
        codes = [t.poll() for t in self.tasks]
        failed = [(t, c) for t, c in zip(self.tasks, codes) if c not in (None, 0)]
        if failed:
          task, code = failed[0]
          self.say(f"{task.role} failed ({_describe(code)}): stopping the job; run the same "
                   "command again to resume from the last checkpoint")
          return 1
        if all(c == 0 for c in codes):
          self.say("every worker finished")
          return 0
      time.sleep(0.1)


def train_argv(model_dir: str, mode: str) -> List[str]:
  """The flags every task's `experiments.train` gets."""
  overrides = FLAGS.params_override
  given = configs.parse_overrides(overrides)
  if given.get("trainer.distribute", mode) != mode:
    raise LaunchError(f"--params_override sets trainer.distribute={given['trainer.distribute']} "
                      f"but --ps={FLAGS.ps} means {mode}")
  overrides = ",".join(x for x in (overrides, f"trainer.distribute={mode}") if x)
  argv = [f"--experiment={FLAGS.experiment}", f"--model_dir={model_dir}",
          f"--params_override={overrides}", f"--overwrite={str(FLAGS.overwrite).lower()}",
          f"--export={str(FLAGS.export).lower()}"]
  if FLAGS.data:
    argv.append(f"--data={FLAGS.data}")
  if FLAGS.spec:
    argv.append(f"--spec={FLAGS.spec}")
  if FLAGS.quantize != "none":
    argv.append(f"--quantize={FLAGS.quantize}")
  return argv


def _prepare_data(mode: str) -> str:
  """Resolves the config (errors before any process starts) and prepares its data; returns its name."""
  from experiments import data as data_lib  # pylint: disable=g-import-not-at-top
  from experiments import runner  # pylint: disable=g-import-not-at-top
  overrides = ",".join(x for x in (FLAGS.params_override, f"trainer.distribute={mode}") if x)
  cfg = runner.resolve_config(FLAGS.experiment, overrides, FLAGS.data, FLAGS.spec)
  data_lib.prepare(cfg.data)
  return cfg.name


def isolated_command(command: List[str]) -> Optional[List[str]]:
  """`command` run in a new user + network namespace with the loopback up, or None.

  None where that is not possible here (not Linux, no `unshare` / `ip`, or user
  namespaces refused): checked by running the prefix once.
  """
  unshare, ip = shutil.which("unshare"), shutil.which("ip") or next(
      (p for p in ("/usr/sbin/ip", "/sbin/ip") if os.path.exists(p)), None)
  if not sys.platform.startswith("linux") or not unshare or not ip:
    return None
  prefix = [unshare, "--user", "--map-root-user", "--net", "sh", "-c",
            f'{ip} link set lo up && exec "$0" "$@"']
  try:
    probe = subprocess.run(prefix + ["true"], capture_output=True, timeout=30, check=False)
  except (OSError, subprocess.SubprocessError):
    return None
  return prefix + list(command) if probe.returncode == 0 else None


def _reexec_isolated() -> None:
  """Replaces this launcher by itself in a private network namespace (when possible)."""
  if os.environ.get(NETNS_ENV):
    return
  command = isolated_command([sys.executable, "-m", "experiments.local_cluster"] + sys.argv[1:])
  if command is None:
    print("[launcher] warning: no private network namespace here (unshare -rn): the tasks "
          "listen on every interface of this machine while the job runs", flush=True)
    return
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
  env[NETNS_ENV] = "1"
  os.execvpe(command[0], command, env)


def stop_on_signals(get_launcher) -> None:
  """Ctrl-C, SIGTERM and SIGHUP stop the job (`get_launcher()`: the launcher, or None yet)."""
  def on_signal(signum, frame):
    del frame
    launcher = get_launcher()
    if launcher is None:
      raise KeyboardInterrupt
    launcher.request_stop(f"received {signal.Signals(signum).name}")

  for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, on_signal)


def main(argv):
  del argv
  if FLAGS.isolate_network:
    _reexec_isolated()
  mode = "parameter_server" if FLAGS.ps > 0 else "multi_worker"
  launcher = None
  stop_on_signals(lambda: launcher)
  try:
    name = _prepare_data(mode)
    model_dir = os.path.abspath(FLAGS.model_dir or os.path.join(paths.runs_root(), name))
    launcher = Launcher(FLAGS.workers, FLAGS.ps, train_argv(model_dir, mode),
                        max_worker_restarts=FLAGS.max_worker_restarts,
                        grace_seconds=FLAGS.grace_seconds, timeout_seconds=FLAGS.job_timeout_seconds)
  except (LaunchError, configs.ConfigError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    print("error: interrupted before the job started", file=sys.stderr)
    return 130
  launcher.say(f"{mode}: {FLAGS.workers} worker(s), {FLAGS.ps} ps; model_dir {model_dir}")
  return launcher.run()


if __name__ == "__main__":
  app.run(main)
