"""Benchmark records: where they are written, what code and machine they name.

Every benchmark writes its figures as records (JSON objects) that name the code
(`git_revision`), the machine (`machine_description`) and the time; tables and
plots are rendered from records, never typed by hand.

Where records go:
- every run writes to its own results directory, `--results` (default
  `<repo>/runs/benchmarks`, git-ignored, see `results_dir`);
- the tracked files under `benchmarks/results/` (TRACKED_DIR) are written only
  when a run is given `--record=PATH` explicitly: a user's run never changes
  the repository's records.

This module imports only the standard library and `experiments.paths` (which
does too): the pipeline benchmark's worker processes import it and measure
their own memory.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from typing import Any, List, Optional

from experiments import paths

REPO_ROOT = paths.REPO_ROOT
TRACKED_DIR = os.path.join(REPO_ROOT, "benchmarks", "results")
DEFAULT_RESULTS_DIR = os.path.join(paths.runs_root(), "benchmarks")


def user_path(path: str) -> str:
  """`path` made absolute against the user's working directory.

  Under `bazel run` the process starts inside the runfiles tree; Bazel names
  the directory the user ran it from in BUILD_WORKING_DIRECTORY.
  """
  if not path:
    return path
  path = os.path.expanduser(path)
  if os.path.isabs(path):
    return path
  return os.path.abspath(os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY") or os.getcwd(),
                                      path))


def results_dir(flag_value: str = "") -> str:
  """The run's results directory: `flag_value` (a --results flag), else DEFAULT_RESULTS_DIR."""
  return user_path(flag_value) if flag_value else DEFAULT_RESULTS_DIR


def git_revision(root: str = REPO_ROOT) -> str:
  """HEAD's short hash, with "-dirty" when tracked files have changes; "unknown" outside git."""
  try:
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                         text=True, check=True, timeout=30).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True, check=True, timeout=30).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return "unknown"
  return (rev + ("-dirty" if dirty else "")) if rev else "unknown"


def _tensorflow_version() -> str:
  tf = sys.modules.get("tensorflow")
  if tf is not None and getattr(tf, "__version__", None):
    return tf.__version__
  try:
    from importlib import metadata  # pylint: disable=g-import-not-at-top
    return metadata.version("tensorflow")
  except Exception:  # pylint: disable=broad-except
    return "unknown"


def machine_description() -> str:
  """Cores, CPU model, TensorFlow version and the load average when called."""
  cpu = "unknown CPU"
  try:
    with open("/proc/cpuinfo") as fh:
      for line in fh:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
  return (f"{os.cpu_count()} cores, {cpu}; TF {_tensorflow_version()}; load average at start "
          f"{load[0]:.1f} (shared machine)")


def now() -> str:
  """Local time to the second, ISO 8601 (the `time` field of every record)."""
  return datetime.datetime.now().isoformat(timespec="seconds")


def json_default(value: Any) -> Any:
  """`json.dumps` default: NumPy scalars as Python numbers, anything else as its str."""
  item = getattr(value, "item", None)
  if callable(item) and getattr(value, "shape", None) == ():
    return item()
  return str(value)


def append_jsonl(path: str, record: dict) -> str:
  """Appends `record` as one JSON line (keys sorted) to `path`; returns the absolute path."""
  path = os.path.abspath(path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  line = json.dumps(record, sort_keys=True, default=json_default)
  with open(path, "a", encoding="utf-8") as fh:
    fh.write(line + "\n")
  return path


def write_json(path: str, record: Any) -> str:
  """Writes `record` as an indented JSON document to `path` (replacing it); returns the path."""
  path = os.path.abspath(path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as fh:
    json.dump(record, fh, indent=1, default=json_default)
    fh.write("\n")
  os.replace(tmp, path)
  return path


def load_jsonl(path: str) -> List[dict]:
  """The records of a JSON-lines file; a bad line raises ValueError naming the file and line."""
  out = []
  with open(path, encoding="utf-8") as fh:
    for i, line in enumerate(fh, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{i}: not a JSON record: {e}") from e
      if not isinstance(record, dict):
        raise ValueError(f"{path}:{i}: not a JSON record: a {type(record).__name__}, not an object")
      out.append(record)
  return out


def write_records(records_list: List[dict], results: str, name: str,
                  tracked: Optional[str] = None) -> List[str]:
  """Appends each record to `<results>/<name>` and, if given, to the tracked file too.

  Returns the paths written.
  """
  paths = [os.path.join(results, name)] + ([user_path(tracked)] if tracked else [])
  for path in paths:
    for record in records_list:
      append_jsonl(path, record)
  return [os.path.abspath(p) for p in paths]
