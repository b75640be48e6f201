"""Fault injection on training runs: run-directory locks, damaged checkpoints, NaNs, CLI errors.

Each test reproduces one way a run went wrong (a second trainer in the same
directory, a damaged checkpoint, a full disk, a diverged model, a malformed
command line or data file, start-up noise) and checks that it is handled:
refused or recovered from, with one clear line. Each test's docstring is its
case in the README's reliability table (benchmarks/reliability.py).

Processes started here run on this machine only, are bounded in time and are
stopped by pid.
"""

import glob
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from unittest import mock

from absl import flags
from absl.testing import flagsaver
import numpy as np

from tests import testing
from tests import training_fixtures as fx

import tensorflow as tf

from ctr_zoo import datasets
from ctr_zoo import training
from ctr_zoo.training import trainer as trainer_lib
from experiments import evaluate
from experiments import run_dir
from experiments import run_lock
from experiments import runner
from experiments import train

FLAGS = flags.FLAGS
TINY = ("data.synthetic_rows=3000,input.batch_size=128,trainer.max_steps=6,"
        "trainer.checkpoint_every_steps=3,trainer.log_every_steps=1,input.eval_batch_size=1024")
FILE_RUN = ("input.batch_size=64,trainer.max_steps=4,trainer.checkpoint_every_steps=2,"
            "input.eval_batch_size=512")
N_TRAIN, BATCH = 768, 32  # 24 batches per epoch
TIMEOUT = 180  # seconds any started process may take


def _env(cache):
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=testing.PROJECT_ROOT,
              CTR_ZOO_CACHE=cache)


def hold(model_dir, paused, release):
  """Entry point of the lock tests' holder process: a real training run that pauses.

  It trains TINY in `model_dir` through `experiments.runner.run` (so it holds
  the run's lock), and after the checkpoint of step 3 it writes `paused` and
  waits for `release` to exist (at most TIMEOUT seconds) before finishing.
  """

  class Pause(training.Callback):

    def on_step_end(self, step, logs):
      if step == 4:
        open(paused, "w").close()
        deadline = time.time() + TIMEOUT
        while not os.path.exists(release) and time.time() < deadline:
          time.sleep(0.05)

  cfg = runner.resolve_config("dnn_synthetic", TINY)
  runner.run(cfg, model_dir, export=False, callbacks=[Pause()])


def _one_line(test, err):
  """Asserts `err` is exactly one line and no traceback."""
  test.assertNotIn("Traceback", err)
  test.assertEqual(len(err.strip().splitlines()), 1, err)


