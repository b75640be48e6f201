"""Raw-feature serving export: the SavedModel on raw rows equals the Python pipeline.

The exported SavedModel is loaded with plain `tf.saved_model.load` in a fresh
process that never imports ctr_zoo; its predictions on raw TSV lines (missing
and never-seen values included) must equal `datasets` encoding + the Keras
model to 1e-6, and its in-graph ids must equal the Python encoding exactly.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import testing

import ctr_zoo  # noqa: F401
import tensorflow as tf

from ctr_zoo import models
from ctr_zoo.datasets import input_pipeline
from ctr_zoo.datasets import preprocessing
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.training import export

LOADER = r"""
import json, sys
import numpy as np
import tensorflow as tf
path, lines_file, out_file = sys.argv[1:4]
lines = [l.rstrip("\n") for l in open(lines_file)]
loaded = tf.saved_model.load(path)
layout, label, inputs = json.loads(sys.argv[4])
res = {}
res["tsv"] = loaded.signatures["serve_tsv_labeled"](lines=tf.constant(lines))["probability"].numpy().tolist()
at = layout.index(label)
no_label = ["\t".join(p[:at] + p[at + 1:]) for p in (l.split("\t") for l in lines)]
res["tsv_no_label"] = loaded.signatures["serve_tsv"](lines=tf.constant(no_label))["probability"].numpy().tolist()
cols = dict(zip(layout, zip(*[l.split("\t") for l in lines])))
raw = {name: tf.constant(list(cols[name])) for name in inputs}
res["fields"] = loaded.signatures["serving_default"](**raw)["probability"].numpy().tolist()
res["ids"] = {k: v.numpy().tolist() for k, v in loaded.signatures["preprocess"](**raw).items()}
res["imported_ctr_zoo"] = any(m == "ctr_zoo" or m.startswith("ctr_zoo.") for m in sys.modules)
json.dump(res, open(out_file, "w"))
"""


def criteo_like_spec():
  return spec_lib.FeatureSpec(features=(
      spec_lib.DenseFeature("I1", transform="log1p"),
      spec_lib.DenseFeature("I2", transform="standardize"),
      spec_lib.DenseFeature("I3", transform="none"),
      spec_lib.DenseFeature("I4", transform="bucketize", embedding_dim=4),
      spec_lib.CategoricalFeature("C1", min_count=2, embedding_dim=4),
      spec_lib.CategoricalFeature("C2", hash_buckets=13, embedding_dim=4),
      spec_lib.CategoricalFeature("C3", embedding_dim=4),
  ), name="criteo_like")


def sequence_spec():
  return spec_lib.FeatureSpec(features=(
      spec_lib.CategoricalFeature("item", embedding_dim=4),
      spec_lib.CategoricalFeature("category", embedding_dim=4),
      spec_lib.SequenceFeature("item_history", max_len=4, shares_vocabulary_with="item",
                               embedding_dim=4),
      spec_lib.SequenceFeature("category_history", max_len=3, shares_vocabulary_with="category",
                               embedding_dim=4),
      spec_lib.DenseFeature("age", transform="log1p"),
  ), name="sequences")


def encodings_spec():
  """Every integer encoding, float fields, derived fields and an ignored column."""
  return spec_lib.FeatureSpec(features=(
      spec_lib.DenseFeature("I1", transform="log1p_standardize"),
      spec_lib.DenseFeature("I1_bucket", source="I1", transform="bucketize", embedding_dim=4),
      spec_lib.DenseFeature("I2", transform="quantile", num_buckets=5, embedding_dim=4),
      spec_lib.DenseFeature("I2_continuous", source="I2", transform="log1p_standardize"),
      spec_lib.DenseFeature("price", transform="standardize", value_type="float"),
      spec_lib.DenseFeature("price_bucket", source="price", transform="quantile",
                            value_type="float", embedding_dim=4),
      spec_lib.CategoricalFeature("C1", embedding_dim=4),
      spec_lib.CategoricalFeature("hour_of_day", source="hour", derive="hour_of_day",
                                  embedding_dim=4),
      spec_lib.CategoricalFeature("weekday", source="hour", derive="weekday", embedding_dim=4),
  ), label="click", name="encodings",
      columns=("id", "I1", "click", "I2", "price", "hour", "C1"))


def raw_value(feature, rng, unseen: bool) -> str:
  """A raw string for `feature`; ~15% missing; `unseen` draws tokens never fitted."""
  if rng.random() < 0.15:
    return ""
  if isinstance(feature, spec_lib.DenseFeature) and feature.value_type == "float":
    return f"{rng.normal() * 10.0 ** rng.integers(-2, 4):.{int(rng.integers(0, 6))}f}"
  if isinstance(feature, spec_lib.DenseFeature):
    return str(int(rng.integers(-3, 2000)) if rng.random() < 0.5 else int(rng.integers(-2, 8)))
  if isinstance(feature, spec_lib.CategoricalFeature) and feature.derive:
    return (f"{rng.integers(0, 100):02d}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
            f"{rng.integers(0, 24):02d}")
  pool = 40 if unseen else 8
  if isinstance(feature, spec_lib.SequenceFeature):
    n = int(rng.integers(0, feature.max_len + 3))
    tokens = [f"{feature.shares_vocabulary_with}{rng.integers(0, pool)}" for _ in range(n)]
    if n and rng.random() < 0.2:
      tokens.insert(1, "")  # "a||b": the empty token is dropped
    return "|".join(tokens)
  prefix = "x" if unseen and rng.random() < 0.3 else ""
  return f"{prefix}{feature.name.lower()}{rng.integers(0, pool):x}"


def write_tsv(path, spec, n, rng, unseen):
  """Rows in the spec's raw_columns layout (a column no feature reads gets junk)."""
  reader = {}
  for f in spec.features:
    reader.setdefault(f.raw_column, f)
  with open(path, "w") as fh:
    for _ in range(n):
      fields = [str(int(rng.integers(0, 2))) if c == spec.label else
                raw_value(reader[c], rng, unseen) if c in reader else f"junk{rng.integers(99)}"
                for c in spec.raw_columns]
      fh.write("\t".join(fields) + "\n")


