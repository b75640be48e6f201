"""Trainer: learning, exact resume (in-process and after SIGKILL), NaN stop."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from tests import testing
from tests import training_fixtures as fx

import tensorflow as tf

from ctr_zoo.training import trainer as trainer_lib

N_TRAIN, N_VALID, BATCH = 768, 256, 32  # 24 batches per epoch


def _train_fn(seed):
  features, labels = fx.tiny_arrays(N_TRAIN, seed=1)
  return lambda epoch, skip: fx.dataset(features, labels, BATCH, shuffle_seed=seed * 1000 + epoch).skip(skip)


def _valid():
  features, labels = fx.tiny_arrays(N_VALID, seed=2)
  return fx.dataset(features, labels, 128)


def _make(model_dir, seed=0, **config):
  """A fresh model + optimizer + trainer, as a restarted process would build them."""
  tf.keras.backend.clear_session()
  tf.keras.utils.set_random_seed(seed)
  model = fx.TinyModel(fx.tiny_spec())
  cfg = trainer_lib.TrainerConfig(**{"epochs": 2, "checkpoint_every_steps": 5,
                                     "log_every_steps": 4, "seed": seed, **config})
  return trainer_lib.Trainer(model, fx.optimizer_for(model), cfg, model_dir)


def worker(model_dir, result_path, slow_after_step=0):
  """Entry point of the SIGKILL test's subprocess: trains, then writes metrics."""

  class Slow(trainer_lib.Callback):

    def on_step_end(self, step, logs):
      if slow_after_step and step >= slow_after_step:
        time.sleep(0.5)  # leaves the parent time to kill us mid-epoch

  tf.keras.backend.experimental.enable_tf_random_generator()
  trainer = _make(model_dir, log_every_steps=1)
  trainer.callbacks.append(Slow())
  trainer.fit(_train_fn(0))
  result = trainer.evaluate(_valid())
  result["weights"] = [w.tolist() for w in trainer.model.get_weights()]
  with open(result_path, "w") as fh:
    json.dump(result, fh)


class TrainerTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    tf.keras.backend.experimental.enable_tf_random_generator()  # checkpointable dropout RNG

  def tearDown(self):
    tf.keras.backend.experimental.disable_tf_random_generator()
    super().tearDown()

  def test_config_rejects_bad_values(self):
    with self.assertRaisesRegex(ValueError, r"epochs must be an int >= 1, got 0"):
      trainer_lib.TrainerConfig(epochs=0)
    with self.assertRaisesRegex(ValueError, r"clipnorm must be a number >= 0, got -1"):
      trainer_lib.TrainerConfig(clipnorm=-1)

  def test_learns_and_writes_checkpoints_and_tensorboard(self):
    model_dir = self.make_temp_dir()
    trainer = _make(model_dir, epochs=3)
    before = trainer.evaluate(_valid())
    result = trainer.fit(_train_fn(0))
    after = trainer.evaluate(_valid(), split="valid")
    self.assertEqual(result["steps"], 3 * N_TRAIN // BATCH)
    self.assertEqual(result["examples"], 3 * N_TRAIN)
    self.assertEqual(result["epochs"], 3)
    self.assertGreater(after["auc"], 0.65)  # the generating model itself scores 0.763
    self.assertGreater(after["auc"], before["auc"] + 0.1)
    self.assertLess(after["logloss"], before["logloss"])
    self.assertTrue(os.path.exists(trainer.latest_checkpoint + ".index"))
    self.assertTrue(trainer.latest_checkpoint.endswith(f"-{result['steps']}"))
    self.assertTrue(os.listdir(os.path.join(model_dir, "tensorboard", "train")))
    self.assertTrue(os.listdir(os.path.join(model_dir, "tensorboard", "valid")))

  def test_write_scalars_writes_numeric_values_of_a_split(self):
    model_dir = self.make_temp_dir()
    trainer = _make(model_dir)
    trainer.write_scalars("test", {"auc": 0.75, "num_examples": 12, "note": "text"}, 7)
    folder = os.path.join(model_dir, trainer_lib.TENSORBOARD_DIR, "test")
    values = {}
    for name in os.listdir(folder):
      for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
        for value in event.summary.value:
          values[value.tag] = (event.step, float(tf.make_ndarray(value.tensor)))
    self.assertEqual(values, {"auc": (7, 0.75), "num_examples": (7, 12.0)})
    _make(None).write_scalars("test", {"auc": 0.5}, 1)  # no model_dir: nothing written

  def test_loss_is_the_binary_cross_entropy_of_one_step(self):
    trainer = _make(None)
    features, labels = fx.tiny_arrays(BATCH, seed=5)
    probs = trainer.model(features, training=False).numpy().reshape(-1)
    for layer in trainer.model.layers:  # no dropout: training forward pass == inference
      if isinstance(layer, tf.keras.layers.Dropout):
        layer.rate = 0.0
    loss = float(trainer.train_step(features, labels))
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    expected = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    self.assertAllClose(loss, expected, rtol=1e-5, atol=1e-6)

  def test_resume_mid_epoch_equals_uninterrupted_run(self):
    full = _make(self.make_temp_dir())
    full.fit(_train_fn(0))
    expected = full.model.get_weights()
    expected_metrics = full.evaluate(_valid())

    model_dir = self.make_temp_dir()
    first = _make(model_dir, max_steps=35)  # stops in epoch 1 at batch 11; last save at step 35
    first.fit(_train_fn(0))
    self.assertEqual(int(first.batch_in_epoch), 11)
    resumed = _make(model_dir)
    result = resumed.fit(_train_fn(0))
    self.assertIsNotNone(result["resumed_from"])
    self.assertEqual(result["steps"], 2 * N_TRAIN // BATCH)
    for want, got in zip(expected, resumed.model.get_weights()):
      self.assertAllClose(want, got, rtol=0, atol=1e-6)
    got_metrics = resumed.evaluate(_valid())
    self.assertAllClose(expected_metrics["auc"], got_metrics["auc"], rtol=0, atol=1e-6)
    self.assertAllClose(expected_metrics["logloss"], got_metrics["logloss"], rtol=0, atol=1e-6)

  def test_resume_restores_optimizer_slots_and_rng(self):
    model_dir = self.make_temp_dir()
    first = _make(model_dir, max_steps=10)
    first.fit(_train_fn(0))
    rng = {k: g.state.numpy().copy() for k, g in first._rng.items()}  # pylint: disable=protected-access
    self.assertTrue(rng, "the dropout layer should own a checkpointed generator")
    second = _make(model_dir)
    second.restore()
    # Slots are created lazily; one zero-gradient step would change them, so
    # compare through the checkpoint reader instead.
    reader = tf.train.load_checkpoint(second.latest_checkpoint)
    names = [k for k in reader.get_variable_to_shape_map() if "OPTIMIZER_SLOT" in k]
    # Adagrad: one accumulator per table; Adam: m and v per dense variable.
    self.assertLen(names, 3 + 2 * len(first.model.dense_variables))
    for key, state in rng.items():
      self.assertAllEqual(state, second._rng[key].state.numpy())  # pylint: disable=protected-access
    self.assertEqual(int(second.global_step), 10)

  def test_nan_loss_stops_and_keeps_last_good_checkpoint(self):
    model_dir = self.make_temp_dir()
    trainer = _make(model_dir, checkpoint_every_steps=4)
    features, labels = fx.tiny_arrays(N_TRAIN, seed=1)
    features["I1"] = features["I1"].copy()
    features["I1"][10 * BATCH + 3] = np.inf  # poisons batch 11 (step 11)
    with self.assertRaisesRegex(trainer_lib.NonFiniteLossError,
                                r"loss is nan at step 11 \(epoch 0, batch 11\).*ckpt-8"):
      trainer.fit(lambda epoch, skip: fx.dataset(features, labels, BATCH).skip(skip))
    self.assertTrue(trainer.latest_checkpoint.endswith("ckpt-8"))
    reader = tf.train.load_checkpoint(trainer.latest_checkpoint)
    for key in reader.get_variable_to_shape_map():
      value = reader.get_tensor(key)
      if np.issubdtype(np.asarray(value).dtype, np.floating):
        self.assertTrue(np.all(np.isfinite(value)), key)

  def test_nan_found_at_a_later_boundary_reports_its_step_and_never_saves_after_it(self):
    # The finite-loss check runs at log / checkpoint boundaries only (no host
    # sync per step): the NaN of step 11 is found at step 14, reported as step
    # 11, and no checkpoint after step 7 is written.
    model_dir = self.make_temp_dir()
    trainer = _make(model_dir, checkpoint_every_steps=7, log_every_steps=14)
    features, labels = fx.tiny_arrays(N_TRAIN, seed=1)
    features["I1"] = features["I1"].copy()
    features["I1"][10 * BATCH + 3] = np.inf  # poisons batch 11 (step 11)
    with self.assertRaisesRegex(trainer_lib.NonFiniteLossError,
                                r"loss is nan at step 11 \(epoch 0, batch 11\).*ckpt-7"):
      trainer.fit(lambda epoch, skip: fx.dataset(features, labels, BATCH).skip(skip))
    self.assertEqual(int(trainer.global_step), 14)
    self.assertEqual(trainer.manager.checkpoints, [trainer.latest_checkpoint])
    self.assertTrue(trainer.latest_checkpoint.endswith("ckpt-7"))

  def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(self):
    root = self.make_temp_dir()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=testing.PROJECT_ROOT)

    def run(model_dir, result, slow_after=0):
      code = ("import sys; from tests import training_trainer_test as t; "
              f"t.worker({model_dir!r}, {result!r}, {slow_after})")
      return subprocess.Popen([sys.executable, "-c", code], cwd=testing.PROJECT_ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    # Uninterrupted reference run.
    ref_dir, ref_result = os.path.join(root, "ref"), os.path.join(root, "ref.json")
    proc = run(ref_dir, ref_result)
    _, err = proc.communicate(timeout=300)
    self.assertEqual(proc.returncode, 0, err.decode()[-3000:])

    # Killed run: slow from step 30 on (epoch 1, batch 6); kill once step 35
    # (epoch 1, batch 11) is checkpointed, i.e. mid-epoch.
    model_dir, result = os.path.join(root, "run"), os.path.join(root, "run.json")
    proc = run(model_dir, result, slow_after=30)
    ckpt_dir = os.path.join(model_dir, trainer_lib.CHECKPOINT_DIR)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
      latest = tf.train.latest_checkpoint(ckpt_dir) if os.path.isdir(ckpt_dir) else None
      if latest and int(latest.rsplit("-", 1)[1]) >= 35:
        break
      time.sleep(0.1)
    self.assertIsNone(proc.poll(), "the worker finished before it could be killed")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    self.assertEqual(proc.returncode, -signal.SIGKILL)
    self.assertFalse(os.path.exists(result))
    latest = tf.train.latest_checkpoint(ckpt_dir)
    step = int(latest.rsplit("-", 1)[1])
    self.assertLess(step, 2 * N_TRAIN // BATCH)
    self.assertNotEqual(step % (N_TRAIN // BATCH), 0, "kill should land mid-epoch")

    proc = run(model_dir, result)
    _, err = proc.communicate(timeout=300)
    self.assertEqual(proc.returncode, 0, err.decode()[-3000:])
    with open(ref_result) as fh:
      want = json.load(fh)
    with open(result) as fh:
      got = json.load(fh)
    self.assertAllClose(want["auc"], got["auc"], rtol=0, atol=1e-6)
    self.assertAllClose(want["logloss"], got["logloss"], rtol=0, atol=1e-6)
    for a, b in zip(want["weights"], got["weights"]):
      self.assertAllClose(np.array(a), np.array(b), rtol=0, atol=1e-6)


if __name__ == "__main__":
  tf.test.main()
