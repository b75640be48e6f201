"""An exclusive lock on a run directory, held while a process trains in it.

  with run_lock.RunLock(model_dir):   # RunLockedError if a live process holds it
    ...train...

The lock is an OS file lock (`fcntl.flock`, exclusive, non-blocking) on
`model_dir/run.lock`; the holder writes its pid, host and start time into the
file. The kernel releases the lock when the holder exits however it exits
(SIGKILL included), so a lock can never outlive its process; what a killed
holder leaves is its pid in the file, and the next holder reports it as a
stale lock it took over. A clean release empties the file. The file itself is
never deleted (deleting a lock file while another process has it open would
let two processes hold "the" lock).

Standard library only: a process can take or inspect the lock without
TensorFlow.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
from typing import Callable, Dict, Optional

LOCK_FILE = "run.lock"


class RunLockedError(RuntimeError):
  """Another live process holds the run directory's lock."""


def _describe(holder: Dict) -> str:
  where = f"pid {holder.get('pid', '?')}"
  if holder.get("host") and holder.get("host") != socket.gethostname():
    where += f" on host {holder['host']}"
  if holder.get("started"):
    where += f", since {holder['started']}"
  return where


def read_holder(path: str) -> Dict:
  """The holder record (pid, host, started) written in a lock file; {} if none or unreadable."""
  try:
    with open(path) as fh:
      text = fh.read().strip()
    return json.loads(text) if text else {}
  except (OSError, ValueError):
    return {}


def _pid_alive(pid) -> bool:
  try:
    os.kill(int(pid), 0)
  except (OSError, ValueError, TypeError):
    return False
  return True


class RunLock:
  """The exclusive lock of one run directory (created if absent).

  Args:
    model_dir: str. The run directory.
    warn: callable(str) or None. Receives the stale-lock warning. Defaults to
      None (absl logging.warning).

  Attributes:
    path: str. The lock file.
    stale: dict. The record of a holder that died without releasing the lock
      (taken over), else {}.
  """

  def __init__(self, model_dir: str, warn: Optional[Callable[[str], None]] = None):
    self.model_dir = os.path.normpath(model_dir)
    self.path = os.path.join(self.model_dir, LOCK_FILE)
    self.stale = {}
    self._warn = warn
    self._fd = None

  def acquire(self) -> "RunLock":
    """Takes the lock; raises RunLockedError naming the live holder's pid."""
    os.makedirs(self.model_dir, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      os.close(fd)
      holder = read_holder(self.path)
      raise RunLockedError(
          f"model_dir {self.model_dir} is in use by another process "
          f"({_describe(holder) if holder else 'pid unknown'}): a second trainer (or "
          f"--overwrite) there would corrupt its run; wait for it to finish, or stop it "
          f"first{' (kill ' + str(holder['pid']) + ')' if holder.get('pid') else ''}") from None
    previous = read_holder(self.path)
    if previous.get("pid") and previous.get("pid") != os.getpid():
      self.stale = previous
      alive = previous.get("host") == socket.gethostname() and _pid_alive(previous["pid"])
      message = (f"took over the lock of {self.model_dir} left by {_describe(previous)}, which "
                 f"{'no longer holds it' if alive else 'is no longer running'} (it was stopped "
                 "without releasing it); resuming from its last checkpoint")
      if self._warn is not None:
        self._warn(message)
      else:
        from absl import logging  # pylint: disable=g-import-not-at-top
        logging.warning("%s", message)
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    os.fsync(fd)
    self._fd = fd
    return self

  def release(self) -> None:
    """Empties the lock file and releases the lock (idempotent)."""
    if self._fd is None:
      return
    try:
      os.ftruncate(self._fd, 0)
    except OSError:
      pass
    finally:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  @property
  def held(self) -> bool:
    return self._fd is not None

  def __enter__(self) -> "RunLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()