class _CliCase(testing.TestCase):
  """Runs experiments.train / evaluate in this process with captured output."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    if not FLAGS.is_parsed():
      FLAGS.mark_as_parsed()

  def setUp(self):
    super().setUp()
    self.cache = self.make_temp_dir()
    patcher = mock.patch.dict(os.environ, {"CTR_ZOO_CACHE": self.cache})
    patcher.start()
    self.addCleanup(patcher.stop)

  def tearDown(self):
    tf.keras.backend.experimental.disable_tf_random_generator()
    super().tearDown()

  def train(self, **flag_values):
    out, err = io.StringIO(), io.StringIO()
    values = {"progress": False, "export": False, **flag_values}
    with flagsaver.flagsaver(**values), mock.patch("sys.stdout", out), \
        mock.patch("sys.stderr", err):
      code = train.main(["train"])
    return code, out.getvalue(), err.getvalue()

  def evaluate(self, **flag_values):
    out, err = io.StringIO(), io.StringIO()
    with flagsaver.flagsaver(**flag_values), mock.patch("sys.stdout", out), \
        mock.patch("sys.stderr", err):
      code = evaluate.main(["evaluate"])
    return code, out.getvalue(), err.getvalue()


# --- item: two processes on one run directory ---------------------------------

class RunLockTest(_CliCase):
  """A real training process holds a run directory; others try to use it.

  The holder starts once for the class; the tests run in name order: two
  refusals while it lives, then it is killed and its stale lock taken over.
  """

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    import tempfile  # pylint: disable=g-import-not-at-top
    cls.root = tempfile.mkdtemp(prefix="ctr_zoo_lock_")
    cls.shared_cache = os.path.join(cls.root, "cache")
    cls.model_dir = os.path.join(cls.root, "run")
    cls.paused = os.path.join(cls.root, "paused")
    release = os.path.join(cls.root, "release")
    code = ("from tests.faults import faults_run_test as t; "
            f"t.hold({cls.model_dir!r}, {cls.paused!r}, {release!r})")
    cls.holder = subprocess.Popen(
        [sys.executable, "-c", code], cwd=testing.PROJECT_ROOT, env=_env(cls.shared_cache),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + TIMEOUT
    while not os.path.exists(cls.paused) and time.time() < deadline and cls.holder.poll() is None:
      time.sleep(0.1)

  @classmethod
  def tearDownClass(cls):
    if cls.holder.poll() is None:
      os.kill(cls.holder.pid, signal.SIGKILL)
    cls.holder.wait(timeout=30)
    cls.holder.stderr.close()
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def setUp(self):
    super().setUp()
    os.environ["CTR_ZOO_CACHE"] = self.shared_cache  # restored by the base class's patcher
    if self.holder.poll() is not None and "killed" not in self._testMethodName:
      self.fail(f"the holder process exited early: {self.holder.stderr.read().decode()[-2000:]}")

  def test_1_second_trainer_refused(self):
    """A second trainer on a run directory another live process trains in is refused, naming its pid."""
    self.assertTrue(os.path.exists(self.paused), "the holder never reached step 4")
    with open(os.path.join(self.model_dir, run_lock.LOCK_FILE)) as fh:
      self.assertEqual(json.load(fh)["pid"], self.holder.pid)
    code, _, err = self.train(experiment="dnn_synthetic", model_dir=self.model_dir,
                              params_override=TINY)
    self.assertEqual(code, 1)
    _one_line(self, err)
    self.assertIn(f"is in use by another process (pid {self.holder.pid}", err)
    self.assertIsNone(self.holder.poll())

  def test_2_overwrite_refused_while_holder_lives(self):
    """--overwrite of a run directory another live process trains in is refused and deletes nothing."""
    before = sorted(os.listdir(os.path.join(self.model_dir, "checkpoints")))
    code, _, err = self.train(experiment="lr_synthetic", model_dir=self.model_dir,
                              params_override=TINY, overwrite=True)
    self.assertEqual(code, 1)
    _one_line(self, err)
    self.assertIn(f"pid {self.holder.pid}", err)
    self.assertEqual(run_dir.load_params(self.model_dir)["name"], "dnn_synthetic")
    self.assertEqual(sorted(os.listdir(os.path.join(self.model_dir, "checkpoints"))), before)

  def test_3_killed_holder_lock_taken_over(self):
    """The lock of a trainer killed with SIGKILL is taken over with a warning, and the run resumes."""
    os.kill(self.holder.pid, signal.SIGKILL)
    self.holder.wait(timeout=30)
    with self.assertLogs("absl", "WARNING") as logs:
      code, out, err = self.train(experiment="dnn_synthetic", model_dir=self.model_dir,
                                  params_override=TINY)
    self.assertEqual(code, 0, err)
    warning = [line for line in logs.output if "took over the lock" in line]
    self.assertLen(warning, 1)
    self.assertIn(f"pid {self.holder.pid}", warning[0])
    self.assertIn("is no longer running", warning[0])
    metrics = run_dir.read_json(os.path.join(self.model_dir, run_dir.METRICS_FILE))
    self.assertTrue(metrics["train"]["resumed_from"].endswith("ckpt-3"))
    self.assertEqual(metrics["train"]["steps"], 6)
    self.assertIn("test : AUC", out)
    with open(os.path.join(self.model_dir, run_lock.LOCK_FILE)) as fh:
      self.assertEqual(fh.read(), "")  # released cleanly


# --- item: damaged checkpoints, a full disk ------------------------------------

def _make_trainer(model_dir, **config):
  tf.keras.backend.clear_session()
  tf.keras.utils.set_random_seed(0)
  model = fx.TinyModel(fx.tiny_spec())
  cfg = trainer_lib.TrainerConfig(**{"epochs": 1, "checkpoint_every_steps": 5,
                                     "log_every_steps": 4, "max_checkpoints": 3, **config})
  return trainer_lib.Trainer(model, fx.optimizer_for(model), cfg, model_dir)


def _train_fn():
  features, labels = fx.tiny_arrays(N_TRAIN, seed=1)
  return lambda epoch, skip: fx.dataset(features, labels, BATCH,
                                        shuffle_seed=epoch).skip(skip)


def _data_file(prefix):
  return glob.glob(prefix + ".data-*")[0]


class CheckpointFaultsTest(testing.TestCase):
  """A finished 24-step run (checkpoints 15, 20, 24 kept) whose latest checkpoint is damaged.

  The uninterrupted reference and the finished run are trained once for the
  class; each test damages its own copy of that run directory.
  """

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    import tempfile  # pylint: disable=g-import-not-at-top
    cls.finished = tempfile.mkdtemp(prefix="ctr_zoo_ckpt_faults_")
    tf.keras.backend.experimental.enable_tf_random_generator()
    try:
      reference = _make_trainer(None)
      reference.fit(_train_fn())
      cls.expected = reference.model.get_weights()
      first = _make_trainer(cls.finished)
      first.fit(_train_fn())
      cls.finished_checkpoints = [os.path.basename(p) for p in first.manager.checkpoints]
    finally:
      tf.keras.backend.experimental.disable_tf_random_generator()

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.finished, ignore_errors=True)
    super().tearDownClass()

  def setUp(self):
    super().setUp()
    tf.keras.backend.experimental.enable_tf_random_generator()
    self.assertEqual(self.finished_checkpoints, ["ckpt-15", "ckpt-20", "ckpt-24"])
    self.model_dir = os.path.join(self.make_temp_dir(), "run")
    shutil.copytree(self.finished, self.model_dir)
    self.ckpt_dir = os.path.join(self.model_dir, trainer_lib.CHECKPOINT_DIR)
    self.latest = os.path.join(self.ckpt_dir, "ckpt-24")

  def tearDown(self):
    tf.keras.backend.experimental.disable_tf_random_generator()
    super().tearDown()

  def _resume(self, restored="ckpt-20", skipped="ckpt-24"):
    """Resumes; checks one warning naming `skipped`, the restored one, and the final weights."""
    with self.assertLogs("absl", "WARNING") as logs:
      trainer = _make_trainer(self.model_dir)
      result = trainer.fit(_train_fn())
    warnings = [line for line in logs.output if "damaged" in line]
    if skipped:
      self.assertLen(warnings, 1, logs.output)
      self.assertIn(os.path.join(self.ckpt_dir, skipped), warnings[0])
    self.assertTrue(result["resumed_from"].endswith(restored), result["resumed_from"])
    self.assertEqual(result["steps"], 24)
    for want, got in zip(self.expected, trainer.model.get_weights()):
      self.assertAllClose(want, got, rtol=0, atol=1e-6)
    self.assertTrue(trainer.latest_checkpoint.endswith("ckpt-24"))
    self.assertIsNone(trainer_lib.checkpoint_problem(trainer.latest_checkpoint))
    return logs.output

  def test_truncated_data_file(self):
    """A truncated data file of the latest checkpoint: the run falls back to the previous one with a warning."""
    path = _data_file(self.latest)
    with open(path, "r+b") as fh:
      fh.truncate(os.path.getsize(path) // 2)
    self._resume()

  def test_empty_index(self):
    """An empty index file of the latest checkpoint: the run falls back to the previous one with a warning."""
    open(self.latest + ".index", "w").close()
    self._resume()

  def test_empty_state_file(self):
    """An empty `checkpoint` state file: rebuilt from the checkpoints on disk, the run resumes from the latest."""
    open(os.path.join(self.ckpt_dir, "checkpoint"), "w").close()
    output = self._resume(restored="ckpt-24", skipped=None)
    self.assertTrue(any("state file" in line and "rebuilt" in line for line in output), output)

  def test_deleted_data_file(self):
    """A deleted data file of the latest checkpoint: the run falls back to the previous one with a warning."""
    os.remove(_data_file(self.latest))
    self._resume()

  def test_flipped_bytes(self):
    """Flipped bytes in the latest checkpoint's data: its checksum fails, the run falls back with a warning."""
    path = _data_file(self.latest)
    with open(path, "r+b") as fh:
      data = bytearray(fh.read())
      for i in range(len(data) // 3, len(data) // 3 + 16):
        data[i] ^= 0xFF
      fh.seek(0)
      fh.write(bytes(data))
    self._resume()

  def test_every_checkpoint_damaged(self):
    """Every checkpoint damaged: a clear error naming each, nothing trained over them."""
    for prefix in glob.glob(os.path.join(self.ckpt_dir, "ckpt-*.index")):
      open(prefix, "w").close()
    with self.assertRaisesRegex(trainer_lib.CheckpointError,
                                r"no checkpoint in .* restores \(ckpt-24: .*; ckpt-20: .*; "
                                r"ckpt-15: .*\); move that folder aside"):
      _make_trainer(self.model_dir).fit(_train_fn())

  def test_leftover_temp_directories(self):
    """Leftover ckpt-N_temp/ folders of an interrupted write are removed when training starts."""
    for name in ("ckpt-25_temp", os.path.join("best", "ckpt-9_temp")):
      os.makedirs(os.path.join(self.ckpt_dir, name))
      with open(os.path.join(self.ckpt_dir, name, "part-00000"), "wb") as fh:
        fh.write(b"partial")
    with self.assertLogs("absl", "WARNING") as logs:
      _make_trainer(self.model_dir).fit(_train_fn())
    self.assertEqual(glob.glob(os.path.join(self.ckpt_dir, "*_temp")), [])
    self.assertEqual(glob.glob(os.path.join(self.ckpt_dir, "best", "*_temp")), [])
    self.assertLen([line for line in logs.output if "partial checkpoint" in line], 2)

  def test_disk_full_while_saving(self):
    """A full disk during a checkpoint write: the error names the path and says the run resumes; it does."""
    model_dir = self.make_temp_dir()
    trainer = _make_trainer(model_dir)
    real_save = tf.train.CheckpointManager.save

    def full_disk(manager, checkpoint_number=None, **kwargs):
      if int(checkpoint_number) < 15:
        return real_save(manager, checkpoint_number=checkpoint_number, **kwargs)
      # What TensorFlow raises (and leaves) when the disk fills during SaveV2.
      temp = os.path.join(manager.directory, f"ckpt-{int(checkpoint_number)}_temp")
      os.makedirs(temp, exist_ok=True)
      raise tf.errors.ResourceExhaustedError(
          None, None, f"{temp}/part-00000-of-00001.data-00000-of-00001.tempstate1; "
          "No space left on device [Op:SaveV2]")

    with mock.patch.object(tf.train.CheckpointManager, "save", full_disk):
      with self.assertRaises(trainer_lib.CheckpointWriteError) as caught:
        trainer.fit(_train_fn())
    message = caught.exception.strerror
    self.assertIn(f"no space left on device while writing checkpoint "
                  f"{os.path.join(model_dir, 'checkpoints', 'ckpt-15')}", message)
    self.assertIn("run the same command again: it resumes from", message)
    self.assertTrue(message.endswith("ckpt-10"), message)
    self.assertEqual(glob.glob(os.path.join(model_dir, "checkpoints", "*_temp")), [])
    # Space freed: the same run resumes from ckpt-10 and ends where an uninterrupted one does.
    again = _make_trainer(model_dir)
    result = again.fit(_train_fn())
    self.assertTrue(result["resumed_from"].endswith("ckpt-10"))
    for want, got in zip(self.expected, again.model.get_weights()):
      self.assertAllClose(want, got, rtol=0, atol=1e-6)


# --- item: the last good checkpoint after a NaN --------------------------------

class LogisticModel(tf.keras.Model):
  """Logistic regression on the dense features I1, I2 of the tiny spec; loss from the logit."""

  def __init__(self):
    super().__init__()
    self.linear = tf.keras.layers.Dense(1, kernel_initializer="zeros", name="linear")

  def logit(self, features):
    x = tf.stack([tf.cast(features["I1"], tf.float32), tf.cast(features["I2"], tf.float32)], 1)
    return self.linear(x)  # (B, 1)

  def call(self, features, training=False):
    return tf.sigmoid(self.logit(features))

  def training_loss(self, features, labels):
    z = self.logit(features)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, z)), tf.sigmoid(z)


