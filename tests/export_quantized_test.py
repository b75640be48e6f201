"""Quantized serving exports: float16 / int8 storage, computed in float32, same signatures.

A quantized SavedModel is loaded with plain TensorFlow in a fresh process that
never imports ctr_zoo. Its predictions on raw TSV lines must equal, to float32
rounding, the Keras model whose weights hold the dequantized values
(`quantize.quantized_values`), and be within the documented tolerance
(`export.QUANTIZED_TOLERANCE`) of the float32 export on the same rows. Pruning
combines with int8 without changing a prediction; a mixed export quantizes
only the tables it names; a lookup gathers the stored rows it reads and never
reads a whole quantized table.
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
from ctr_zoo.optimizers import sparsity
from ctr_zoo.training import export
from ctr_zoo.training import quantize

LOADER = r"""
import json, sys
import numpy as np
import tensorflow as tf
lines_file, out_file, fields, dense = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
lines = [l.rstrip("\n") for l in open(lines_file)]
cols = list(zip(*[l.split("\t")[1:] for l in lines]))
raw = {name: tf.constant(list(col)) for name, col in zip(fields, cols)}
typed = {name: (tf.constant([float(v) if v else float("nan") for v in col], tf.float64)
                if name in dense else tf.constant(list(col))) for name, col in zip(fields, cols)}
res = {}
for path in sys.argv[5:]:
  loaded = tf.saved_model.load(path)
  res[path] = {
      "signatures": sorted(loaded.signatures),
      "tsv": loaded.signatures["serve_tsv_labeled"](lines=tf.constant(lines))["probability"].numpy().tolist(),
      "fields": loaded.signatures["serving_default"](**raw)["probability"].numpy().tolist(),
      "typed": loaded.signatures["serve_typed"](**typed)["probability"].numpy().tolist(),
  }
res["imported_ctr_zoo"] = any(m == "ctr_zoo" or m.startswith("ctr_zoo.") for m in sys.modules)
json.dump(res, open(out_file, "w"))
"""


def criteo_like_spec():
  return spec_lib.FeatureSpec(features=(
      spec_lib.DenseFeature("I1", transform="log1p"),
      spec_lib.DenseFeature("I2", transform="standardize"),
      spec_lib.DenseFeature("I4", transform="bucketize", embedding_dim=4),
      spec_lib.CategoricalFeature("C1", min_count=2, embedding_dim=4),
      spec_lib.CategoricalFeature("C2", hash_buckets=13, embedding_dim=4),
      spec_lib.CategoricalFeature("C3", embedding_dim=4),
  ), name="criteo_like")


def write_tsv(path, spec, n, rng, unseen):
  """Labelled raw rows, ~15% missing values; `unseen` draws values never fitted."""
  with open(path, "w") as fh:
    for _ in range(n):
      fields = [str(int(rng.integers(0, 2)))]
      for f in spec.features:
        if rng.random() < 0.15:
          fields.append("")
        elif isinstance(f, spec_lib.DenseFeature):
          fields.append(str(int(rng.integers(-3, 2000))))
        else:
          fields.append(f"{f.name.lower()}{rng.integers(0, 40 if unseen else 8):x}")
      fh.write("\t".join(fields) + "\n")


def randomize(model, rng, zero_fraction=0.0):
  """Trained-looking weights: tables of varied row norms (some rows zero), random kernels."""
  tables = {v.ref() for v in sparsity.embedding_tables(model)}
  for v in model.trainable_variables:
    values = rng.normal(0, 0.3, size=v.shape).astype(np.float32)
    if v.ref() in tables:
      values *= np.exp(rng.uniform(-3, 1, size=(v.shape[0], 1))).astype(np.float32)
      values[rng.random(v.shape[0]) < zero_fraction] = 0.0
    v.assign(values)


def simulated_predictions(model, features, table_mode, kernels=True, only_tables=None):
  """The Keras model's predictions with its weights replaced by their stored values."""
  tables = [v for v in sparsity.embedding_tables(model)
            if only_tables is None or v.name in only_tables]
  dense = [v for vs in quantize.dense_kernel_groups(model).values() for v in vs] if kernels else []
  saved = [(v, v.numpy()) for v in tables + dense]
  try:
    for v in tables:
      v.assign(quantize.quantized_values(v.numpy(), table_mode))
    for v in dense:
      v.assign(quantize.quantized_values(v.numpy(), "float16"))
    return model.predict(features, batch_size=4096, verbose=0)[:, 0]
  finally:
    for v, values in saved:
      v.assign(values)


