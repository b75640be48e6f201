"""What every command-line target shares: a quiet start, one-line errors, exit codes.

- `import_tensorflow_quietly()` imports ctr_zoo (hence TensorFlow) with the
  process's stderr (file descriptor 2) caught: TensorFlow's native start-up
  lines (the absl::InitializeLog notice, oneDNN, "Could not find cuda
  drivers", "failed call to cuInit" on a machine without a GPU, each printed
  once per TensorFlow shared library) are dropped; any other line is passed
  on. TF_CPP_MIN_LOG_LEVEL=0 in the environment shows everything.
- `run(main)`: `absl.app.run` whose flag errors are one line and exit 2 (and
  --help exits 0).
- `error(message, code)`: prints "error: <message>" as one line on stderr.
- Log records (absl logging) print as "warning: <message>", one line each.

Exit codes: 0 success; 2 a usage error (an unknown or malformed flag, an
unknown experiment, a bad --params_override key or value, a model config the
model rejects, a --data path that does not exist or is a directory that is
not prepared data); 1 any other failure (bad data, a run directory in use or
holding another experiment, a non-finite loss, a full disk, damaged
checkpoints).

Standard library (and absl) only: importing this module imports no
TensorFlow.
"""

import logging as py_logging
import os
import re
import sys
import tempfile

from absl import app
from absl import flags
from absl import logging

USAGE = 2
FAILURE = 1

# TensorFlow's start-up chatter on stderr: native log lines of the import
# and of the device probe (levels I and W), the absl notice, and the failed
# CUDA probe of a machine without a GPU.
_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} [\d:]+\.\d+\s+\d+ \S+:\d+\] "
    r"|E\d{4} [\d:]+\.\d+\s+\d+ \S+:\d+\] failed call to cuInit"
    r"|\s*$)")


def import_tensorflow_quietly() -> None:
  """Imports ctr_zoo and TensorFlow (and probes the devices) without their start-up lines."""
  if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
    import ctr_zoo  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as caught:
    os.dup2(caught.fileno(), 2)
    try:
      import ctr_zoo  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      tf.config.list_physical_devices()  # the CUDA probe ("failed call to cuInit")
    finally:  # also when the import fails: its own lines are passed on
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      caught.seek(0)
      for line in caught.read().decode("utf-8", errors="replace").splitlines():
        if not _NOISE.match(line):
          sys.stderr.write(line + "\n")
      sys.stderr.flush()


def one_line(text: str) -> str:
  """`text` on one line: its lines joined with "; " (blank ones dropped)."""
  parts = [part.strip() for part in str(text).splitlines() if part.strip()]
  return "; ".join(parts)


def error(message, code: int = FAILURE) -> int:
  """Prints "error: <message>" as one line on stderr; returns `code`."""
  sys.stderr.write(f"error: {one_line(message)}\n")
  sys.stderr.flush()
  return code


class _OneLineFormatter(py_logging.Formatter):

  def format(self, record):
    return f"{record.levelname.lower()}: {one_line(record.getMessage())}"


_HELP_FLAGS = ("--help", "-help", "--helpshort", "-helpshort", "--helpfull", "-helpfull",
               "--helpxml", "-helpxml", "-?")


def _parse_flags(argv):
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(error(f"{e} (see --help)", USAGE))
  except SystemExit as e:  # absl exits 1 after printing --help: asking for help succeeded
    if e.code == 1 and any(arg.split("=")[0] in _HELP_FLAGS for arg in argv[1:]):
      sys.exit(0)
    raise


def run(main) -> None:
  """`absl.app.run(main)`: flag errors are one line with exit 2; log lines are one line each."""

  def wrapped(argv):
    handler = logging.get_absl_handler()
    if handler is not None:
      handler.setFormatter(_OneLineFormatter())
    return main(argv)

  try:
    app.run(wrapped, flags_parser=_parse_flags)
  except app.UsageError as e:  # raised before main (absl handles it inside main)
    sys.exit(error(e, USAGE))
