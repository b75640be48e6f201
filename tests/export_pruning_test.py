"""Pruned serving export: all-zero embedding rows dropped, predictions unchanged.

Rows are zeroed by hand (what group-lasso FTRL does to whole rows); the
pruned SavedModel must predict exactly like the unpruned one and the Keras
model on raw TSV lines (missing and never-seen values included), and hold
smaller variables.
"""

import json
import os
import subprocess
import sys

import numpy as np

from tests import testing

import ctr_zoo  # noqa: F401
import tensorflow as tf

from ctr_zoo import models
from ctr_zoo.datasets import input_pipeline
from ctr_zoo.datasets import preprocessing
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.layers import embedding as embedding_lib
from ctr_zoo.training import export

DIM = 8


def hashed_spec():
  """Criteo-like, with two large hashed tables so that the tables dominate the size."""
  return spec_lib.FeatureSpec(features=(
      spec_lib.DenseFeature("I1", transform="log1p"),
      spec_lib.DenseFeature("I4", transform="bucketize", embedding_dim=DIM),
      spec_lib.CategoricalFeature("C1", min_count=2, embedding_dim=DIM),
      spec_lib.CategoricalFeature("C2", hash_buckets=3000, embedding_dim=DIM),
      spec_lib.CategoricalFeature("C3", hash_buckets=1000, embedding_dim=DIM),
  ), name="hashed")


# Loads a SavedModel with plain TensorFlow (no ctr_zoo) and serves raw TSV lines.
LOADER = r"""
import json, sys
import tensorflow as tf
path, lines_file, out_file, fields = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
lines = [l.rstrip("\n") for l in open(lines_file)]
loaded = tf.saved_model.load(path)
res = {"tsv": loaded.signatures["serve_tsv_labeled"](lines=tf.constant(lines))["probability"].numpy().tolist()}
no_label = [l.split("\t", 1)[1] for l in lines]
res["tsv_no_label"] = loaded.signatures["serve_tsv"](lines=tf.constant(no_label))["probability"].numpy().tolist()
cols = list(zip(*[l.split("\t")[1:] for l in lines]))
raw = {name: tf.constant(list(col)) for name, col in zip(fields, cols)}
res["fields"] = loaded.signatures["serving_default"](**raw)["probability"].numpy().tolist()
res["imported_ctr_zoo"] = any(m == "ctr_zoo" or m.startswith("ctr_zoo.") for m in sys.modules)
json.dump(res, open(out_file, "w"))
"""


def write_tsv(path, spec, n, rng, pool):
  """Labelled raw rows; ~15% missing values; categorical tokens drawn from `pool` values."""
  with open(path, "w") as fh:
    for _ in range(n):
      fields = [str(int(rng.integers(0, 2)))]
      for f in spec.features:
        if rng.random() < 0.15:
          fields.append("")
        elif isinstance(f, spec_lib.DenseFeature):
          fields.append(str(int(rng.integers(-3, 2000))))
        else:
          fields.append(f"{f.name.lower()}{rng.integers(0, pool):x}")
      fh.write("\t".join(fields) + "\n")


def numpy_lookup(table, ids):
  return table[ids]


