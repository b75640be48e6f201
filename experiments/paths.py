"""Where things are: the repository, the shared real data, the data cache, the runs.

Standard library only, so the experiment configs can use it without importing
TensorFlow.

- `REPO_ROOT`: the workspace. Under `bazel run` the binaries sit in a runfiles
  tree and Bazel names the real workspace in BUILD_WORKSPACE_DIRECTORY.
- `shared_data()`: $CTR_ZOO_SHARED_DATA, else `../shared/data` next to the
  repository (real data sets; absent on a fresh machine).
- `cache_root()`: $CTR_ZOO_CACHE, else `<repo>/data_cache` (git-ignored).
- `runs_root()`: `<repo>/runs`, the default parent of run directories.
"""

import os

REPO_ROOT = os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))


def shared_data(*parts: str) -> str:
  """A path under $CTR_ZOO_SHARED_DATA (else ../shared/data beside the repository)."""
  root = os.environ.get("CTR_ZOO_SHARED_DATA") or os.path.join(
      os.path.dirname(REPO_ROOT), "shared", "data")
  return os.path.join(root, *parts)


def criteo_sample() -> str:
  """The 6,000-row Criteo sample of the shared data (may be absent)."""
  return shared_data("criteo", "criteo_sample.tsv")


def avazu_sample() -> str:
  """The 6,000-row Avazu sample (CSV with a header) of the shared data (may be absent)."""
  return shared_data("avazu", "avazu_sample.csv")


def frappe_libfm() -> str:
  """The Frappe libFM file (57,722 rows, 10 one-hot fields) of the shared data (may be absent)."""
  return shared_data("frappe", "frappe.validation.libfm")


def cache_root() -> str:
  """$CTR_ZOO_CACHE, else <repo>/data_cache (git-ignored)."""
  return os.environ.get("CTR_ZOO_CACHE") or os.path.join(REPO_ROOT, "data_cache")


def runs_root() -> str:
  """<repo>/runs: where `train` puts a run without --model_dir."""
  return os.path.join(REPO_ROOT, "runs")