class ExportServingTest(testing.TestCase):

  def _check_export(self, raw_spec, name, **overrides):
    directory = self.make_temp_dir()
    train_path = os.path.join(directory, "train.tsv")
    test_path = os.path.join(directory, "test.tsv")
    write_tsv(train_path, raw_spec, 300, self.rng, unseen=False)
    write_tsv(test_path, raw_spec, 80, self.rng, unseen=True)
    spec = preprocessing.fit(train_path, raw_spec)
    self.assertTrue(spec.is_fitted)

    model = models.build(name, spec, **overrides)
    features, _ = input_pipeline.encode_frame(test_path, spec)
    expected = model.predict(features, batch_size=1024, verbose=0)[:, 0]

    export_dir = os.path.join(directory, "serving")
    info = export.export_saved_model(model, spec, export_dir)
    self.assertEqual(info["signatures"], ["preprocess", "serve_tsv", "serve_tsv_labeled", "serve_typed",
                                          "serving_default"])
    self.assertEqual(spec_lib.FeatureSpec.load(os.path.join(export_dir, "assets", "spec.json")), spec)

    loader = os.path.join(directory, "loader.py")
    with open(loader, "w") as fh:
      fh.write(LOADER)
    out = os.path.join(directory, "out.json")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, loader, export_dir, test_path, out,
         json.dumps([spec.raw_columns, spec.label, spec.input_columns])],
        cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(out) as fh:
      got = json.load(fh)
    self.assertFalse(got["imported_ctr_zoo"])
    for key in ("tsv", "tsv_no_label", "fields"):
      self.assertAllClose(np.array(got[key]), expected, rtol=0, atol=1e-6, msg=key)
    for f in spec.features:
      self.assertAllEqual(np.array(got["ids"][f.name]), features[f.name], msg=f.name)
    return spec, features

  @pytest.mark.slow
  def test_criteo_like_raw_rows_match_python_pipeline(self):
    spec, features = self._check_export(criteo_like_spec(), "dcn_v2", dnn_dims=(8,),
                                        num_cross_layers=1)
    # The test rows really exercise missing, OOV and hashed values.
    self.assertIn(spec_lib.MISSING_ID, features["C1"])
    self.assertIn(spec_lib.OOV_ID, features["C1"])
    self.assertIn(spec_lib.OOV_ID, features["C3"])
    self.assertIn(spec_lib.MISSING_ID, features["I4"])
    self.assertTrue(np.any(features["C2"] >= spec_lib.NUM_RESERVED_IDS))

  @pytest.mark.slow
  def test_every_integer_encoding_float_and_derived_fields_match_python_pipeline(self):
    spec, features = self._check_export(encodings_spec(), "dcn_v2", dnn_dims=(8,),
                                        num_cross_layers=1)
    self.assertGreater(len(spec["I2"].boundaries), 2)
    self.assertGreater(len(spec["price_bucket"].boundaries), 2)
    for name in ("I1_bucket", "I2", "price_bucket", "hour_of_day", "weekday"):
      self.assertIn(spec_lib.MISSING_ID, features[name], msg=name)
      self.assertTrue(np.any(features[name] >= spec_lib.NUM_RESERVED_IDS), msg=name)
    self.assertGreater(len(set(features["weekday"])), 5)

  @pytest.mark.slow
  def test_mixed_bfloat16_model_serves_the_same_numbers(self):
    self._check_export(criteo_like_spec(), "deepfm", precision="mixed_bfloat16", dnn_dims=(8,))

  @pytest.mark.slow
  def test_sequence_raw_rows_match_python_pipeline(self):
    _, features = self._check_export(sequence_spec(), "can", dnn_dims=(8,))
    self.assertIn(spec_lib.OOV_ID, features["item_history"])
    self.assertTrue(np.any(np.all(features["item_history"] == 0, axis=1)))

  def test_errors(self):
    spec = preprocessing.fit(self._tiny_tsv(), criteo_like_spec())
    model = models.build("lr", spec)
    other = spec.with_features(list(spec.features) + [spec_lib.CategoricalFeature("C9", hash_buckets=3)])
    with self.assertRaisesRegex(ValueError, r"no inputs for spec features \['C9'\]"):
      export.export_saved_model(model, other, self.make_temp_dir())
    module = export.RawFeatureModule(model, spec)
    bad = tf.constant(["1\t2\t3"])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "tab-separated fields"):
      module.split_tsv(bad)

  def test_number_grammar_is_the_readers_grammar(self):
    """The in-graph parse accepts and rejects exactly what training's readers do."""
    spec = preprocessing.fit(self._tiny_tsv(), criteo_like_spec())
    module = export.RawFeatureModule(models.build("lr", spec), spec)
    row = {f.name: tf.constant([""]) for f in spec.features}
    for good in ("5", "-5", "0", "007", "-0", ""):
      module.features_from_raw({**row, "I1": tf.constant([good])})
    for bad in ("0x10", "+5", " 5", "5 ", "1e3", "1.5", "five"):
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "field 'I1': not an integer"):
        module.features_from_raw({**row, "I1": tf.constant([bad])})
      with self.assertRaisesRegex(Exception, "not an integer"):
        preprocessing.fit(self._tiny_tsv(bad), criteo_like_spec())
    float_spec = spec_lib.FeatureSpec(features=(
        spec_lib.DenseFeature("x", transform="none", value_type="float"),
        spec_lib.CategoricalFeature("c", hash_buckets=3)))
    float_module = export.RawFeatureModule(models.build("lr", float_spec), float_spec)
    c = tf.constant([""] * 5)
    got = float_module.features_from_raw({"x": tf.constant(["1.5", "-2e-3", ".5", "5.", ""]),
                                          "c": c})
    self.assertAllClose(got["x"], np.float32([1.5, -2e-3, 0.5, 5.0, 0.0]), rtol=0, atol=0)
    for bad in ("inf", "nan", "+1.5", "1e400", " 1"):
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "field 'x': not a finite"):
        float_module.features_from_raw({"x": tf.constant([bad]), "c": c[:1]})

  def _tiny_tsv(self, first_i1=None):
    path = os.path.join(self.make_temp_dir(), "tiny.tsv")
    write_tsv(path, criteo_like_spec(), 50, self.rng, unseen=False)
    if first_i1 is not None:  # the first row's I1 replaced
      with open(path) as fh:
        lines = fh.read().split("\n")
      fields = lines[0].split("\t")
      fields[1] = first_i1
      lines[0] = "\t".join(fields)
      with open(path, "w") as fh:
        fh.write("\n".join(lines))
    return path


if __name__ == "__main__":
  tf.test.main()