class PrunedTableTest(testing.TestCase):

  def test_lookup_equals_the_full_table(self):
    table = self.rng.normal(size=(50, 3)).astype(np.float32)
    table[self.rng.random(50) < 0.7] = 0.0
    table[[0, 49]] = 0.0  # the first and the last row dropped too
    pruned = export.PrunedTable(tf.Variable(table))
    kept = int(np.any(table != 0, axis=1).sum())
    self.assertEqual(pruned.num_kept, kept)
    self.assertEqual(tuple(pruned.rows.shape), (kept + 1, 3))
    self.assertEqual(pruned.exported_bytes, (kept + 1) * (3 * 4 + 8))
    ids = self.rng.integers(0, 50, size=(7, 5))  # any id shape
    self.assertAllEqual(pruned.lookup(tf.constant(ids)), numpy_lookup(table, ids))
    self.assertAllEqual(tf.gather(pruned, tf.constant(np.arange(50))), table)  # via sparse_read

  def test_all_zero_and_no_zero_tables(self):
    zeros = export.PrunedTable(tf.Variable(np.zeros((6, 2), np.float32)))
    self.assertEqual(zeros.num_kept, 0)
    self.assertAllEqual(zeros.lookup(tf.constant([0, 3, 5])), np.zeros((3, 2)))
    dense = self.rng.normal(size=(6, 2)).astype(np.float32)
    full = export.PrunedTable(tf.Variable(dense))
    self.assertAllEqual(full.lookup(tf.constant([5, 0, 2])), dense[[5, 0, 2]])

  def test_swapped_lookups_per_field_and_fused(self):
    for fused in (False, True):
      layer = embedding_lib.FeatureEmbedding([("a", 20, 4), ("b", 30, 4)], fused=fused)
      ids = {"a": tf.constant(self.rng.integers(0, 20, size=16)),
             "b": tf.constant(self.rng.integers(0, 30, size=(16, 3)))}
      layer(ids)
      tables = layer.embedding_variables
      for v in tables:
        values = v.numpy()
        values[self.rng.random(v.shape[0]) < 0.6] = 0.0
        v.assign(values)
      expected = layer(ids)
      pruned = {v.ref(): export.PrunedTable(v) for v in tables}
      with export._pruned_lookups(layer, pruned):  # pylint: disable=protected-access
        swapped = [layer.fused_table] if fused else list(layer.table_variables)
        self.assertTrue(all(isinstance(t, export.PrunedTable) for t in swapped))
        got = layer(ids)
      for name in ("a", "b"):
        self.assertAllEqual(got[name], expected[name], msg=f"fused={fused} {name}")
      # Restored: the layer reads (and tracks) its variables again.
      restored = [layer.fused_table] if fused else list(layer.table_variables)
      self.assertEqual([t.ref() for t in restored], [v.ref() for v in tables])
      self.assertEqual({w.ref() for w in layer.trainable_weights}, {v.ref() for v in tables})