class NonFiniteTest(_CliCase):

  def _logistic_trainer(self, model_dir):
    model = LogisticModel()
    features, _ = fx.tiny_arrays(4, seed=0)
    model(features)  # build
    return trainer_lib.Trainer(model, tf.keras.optimizers.legacy.SGD(100.0),
                               trainer_lib.TrainerConfig(epochs=1, checkpoint_every_steps=5,
                                                         log_every_steps=1), model_dir)

  def test_overflowing_update_is_not_saved(self):
    """An update that overflows a weight to inf at a checkpoint step while the loss is finite: no checkpoint is written, and the last one restores with finite weights and predictions."""
    model_dir = self.make_temp_dir()
    trainer = self._logistic_trainer(model_dir)
    features, labels = fx.tiny_arrays(N_TRAIN, seed=1)
    # I2 is 0 (its weight gets no gradient) except in batch 10, a checkpoint
    # step, where it is 1e38: the step's loss is that of a normal batch, but
    # its gradient times the learning rate overflows the weight to inf.
    features["I2"] = np.zeros_like(features["I2"])
    features["I2"][9 * BATCH:10 * BATCH] = 1e38
    train_fn = lambda epoch, skip: fx.dataset(features, labels, BATCH).skip(skip)
    losses = []

    class Losses(trainer_lib.Callback):

      def on_step_end(self, step, logs):
        losses.append(logs["loss"])

    trainer.callbacks.append(Losses())
    with self.assertRaisesRegex(trainer_lib.NonFiniteLossError,
                                r"after step 10 the weights .* are not finite; stopped without "
                                r"saving\. The last good checkpoint is .*ckpt-5"):
      trainer.fit(train_fn)
    self.assertLen(losses, 9)  # step 10 stopped at its save, before its log
    self.assertTrue(all(np.isfinite(losses)), losses)
    self.assertEqual(int(trainer._bad_step), 0)  # pylint: disable=protected-access  (no bad loss)
    self.assertFalse(np.all(np.isfinite(trainer.model.get_weights()[0])))
    self.assertEqual([os.path.basename(p) for p in trainer.manager.checkpoints], ["ckpt-5"])
    self.assertIsNone(trainer_lib.checkpoint_problem(trainer.latest_checkpoint))
    fresh = self._logistic_trainer(model_dir)
    self.assertTrue(fresh.restore_for_prediction().endswith("ckpt-5"))
    _, preds = fresh.predict(fx.dataset(*fx.tiny_arrays(256, seed=2), 128))
    self.assertTrue(np.all(np.isfinite(preds)))

  def test_evaluate_nonfinite_predictions(self):
    """evaluate on a model whose finite weights predict NaN: one clear error line, exit 1."""
    model_dir = os.path.join(self.make_temp_dir(), "run")
    code, _, err = self.train(experiment="dnn_synthetic", model_dir=model_dir,
                              params_override=TINY)
    self.assertEqual(code, 0, err)
    cfg, spec = evaluate.load_run(model_dir)
    from experiments import zoo  # pylint: disable=g-import-not-at-top
    model = zoo.build_model(cfg.model, spec)
    trainer = trainer_lib.Trainer(model, zoo.build_optimizer(cfg.optimizer, model), cfg.trainer,
                                  model_dir)
    path = trainer.restore_for_prediction()
    kernel = [v for v in model.variables if v.name.endswith("kernel:0")][-1]  # the output layer
    signs = np.where(np.arange(kernel.shape[0]) % 2 == 0, 1.0, -1.0).reshape(kernel.shape)
    kernel.assign(3e38 * signs)  # finite weights whose products overflow to inf - inf
    tf.train.Checkpoint(model=model).write(path)
    code, out, err = self.evaluate(model_dir=model_dir, export_dir="", data="")
    self.assertEqual(code, 1, out)
    _one_line(self, err)
    self.assertRegex(err, r"error: .* predicts a non-finite probability \(NaN or inf\) for "
                          r"[\d,]+ of [\d,]+ rows .*diverged")


