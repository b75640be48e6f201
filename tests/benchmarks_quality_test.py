"""Validation-tuned experiment defaults and the scikit-learn anchor's features."""

import numpy as np
import pandas as pd
import pyarrow as pa

from tests import testing

from ctr_zoo.datasets import synthetic
from experiments import configs
from experiments import data as data_lib
from experiments import resolve
from experiments import runner
from experiments.configs import registry


def _needs_tower_config(test):
  if "tower" not in resolve.model_fields("dcn_v2"):
    test.skipTest("the model configs have no nested TowerConfig yet")


class TunedDefaultsTest(testing.TestCase):

  def test_lr_uses_ftrl_and_skips_fields_it_lacks(self):
    for data in registry.DATA_SETUPS:
      cfg = configs.get(f"lr_{data}")
      self.assertEqual((cfg.optimizer.embedding, cfg.optimizer.dense), ("ftrl", "ftrl"), data)
      # FTRL l2 1 (chosen on the Criteo sample); Frappe's batch-1024 lr has its own.
      self.assertEqual(cfg.optimizer.embedding_params,
                       {"beta": 1.0, "l2": 0.01 if data == "frappe" else 1.0}, data)
      params = resolve.resolve(cfg).model.params  # the "*" tower dropout is not for lr
      self.assertNotIn("tower", params, data)
      self.assertNotIn("dropout", params, data)
    dcn = configs.get("dcn_v2_synthetic")
    self.assertEqual(dcn.model.common_params, {"tower": {"dropout": 0.1}})
    self.assertEqual(dcn.optimizer.embedding, "adagrad")
    self.assertAllClose(dcn.optimizer.embedding_learning_rate, 0.5, atol=0)

  def test_tuned_dropout_reaches_the_tower(self):
    _needs_tower_config(self)
    self.assertEqual(resolve.resolve(configs.get("dcn_v2_synthetic")).model.params["tower"]["dropout"],
                     0.1)

  def test_explicit_overrides_win_over_tuned(self):
    cfg = configs.get("dnn_synthetic", {"model.params.tower.dropout": 0.3,
                                        "optimizer.embedding_learning_rate": 0.01})
    self.assertEqual(cfg.model.params, {"tower": {"dropout": 0.3}})
    self.assertAllClose(cfg.optimizer.embedding_learning_rate, 0.01, atol=0)
    _needs_tower_config(self)
    self.assertAllClose(resolve.resolve(cfg).model.params["tower"]["dropout"], 0.3, atol=0)


class SyntheticWorldTest(testing.TestCase):

  def test_interactions_are_configurable_and_checked(self):
    world = synthetic.SyntheticCriteoConfig(pairs=[[0, 6]], triples=[], int_cat_crosses=[])
    self.assertEqual(world.pairs, ((0, 6),))  # lists from JSON become hashable tuples
    table, p, _ = synthetic.generate_chunk(world, 0, 0, 2000)
    self.assertEqual(table.num_rows, 2000)
    self.assertTrue(np.all((p > 0) & (p < 1)))
    with self.assertRaisesRegex(ValueError, r"pairs: bad entry \(0, 26\)"):
      synthetic.SyntheticCriteoConfig(pairs=[[0, 26]])
    with self.assertRaisesRegex(ValueError, r"int_cat_crosses: bad entry \(13, 2\)"):
      synthetic.SyntheticCriteoConfig(int_cat_crosses=[[13, 2]])

  def test_default_world_has_most_signal_in_crosses(self):
    world = synthetic.SyntheticCriteoConfig()
    w = synthetic._world(world)  # pylint: disable=protected-access
    ints, cats = w.sample_features(np.random.default_rng([3, 0]), 50_000)
    full = w.logit_without_intercept(ints, cats)
    additive = synthetic._world(synthetic.SyntheticCriteoConfig(  # pylint: disable=protected-access
        pairs=(), triples=(), int_cat_crosses=()))
    # Same world seed and fields: the additive world's main effects are drawn first, identically.
    main = additive.logit_without_intercept(ints, cats)
    y = np.random.default_rng(4).random(len(full)) < 1 / (1 + np.exp(-(full + w.intercept)))
    self.assertGreater(synthetic.auc(y, full), 0.8)
    self.assertLess(synthetic.auc(y, main), synthetic.auc(y, full) - 0.1)


class SklearnAnchorTest(testing.TestCase):

  def test_bucketize_and_one_hot(self):
    from benchmarks import sklearn_anchor  # pylint: disable=g-import-not-at-top
    got = sklearn_anchor._numeric_tokens(pa.array([None, -2, 0, 2, 3, 100]))  # pylint: disable=protected-access
    expected = ["", "-2", "0", "2", str(int(np.floor(np.log(3) ** 2))),
                str(int(np.floor(np.log(100) ** 2)))]
    self.assertEqual(list(got), expected)
    got = sklearn_anchor._numeric_tokens(pa.array([1.5, None, 7.25]))  # pylint: disable=protected-access
    expected = ["1", "", str(int(np.floor(np.log(7.25) ** 2)))]
    self.assertEqual(list(got), expected)
    tok = pd.DataFrame({"a": ["x", "x", "y", "", "z"], "b": ["1", "1", "1", "2", "2"]})
    train = np.array([True, True, True, True, False])
    m = sklearn_anchor.one_hot(tok, train, min_count=2).toarray()
    # a: [missing, rare, x] ; b: [missing, rare, 1] (2 seen once in train -> rare)
    self.assertAllClose(m, np.array([[0, 0, 1, 0, 0, 1], [0, 0, 1, 0, 0, 1], [0, 1, 0, 0, 0, 1],
                                     [1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 1, 0]], np.float32), atol=0)

  def test_anchor_split_matches_the_experiment_rows(self):
    path = testing.require_file(testing.CRITEO_SAMPLE)
    from benchmarks import sklearn_anchor  # pylint: disable=g-import-not-at-top
    cfg = runner.resolve_config("lr_criteo", "", path)
    y, tok = sklearn_anchor.read_tokens(cfg)
    self.assertEqual(list(tok.columns), [f"I{i}" for i in range(1, 14)] +
                     [f"C{i}" for i in range(1, 27)])  # I_j read twice by the spec: one field
    split = data_lib._split_of(cfg.data, 1)  # pylint: disable=protected-access
    which = split.assign(0, np.arange(len(y), dtype=np.int64))
    counts = np.bincount(which, minlength=3)
    self.assertEqual(int(counts.sum()), 6000)
    # The experiments' prepared split of the same file has these sizes (records: split_rows).
    self.assertEqual(list(counts), [4820, 585, 595])