class ExportQuantizedTest(testing.TestCase):

  def _data(self, n_train=300, n_test=120):
    directory = self.make_temp_dir()
    train_path = os.path.join(directory, "train.tsv")
    test_path = os.path.join(directory, "test.tsv")
    write_tsv(train_path, criteo_like_spec(), n_train, self.rng, unseen=False)
    write_tsv(test_path, criteo_like_spec(), n_test, self.rng, unseen=True)
    spec = preprocessing.fit(train_path, criteo_like_spec())
    features, _ = input_pipeline.encode_frame(test_path, spec)
    return directory, test_path, spec, features

  def _load_fresh(self, directory, test_path, spec, paths):
    loader = os.path.join(directory, "loader.py")
    with open(loader, "w") as fh:
      fh.write(LOADER)
    out = os.path.join(directory, "out.json")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    dense = [f.name for f in spec.features if isinstance(f, spec_lib.DenseFeature)]
    proc = subprocess.run(
        [sys.executable, loader, test_path, out, json.dumps(spec.feature_names), json.dumps(dense)]
        + list(paths), cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    with open(out) as fh:
      got = json.load(fh)
    self.assertFalse(got.pop("imported_ctr_zoo"))
    return got

  @pytest.mark.slow
  def test_quantized_exports_in_a_fresh_process(self):
    directory, test_path, spec, features = self._data()
    # dcn_v2: per-field tables of width 4; deepfm: also width-1 linear tables and a fused table.
    for name, overrides in (("dcn_v2", dict(dnn_dims=(8,), num_cross_layers=1)),
                            ("deepfm", dict(dnn_dims=(8,), embedding={"fused": True}))):
      tf.keras.backend.clear_session()
      model = models.build(name, spec, **overrides)
      randomize(model, self.rng)
      paths, infos = {}, {}
      for mode in (None, "float16", "int8"):
        paths[mode] = os.path.join(directory, f"{name}_{mode}")
        infos[mode] = export.export_saved_model(model, spec, paths[mode], quantize=mode)
      got = self._load_fresh(directory, test_path, spec, paths.values())
      float32 = np.array(got[paths[None]]["tsv"])
      self.assertAllClose(float32, model.predict(features, verbose=0)[:, 0], rtol=0, atol=1e-6)
      for mode in ("float16", "int8"):
        result = got[paths[mode]]
        self.assertEqual(result["signatures"], got[paths[None]]["signatures"])
        expected = simulated_predictions(model, features, mode)
        for signature in ("tsv", "fields", "typed"):
          self.assertAllClose(np.array(result[signature]), expected, rtol=0, atol=1e-5,
                              msg=f"{name} {mode} {signature}")
        gap = np.max(np.abs(np.array(result["tsv"]) - float32))
        self.assertLess(gap, export.QUANTIZED_TOLERANCE[mode], f"{name} {mode}")
        self.assertGreater(gap, 0.0, f"{name} {mode}: the weights really are quantized")
      # Sizes: int8 tables are V d + V + 4 bytes (V + 1 + 4 at width 1), float16 tables 2 V d.
      for mode, per_table in (("int8", lambda r, d: r * d + (r if d > 1 else 1) + 4),
                              ("float16", lambda r, d: 2 * r * d)):
        report = infos[mode]["tables"]
        for table, entry in report.items():
          self.assertEqual(entry["storage"], mode, table)
          self.assertEqual(entry["exported_bytes"], per_table(entry["rows"], entry["dim"]), table)
        self.assertEqual(infos[mode]["table_bytes"]["exported"],
                         sum(e["exported_bytes"] for e in report.values()))
        self.assertEqual(infos[mode]["dense_kernel_bytes"]["exported"] * 2,
                         infos[mode]["dense_kernel_bytes"]["float32"])
      wide = [e for e in infos["int8"]["tables"].values() if e["dim"] == 16]
      self.assertTrue(wide)
      self.assertLess(sum(e["exported_bytes"] for e in wide),
                      0.28 * sum(e["dense_bytes"] for e in wide))  # (16 + 1) / 64 plus the bases
      self.assertLess(infos["int8"]["variables_bytes"], infos[None]["variables_bytes"])

  def test_int8_with_pruning_and_mixed_tables(self):
    directory, test_path, spec, features = self._data()
    model = models.build("deepfm", spec, dnn_dims=(8,), dropout=0.0)
    randomize(model, self.rng, zero_fraction=0.8)
    int8 = export.export_saved_model(model, spec, os.path.join(directory, "int8"), quantize="int8")
    both = export.export_saved_model(model, spec, os.path.join(directory, "int8_pruned"),
                                     quantize="int8", prune_zero_rows=True)
    names = [v.name for v in sparsity.embedding_tables(model)]
    chosen = [n for n in names if "C1" in n or "I4" in n]
    mixed = export.export_saved_model(model, spec, os.path.join(directory, "mixed"),
                                      quantize="int8", quantize_tables=chosen)
    pruned = [e for e in both["pruning"].values() if e["pruned"]]
    self.assertTrue(pruned)
    for e in pruned:
      self.assertEqual(e["storage"], "int8")
      kept = e["rows"] - e["zero_rows"]
      codes = kept + 1 if e["dim"] > 1 else 1
      self.assertEqual(e["exported_bytes"], (kept + 1) * (e["dim"] + 8) + codes + 4)
    self.assertLess(both["table_bytes"]["exported"], int8["table_bytes"]["exported"])
    for name, entry in mixed["tables"].items():
      self.assertEqual(entry["storage"], "int8" if name in chosen else "float32", name)
    lines = [line.rstrip("\n") for line in open(test_path)]
    got = {info["path"]: tf.saved_model.load(info["path"]).signatures["serve_tsv_labeled"](
        lines=tf.constant(lines))["probability"].numpy() for info in (int8, both, mixed)}
    # Per-field layers (width 16, and the width-1 wide part) served from one storage each.
    self.assertAllClose(got[int8["path"]], simulated_predictions(model, features, "int8"),
                        rtol=0, atol=1e-5)
    # Zero rows quantize to zero and the other rows' codes do not depend on them.
    self.assertAllClose(got[both["path"]], got[int8["path"]], rtol=0, atol=1e-6)
    expected = simulated_predictions(model, features, "int8", only_tables=set(chosen))
    self.assertAllClose(got[mixed["path"]], expected, rtol=0, atol=1e-5)

  def test_lookups_gather_only_the_rows_they_read(self):
    table = tf.Variable(self.rng.normal(size=(1000, 8)).astype(np.float32))
    cases = [("int8", False), ("int8", True), ("float16", False)]
    for storage, prune in cases:
      served = export.ServingTable(table, storage, prune=prune)
      fn = tf.function(served.lookup).get_concrete_function(tf.TensorSpec([None], tf.int64))
      self._assert_gathered_only(fn, [served.rows] + ([served.codes] if storage == "int8" else []))
    from ctr_zoo.layers import embedding as embedding_lib  # pylint: disable=g-import-not-at-top
    emb = embedding_lib.FeatureEmbedding([("a", 300, 8), ("b", 500, 8)])
    ids = {"a": tf.constant([1, 2]), "b": tf.constant([3, 4])}
    expected = emb(ids)
    served = export.LayerTables(emb, "int8")
    fn = tf.function(served.lookup).get_concrete_function(
        {"a": tf.TensorSpec([None], tf.int32), "b": tf.TensorSpec([None], tf.int32)})
    self._assert_gathered_only(fn, [served.rows, served.codes])
    got = served.lookup(ids)
    for f in ("a", "b"):
      step = np.abs(expected[f].numpy()).max() / 127
      self.assertAllClose(got[f], expected[f], rtol=0, atol=step)
    # Sequences (B, T) and width-1 tables: the stored values, exactly.
    for dim in (8, 1):
      emb = embedding_lib.FeatureEmbedding([("a", 300, dim), ("b", 500, dim)],
                                           feature_to_table={"hist": "b"})
      ids = {"a": tf.constant([1, 2]), "b": tf.constant([3, 4]),
             "hist": tf.constant([[5, 0, 7], [499, 3, 3]])}
      emb(ids)
      tables = {n: quantize.quantized_values(v.numpy(), "int8")
                for n, v in zip(("a", "b"), emb.table_variables)}
      got = export.LayerTables(emb, "int8").lookup(ids)
      for f, t in (("a", "a"), ("b", "b"), ("hist", "b")):
        self.assertAllClose(got[f], tables[t][ids[f].numpy()], rtol=1e-6, atol=0, msg=f"{dim} {f}")

  def _assert_gathered_only(self, fn, variables):
    handles = {}
    for v in variables:
      for captured, placeholder in fn.graph.captures:
        if captured is v.handle:
          handles[placeholder.name] = v.name
    self.assertLen(handles, len(variables))
    readers = [(op.type, handles[t.name]) for op in fn.graph.get_operations()
               for t in op.inputs if t.name in handles]
    self.assertTrue(readers)
    self.assertEqual({kind for kind, _ in readers}, {"ResourceGather"}, readers)

  def test_argument_errors(self):
    _, _, spec, _ = self._data(n_train=50, n_test=5)
    model = models.build("lr", spec)
    with self.assertRaisesRegex(ValueError, r"quantize must be one of \(None, 'float16', 'int8'\), "
                                            r"got 'int4'"):
      export.export_saved_model(model, spec, self.make_temp_dir(), quantize="int4")
    self.assertIsInstance(spec, spec_lib.FeatureSpec)


if __name__ == "__main__":
  tf.test.main()