class ExportPruningTest(testing.TestCase):

  def test_pruned_export_predicts_like_unpruned_and_is_smaller(self):
    directory = self.make_temp_dir()
    train_path = os.path.join(directory, "train.tsv")
    test_path = os.path.join(directory, "test.tsv")
    write_tsv(train_path, hashed_spec(), 200, self.rng, pool=8)
    write_tsv(test_path, hashed_spec(), 120, self.rng, pool=40)  # never-seen values too
    spec = preprocessing.fit(train_path, hashed_spec())
    model = models.build("deepfm", spec, dnn_dims=(8,), dropout=0.0)
    features, _ = input_pipeline.encode_frame(test_path, spec)

    # Random rows everywhere, then zero most rows of every table (as group lasso
    # would), but keep C3's embedding dense and leave C3's linear weights all zero.
    tables = {v.name: v for v in model.embedding_variables}
    zeroed = {}
    for name, v in tables.items():
      is_linear, is_c3 = "linear" in name, "C3" in name
      if is_linear and is_c3:
        continue  # LinearLogit tables start at zero: an all-zero table (k = 0)
      values = self.rng.normal(0, 0.5, size=v.shape).astype(np.float32)
      if not is_c3:
        values[self.rng.random(v.shape[0]) < 0.85] = 0.0
      v.assign(values)
      zeroed[name] = int(np.sum(~np.any(values != 0, axis=1)))
    # The test rows really read dropped rows and kept rows.
    c2 = tables[[n for n in tables if "linear" not in n and "C2" in n][0]].numpy()
    used = c2[features["C2"]]
    self.assertTrue(np.any(np.all(used == 0, axis=1)) and np.any(np.any(used != 0, axis=1)))

    expected = model.predict(features, batch_size=1024, verbose=0)[:, 0]
    full = export.export_saved_model(model, spec, os.path.join(directory, "full"))
    pruned = export.export_saved_model(model, spec, os.path.join(directory, "pruned"),
                                       prune_zero_rows=True)
    # The Keras model itself is untouched by the export.
    self.assertAllEqual(model.predict(features, batch_size=1024, verbose=0)[:, 0], expected)

    # Report: which tables were pruned and why not, with exact sizes.
    report = pruned["pruning"]
    self.assertEqual(set(report), set(tables))
    for name, entry in report.items():
      rows, dim = tables[name].shape
      self.assertEqual((entry["rows"], entry["dim"]), (rows, dim))
      self.assertEqual(entry["dense_bytes"], rows * dim * 4)
      if "linear" in name and "C3" in name:
        self.assertEqual(entry["zero_rows"], rows)
        self.assertTrue(entry["pruned"], name)
        self.assertEqual(entry["exported_bytes"], 1 * (dim * 4 + 8))  # the zero row only
      elif "C3" in name:
        self.assertEqual(entry["zero_rows"], 0)
        self.assertFalse(entry["pruned"], name)
        self.assertEqual(entry["reason"], "no zero rows")
      else:
        self.assertEqual(entry["zero_rows"], zeroed[name], name)
        kept = rows - zeroed[name]
        if (kept + 1) * (dim * 4 + 8) < rows * dim * 4:
          self.assertTrue(entry["pruned"], name)
          self.assertEqual(entry["exported_bytes"], (kept + 1) * (dim * 4 + 8))
        else:
          self.assertFalse(entry["pruned"], name)  # small width-1 tables need more zeros
    self.assertLess(pruned["table_bytes"]["exported"], pruned["table_bytes"]["unpruned"] / 2)
    # The variables shrink by the tables' saving (saved_model.pb, the graph, does not
    # depend on the table sizes; on models this small it dominates the total).
    saving = pruned["table_bytes"]["unpruned"] - pruned["table_bytes"]["exported"]
    self.assertLess(pruned["variables_bytes"], full["variables_bytes"] / 2)
    self.assertLess(pruned["variables_bytes"], full["variables_bytes"] - 0.9 * saving)

    # No full-size copy of a pruned table is stored in the pruned SavedModel.
    stored = dict(tf.train.list_variables(os.path.join(directory, "pruned", "variables", "variables")))
    pruned_names = [n for n, e in report.items() if e["pruned"]]
    others = [k for k in stored if k.startswith("serving_variables/")]
    self.assertLen(others, len(model.variables) - len(pruned_names))
    rows = sorted(tuple(s) for k, s in stored.items()
                  if k.startswith("serving_tables/") and "/rows/" in k)
    kept = [report[n]["rows"] - report[n]["zero_rows"] for n in pruned_names]
    self.assertEqual(rows, sorted((k + 1, report[n]["dim"]) for k, n in zip(kept, pruned_names)))

    # The pruned SavedModel on raw TSV lines, in a process that never imports ctr_zoo.
    got = self._load_in_fresh_process(pruned["path"], test_path, spec, directory)
    self.assertFalse(got["imported_ctr_zoo"])
    for signature in ("tsv", "tsv_no_label", "fields"):
      self.assertAllClose(np.array(got[signature]), expected, rtol=0, atol=1e-6, msg=signature)
    # The unpruned SavedModel (loaded in a fresh process by the serving tests) agrees.
    lines = [line.rstrip("\n") for line in open(test_path)]
    unpruned = tf.saved_model.load(full["path"]).signatures["serve_tsv_labeled"](lines=tf.constant(lines))
    self.assertAllClose(unpruned["probability"], np.array(got["tsv"]), rtol=0, atol=1e-6)

  def test_models_without_zero_rows_export_unchanged(self):
    path = os.path.join(self.make_temp_dir(), "tiny.tsv")
    write_tsv(path, hashed_spec(), 50, self.rng, pool=8)
    spec = preprocessing.fit(path, hashed_spec())
    model = models.build("dnn", spec, dnn_dims=(4,))  # uniform init: no zero rows
    info = export.export_saved_model(model, spec, self.make_temp_dir(), prune_zero_rows=True)
    self.assertFalse(any(e["pruned"] for e in info["pruning"].values()))
    self.assertEqual(info["table_bytes"]["exported"], info["table_bytes"]["unpruned"])
    features, _ = input_pipeline.encode_frame(path, spec)
    loaded = tf.saved_model.load(info["path"])
    lines = [line.rstrip("\n") for line in open(path)]
    got = loaded.signatures["serve_tsv_labeled"](lines=tf.constant(lines))["probability"]
    self.assertAllClose(got, model.predict(features, verbose=0)[:, 0], rtol=0, atol=1e-6)

  def _load_in_fresh_process(self, export_dir, test_path, spec, directory):
    loader = os.path.join(directory, "loader.py")
    with open(loader, "w") as fh:
      fh.write(LOADER)
    out = os.path.join(directory, "out.json")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, loader, export_dir, test_path, out, json.dumps(spec.feature_names)],
        cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(out) as fh:
      return json.load(fh)


if __name__ == "__main__":
  tf.test.main()
