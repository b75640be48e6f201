"""experiments.evaluate: a run's checkpoint reproduces its test metrics; an export scores raw TSV."""

import io
import json
import os
from unittest import mock

from absl import flags
from absl.testing import flagsaver

from tests import testing

import tensorflow as tf

import numpy as np

from ctr_zoo import datasets
from ctr_zoo.datasets import input_pipeline
from ctr_zoo.datasets import preprocessing
from experiments import evaluate
from experiments import train

FLAGS = flags.FLAGS
TINY = ("data.synthetic_rows=3000,input.batch_size=128,trainer.max_steps=6,"
        "trainer.checkpoint_every_steps=3,input.eval_batch_size=1024")


class EvaluateTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    if not FLAGS.is_parsed():
      FLAGS.mark_as_parsed()

  def setUp(self):
    super().setUp()
    patcher = mock.patch.dict(os.environ, {"CTR_ZOO_CACHE": self.make_temp_dir()})
    patcher.start()
    self.addCleanup(patcher.stop)

  def tearDown(self):
    tf.keras.backend.experimental.disable_tf_random_generator()
    super().tearDown()

  def _run(self, module, **flag_values):
    out = io.StringIO()
    with flagsaver.flagsaver(**flag_values), mock.patch("sys.stdout", out), \
        mock.patch("sys.stderr", io.StringIO()) as err:
      code = module.main([])
    return code, out.getvalue(), err.getvalue()

  def test_checkpoint_and_export_evaluation(self):
    tmp = self.make_temp_dir()
    model_dir = os.path.join(tmp, "run")
    code, _, err = self._run(train, experiment="dnn_synthetic", model_dir=model_dir,
                             params_override=TINY, progress=False, export=True)
    self.assertEqual(code, 0, err)
    with open(os.path.join(model_dir, "metrics.json")) as fh:
      trained = json.load(fh)

    # The latest checkpoint gives exactly the test metrics the run recorded,
    # from the run's spec.json and cached shards (nothing is fitted again), in
    # batches of the run's input.eval_batch_size.
    out_json = os.path.join(tmp, "eval.json")
    plot = os.path.join(tmp, "reliability.png")
    batch_sizes = []
    real_make_dataset = input_pipeline.make_dataset

    def make_dataset(source, spec, batch_size, **kwargs):
      batch_sizes.append(batch_size)
      return real_make_dataset(source, spec, batch_size, **kwargs)

    with mock.patch.object(preprocessing, "fit", side_effect=AssertionError("refit")), \
        mock.patch.object(preprocessing, "fit_transform", side_effect=AssertionError("refit")), \
        mock.patch.object(preprocessing, "transform", side_effect=AssertionError("re-prepared")), \
        mock.patch.object(input_pipeline, "make_dataset", make_dataset):
      code, out, err = self._run(evaluate, model_dir=model_dir, export_dir="", eval_split="test",
                                 data="", plot=plot, metrics_json=out_json, eval_batch_size=None)
    self.assertEqual(code, 0, err)
    self.assertEqual(batch_sizes, [1024])
    with open(out_json) as fh:
      got = json.load(fh)
    self.assertAllClose(got["auc"], trained["test"]["auc"], rtol=0, atol=1e-9)
    self.assertAllClose(got["logloss"], trained["test"]["logloss"], rtol=0, atol=1e-9)
    self.assertEqual(len(got["calibration"]["bins"]), 10)
    self.assertGreater(os.path.getsize(plot), 1000)
    self.assertIn("predicted CTR", out)

    # The raw-feature export scores a raw Criteo TSV file (label first).
    raw = os.path.join(tmp, "raw.tsv")
    datasets.generate_criteo_tsv(raw, 300, seed=5)
    code, out, err = self._run(evaluate, model_dir="", export_dir=os.path.join(model_dir, "export"),
                               data=raw, metrics_json=out_json, plot="")
    self.assertEqual(code, 0, err)
    with open(out_json) as fh:
      got = json.load(fh)
    self.assertEqual(got["num_examples"], 300)
    self.assertTrue(0.0 < got["auc"] < 1.0)

    # The same file through --model_dir: encoded with the run's fitted spec
    # (values the run never saw -> OOV), scored by the checkpoint; equal to the
    # export's scores row by row.
    labels_export, preds_export = evaluate.predict_export(os.path.join(model_dir, "export"), raw)
    with mock.patch.object(preprocessing, "fit", side_effect=AssertionError("refit")), \
        mock.patch.object(preprocessing, "fit_transform", side_effect=AssertionError("refit")):
      labels_run, preds_run = evaluate.predict_run(model_dir, "test", raw)
    np.testing.assert_array_equal(labels_run, labels_export)
    self.assertAllClose(preds_run, preds_export, rtol=0, atol=1e-6)
    code, out, err = self._run(evaluate, model_dir=model_dir, export_dir="", data=raw,
                               metrics_json=out_json, plot="")
    self.assertEqual(code, 0, err)
    self.assertIn(f"on {raw}", out)
    with open(out_json) as fh:
      self.assertAllClose(json.load(fh)["auc"], got["auc"], rtol=0, atol=1e-6)

  def test_needs_exactly_one_source(self):
    code, _, err = self._run(evaluate, model_dir="", export_dir="")
    self.assertEqual(code, 2)
    self.assertIn("exactly one of --model_dir or --export_dir", err)


if __name__ == "__main__":
  tf.test.main()
