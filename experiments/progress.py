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
  """One line per epoch: bar, batches, running loss and AUC, examples/s; one per validation score."""

  def __init__(self, num_batches, stream=None, width: int = 24):
    self.num_batches = num_batches
    self.stream = stream or sys.stderr
    self.width = width
    self._bar = None
    self._scores = []  # validation lines waiting for the end of the bar's line

  def on_train_begin(self, logs):
    if logs.get("resumed_from"):
      self.stream.write(f"resuming from {logs['resumed_from']} (step {logs['step']})\n")

  def on_step_end(self, step, logs):
    total = logs.get("num_batches") or self.num_batches
    done = logs["batch"]
    if self._bar is None:
      self._bar = ProgressBar(f"epoch {logs['epoch'] + 1}", self.stream, self.width)
    speed = logs.get("examples_per_sec")
    auc = logs.get("running_auc")
    self._bar.draw(done / total if total else 0.0, f"{done}/{total or '?'}",
                   f"loss {logs['running_loss']:.4f}  "
                   + (f"auc {auc:.4f}" if auc is not None else "auc   -   ")
                   + (f"  {speed:,.0f} ex/s   " if speed is not None else "              "),
                   force=True)

  def on_evaluate(self, step, logs):
    line = (f"  valid AUC {logs['auc']:.4f}  logloss {logs['logloss']:.4f}  (step {step}"
            f"{', epoch ' + str(logs['epoch']) if logs.get('epoch') else ''}) ")
    if logs["best"]:
      line += "new best"
    else:
      line += (f"no new best for {logs['bad_evals']}"
               + (f"/{logs['patience']}" if logs.get("patience") else "") + " score(s)")
    if logs.get("stop"):
      line += f"; stopping early, keeping step {logs['best_step']}"
    self._scores.append(line)
    if logs.get("epoch_end"):
      return  # printed under the epoch's line, when it ends
    if self._bar is not None:  # inside an epoch (eval_every_steps): end the bar's line here
      self._bar.finish()
      self._bar = None
    self._flush_scores()

  def _flush_scores(self):
    for line in self._scores:
      self.stream.write(line + "\n")
    self._scores = []
    self.stream.flush()

  def on_epoch_end(self, epoch, logs):
    self.on_step_end(logs["step"], {**logs, "batch": logs["batch"] or self.num_batches})
    self._bar.finish()
    self._bar = None
    self._flush_scores()

  def on_train_end(self, logs):
    if self._bar is not None:
      self._bar.finish()
      self._bar = None
    self._flush_scores()
