"""Every field of the experiment config sections is read by the code below the config layer.

The sections' classes are instrumented: each read of a field is recorded
unless it comes from the config layer itself (parsing, resolving, checking),
from `dataclasses.asdict` / `copy` (writing params.json), or from the data
cache key. Then a tiny real run (synthetic data, random split) and a data
preparation of raw files (by-day split) go through the runner and the data
code. A field no code reads is a declared setting that changes nothing: it
fails this test, and should be deleted (or wired).
"""

import dataclasses
import os
import sys
from unittest import mock

from tests import testing

import tensorflow as tf

from ctr_zoo import datasets
from ctr_zoo.training import TrainerConfig
from experiments import configs
from experiments import data as data_lib
from experiments import resolve
from experiments import runner
from experiments.configs import base

SECTIONS = {"data": base.DataConfig, "input": base.InputConfig,
            "optimizer": base.OptimizerConfig, "trainer": TrainerConfig}

_CONFIG_LAYER = (os.path.dirname(base.__file__), resolve.__file__.replace(".pyc", ".py"))
_NOT_USES = ("__post_init__", "_fingerprint", "_shard_settings", "to_dict", "to_json",
             "check_config")


def _is_use(frame) -> bool:
  """Whether a field read in `frame` is a use (not config plumbing or the cache key)."""
  code = frame.f_code
  filename = code.co_filename
  if filename.startswith(_CONFIG_LAYER) or filename == "<string>":  # "<string>": dataclass dunders
    return False
  if os.path.basename(filename) in ("dataclasses.py", "copy.py"):
    return False
  return code.co_name not in _NOT_USES


class FieldReads:
  """Records which fields of SECTIONS are read while `recording`."""

  def __init__(self):
    self.recording = False
    self.reads = {name: set() for name in SECTIONS}

  def patch(self, test):
    for section, cls in SECTIONS.items():
      names = {f.name for f in dataclasses.fields(cls)}

      def getattribute(obj, name, _section=section, _names=names):
        if self.recording and name in _names and _is_use(sys._getframe(1)):  # pylint: disable=protected-access
          self.reads[_section].add(name)
        return object.__getattribute__(obj, name)

      patcher = mock.patch.object(cls, "__getattribute__", getattribute)
      patcher.start()
      test.addCleanup(patcher.stop)


class ConfigFieldsTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    patcher = mock.patch.dict(os.environ, {"CTR_ZOO_CACHE": self.make_temp_dir()})
    patcher.start()
    self.addCleanup(patcher.stop)

  def tearDown(self):
    tf.keras.backend.experimental.disable_tf_random_generator()
    super().tearDown()

  def test_every_config_field_is_read_below_the_config_layer(self):
    fields = FieldReads()
    fields.patch(self)

    # 1. A tiny real run: synthetic data, random split, clipping on, every section set.
    cfg = runner.resolve_config("dnn_synthetic", "data.synthetic_rows=2000,input.batch_size=256,"
                                "input.eval_batch_size=512,trainer.max_steps=4,"
                                "trainer.checkpoint_every_steps=2,trainer.log_every_steps=2,"
                                "trainer.clipnorm=5,data.hash_buckets=50")
    fields.recording = True
    runner.run(cfg, os.path.join(self.make_temp_dir(), "run"), export=False)
    fields.recording = False
    after_run = {k: set(v) for k, v in fields.reads.items()}
    # The instrument tells read from unread: a synthetic random split never
    # reads the raw path or the number of days.
    self.assertNotIn("path", after_run["data"])
    self.assertNotIn("num_days", after_run["data"])

    # 2. Raw files cut by day.
    directory = self.make_temp_dir()
    days = []
    for day in range(2):
      days.append(os.path.join(directory, f"day_{day}.tsv"))
      datasets.generate_criteo_tsv(days[-1], 300, seed=day)
    data_cfg = resolve.resolve(configs.get("dnn_synthetic", {
        "data.source": "file", "data.path": ",".join(days), "data.split": "by_day",
        "data.num_days": 2})).data
    fields.recording = True
    prepared = data_lib.prepare(data_cfg)
    fields.recording = False
    self.assertEqual(sum(prepared.rows.values()), 600)

    # 3. Fold 1 of a 3-fold split of a training file, with a separate valid file.
    data_cfg = resolve.resolve(configs.get("dnn_synthetic", {
        "data.source": "file", "data.train_path": days[0], "data.valid_path": days[1],
        "data.split": "kfold", "data.folds": 3, "data.fold": 1, "data.valid_fraction": 0})).data
    fields.recording = True
    prepared = data_lib.prepare(data_cfg)
    fields.recording = False
    self.assertEqual(prepared.rows["valid"], 300)
    self.assertEqual(prepared.rows["train"] + prepared.rows["test"], 300)

    unread = [f"{section}.{f.name}" for section, cls in SECTIONS.items()
              for f in dataclasses.fields(cls) if f.name not in fields.reads[section]]
    self.assertEqual(unread, [], "config fields declared but never read below the config layer")


if __name__ == "__main__":
  tf.test.main()
