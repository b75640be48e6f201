"""Fault injection, data: replaced, tampered, concurrent, growing and malformed input.

Each test's docstring is its one-line case description (the reliability table
of the README is rendered from them).
"""

import logging as std_logging
import os
import subprocess
import sys
import textwrap
import time
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests import testing

import tensorflow as tf

from ctr_zoo import datasets
from ctr_zoo import models
from ctr_zoo.datasets import preprocessing
from ctr_zoo.datasets import readers
from ctr_zoo.feature_columns import criteo as criteo_lib
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.training import export
from experiments import configs
from experiments import data as data_lib
from experiments import resolve
from experiments import run_dir
from experiments import runner

TINY = ("input.batch_size=64,input.eval_batch_size=512,trainer.max_steps=3,"
        "trainer.checkpoint_every_steps=3,trainer.epochs=1")
SPEC = spec_lib.FeatureSpec(features=(spec_lib.DenseFeature("I1"),
                                      spec_lib.CategoricalFeature("C1")))


def _file_cfg(path, **overrides):
  """The resolved data section of `dnn_criteo` reading `path` (no default file needed)."""
  return resolve.resolve(configs.get("dnn_criteo", {
      "data.path": path, "data.source": "file", **overrides})).data


class FaultsDataTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    self.cache = self.make_temp_dir()
    patcher = mock.patch.dict(os.environ, {"CTR_ZOO_CACHE": self.cache})
    patcher.start()
    self.addCleanup(patcher.stop)

  def tearDown(self):
    tf.keras.backend.experimental.disable_tf_random_generator()
    super().tearDown()

  def write(self, name, text):
    path = os.path.join(self.make_temp_dir(), name)
    with open(path, "w") as fh:
      fh.write(text)
    return path

  # --- 2. a replaced data file ----------------------------------------------------
  def test_replaced_data_file_is_refused_not_resumed(self):
    """A run directory's data replaced at the same path (hashed features): the rerun is refused, nothing rewritten; --overwrite starts over."""
    path = os.path.join(self.make_temp_dir(), "train.tsv")
    datasets.generate_criteo_tsv(path, 600, seed=1)
    model_dir = os.path.join(self.make_temp_dir(), "run")

    def train(overwrite=False):
      cfg = runner.resolve_config("dnn_criteo", TINY + ",data.hash_buckets=50", data=path)
      return runner.run(cfg, model_dir, overwrite=overwrite, export=False)

    first = train()
    before = {name: open(os.path.join(model_dir, name), "rb").read()
              for name in ("params.json", "spec.json", "metrics.json")}
    datasets.generate_criteo_tsv(path, 600, seed=2)  # other rows, same path
    with self.assertRaisesRegex(run_dir.ExperimentMismatchError, r"data.fingerprint: "):
      train()
    after = {name: open(os.path.join(model_dir, name), "rb").read() for name in before}
    self.assertEqual(after, before)  # nothing in the run directory was rewritten
    recorded = run_dir.load_params(model_dir)["data"]["fingerprint"]
    second = train(overwrite=True)
    self.assertNotEqual(run_dir.load_params(model_dir)["data"]["fingerprint"], recorded)
    self.assertNotEqual(first["data_fingerprint"], second["data_fingerprint"])
    self.assertEqual(second["train"]["steps"], 3)  # trained again, not resumed at step 3

  # --- 3. a tampered cache ---------------------------------------------------------
  def test_cache_is_keyed_on_content_not_size_and_mtime(self):
    """A source file changed with its size and mtime kept (every label flipped, touch -r): the cache is not reused."""
    path = os.path.join(self.make_temp_dir(), "train.tsv")
    datasets.generate_criteo_tsv(path, 800, seed=3)
    cfg = _file_cfg(path)
    first = data_lib.prepare(cfg)
    st = os.stat(path)
    with open(path) as fh:
      lines = fh.read().splitlines()
    flipped = [("1" if l[0] == "0" else "0") + l[1:] for l in lines]
    with open(path, "w") as fh:
      fh.write("\n".join(flipped) + "\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    self.assertEqual((os.stat(path).st_size, os.stat(path).st_mtime_ns),
                     (st.st_size, st.st_mtime_ns))
    second = data_lib.prepare(_file_cfg(path))
    self.assertNotEqual(second.directory, first.directory)
    truth = np.mean([l[0] == "1" for l in flipped])
    labels = np.concatenate([datasets.read_encoded(second.split_dir(s), second.spec)[1]
                             for s in ("train", "valid", "test")])
    self.assertEqual(int(np.sum(labels)), sum(l[0] == "1" for l in flipped))
    self.assertGreater(truth, 0.5)  # the flipped data: mostly clicks

  # --- 4. concurrent preparations -------------------------------------------------
  def test_five_concurrent_preparations_of_one_new_file(self):
    """Five processes prepare the same new file at once: all succeed with one complete entry and no leftovers."""
    path = os.path.join(self.make_temp_dir(), "train.tsv")
    datasets.generate_criteo_tsv(path, 4000, seed=4)
    barrier = self.make_temp_dir()
    # Each process imports TensorFlow first (seconds, uneven); the barrier makes
    # the five preparations start together (process i 0.3 i s later), and a slow
    # reader (a fault: 20 batches, 0.1 s each) makes them overlap on any machine.
    script = textwrap.dedent(f"""
        import json, os, sys, time
        from ctr_zoo.datasets import readers
        from experiments import configs, data, resolve
        real_read = readers.read_batches
        def slow_read(*args, **kwargs):
          kwargs.update(batch_rows=200, block_size=1 << 14)
          for batch in real_read(*args, **kwargs):
            time.sleep(0.1)
            yield batch
        readers.read_batches = slow_read
        cfg = resolve.resolve(configs.get("dnn_criteo", {{
            "data.path": {path!r}, "data.source": "file"}})).data
        open(os.path.join({barrier!r}, str(os.getpid())), "w").close()
        deadline = time.time() + 120
        while len(os.listdir({barrier!r})) < 5 and time.time() < deadline:
          time.sleep(0.01)
        time.sleep(0.3 * int(sys.argv[1]))
        prepared = data.prepare(cfg)
        print(json.dumps([prepared.directory, prepared.rows]))
        """)
    env = dict(os.environ, CTR_ZOO_CACHE=self.cache, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=testing.PROJECT_ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)], cwd=testing.PROJECT_ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(5)]
    outs = []
    try:
      for p in procs:
        out, err = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 0, err[-2000:])
        outs.append(out.strip().splitlines()[-1])
    finally:
      for p in procs:
        if p.poll() is None:
          p.kill()
    self.assertLen(set(outs), 1)
    entries = os.listdir(os.path.join(self.cache, "prepared"))
    self.assertLen(entries, 1)
    self.assertEqual(sum(data_lib.prepare(_file_cfg(path)).rows.values()), 4000)
    entry = os.path.join(self.cache, "prepared", entries[0])
    self.assertIsNone(data_lib._entry_problem(entry))  # pylint: disable=protected-access
    self.assertEqual(os.listdir(os.path.join(self.cache, "building")), [])

  def test_marker_with_missing_shards_is_rebuilt(self):
    """A cache entry whose completion marker lists a deleted shard is detected and rebuilt."""
    path = os.path.join(self.make_temp_dir(), "train.tsv")
    datasets.generate_criteo_tsv(path, 500, seed=5)
    first = data_lib.prepare(_file_cfg(path))
    shard = os.path.join(first.split_dir("valid"), "part-00000.parquet")
    os.remove(shard)
    again = data_lib.prepare(_file_cfg(path))
    self.assertEqual(again.directory, first.directory)
    self.assertTrue(os.path.exists(shard))
    self.assertEqual(again.rows, first.rows)
    feats, labels = datasets.read_encoded(again.split_dir("valid"), again.spec)
    self.assertLen(labels, first.rows["valid"])

  # --- 6. a growing file -----------------------------------------------------------
  def test_file_appended_to_while_read_fails(self):
    """A file appended to while it is read: the read fails naming the file, instead of taking a partial last line as a row."""
    rows = [f"{i % 2}\t{i}\tv{i % 7}" for i in range(400)]
    path = self.write("growing.tsv", "\n".join(rows) + "\n")
    batches = readers.read_batches(path, SPEC, block_size=1 << 10, batch_rows=1)
    next(batches)
    with open(path, "a") as fh:
      fh.write("1\t5\tZZZZ")  # a writer mid-line
    with self.assertRaisesRegex(datasets.DataError, r"growing.tsv: the file changed while it was "
                                                    r"being read.*must not change"):
      for _ in batches:
        pass

  def test_final_line_without_newline_is_checked_like_every_line(self):
    """A last line without a newline is validated like any line: a short or malformed one is a bad row with its line number."""
    rows = [f"{i % 2}\t{i}\tv{i}" for i in range(20)]
    short = self.write("short.tsv", "\n".join(rows + ["1\t5"]))
    with self.assertRaisesRegex(datasets.DataError, r"short.tsv: line 21, field count"):
      datasets.fit(short, SPEC)
    bad = self.write("bad.tsv", "\n".join(rows + ["1\t0x1\tZZZZ"]))
    with self.assertRaisesRegex(datasets.DataError, r"bad.tsv: line 21, field 'I1': not an integer"):
      datasets.fit(bad, SPEC)
    _, summary = datasets.fit(bad, SPEC, on_bad_rows="skip", return_summary=True)
    self.assertEqual((summary.rows, summary.read["rows_skipped"]), (20, 1))

  # --- 7. one number grammar ---------------------------------------------------------
  def test_hex_plus_and_space_integers_are_rejected_in_training_and_serving(self):
    """Integer fields "0x10", "0xFFFFFFFFFFFFFFFF", "+5" and " 5": rejected alike by the training reader and the serving graph."""
    rows = [f"{i % 2}\t{i}\tv{i % 3}" for i in range(30)]
    fitted = datasets.fit(self.write("ok.tsv", "\n".join(rows) + "\n"), SPEC)
    module = export.RawFeatureModule(models.build("lr", fitted), fitted)
    for value in ("0x10", "0xFFFFFFFFFFFFFFFF", "+5", " 5"):
      path = self.write("v.tsv", "\n".join(rows + [f"1\t{value}\tv1"]) + "\n")
      with self.assertRaisesRegex(datasets.DataError, r"line 31, field 'I1': not an integer"):
        datasets.fit(path, SPEC)
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, r"field 'I1': not an integer"):
        module.features_from_raw({"I1": tf.constant([value]), "C1": tf.constant(["v1"])})
    got = module.features_from_raw({"I1": tf.constant(["-5", ""]), "C1": tf.constant(["v1", ""])})
    self.assertAllClose(got["I1"], np.float32([0.0, 0.0]))  # log1p(max(-5, 0)); missing -> 0

  def test_parquet_infinity_is_rejected_at_read_time(self):
    """A Parquet +inf (and -inf) in a numeric field: a DataError naming the file, batch, row and field at read time."""
    path = os.path.join(self.make_temp_dir(), "inf.parquet")
    pq.write_table(pa.table({"label": [0, 1, 0, 1], "I1": [1.0, 2.0, float("inf"), 4.0],
                             "C1": list("abcd")}), path)
    with self.assertRaisesRegex(datasets.DataError,
                                r"inf.parquet: record batch 1, row 0 \(file row 2\), field 'I1': "
                                r"not finite, got inf"):
      datasets.fit(path, SPEC, batch_rows=2)
    _, summary = datasets.fit(path, SPEC, on_bad_rows="skip", return_summary=True)
    self.assertEqual((summary.rows, summary.read["rows_skipped"]), (3, 1))

  # --- 8. an empty vocabulary (fit side) -------------------------------------------------
  def test_empty_vocabulary_is_valid_and_warned_at_fit_time(self):
    """min_count above every count, and an always-empty column: the vocabulary is empty (all OOV) and fit warns naming the field."""
    rows = [f"{i % 2}\t{i}\tv{i}\t" for i in range(12)]  # C1 all distinct, C2 always empty
    path = self.write("sparse.tsv", "\n".join(rows) + "\n")
    spec = spec_lib.FeatureSpec(features=(
        spec_lib.DenseFeature("I1"), spec_lib.CategoricalFeature("C1", min_count=5),
        spec_lib.CategoricalFeature("C2")))
    with self.assertLogs(level=std_logging.WARNING) as logs:
      fitted, summary = datasets.fit(path, spec, return_summary=True)
    text = "\n".join(logs.output)
    self.assertRegex(text, r"feature 'C1' has an empty vocabulary \(none of its 12 distinct "
                           r"values is seen min_count=5 times\)")
    self.assertRegex(text, r"feature 'C2' has an empty vocabulary \(the column is always empty")
    self.assertEqual(summary.empty_vocabularies, ["C1", "C2"])
    self.assertEqual((fitted["C1"].vocabulary, fitted["C2"].vocabulary), ((), ()))
    out = self.make_temp_dir()
    datasets.transform(path, fitted, out)
    feats, _ = datasets.read_encoded(os.path.join(out, "train"), fitted)
    np.testing.assert_array_equal(feats["C1"], np.full(12, spec_lib.OOV_ID))
    np.testing.assert_array_equal(feats["C2"], np.full(12, spec_lib.MISSING_ID))


if __name__ == "__main__":
  tf.test.main()
