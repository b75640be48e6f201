r"""`python -m benchmarks.own_peak_rss MODULE [ARGS]`: runs `python -m MODULE [ARGS]`, then
writes this process's own peak RSS to the file named by $CTR_ZOO_PEAK_RSS_FILE.

Why not `os.wait4`'s ru_maxrss: on Linux a forked child starts with its
parent's high-water mark, and exec keeps it (the kernel folds the old address
space's peak into the process's maxrss), so a stage started by a runner that
once held 4 GiB reports at least 4 GiB. The VmHWM line of /proc/self/status
belongs to the address space exec created: it counts the stage's own pages
only. `benchmarks.fullscale` starts its spawned stages through this module and
records both figures.

The file gets one line, the peak in bytes, in a `finally` after the module
ran (also when it raised or called sys.exit); a process that ends through
os._exit writes nothing, and the runner falls back to wait4's figure.
"""

import importlib.util
import os
import runpy
import sys
from typing import Optional

ENV = "CTR_ZOO_PEAK_RSS_FILE"


def own_peak_rss_bytes() -> Optional[int]:
  """VmHWM of this process (bytes), or None where /proc has no such line."""
  try:
    with open("/proc/self/status") as fh:
      for line in fh:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) * 1024  # "VmHWM:   123456 kB"
  except OSError:
    pass
  return None


def main(argv) -> None:
  if len(argv) < 2:
    sys.exit("usage: python -m benchmarks.own_peak_rss MODULE [ARGS]")
  module, args = argv[1], argv[2:]
  try:
    found = importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):  # (a parent package that is missing, or "" / ".x")
    found = False
  if not found:
    sys.exit(f"error: no module named {module!r}")
  out = os.environ.pop(ENV, None)  # (not passed on to the module's own children)
  sys.argv = [module, *args]
  try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
  finally:
    peak = own_peak_rss_bytes()
    if out and peak is not None:
      with open(out, "w") as fh:
        fh.write(f"{peak}\n")


if __name__ == "__main__":
  main(sys.argv)
