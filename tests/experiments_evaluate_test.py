"""experiments.evaluate: a run's checkpoint reproduces its test metrics; an export scores raw TSV."""

import io
import json
import os
from unittest import mock

from absl import flags
from absl.testing import flagsaver

from tests import testing

import tensorflow as tf

from ctr_zoo import datasets
from experiments import evaluate
from experiments import train

FLAGS = flags.FLAGS
TINY = ("data.synthetic_rows=3000,trainer.batch_size=128,trainer.max_steps=6,"
        "trainer.checkpoint_every_steps=3,trainer.eval_batch_size=1024")


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

    # The latest checkpoint gives exactly the test metrics the run recorded.
    out_json = os.path.join(tmp, "eval.json")
    plot = os.path.join(tmp, "reliability.png")
    code, out, err = self._run(evaluate, model_dir=model_dir, export_dir="", eval_split="test",
                               data="", plot=plot, metrics_json=out_json)
    self.assertEqual(code, 0, err)
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

  def test_needs_exactly_one_source(self):
    code, _, err = self._run(evaluate, model_dir="", export_dir="")
    self.assertEqual(code, 2)
    self.assertIn("exactly one of --model_dir or --export_dir", err)


if __name__ == "__main__":
  tf.test.main()
