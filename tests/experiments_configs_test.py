"""Experiment configs: named variants, dotted overrides, resolution against the library."""

import dataclasses
import os
import subprocess
import sys
import textwrap

from tests import testing

from ctr_zoo.training import TrainerConfig
from experiments import configs
from experiments import resolve
from experiments.configs import base


def _leaves(d, prefix=()):
  for key, value in d.items():
    if isinstance(value, dict) and value:
      yield from _leaves(value, prefix + (key,))
    else:
      yield prefix + (key,), value


class ConfigsTest(testing.TestCase):

  def test_overrides_parse_and_coerce_types(self):
    overrides = configs.parse_overrides(
        "trainer.epochs=3,optimizer.dense_learning_rate=1,model.params.hidden=[64,32],"
        "model.params.tower.act=relu,data.hash_buckets=1000,input.batch_size=64")
    self.assertEqual(overrides["model.params.hidden"], [64, 32])
    cfg = configs.get("dnn_synthetic", overrides)
    self.assertEqual(cfg.trainer, {"epochs": 3, "checkpoint_every_steps": 100, "monitor": "auc",
                                   "patience": 2})
    self.assertIsInstance(cfg.optimizer.dense_learning_rate, float)
    self.assertEqual(cfg.model.params, {"hidden": [64, 32], "tower": {"act": "relu"}})
    # dropout 0.1 is the validation-tuned synthetic default for every model with a tower.
    self.assertEqual(cfg.model.common_params, {"tower": {"dropout": 0.1}})
    self.assertEqual((cfg.data.hash_buckets, cfg.input.batch_size), (1000, 64))

  def test_parse_errors_name_the_bad_field_and_value(self):
    with self.assertRaisesRegex(configs.ConfigError, r"unknown config field 'input.batch'; allowed"):
      configs.get("dnn_synthetic", {"input.batch": 2})
    with self.assertRaisesRegex(configs.ConfigError, r"input.batch_size must be an integer, got 'x'"):
      configs.get("dnn_synthetic", {"input.batch_size": "x"})
    with self.assertRaisesRegex(configs.ConfigError, r"not key=value"):
      configs.parse_overrides("trainer.epochs")
    with self.assertRaisesRegex(configs.ConfigError, r"unknown experiment 'nope'.*data setup"):
      configs.get("nope")
    self.assertEqual(configs.parse_name("dcn_v2_criteo_x4"), ("dcn_v2", "criteo_x4"))
    self.assertEqual(configs.parse_name("dcn_mix_dcnv2_paper"), ("dcn_mix", "dcnv2_paper"))

  def test_resolve_errors_name_the_bad_key_and_the_allowed_ones(self):
    def resolve_with(name, overrides):
      return resolve.resolve(configs.get(name, overrides))

    with self.assertRaisesRegex(configs.ConfigError,
                                r"unknown config field 'trainer.epoch'; allowed here: .*'epochs'"):
      resolve_with("dnn_synthetic", {"trainer.epoch": 2})
    with self.assertRaisesRegex(configs.ConfigError, r"trainer.epochs must be an integer, got 'two'"):
      resolve_with("dnn_synthetic", configs.parse_overrides("trainer.epochs=two"))
    with self.assertRaisesRegex(configs.ConfigError, r"epochs must be an int >= 1, got 0"):
      resolve_with("dnn_synthetic", {"trainer.epochs": 0})
    with self.assertRaisesRegex(configs.ConfigError, r"unknown model 'nope'.*known models: .*'dnn'"):
      resolve_with("nope_synthetic", {})
    with self.assertRaisesRegex(configs.ConfigError,
                                r"model.params of 'dnn':.*unknown fields \['no_such_field'\]; allowed"):
      resolve_with("dnn_synthetic", {"model.params.no_such_field": 1})
    with self.assertRaisesRegex(configs.ConfigError, r"data.valid_fraction must be a number > 0"):
      resolve_with("dnn_synthetic", {"data.valid_fraction": 0})
    with self.assertRaisesRegex(configs.ConfigError, r"data.synthetic_options: .*'worl_seed'"):
      resolve_with("dnn_synthetic", {"data.synthetic_options": {"worl_seed": 1}})
    with self.assertRaisesRegex(configs.ConfigError, r"input.eval_batch_size must be an int >= 1"):
      resolve_with("dnn_synthetic", {"input.eval_batch_size": 0})
    with self.assertRaisesRegex(configs.ConfigError, r"optimizer.dense .*Unknown optimizer name 'adamm'"):
      resolve_with("dnn_synthetic", {"optimizer.dense": "adamm"})
    with self.assertRaisesRegex(configs.ConfigError, r"optimizer.embedding .*l11"):
      resolve_with("dnn_synthetic", {"optimizer.embedding_params": {"l11": 0.1}})

  def test_model_precision_is_checked(self):
    cfg = resolve.resolve(configs.get("dcn_v2_synthetic", {"model.precision": "mixed_bfloat16"}))
    self.assertEqual(cfg.model.precision, "mixed_bfloat16")
    self.assertEqual(resolve.resolve(configs.get("dcn_v2_synthetic")).model.precision, "float32")
    with self.assertRaisesRegex(configs.ConfigError,
                                r"model.precision must be one of .*got 'float16'"):
      resolve.resolve(configs.get("dcn_v2_synthetic", {"model.precision": "float16"}))

  def test_resolved_config_holds_every_default(self):
    cfg = resolve.resolve(configs.get("dnn_synthetic", {"trainer.max_steps": 5}))
    self.assertIsInstance(cfg.trainer, TrainerConfig)
    self.assertEqual((cfg.trainer.max_steps, cfg.trainer.epochs), (5, 3))
    params = cfg.to_dict()
    self.assertEqual(set(params["trainer"]), {f.name for f in dataclasses.fields(TrainerConfig)})
    self.assertEqual(set(params["input"]), {f.name for f in dataclasses.fields(base.InputConfig)})
    defaults = resolve.model_fields("dnn")
    self.assertEqual({p for p, _ in _leaves(params["model"]["params"])},
                     {p for p, _ in _leaves(defaults)})
    self.assertNotIn("common_params", params["model"])
    # A params.json resolves to itself.
    self.assertEqual(resolve.from_params(params).to_dict(), params)

  def test_common_params_apply_where_the_model_has_the_field(self):
    dnn, lr = resolve.model_fields("dnn"), resolve.model_fields("lr")
    lr_paths = {p for p, _ in _leaves(lr)}
    path = next(p for p, v in _leaves(dnn) if p not in lr_paths and isinstance(v, float)
                and 0 < v < 0.5)  # the tower's dropout, which lr lacks
    key = "model.common_params." + ".".join(path)
    got = resolve.resolve(configs.get("dnn_synthetic", {key: 0.45})).model.params
    for part in path:
      got = got[part]
    self.assertEqual(got, 0.45)
    self.assertEqual(resolve.resolve(configs.get("lr_synthetic", {key: 0.45})).model.params,
                     resolve.resolve(configs.get("lr_synthetic")).model.params)
    # model.params wins over common_params, and is not filtered: lr refuses it.
    params_key = "model.params." + ".".join(path)
    got = resolve.resolve(configs.get("dnn_synthetic", {key: 0.45, params_key: 0.3})).model.params
    for part in path:
      got = got[part]
    self.assertEqual(got, 0.3)
    with self.assertRaises(configs.ConfigError):
      resolve.resolve(configs.get("lr_synthetic", {params_key: 0.3}))

  def test_named_data_setups_are_the_published_ones(self):
    x4 = configs.get("dcn_v2_criteo_x4")
    self.assertEqual((x4.data.split, x4.data.split_seed, x4.data.min_count), ("random", 2018, 10))
    self.assertEqual((x4.data.valid_fraction, x4.data.test_fraction), (0.1, 0.1))
    self.assertEqual(x4.data.dense_transform, "bucketize")
    self.assertEqual((x4.input.batch_size, x4.model.common_params), (10000, {}))  # width 16: the spec's
    paper = configs.get("dcn_v2_dcnv2_paper")
    self.assertEqual((paper.data.split, paper.data.num_days), ("by_day", 7))
    self.assertEqual(paper.data.dense_transform, "log1p")
    self.assertEqual(paper.model.common_params, {"embedding": {"dim": 39}})
    self.assertEqual((paper.input.batch_size, paper.trainer["clipnorm"]), (512, 10.0))
    self.assertEqual([configs.get(f"dnn_{d}").input.batch_size for d in
                      ("synthetic", "criteo", "criteo_x4", "dcnv2_paper")], [512, 256, 10000, 512])

  def test_dcnv2_paper_embedding_width_reaches_the_model_config(self):
    if "embedding" not in resolve.model_fields("dcn_v2"):
      self.skipTest("the model configs have no nested EmbeddingConfig yet")
    paper = resolve.resolve(configs.get("dcn_v2_dcnv2_paper"))
    self.assertEqual(paper.model.params["embedding"]["dim"], 39)
    # The others keep the model config's default width.
    self.assertEqual(resolve.resolve(configs.get("dcn_v2_criteo_x4")).model.params["embedding"]["dim"],
                     16)

  def test_variants_differ_from_their_base_only_where_named(self):
    # (lr_* differ in the optimizer too: FTRL, see registry.TUNED.)
    a, b = configs.get("dcn_v2_synthetic").to_dict(), configs.get("dnn_synthetic").to_dict()
    self.assertEqual({k for k in a if a[k] != b[k]}, {"name", "model"})
    fresh = configs.get("lr_synthetic")
    fresh.model.params["x"] = 1
    fresh.trainer["epochs"] = 9
    self.assertEqual(configs.get("lr_synthetic").model.params, {})  # no shared state
    self.assertEqual(configs.get("lr_synthetic").trainer["epochs"], 3)

  def test_criteo_sample_stops_on_auc_minus_logloss_and_others_on_auc(self):
    # The Criteo sample's ~460-row valid fold: AUC - logloss chosen by 5-fold CV (tuning.md).
    self.assertEqual(configs.get("dcn_v2_criteo").trainer["monitor"], "auc-logloss")
    self.assertEqual(configs.get("lr_criteo").trainer["monitor"], "auc-logloss")
    for name in ("dcn_v2_synthetic", "dcn_v2_avazu", "dcn_v2_frappe", "dcn_v2_criteo_x4"):
      self.assertEqual(configs.get(name).trainer["monitor"], "auc", name)
    # An explicit override still wins over the data set's choice.
    self.assertEqual(configs.get("dnn_criteo", {"trainer.monitor": "auc"}).trainer["monitor"],
                     "auc")

  def test_round_trip_through_dict(self):
    cfg = configs.get("deepfm_criteo", {"model.params.tower.dropout": 0.1})
    self.assertEqual(base.ExperimentConfig.from_dict(cfg.to_dict()).to_dict(), cfg.to_dict())

  def test_split_overrides_keeps_brackets_and_quotes(self):
    self.assertEqual(base.split_overrides('a=[1,2],b="x,y",c=3'), ["a=[1,2]", 'b="x,y"', "c=3"])

  def test_parsing_a_config_does_not_import_tensorflow(self):
    code = textwrap.dedent("""
        import sys
        import experiments.configs
        c = experiments.configs.get("dcn_v2_synthetic", experiments.configs.parse_overrides(
            "trainer.epochs=2,model.params.tower.dropout=0.1,input.batch_size=64"))
        assert c.trainer["epochs"] == 2 and c.input.batch_size == 64, c
        assert experiments.configs.parse_name("dnn_criteo_x4") == ("dnn", "criteo_x4")
        c.to_json()
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "ctr_zoo", "keras", "tf_keras"))
        print("LEAKED", leaked)
        """)
    env = dict(os.environ, PYTHONPATH=testing.PROJECT_ROOT)
    out = subprocess.run([sys.executable, "-c", code], cwd=testing.PROJECT_ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    self.assertEqual(out.returncode, 0, out.stderr[-2000:])
    self.assertIn("LEAKED []", out.stdout)


if __name__ == "__main__":
  import tensorflow as tf
  tf.test.main()
