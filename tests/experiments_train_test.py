"""experiments.train end to end on tiny synthetic data (flagsaver, temp dirs)."""

import io
import json
import os
from unittest import mock

from absl import flags
from absl.testing import flagsaver

from tests import testing

import tensorflow as tf

from ctr_zoo.datasets import preprocessing
from ctr_zoo.training import TrainerConfig
from experiments import configs
from experiments import resolve
from experiments import run_dir
from experiments import train

FLAGS = flags.FLAGS
TINY = ("data.synthetic_rows=3000,input.batch_size=128,trainer.max_steps=6,"
        "trainer.checkpoint_every_steps=3,input.eval_batch_size=1024")


class TrainTest(testing.TestCase):

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

  def _main(self, **flag_values):
    out = io.StringIO()
    with flagsaver.flagsaver(progress=False, export=False, **flag_values), \
        mock.patch("sys.stdout", out), mock.patch("sys.stderr", io.StringIO()) as err:
      code = train.main([])
    return code, out.getvalue(), err.getvalue()

  def test_smoke_writes_every_output_and_prints_summary(self):
    model_dir = os.path.join(self.make_temp_dir(), "run")
    code, out, err = self._main(experiment="dnn_synthetic", model_dir=model_dir,
                                params_override=TINY)
    self.assertEqual(code, 0, err)
    self.assertRegex(out, r"test : AUC 0\.\d{4}  logloss 0\.\d{4} .* oracle AUC 0\.\d{4}")
    for name in ("params.json", "spec.json", "metrics.json", "checkpoints", "tensorboard"):
      self.assertTrue(os.path.exists(os.path.join(model_dir, name)), name)
    params = run_dir.load_params(model_dir)
    self.assertEqual(params["name"], "dnn_synthetic")
    self.assertEqual(params["trainer"]["max_steps"], 6)
    self.assertEqual(params["input"], {"batch_size": 128, "eval_batch_size": 1024})
    # Fully resolved: every trainer field and every model config field, defaults included.
    self.assertEqual(set(params["trainer"]), {f.name for f in TrainerConfig.__dataclass_fields__.values()})
    self.assertEqual(set(params["model"]["params"]), set(resolve.model_fields("dnn")))
    with open(os.path.join(model_dir, "metrics.json")) as fh:
      metrics = json.load(fh)
    self.assertEqual(metrics["train"]["steps"], 6)
    self.assertEqual(metrics["train"]["examples"], 6 * 128)
    self.assertEqual(sum(metrics["split_rows"].values()), 3000)
    self.assertEqual(metrics["test"]["num_examples"], metrics["split_rows"]["test"])
    self.assertGreater(metrics["oracle"]["test"]["auc"], 0.7)
    self.assertTrue(tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("-6"))

  def test_mixed_bfloat16_trains_and_records_its_precision(self):
    model_dir = os.path.join(self.make_temp_dir(), "run")
    code, out, err = self._main(experiment="dcn_v2_synthetic", model_dir=model_dir,
                                params_override=TINY + ",model.precision=mixed_bfloat16")
    self.assertEqual(code, 0, err)
    self.assertRegex(out, r"test : AUC 0\.\d{4}  logloss 0\.\d{4}")
    self.assertEqual(run_dir.load_params(model_dir)["model"]["precision"], "mixed_bfloat16")
    self.assertEqual(tf.keras.mixed_precision.global_policy().name, "float32")

  def test_other_experiment_in_model_dir_is_refused_unless_overwrite(self):
    model_dir = os.path.join(self.make_temp_dir(), "run")
    self.assertEqual(self._main(experiment="lr_synthetic", model_dir=model_dir,
                                params_override=TINY)[0], 0)
    code, _, err = self._main(experiment="dnn_synthetic", model_dir=model_dir,
                              params_override=TINY)
    self.assertEqual(code, 1)
    self.assertIn("holds a different experiment ('lr_synthetic')", err)
    self.assertIn('model.name: "lr" -> "dnn"', err)
    code, _, err = self._main(experiment="dnn_synthetic", model_dir=model_dir,
                              params_override=TINY, overwrite=True)
    self.assertEqual(code, 0, err)
    self.assertEqual(run_dir.load_params(model_dir)["name"], "dnn_synthetic")
    # Both models trained on one cache entry: the data cache is not keyed by the model.
    self.assertEqual(len(os.listdir(os.path.join(self.cache, "prepared"))), 1)

  def test_bad_key_fails_in_one_line_before_the_run_directory_is_touched(self):
    model_dir = os.path.join(self.make_temp_dir(), "run")
    code, _, err = self._main(experiment="dnn_synthetic", model_dir=model_dir,
                              params_override=TINY + ",trainer.batch_size=64")
    self.assertEqual(code, 2)  # a usage error
    self.assertEqual(err.count("\n"), 1, err)
    self.assertIn("error: unknown config field 'trainer.batch_size'; allowed here:", err)
    self.assertFalse(os.path.exists(model_dir))
    code, _, err = self._main(experiment="dnn_nowhere", model_dir=model_dir)
    self.assertEqual(code, 2)
    self.assertIn("error: unknown experiment 'dnn_nowhere'", err)

  def test_changing_the_embedding_width_reuses_the_prepared_data(self):
    if "embedding" not in resolve.model_fields("dnn"):
      self.skipTest("the model configs have no nested EmbeddingConfig yet")
    fits = []
    real = preprocessing.fit_transform
    with mock.patch.object(preprocessing, "fit_transform",
                           lambda *a, **k: fits.append(1) or real(*a, **k)):
      for dim in (4, 6):
        model_dir = os.path.join(self.make_temp_dir(), "run")
        code, _, err = self._main(experiment="dnn_synthetic", model_dir=model_dir,
                                  params_override=TINY + f",model.params.embedding.dim={dim}")
        self.assertEqual(code, 0, err)
        self.assertEqual(run_dir.load_params(model_dir)["model"]["params"]["embedding"]["dim"], dim)
    self.assertEqual(len(fits), 1)
    self.assertEqual(len(os.listdir(os.path.join(self.cache, "prepared"))), 1)

  def test_help_lists_the_common_flags(self):
    # `train --help` shows the main module's key flags (no --helpfull needed).
    listed = {flag.name for flag in FLAGS.get_key_flags_for_module(train)}
    for name in ("data", "spec", "model_dir", "params_override", "seed", "on_bad_rows",
                 "experiment", "overwrite"):
      self.assertIn(name, listed)

  def test_seed_flag_sets_the_trainer_seed(self):
    model_dir = os.path.join(self.make_temp_dir(), "run")
    code, _, err = self._main(experiment="lr_synthetic", model_dir=model_dir,
                              params_override=TINY, seed=7)
    self.assertEqual(code, 0, err)
    self.assertEqual(run_dir.load_params(model_dir)["trainer"]["seed"], 7)

  def test_metrics_hold_the_validation_curve_and_the_best_epoch(self):
    model_dir = os.path.join(self.make_temp_dir(), "run")
    code, out, err = self._main(experiment="dnn_synthetic", model_dir=model_dir,
                                params_override=TINY.replace("trainer.max_steps=6",
                                                             "trainer.epochs=3"))
    self.assertEqual(code, 0, err)
    metrics = run_dir.read_json(os.path.join(model_dir, "metrics.json"))
    curve = metrics["validation"]
    self.assertEqual([p["epoch"] for p in curve], [1, 2, 3])
    stopping = metrics["early_stopping"]
    self.assertEqual((stopping["monitor"], stopping["patience"]), ("auc", 2))
    best = max(curve, key=lambda p: p["auc"])
    self.assertEqual(stopping["best_step"], best["step"])
    # The valid split is scored again with the restored best weights: the same AUC.
    self.assertAlmostEqual(metrics["valid"]["auc"], best["auc"], places=12)
    self.assertRegex(out, rf"best  : epoch {best['epoch']} \(step {best['step']}\) by valid auc, "
                          r"restored")

  def test_list_experiments_has_every_model_on_every_data_setup(self):
    code, out, _ = self._main(list_experiments=True)
    self.assertEqual(code, 0)
    listed = out.split()
    for model in ("lr", "dnn", "dcn_v2", "dcn_mix"):
      for data in configs.DATA_SETUPS:
        self.assertIn(f"{model}_{data}", listed)


if __name__ == "__main__":
  tf.test.main()
