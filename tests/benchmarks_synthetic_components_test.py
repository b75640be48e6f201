"""benchmarks.synthetic_components: the parts of the true logit, and their recovery from a logit."""

import os
from unittest import mock

import numpy as np

from tests import testing

from benchmarks import synthetic_components as sc
from ctr_zoo.datasets import synthetic
from experiments import data as data_lib
from experiments import runner


class SyntheticComponentsTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    patcher = mock.patch.dict(os.environ, {"CTR_ZOO_CACHE": self.make_temp_dir()})
    patcher.start()
    self.addCleanup(patcher.stop)
    self.cfg = runner.resolve_config("dcn_v2_synthetic", "data.synthetic_rows=4000")
    self.path = data_lib.synthetic_source(self.cfg.data)
    self.world = synthetic._world(synthetic.SyntheticCriteoConfig())  # pylint: disable=protected-access

  def test_parts_sum_to_the_worlds_logit_and_the_file_reproduces_the_oracle(self):
    ints, cats = self.world.sample_features(np.random.default_rng(5), 3000)
    parts = sc.logit_parts(self.world, ints, cats)
    self.assertEqual(tuple(parts), sc.PARTS)
    np.testing.assert_allclose(sum(parts.values()), self.world.logit_without_intercept(ints, cats),
                               rtol=1e-12, atol=1e-12)
    for name, part in parts.items():
      self.assertGreater(np.std(part), 0.1, name)  # every part carries signal
    ints, cats, labels = sc.read_raw(self.path, self.world)
    p = 1 / (1 + np.exp(-(sum(sc.logit_parts(self.world, ints, cats).values())
                          + self.world.intercept)))
    oracle_p, oracle_labels = synthetic.load_oracle(self.path)
    np.testing.assert_array_equal(labels, oracle_labels)
    np.testing.assert_allclose(p, oracle_p, rtol=1e-9)

  def test_a_model_equal_to_the_oracle_has_every_coefficient_one(self):
    oracle_p, labels = synthetic.load_oracle(self.path)
    split = data_lib._split_of(self.cfg.data, 1)  # pylint: disable=protected-access
    test = split.assign(0, np.arange(len(labels), dtype=np.int64)) == list(split.names).index("test")
    with mock.patch.object(sc.scorers, "load_run", return_value=(self.cfg, None)), \
        mock.patch.object(sc.evaluate, "predict_run", return_value=(labels[test], oracle_p[test])):
      r = sc.analyse("run")
    for name in sc.PARTS:
      self.assertAlmostEqual(r["coef"][name], 1.0, places=3, msg=name)
    self.assertGreater(r["r2_true_logit"], 0.999)
    self.assertAlmostEqual(r["auc"], r["oracle_auc"], places=9)
    # A model that learned only the main effects: pairs and triples get coefficient 0.
    ints, cats, _ = sc.read_raw(self.path, self.world)
    parts = sc.logit_parts(self.world, ints[test], cats[test])
    main_only = 1 / (1 + np.exp(-(parts["cat_main"] + parts["int_main"] + self.world.intercept)))
    with mock.patch.object(sc.scorers, "load_run", return_value=(self.cfg, None)), \
        mock.patch.object(sc.evaluate, "predict_run", return_value=(labels[test], main_only)):
      r = sc.analyse("run")
    self.assertAlmostEqual(r["coef"]["cat_main"], 1.0, places=3)
    self.assertAlmostEqual(r["coef"]["pairs"], 0.0, places=3)
    self.assertAlmostEqual(r["coef"]["triples"], 0.0, places=3)
    self.assertIn("| run: dcn_v2 (seed 0) |", sc.table([r]))

  def test_a_run_on_other_data_is_refused(self):
    cfg = runner.resolve_config("dcn_v2_criteo", "", "")
    with mock.patch.object(sc.scorers, "load_run", return_value=(cfg, None)):
      with self.assertRaisesRegex(ValueError, "not the synthetic world"):
        sc.analyse("run")
