"""Trainer validation and early stopping: the curve, patience, the best weights, exact resume."""

import os

import numpy as np

from tests import testing
from tests import training_fixtures as fx

import tensorflow as tf

from ctr_zoo import metrics
from ctr_zoo.training import trainer as trainer_lib

N_TRAIN, BATCH = 768, 32  # 24 batches per epoch


def _train_fn(seed=0):
  features, labels = fx.tiny_arrays(N_TRAIN, seed=1)
  return lambda epoch, skip: fx.dataset(features, labels, BATCH,
                                        shuffle_seed=seed * 1000 + epoch).skip(skip)


def _valid(flip=False):
  """Rows of the training distribution; with `flip`, every label inverted.

  Learning the training data makes the flipped rows score worse after every
  epoch, so their best score is the first one: early stopping must stop
  `patience` scores later and restore those first weights.
  """
  features, labels = fx.tiny_arrays(256, seed=2)
  return fx.dataset(features, 1.0 - labels if flip else labels, 128)


def _make(model_dir, **config):
  tf.keras.backend.clear_session()
  tf.keras.utils.set_random_seed(0)
  model = fx.TinyModel(fx.tiny_spec())
  cfg = trainer_lib.TrainerConfig(**{"epochs": 10, "checkpoint_every_steps": 5,
                                     "log_every_steps": 4, **config})
  return trainer_lib.Trainer(model, fx.optimizer_for(model), cfg, model_dir)


class Recorder(trainer_lib.Callback):

  def __init__(self):
    self.scores = []

  def on_evaluate(self, step, logs):
    self.scores.append((step, logs))


class EarlyStoppingTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    tf.keras.backend.experimental.enable_tf_random_generator()

  def tearDown(self):
    tf.keras.backend.experimental.disable_tf_random_generator()
    super().tearDown()

  def test_config_checks_the_new_fields(self):
    with self.assertRaisesRegex(ValueError, r"monitor must be one of \('auc', 'logloss', "
                                            r"'auc-logloss'\), got 'f1'"):
      trainer_lib.TrainerConfig(monitor="f1")
    with self.assertRaisesRegex(ValueError, r"patience must be an int >= 0, got -1"):
      trainer_lib.TrainerConfig(patience=-1)
    with self.assertRaisesRegex(ValueError, r"patience needs valid_data"):
      _make(None, patience=1).fit(_train_fn())

  def test_scores_every_epoch_and_records_the_curve(self):
    trainer = _make(self.make_temp_dir(), epochs=3)
    recorder = Recorder()
    trainer.callbacks.append(recorder)
    result = trainer.fit(_train_fn(), _valid())
    curve = result["validation"]
    self.assertEqual([p["step"] for p in curve], [24, 48, 72])
    self.assertEqual([p["epoch"] for p in curve], [1, 2, 3])
    self.assertEqual([s for s, _ in recorder.scores], [24, 48, 72])
    self.assertFalse(result["stopped_early"])
    best = max(curve, key=lambda p: p["auc"])
    self.assertEqual(result["best_step"], best["step"])
    # The model ends with the best weights: scoring it again gives the best point.
    again = trainer.evaluate(_valid())
    self.assertAllClose(again["auc"], best["auc"], rtol=0, atol=1e-12)
    self.assertAllClose(again["logloss"], best["logloss"], rtol=0, atol=1e-9)
    # Each score is an exact AUC of the validation rows.
    labels, preds = trainer.predict(_valid())
    self.assertAllClose(metrics.auc(labels, preds), best["auc"], rtol=0, atol=1e-12)

  def test_stops_after_patience_and_restores_the_best_weights(self):
    model_dir = self.make_temp_dir()
    trainer = _make(model_dir, epochs=10, patience=2, max_checkpoints=1)
    result = trainer.fit(_train_fn(), _valid(flip=True))
    aucs = [p["auc"] for p in result["validation"]]
    self.assertEqual(len(aucs), 3, aucs)  # epoch 1 best, 2 and 3 worse: stop; 10 is an upper bound
    self.assertTrue(result["stopped_early"])
    self.assertEqual(result["epochs"], 3)
    self.assertEqual(result["best_step"], 24)
    self.assertEqual(result["best_epoch"], 1)
    self.assertEqual(aucs[0], max(aucs))
    # The best weights survive the rotation of max_checkpoints=1 (latest: step 72).
    self.assertTrue(trainer.latest_checkpoint.endswith("ckpt-72"))
    self.assertEqual(trainer.manager.checkpoints, [trainer.latest_checkpoint])
    self.assertTrue(trainer.best_checkpoint.endswith(os.path.join("best", "ckpt-24")))
    reader = tf.train.load_checkpoint(trainer.best_checkpoint)
    for variable in trainer.model.variables:
      key = [k for k in reader.get_variable_to_shape_map()
             if k.startswith("model/") and variable.name.split(":")[0].split("/")[-1] in k]
      self.assertTrue(key, variable.name)
    self.assertAllClose(trainer.evaluate(_valid(flip=True))["auc"], aucs[0], rtol=0, atol=1e-12)
    # A later prediction-only load (evaluate) uses the best weights too.
    other = _make(model_dir, epochs=10, patience=2, max_checkpoints=1)
    self.assertTrue(other.restore_for_prediction().endswith("ckpt-24"))
    for want, got in zip(trainer.model.get_weights(), other.model.get_weights()):
      self.assertAllEqual(want, got)

  def test_a_finished_run_started_again_trains_nothing_and_scores_the_same(self):
    model_dir = self.make_temp_dir()
    first = _make(model_dir, patience=2).fit(_train_fn(), _valid(flip=True))
    again = _make(model_dir, patience=2).fit(_train_fn(), _valid(flip=True))
    self.assertEqual(again["steps"], first["steps"])
    self.assertEqual(again["validation"], first["validation"])
    self.assertTrue(again["restored_best"].endswith("ckpt-24"))

  def test_resume_keeps_the_early_stopping_state_exactly(self):
    full = _make(self.make_temp_dir(), patience=2)
    expected = full.fit(_train_fn(), _valid(flip=True))

    class Crash(trainer_lib.Callback):

      def on_step_end(self, step, logs):
        if step >= 36:  # after the checkpoint of step 35, mid epoch 2
          raise KeyboardInterrupt("crash")

    model_dir = self.make_temp_dir()
    crashed = _make(model_dir, patience=2)
    crashed.callbacks.append(Crash())
    with self.assertRaises(KeyboardInterrupt):
      crashed.fit(_train_fn(), _valid(flip=True))
    self.assertEqual([p["step"] for p in crashed.validation_curve], [24])
    resumed = _make(model_dir, patience=2)
    got = resumed.fit(_train_fn(), _valid(flip=True))
    self.assertTrue(got["resumed_from"].endswith("ckpt-35"))
    self.assertEqual(got["validation"], expected["validation"])
    for key in ("best_step", "best_value", "stopped_early", "epochs", "steps"):
      self.assertEqual(got[key], expected[key], key)
    for want, value in zip(full.model.get_weights(), resumed.model.get_weights()):
      self.assertAllClose(want, value, rtol=0, atol=1e-6)

  def test_a_run_cut_short_by_max_steps_scores_its_last_step(self):
    result = _make(None, patience=2, max_steps=35).fit(_train_fn(), _valid(flip=True))
    self.assertEqual([p["step"] for p in result["validation"]], [24, 35])
    self.assertEqual([p["epoch"] for p in result["validation"]], [1, 2])

  def test_eval_every_steps_and_the_logloss_monitor(self):
    trainer = _make(None, epochs=2, eval_every_steps=10, monitor="logloss", patience=0)
    result = trainer.fit(_train_fn(), _valid())
    self.assertEqual([p["step"] for p in result["validation"]], [10, 20, 30, 40, 48])
    for point in result["validation"]:
      self.assertAllClose(point["monitor"], -point["logloss"], rtol=0, atol=0)
    best = min(result["validation"], key=lambda p: p["logloss"])
    self.assertEqual(result["best_step"], best["step"])
    self.assertEqual(result["restored_best"], "<memory>")
    self.assertAllClose(trainer.evaluate(_valid())["logloss"], best["logloss"], rtol=0, atol=1e-9)

  def test_single_class_validation_data_is_a_clear_error(self):
    features, labels = fx.tiny_arrays(64, seed=3)
    valid = fx.dataset(features, np.zeros_like(labels), 32)
    with self.assertRaisesRegex(ValueError, r"validation monitor 'auc' is undefined: only "
                                            r"negatives \(64 rows\): AUC is undefined"):
      _make(None, epochs=1).fit(_train_fn(), valid)


if __name__ == "__main__":
  tf.test.main()
