"""experiments.run_dir: one experiment per run directory; older params.json files."""

import os

from tests import testing

from experiments import run_dir


class RunDirTest(testing.TestCase):

  def test_same_params_resume_different_refused_unless_overwrite(self):
    d = os.path.join(self.make_temp_dir(), "run")
    params = {"name": "dnn_synthetic", "trainer": {"epochs": 2}}
    self.assertFalse(run_dir.prepare(d, params))
    self.assertTrue(run_dir.prepare(d, params))
    other = {"name": "lr_synthetic", "trainer": {"epochs": 2}}
    with self.assertRaisesRegex(run_dir.ExperimentMismatchError,
                                r"holds a different experiment \('dnn_synthetic'\)[\s\S]*"
                                r"name: \"dnn_synthetic\" -> \"lr_synthetic\"[\s\S]*--overwrite"):
      run_dir.prepare(d, other)
    open(os.path.join(d, "stale.txt"), "w").close()
    self.assertFalse(run_dir.prepare(d, other, overwrite=True))
    self.assertFalse(os.path.exists(os.path.join(d, "stale.txt")))
    self.assertEqual(run_dir.load_params(d), other)

  def test_foreign_directory_is_never_deleted(self):
    d = self.make_temp_dir()
    open(os.path.join(d, "thesis.tex"), "w").close()
    with self.assertRaisesRegex(run_dir.ExperimentMismatchError, r"not a ctr_zoo run"):
      run_dir.prepare(d, {"name": "x"}, overwrite=True)
    self.assertTrue(os.path.exists(os.path.join(d, "thesis.tex")))

  def test_older_params_are_refused_in_one_line_and_upgraded_for_reading(self):
    d = os.path.join(self.make_temp_dir(), "run")
    old = {"name": "dnn_synthetic", "data": {"name": "synthetic", "embedding_dim": 16},
           "model": {"name": "dnn", "params": {"dropout": 0.1}},
           "trainer": {"epochs": 3, "batch_size": 512, "eval_batch_size": 8192}}
    run_dir.prepare(d, old)
    new = {"name": "dnn_synthetic", "input": {"batch_size": 512}, "trainer": {"epochs": 3}}
    with self.assertRaises(run_dir.ExperimentMismatchError) as caught:
      run_dir.prepare(d, new)
    message = str(caught.exception)
    self.assertNotIn("\n", message)
    self.assertIn("written by an older ctr_zoo", message)
    self.assertIn("trainer.batch_size (now input.batch_size)", message)
    self.assertIn("data.embedding_dim (now model.params.embedding.dim)", message)
    self.assertIn("--overwrite", message)
    self.assertFalse(run_dir.prepare(d, new, overwrite=True))
    self.assertEqual(run_dir.load_params(d), new)

    upgraded = run_dir.upgrade_params(old)
    self.assertEqual(upgraded["input"], {"batch_size": 512, "eval_batch_size": 8192})
    self.assertEqual(upgraded["trainer"], {"epochs": 3})
    self.assertEqual(upgraded["data"], {"name": "synthetic"})
    self.assertEqual(run_dir.legacy_keys(upgraded), [])
    self.assertEqual(old["trainer"]["batch_size"], 512)  # the input is not modified
    self.assertEqual(upgraded["model"], old["model"])  # dnn has no field added since

  def test_model_fields_added_since_take_the_value_of_the_saved_graph(self):
    # A dcnv3 run from before `numeric_input` had the raw numeric values in x0.
    old = {"name": "dcnv3_synthetic", "model": {"name": "dcnv3", "params": {"tri_bce": True}}}
    self.assertEqual(run_dir.upgrade_params(old)["model"]["params"],
                     {"tri_bce": True, "numeric_input": "raw"})
    current = {"name": "dcnv3_synthetic",
               "model": {"name": "dcnv3", "params": {"numeric_input": "fields"}}}
    self.assertEqual(run_dir.upgrade_params(current), current)
    unknown = {"name": "x", "model": {"name": "no_such_model", "params": {}}}
    self.assertEqual(run_dir.upgrade_params(unknown), unknown)


if __name__ == "__main__":
  import tensorflow as tf
  tf.test.main()