# --- item: every CLI error is one line -----------------------------------------

class CliErrorsTest(_CliCase):
  """experiments.train on malformed command lines and data: one line on stderr, exit 2 or 1."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    import tempfile  # pylint: disable=g-import-not-at-top
    cls.files = tempfile.mkdtemp(prefix="ctr_zoo_cli_")
    cls.good = os.path.join(cls.files, "good.tsv")
    datasets.generate_criteo_tsv(cls.good, 600, seed=3)
    os.remove(cls.good + datasets.synthetic.ORACLE_SUFFIX)
    with open(cls.good, "rb") as fh:
      cls.lines = fh.read().split(b"\n")[:-1]

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.files, ignore_errors=True)
    super().tearDownClass()

  def write(self, name, lines, compress=False):
    path = os.path.join(self.make_temp_dir(), name)
    data = b"\n".join(lines) + b"\n"
    with open(path, "wb") as fh:
      fh.write(gzip.compress(data) if compress else data)
    return path

  def run_train(self, code, data=None, overrides=FILE_RUN, experiment="dnn_criteo", **flag_values):
    model_dir = os.path.join(self.make_temp_dir(), "run")
    values = dict(experiment=experiment, model_dir=model_dir, params_override=overrides)
    if data is not None:
      values["data"] = data
    got, out, err = self.train(**{**values, **flag_values})
    self.assertEqual(got, code, err)
    if code:
      _one_line(self, err)
      self.assertTrue(err.startswith("error: "), err)
    return out, err, model_dir

  def test_unknown_experiment(self):
    """train --experiment naming no experiment: one line listing the data setups, exit 2."""
    _, err, model_dir = self.run_train(2, experiment="dnn_nowhere")
    self.assertIn("unknown experiment 'dnn_nowhere'", err)
    self.assertFalse(os.path.exists(model_dir))

  def test_unknown_override_key(self):
    """train --params_override with an unknown key: one line naming it and the allowed keys, exit 2."""
    _, err, model_dir = self.run_train(2, self.good, FILE_RUN + ",trainer.epochz=3")
    self.assertIn("unknown config field 'trainer.epochz'; allowed here:", err)
    self.assertFalse(os.path.exists(model_dir))

  def test_override_of_the_wrong_type(self):
    """train --params_override with a value of the wrong type: one line naming key and value, exit 2."""
    _, err, _ = self.run_train(2, self.good, FILE_RUN + ",trainer.epochs=abc")
    self.assertIn("trainer.epochs must be an integer, got 'abc'", err)

  def test_missing_data_file(self):
    """train --data naming a missing file: one line, exit 2."""
    missing = os.path.join(self.files, "missing.tsv")
    _, err, _ = self.run_train(2, missing)
    self.assertIn(f"--data file {missing!r} does not exist", err)

  def test_directory_as_data(self):
    """train --data naming a directory that is not prepared data: one line, exit 2."""
    _, err, _ = self.run_train(2, self.files)
    self.assertIn("is a directory, not a data file", err)

  def test_bad_value_in_data(self):
    """train on a file with a bad label (DataError): one line naming file, line and field, exit 1."""
    lines = list(self.lines)
    lines[41] = b"x" + lines[41][1:]
    path = self.write("bad_label.tsv", lines)
    _, err, _ = self.run_train(1, path)
    self.assertIn(f"{path}: line 42, field 'label': label must be 0 or 1, got 'x'", err)

  def test_corrupt_prepared_spec(self):
    """train --data on prepared data whose spec.json is corrupt (SpecError): one line, exit 1."""
    prepared = self.make_temp_dir()
    for split in ("train", "valid", "test"):
      os.makedirs(os.path.join(prepared, split))
    with open(os.path.join(prepared, "spec.json"), "w") as fh:
      fh.write("{not json")
    _, err, _ = self.run_train(1, prepared)
    self.assertIn("spec.json", err)

  def test_model_config_rejected_at_build(self):
    """A model config the model rejects only when built: one line, exit 2; the run directory is not claimed, so the corrected rerun trains."""
    _, err, model_dir = self.run_train(
        2, self.good, FILE_RUN + ',model.params.pairs=[["C1","C99"]]', experiment="can_criteo")
    self.assertIn("names 'C99', which is not a feature of the spec", err)
    self.assertFalse(os.path.exists(os.path.join(model_dir, run_dir.PARAMS_FILE)))
    code, out, err = self.train(experiment="can_criteo", model_dir=model_dir, data=self.good,
                                params_override=FILE_RUN)
    self.assertEqual(code, 0, err)
    self.assertIn("test : AUC", out)

  def test_invalid_utf8(self):
    """A line of invalid UTF-8: one line naming file, line and field, exit 1; --on_bad_rows=skip skips it and trains."""
    lines = list(self.lines)
    lines[9] = lines[9].replace(b"\t", b"\t\xff\xfe", 1)
    path = self.write("not_utf8.tsv", lines)
    _, err, _ = self.run_train(1, path)
    self.assertIn(f"{path}: line 10, field 'I1': invalid UTF-8, got b'\\xff\\xfe", err)
    out, _, _ = self.run_train(0, path, on_bad_rows="skip")
    self.assertIn("test : AUC", out)

  def test_gzip_without_gz_suffix(self):
    """A gzip file named without .gz: one line saying it looks compressed, exit 1."""
    path = self.write("packed.tsv", self.lines, compress=True)
    _, err, _ = self.run_train(1, path)
    self.assertIn(f"{path} looks compressed (gzip data)", err)

  def test_one_label_class(self):
    """Data whose labels are all 0: one line saying why a model and AUC need both classes, exit 1."""
    path = self.write("no_clicks.tsv", [b"0" + line[1:] for line in self.lines])
    _, err, _ = self.run_train(1, path)
    self.assertRegex(err, r"only negatives \(no click\) in its [\d,]+ rows: a click model needs "
                          r"both classes, and AUC .* is undefined")

  def test_trailing_blank_line(self):
    """A trailing blank line in the data: ignored, the run trains."""
    path = self.write("blank_end.tsv", self.lines + [b""])
    out, _, _ = self.run_train(0, path)
    self.assertIn("test : AUC", out)

  def test_on_bad_rows_skip(self):
    """train --on_bad_rows=skip (as preprocess): a row of the wrong field count is skipped, the run trains."""
    lines = list(self.lines)
    lines[5] = b"1\t2\t3"
    path = self.write("short_row.tsv", lines)
    _, err, _ = self.run_train(1, path)
    self.assertIn("line 6, field count: expected 40 fields, got 3", err)
    out, _, model_dir = self.run_train(0, path, on_bad_rows="skip")
    self.assertEqual(run_dir.load_params(model_dir)["data"]["on_bad_rows"], "skip")

  def test_disk_full_through_the_cli(self):
    """train when the disk fills during a checkpoint: one line naming the path and saying it resumes, exit 1."""

    def full_disk(manager, checkpoint_number=None, **kwargs):
      del kwargs
      raise tf.errors.ResourceExhaustedError(
          None, None, f"{manager.directory}/ckpt-{int(checkpoint_number)}_temp/part-00000; "
          "No space left on device [Op:SaveV2]")

    with mock.patch.object(tf.train.CheckpointManager, "save", full_disk):
      _, err, model_dir = self.run_train(1, self.good)
    self.assertIn(f"no space left on device while writing checkpoint "
                  f"{os.path.join(model_dir, 'checkpoints', 'ckpt-2')}; free space and run the "
                  f"same command again", err)

  def test_real_processes_print_one_line(self):
    """The real train process on a bad flag, an unknown experiment and a missing file: exactly one stderr line each (no TensorFlow start-up lines), exit 2."""
    cases = (
        (["--bogus_flag=1"], "Unknown command line flag 'bogus_flag'"),
        (["--experiment=dnn_nowhere"], "unknown experiment 'dnn_nowhere'"),
        (["--experiment=dnn_criteo", "--data=missing.tsv"], "--data file 'missing.tsv' does not"),
    )
    # The three processes run at once (each mostly imports TensorFlow).
    procs = [subprocess.Popen([sys.executable, "-m", "experiments.train"] + args,
                              cwd=testing.PROJECT_ROOT, env=_env(self.cache),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for args, _ in cases]
    try:
      outputs = [proc.communicate(timeout=TIMEOUT) for proc in procs]
    finally:
      for proc in procs:
        if proc.poll() is None:
          proc.kill()
          proc.wait()
    for (_, expected), proc, (_, err) in zip(cases, procs, outputs):
      err = err.decode()
      self.assertEqual(proc.returncode, 2, err)
      _one_line(self, err)
      self.assertIn(expected, err)


# --- item: paths under bazel run; noise and small lies -------------------------

class PathsAndNoiseTest(_CliCase):

  def test_relative_paths_under_bazel_run(self):
    """preprocess, train and evaluate under `bazel run` read and write relative paths in the user's directory."""
    user = self.make_temp_dir()
    runfiles = self.make_temp_dir()  # where bazel starts a binary
    datasets.generate_criteo_tsv(os.path.join(user, "in.tsv"), 400, seed=5)
    env = dict(_env(self.cache), BUILD_WORKING_DIRECTORY=user)
    commands = (
        ["experiments.preprocess", "--input=in.tsv", "--output=prepared"],
        ["experiments.train", "--experiment=dnn_criteo", "--data=in.tsv", "--model_dir=run",
         "--export=false", "--progress=false", "--params_override=" + FILE_RUN],
        ["experiments.evaluate", "--model_dir=run", "--metrics_json=eval.json"],
    )
    for command in commands:
      proc = subprocess.run([sys.executable, "-m"] + command, cwd=runfiles, env=env,
                            capture_output=True, timeout=TIMEOUT, check=False)
      self.assertEqual(proc.returncode, 0, proc.stderr.decode()[-2000:])
    for path in ("prepared/spec.json", "run/params.json", "run/metrics.json", "eval.json"):
      self.assertTrue(os.path.exists(os.path.join(user, path)), path)
    self.assertEqual(os.listdir(runfiles), [])

  def test_no_tensorflow_startup_lines(self):
    """A CLI prints none of TensorFlow's start-up lines (absl notice, oneDNN, CUDA probe, failed cuInit)."""
    proc = subprocess.run([sys.executable, "-m", "experiments.train", "--list_experiments"],
                          cwd=testing.PROJECT_ROOT, capture_output=True, timeout=TIMEOUT,
                          env={k: v for k, v in _env(self.cache).items()
                               if k != "TF_CPP_MIN_LOG_LEVEL"}, check=False)
    self.assertEqual(proc.returncode, 0, proc.stderr.decode())
    self.assertEqual(proc.stderr.decode(), "")
    self.assertIn("dcn_v2_synthetic", proc.stdout.decode().split())

  def test_no_unrestored_optimizer_warnings(self):
    """Resuming a finished run and evaluating it log no 'Value in checkpoint could not be found' warnings."""
    model_dir = os.path.join(self.make_temp_dir(), "run")
    self.assertEqual(self.train(experiment="dnn_synthetic", model_dir=model_dir,
                                params_override=TINY)[0], 0)
    with self.assertNoLogs("tensorflow", "WARNING"):
      code, _, err = self.train(experiment="dnn_synthetic", model_dir=model_dir,
                                params_override=TINY)
      self.assertEqual(code, 0, err)
      code, _, err = self.evaluate(model_dir=model_dir, export_dir="", data="")
      self.assertEqual(code, 0, err)
      tf.keras.backend.clear_session()
      import gc  # pylint: disable=g-import-not-at-top
      gc.collect()

  def test_short_epoch_progress_shows_its_auc(self):
    """An epoch shorter than log_every_steps ends its progress line with a real AUC, not 'auc 0.0000'."""
    from experiments import progress  # pylint: disable=g-import-not-at-top
    tf.keras.backend.experimental.enable_tf_random_generator()
    stream = io.StringIO()
    trainer = _make_trainer(None, epochs=2, log_every_steps=100)
    trainer.callbacks.append(progress.TrainingProgress(24, stream=stream))
    trainer.fit(_train_fn())
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    self.assertLen(lines, 2)
    for line in lines:
      self.assertRegex(line, r"24/24  loss 0\.\d{4}  auc 0\.\d{4}")
      self.assertNotIn("auc 0.0000", line)

  def test_no_doubled_slash_in_printed_paths(self):
    """Output folders given with a trailing slash (preprocess --output=prepared/, train --model_dir=run/) print paths without '//'."""
    from experiments import preprocess  # pylint: disable=g-import-not-at-top
    directory = self.make_temp_dir()
    source = os.path.join(directory, "in.tsv")
    datasets.generate_criteo_tsv(source, 300, seed=4)
    out, err = io.StringIO(), io.StringIO()
    with flagsaver.flagsaver(input=source, output=os.path.join(directory, "prepared") + "/"), \
        mock.patch("sys.stdout", out), mock.patch("sys.stderr", err):
      self.assertEqual(preprocess.main(["preprocess"]), 0, err.getvalue())
    self.assertIn(f"wrote {os.path.join(directory, 'prepared', 'spec.json')},", out.getvalue())
    model_dir = os.path.join(directory, "run") + "/"
    code, out2, err2 = self.train(experiment="dnn_synthetic", model_dir=model_dir,
                                  params_override=TINY, progress=True)
    self.assertEqual(code, 0, err2)
    for text in (out.getvalue(), out2, err2):
      self.assertNotIn("//", text)
    metrics = run_dir.read_json(os.path.join(model_dir, run_dir.METRICS_FILE))
    self.assertNotIn("//", json.dumps(metrics))

  def test_license_is_an_spdx_string(self):
    """pyproject.toml gives project.license as an SPDX string (no setuptools deprecation warning)."""
    import tomllib  # pylint: disable=g-import-not-at-top
    with open(os.path.join(testing.PROJECT_ROOT, "pyproject.toml"), "rb") as fh:
      pyproject = tomllib.load(fh)
    self.assertIsInstance(pyproject["project"]["license"], str)
    requires = [r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    self.assertEqual(requires, ["setuptools>=77"])  # the first with SPDX license strings


if __name__ == "__main__":
  tf.test.main()
