"""Model configs: nested sections declared once, earlier flat names, and every field used."""

import dataclasses
from unittest import mock

from absl.testing import parameterized
import numpy as np

from tests import testing
from tests.models_zoo_test import DIM, random_inputs, small_criteo_spec, small_overrides, spec_for

import ctr_zoo  # noqa: F401
import tensorflow as tf

from ctr_zoo import models
from ctr_zoo.models import base


class _Recorder:
  """Wraps a config dataclass; records every field read (sections as dotted names)."""

  def __init__(self, config, read: set, prefix: str = ""):
    object.__setattr__(self, "_config", config)
    object.__setattr__(self, "_read", read)
    object.__setattr__(self, "_prefix", prefix)

  def __getattr__(self, name):
    value = getattr(self._config, name)
    fields = {f.name for f in dataclasses.fields(self._config)}
    if name in fields:
      self._read.add(self._prefix + name)
      if dataclasses.is_dataclass(value):
        return _Recorder(value, self._read, f"{self._prefix}{name}.")
    return value


def all_fields(config, prefix=""):
  out = set()
  for f in dataclasses.fields(config):
    value = getattr(config, f.name)
    if dataclasses.is_dataclass(value):
      out |= all_fields(value, f"{prefix}{f.name}.")
    else:
      out.add(prefix + f.name)
  return out


def variants(name):
  """Small configs of `name` that together take every branch that reads a field."""
  fields = {f.name: f for f in dataclasses.fields(models.config_class(name))}
  base_overrides = small_overrides(name)
  out = [base_overrides]
  flipped = dict(base_overrides)
  for f in fields.values():
    default = models.config_class(name)()
    if isinstance(getattr(default, f.name), bool):
      flipped[f.name] = not getattr(default, f.name)
  if "structure" in fields:
    flipped["structure"] = "parallel"
  out.append(flipped)
  return out


class ModelConfigTest(testing.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*[(n, n) for n in models.names()])
  def test_every_config_field_is_read_when_the_model_is_built_or_trained(self, name):
    read = set()
    real_config_from = base.config_from

    def recording_config_from(config_class, config=None, **overrides):
      return _Recorder(real_config_from(config_class, config, **overrides), read)

    spec = spec_for(name)
    with mock.patch.object(base, "config_from", recording_config_from), \
        mock.patch.object(base.CTRModel, "_check_shared_weights", lambda self: None):
      for overrides in variants(name):
        tf.keras.backend.clear_session()
        model = models.get(name)(spec, base.config_from(models.config_class(name), None,
                                                        **overrides)._config)
        model.training_loss(random_inputs(spec, 4, self.rng), np.ones(4))  # fields used in training
    unread = sorted(all_fields(models.config_class(name)()) - read)
    self.assertEqual(unread, [], f"{name}: config fields never read when building the model")

  def test_sections_merge_into_the_models_defaults(self):
    config = base.config_from(models.config_class("dcn"), tower={"dropout": 0.1})
    self.assertEqual(config.tower, models.TowerConfig(dims=(1024, 1024), dropout=0.1,
                                                     batch_norm=True))
    config = base.config_from(models.config_class("dnn"), {"tower": {"dims": [64, 32]}},
                              tower={"dropout": 0.0}, embedding={"l2": 0.0})
    self.assertEqual(config.tower.dims, (64, 32))  # JSON lists become tuples
    self.assertEqual(config.tower.dropout, 0.0)
    self.assertEqual(config.embedding, models.EmbeddingConfig(dim=16, l2=0.0, fused=False))
    same = base.config_from(models.config_class("dnn"), config)
    self.assertEqual(same, config)

  def test_earlier_flat_names_map_into_their_sections(self):
    config = base.config_from(models.config_class("dnn"), {"dnn_dims": [8], "dropout": 0.3,
                                                           "embedding_l2": 0.5})
    self.assertEqual(config.tower.dims, (8,))
    self.assertEqual(config.tower.dropout, 0.3)
    self.assertEqual(config.embedding.l2, 0.5)
    dlrm = base.config_from(models.config_class("dlrm"), {"top_dims": [4], "dropout": 0.0})
    self.assertEqual(dlrm.tower.dims, (4,))
    with self.assertRaisesRegex(base.ModelConfigError,
                                "'dropout' is the earlier name of tower.dropout; give only"):
      base.config_from(models.config_class("dnn"), {"dropout": 0.3, "tower": {"dropout": 0.1}})
    with self.assertRaisesRegex(base.ModelConfigError, r"FMConfig: unknown fields \['dropout'\]"):
      base.config_from(models.config_class("fm"), dropout=0.1)  # fm has no tower

  def test_the_width_is_the_model_configs_and_applies_to_the_spec(self):
    spec = small_criteo_spec()  # widths DIM
    model = models.build("dnn", spec, embedding={"dim": 6}, tower={"dims": (4,)})
    self.assertEqual({d for _, _, d in model.spec.embedding_tables()}, {6})
    self.assertEqual(model.get_layer("embedding").tables[0][2], 6)
    keep = models.build("dnn", spec, embedding={"dim": None}, tower={"dims": (4,)})
    self.assertEqual({d for _, _, d in keep.spec.embedding_tables()}, {DIM})
    # A reloaded model has the width it was built with.
    probe = random_inputs(spec, 4, self.rng)
    self.assertSameAfterReload(model, probe, fmts=("keras",))

  def test_fused_reaches_the_tables_from_the_config(self):
    spec = small_criteo_spec()
    per_field = models.build("dnn", spec, **small_overrides("dnn"))
    fused = models.build("dnn", spec, **small_overrides("dnn", embedding={"fused": True}))
    self.assertLen(per_field.embedding_variables, len(spec.embedding_tables()))
    self.assertLen(fused.embedding_variables, 1)

  def test_a_file_saved_before_the_sections_keeps_its_widths(self):
    spec = small_criteo_spec()
    model = models.build("dnn", spec, **small_overrides("dnn"))
    config = model.get_config()
    flat = {"dnn_dims": [16], "dropout": 0.0, "batch_norm": False, "activation": "relu",
            "embedding_l2": 1e-5}
    old = type(model).from_config(dict(config, config=flat))
    self.assertIsNone(old.model_config.embedding.dim)
    self.assertEqual(old.spec, model.spec)
    self.assertEqual([w.shape for w in old.weights], [w.shape for w in model.weights])


if __name__ == "__main__":
  tf.test.main()
