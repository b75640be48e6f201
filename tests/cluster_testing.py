"""Helpers of the tests that start real local clusters (experiments.local_cluster).

Every process binds 127.0.0.1 only; every wait is bounded; the launcher is
stopped by pid (SIGTERM, then SIGKILL) when a test ends or times out, and the
tests check that every pid it reported has ended.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

from tests import testing

STARTED = re.compile(r"^\[launcher\] started (\S+) pid (\d+)")


def alive(pid: int) -> bool:
  """Whether process `pid` still runs (a zombie counts as ended)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  try:
    with open(f"/proc/{pid}/stat") as fh:
      return fh.read().split(")", 1)[1].split()[0] != "Z"
  except OSError:
    return False


class Job:
  """`python -m experiments.local_cluster ARGS` as a child process, its output collected.

  Args:
    args: launcher flags.
    env: extra environment (e.g. CTR_ZOO_CACHE).
    program: None, or a Python snippet run instead of the launcher's main
      (for launcher tests that start stand-in tasks).
  """

  def __init__(self, args: List[str], env: Optional[Dict[str, str]] = None,
               program: Optional[str] = None):
    command = [sys.executable, "-u"] + (["-c", program] if program else
                                        ["-m", "experiments.local_cluster"]) + list(args)
    full_env = dict(os.environ, PYTHONPATH=testing.PROJECT_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    full_env.update(env or {})
    self.process = subprocess.Popen(command, cwd=testing.PROJECT_ROOT, env=full_env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, errors="replace")
    self.lines: List[str] = []
    self._lock = threading.Lock()
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self):
    for line in self.process.stdout:
      with self._lock:
        self.lines.append(line.rstrip("\n"))

  @property
  def output(self) -> str:
    with self._lock:
      return "\n".join(self.lines)

  def pids(self) -> Dict[str, List[int]]:
    """Role -> pids the launcher reported starting (a restarted task has several)."""
    out: Dict[str, List[int]] = {}
    with self._lock:
      for line in self.lines:
        match = STARTED.match(line)
        if match:
          out.setdefault(match.group(1), []).append(int(match.group(2)))
    return out

  def all_pids(self) -> List[int]:
    return [pid for pids in self.pids().values() for pid in pids]

  def wait_for(self, pattern: str, timeout: float) -> re.Match:
    """The first output line matching `pattern`; AssertionError after `timeout` seconds."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      with self._lock:
        for line in self.lines:
          match = regex.search(line)
          if match:
            return match
      if self.process.poll() is not None and not self._reader.is_alive():
        break
      time.sleep(0.1)
    raise AssertionError(f"no line matching {pattern!r} within {timeout}s; output:\n"
                         + self.output[-6000:])

  def wait(self, timeout: float) -> int:
    """The launcher's exit code; stops it (and fails) after `timeout` seconds."""
    try:
      return self.process.wait(timeout)
    except subprocess.TimeoutExpired:
      self.stop()
      raise AssertionError(f"the launcher did not end within {timeout}s; output:\n"
                           + self.output[-6000:]) from None
    finally:
      self._reader.join(10)

  def signal(self, sig) -> None:
    if self.process.poll() is None:
      self.process.send_signal(sig)

  def stop(self) -> None:
    """SIGTERM to the launcher (it stops its tasks), SIGKILL after 30 s."""
    if self.process.poll() is None:
      self.process.send_signal(signal.SIGTERM)
      try:
        self.process.wait(30)
      except subprocess.TimeoutExpired:
        self.process.kill()
        self.process.wait()


def assert_ended(test, pids: List[int], timeout: float = 10.0) -> None:
  """Fails `test` unless every pid has ended (waits up to `timeout` for the kernel to reap)."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and any(alive(p) for p in pids):
    time.sleep(0.1)
  test.assertEqual([p for p in pids if alive(p)], [], "processes left behind")
