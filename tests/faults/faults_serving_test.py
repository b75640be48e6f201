"""Fault injection, serving: bad requests and bad files against an export.

Each test's docstring is its one-line case description.
"""

import io
import json
import os
from unittest import mock

from absl import flags
from absl.testing import flagsaver
import numpy as np

from tests import testing

import tensorflow as tf

from ctr_zoo import datasets
from ctr_zoo import models
from ctr_zoo.datasets import preprocessing
from ctr_zoo.feature_columns import criteo
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.training import export
from experiments import evaluate
from experiments import train

FLAGS = flags.FLAGS
TINY = ("data.synthetic_rows=2000,input.batch_size=128,trainer.max_steps=4,"
        "trainer.checkpoint_every_steps=4,input.eval_batch_size=1024")


class ServingFaultsTest(testing.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    if not FLAGS.is_parsed():
      FLAGS.mark_as_parsed()
    cls.tmp = tf.compat.v1.test.get_temp_dir()
    cls.raw = os.path.join(cls.tmp, "faults_raw.tsv")
    datasets.generate_criteo_tsv(cls.raw, 300, seed=3)
    cls.spec = preprocessing.fit(cls.raw, criteo.criteo_spec(min_count=2))
    tf.keras.utils.set_random_seed(0)
    model = models.build("lr", cls.spec)
    cls.export_dir = os.path.join(cls.tmp, "faults_export")
    export.export_saved_model(model, cls.spec, cls.export_dir)
    cls.loaded = tf.saved_model.load(cls.export_dir)
    with open(cls.raw) as fh:
      cls.lines = [line.rstrip("\n") for line in fh]

  def test_39_field_row_through_serve_tsv_labeled(self):
    """A label-less 39-field Criteo row sent to serve_tsv_labeled is refused: 40 fields expected, 39 got."""
    rows = [self.lines[0], self.lines[1].split("\t", 1)[1]]
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"serve_tsv_labeled: line 1 of the batch has 39 tab-separated "
                                r"fields, expected 40 \(the label included: label, I1"):
      self.loaded.signatures["serve_tsv_labeled"](lines=tf.constant(rows))

  def test_label_less_line_with_trailing_tab_through_serve_tsv(self):
    """A label-less line with a trailing tab is refused by serve_tsv (39 expected, 40 got), not read as label-first."""
    line = self.lines[2].split("\t", 1)[1] + "\t"
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"serve_tsv: line 0 of the batch has 40 tab-separated fields, "
                                r"expected 39 \(no label: I1"):
      self.loaded.signatures["serve_tsv"](lines=tf.constant([line]))
    # The same line without the tab is served, like its label-first original.
    ok = self.loaded.signatures["serve_tsv"](lines=tf.constant([line[:-1]]))["probability"]
    labeled = self.loaded.signatures["serve_tsv_labeled"](lines=tf.constant([self.lines[2]]))
    self.assertAllClose(ok, labeled["probability"], rtol=0, atol=0)

  def _evaluate(self, **flag_values):
    out = io.StringIO()
    flag_values = {"model_dir": "", "export_dir": self.export_dir, "plot": "", "metrics_json": "",
                   **flag_values}
    with flagsaver.flagsaver(**flag_values), \
        mock.patch("sys.stdout", out), mock.patch("sys.stderr", io.StringIO()) as err:
      code = evaluate.main([])
    return code, out.getvalue(), err.getvalue()

  def test_evaluate_export_refuses_39_field_rows(self):
    """evaluate --export_dir on a file with 39-field rows stops with one line naming file, line and field counts."""
    path = os.path.join(self.make_temp_dir(), "shifted.tsv")
    with open(path, "w") as fh:
      for i, line in enumerate(self.lines[:50]):
        fh.write((line.split("\t", 1)[1] if i % 10 == 4 else line) + "\n")
    code, _, err = self._evaluate(data=path, on_bad_rows="error")
    self.assertEqual(code, 1)
    self.assertEqual(len(err.strip().splitlines()), 1, err)
    self.assertRegex(err, r"shifted\.tsv: line 5, field count: expected 40 fields, got 39")
    self.assertNotIn("Traceback", err)

  def test_evaluate_export_skips_and_reports_39_field_rows(self):
    """evaluate --export_dir --on_bad_rows=skip leaves 39-field rows out and reports how many."""
    path = os.path.join(self.make_temp_dir(), "shifted.tsv")
    with open(path, "w") as fh:
      for i, line in enumerate(self.lines[:50]):
        fh.write((line.split("\t", 1)[1] if i % 10 == 4 else line) + "\n")
    metrics = os.path.join(self.make_temp_dir(), "m.json")
    code, out, err = self._evaluate(data=path, on_bad_rows="skip", metrics_json=metrics)
    self.assertEqual(code, 0, err)
    self.assertIn("(5 bad rows skipped: 5 field count)", out)
    with open(metrics) as fh:
      self.assertEqual(json.load(fh)["num_examples"], 45)

  def test_non_integer_numeric_field_names_the_input(self):
    """A numeric field given a non-integer string through serving_default names the input and the row."""
    raw = {f.name: tf.constant([""]) for f in self.spec.features}
    raw["I3"] = tf.constant(["3.5"])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"input I3 \(a numeric field\) expects base-10 integer strings, "
                                r"empty = missing; got 3\.5 in row 0 of the batch\. serve_typed "
                                r"takes numbers"):
      self.loaded.signatures["serving_default"](**raw)

  def test_numbers_for_numeric_fields_through_serve_typed(self):
    """serve_typed takes numbers for the numeric fields (NaN = missing) like the strings, and refuses inf by name."""
    fields = self.lines[3].split("\t")[1:]
    raw, typed = {}, {}
    for f, value in zip(self.spec.features, fields):
      raw[f.name] = tf.constant([value])
      if isinstance(f, spec_lib.DenseFeature):
        typed[f.name] = tf.constant([float(value) if value else np.nan], tf.float64)
      else:
        typed[f.name] = tf.constant([value])
    want = self.loaded.signatures["serving_default"](**raw)["probability"]
    got = self.loaded.signatures["serve_typed"](**typed)["probability"]
    self.assertAllClose(got, want, rtol=0, atol=0)
    typed["I2"] = tf.constant([np.inf], tf.float64)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"input I2 \(a numeric field\) must be a finite number or NaN "
                                r"\(missing\); got inf in row 0 of the batch"):
      self.loaded.signatures["serve_typed"](**typed)
    inputs = self.loaded.signatures["serve_typed"].structured_input_signature[1]
    self.assertEqual(inputs["I1"].dtype, tf.float64)
    self.assertEqual(inputs["C1"].dtype, tf.string)

  def test_empty_vocabulary_exports(self):
    """A run whose vocabularies are all empty (min_count above every count) exports, and train writes metrics.json."""
    tmp = self.make_temp_dir()
    model_dir = os.path.join(tmp, "run")
    with mock.patch.dict(os.environ, {"CTR_ZOO_CACHE": os.path.join(tmp, "cache")}), \
        flagsaver.flagsaver(experiment="lr_synthetic", model_dir=model_dir,
                            params_override=TINY + ",data.min_count=1000000000", progress=False,
                            export=True), \
        mock.patch("sys.stdout", io.StringIO()), mock.patch("sys.stderr", io.StringIO()) as err:
      code = train.main([])
    tf.keras.backend.experimental.disable_tf_random_generator()
    self.assertEqual(code, 0, err.getvalue())
    self.assertTrue(os.path.exists(os.path.join(model_dir, "metrics.json")))
    spec = spec_lib.FeatureSpec.load(os.path.join(model_dir, "spec.json"))
    self.assertEqual(spec["C1"].vocabulary, ())
    loaded = tf.saved_model.load(os.path.join(model_dir, "export"))
    raw = {f.name: tf.constant(["", "1" if isinstance(f, spec_lib.DenseFeature) else "abc"])
           for f in spec.features}
    ids = loaded.signatures["preprocess"](**raw)
    self.assertAllEqual(ids["C1"], [spec_lib.MISSING_ID, spec_lib.OOV_ID])


if __name__ == "__main__":
  tf.test.main()
