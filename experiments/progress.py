"""The progress bar of the CLIs: one status line on stderr, redrawn in place.

  label [##########..............] counter  details

`ProgressBar` draws it; `TrainingProgress` feeds it from the trainer's
callbacks (train), and `ProgressBar.file_callback` from the readers'
`progress(path, done, total)` calls (preprocess).
"""

import os
import sys
import time

from ctr_zoo import training


class ProgressBar:
  """One status line redrawn in place (carriage return, no newline until `finish`).

  Args:
    label: str. Text before the bar. Defaults to "".
    stream: file. Defaults to sys.stderr.
    width: int. Characters of the bar. Defaults to 24.
    min_interval: float. Seconds between redraws (the last one is always
      drawn). Defaults to 0.
  """

  def __init__(self, label: str = "", stream=None, width: int = 24, min_interval: float = 0.0):
    self.label = label
    self.stream = stream or sys.stderr
    self.width = width
    self.min_interval = min_interval
    self.start = time.perf_counter()
    self._last = None

  def draw(self, fraction: float, counter: str, details: str = "", force: bool = False) -> None:
    """Redraws the line: `fraction` in [0, 1] fills the bar."""
    now = time.perf_counter()
    if (not force and self._last is not None and now - self._last < self.min_interval
        and fraction < 1.0):
      return
    self._last = now
    filled = int(min(max(fraction, 0.0), 1.0) * self.width)
    bar = "#" * filled + "." * (self.width - filled)
    self.stream.write(f"\r{self.label} [{bar}] {counter}  {details}")
    self.stream.flush()

  def finish(self) -> None:
    """Ends the line."""
    self.stream.write("\n")
    self.stream.flush()

  def file_callback(self, path: str, done: int, total: int) -> None:
    """A readers' `progress(path, done, total)` callback: bytes of the current file."""
    fraction = done / total if total else 1.0
    self.draw(fraction, f"{100 * fraction:5.1f}%",
              f"{os.path.basename(path)} {time.perf_counter() - self.start:6.1f}s")


class TrainingProgress(training.Callback):
  """One line per epoch: bar, batches, running loss and AUC, examples/s."""

  def __init__(self, num_batches, stream=None, width: int = 24):
    self.num_batches = num_batches
    self.stream = stream or sys.stderr
    self.width = width
    self._bar = None

  def on_train_begin(self, logs):
    if logs.get("resumed_from"):
      self.stream.write(f"resuming from {logs['resumed_from']} (step {logs['step']})\n")

  def on_step_end(self, step, logs):
    total = logs.get("num_batches") or self.num_batches
    done = logs["batch"]
    if self._bar is None:
      self._bar = ProgressBar(f"epoch {logs['epoch'] + 1}", self.stream, self.width)
    speed = logs.get("examples_per_sec")
    self._bar.draw(done / total if total else 0.0, f"{done}/{total or '?'}",
                   f"loss {logs['running_loss']:.4f}  auc {logs['running_auc']:.4f}"
                   + (f"  {speed:,.0f} ex/s   " if speed is not None else "              "),
                   force=True)

  def on_epoch_end(self, epoch, logs):
    self.on_step_end(logs["step"], {**logs, "batch": logs["batch"] or self.num_batches})
    self._bar.finish()
    self._bar = None
