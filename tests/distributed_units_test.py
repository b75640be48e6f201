"""Distributed training, in one process: worker parts, sharded lookups, optimizers under a
strategy, the replica loss, the learning-rate rule, TF_CONFIG, the partitioner, and the
local launcher with stand-in tasks (no TensorFlow in them)."""

import json
import os
import signal
import subprocess
import sys
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests import cluster_testing
from tests import testing
from tests import training_fixtures

import tensorflow as tf
from tensorflow.python.distribute import sharded_variable  # pylint: disable=g-direct-tensorflow-import

from ctr_zoo import datasets
from ctr_zoo import models
from ctr_zoo import optimizers
from ctr_zoo.datasets import input_pipeline
from ctr_zoo.feature_columns import spec as spec_lib
from ctr_zoo.layers import embedding as embedding_lib
from ctr_zoo.optimizers import sparse_rows
from ctr_zoo.training import TrainerConfig
from ctr_zoo.training import distributed
from ctr_zoo.training import worker_input
from experiments import configs
from experiments import data as data_lib
from experiments import local_cluster
from experiments import resolve


def _spec():
  return spec_lib.FeatureSpec(features=(
      spec_lib.DenseFeature("I1", transform="none"),
      spec_lib.CategoricalFeature("C1", hash_buckets=50, embedding_dim=4),
      spec_lib.SequenceFeature("S1", max_len=3, hash_buckets=50, embedding_dim=4),
      spec_lib.DenseFeature("I2", transform="none"),
  ))


def _write_shards(directory, row_groups=(7, 6)):
  """One Parquet file with the given row groups; row r has C1 = r, S1 = [r, r+100, r+200]."""
  n = sum(row_groups)
  r = np.arange(n)
  table = pa.table({
      "label": pa.array((r % 2).astype(np.float32)),
      "I1": pa.array(r.astype(np.float32) * 0.5),
      "C1": pa.array(r.astype(np.int64)),
      "S1": pa.FixedSizeListArray.from_arrays(
          pa.array(np.stack([r, r + 100, r + 200], 1).reshape(-1).astype(np.int64)), 3),
      "I2": pa.array(-r.astype(np.float32)),
  })
  os.makedirs(directory, exist_ok=True)
  with pq.ParquetWriter(os.path.join(directory, "part-00000.parquet"), table.schema) as writer:
    start = 0
    for size in row_groups:
      writer.write_table(table.slice(start, size), row_group_size=size)
      start += size
  return n


def _rows(dataset):
  """{C1 id: (I1, S1 tuple, I2, label)} of every example of a dataset."""
  out = {}
  for features, labels in dataset:
    for i in range(len(labels)):
      key = int(features["C1"][i])
      assert key not in out, f"row {key} twice"
      out[key] = (float(features["I1"][i]), tuple(features["S1"][i].numpy().tolist()),
                  float(features["I2"][i]), float(labels[i]))
  return out


class WorkerInputTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    self.shards = os.path.join(self.make_temp_dir(), "train")
    self.n = _write_shards(self.shards)
    self.out = self.make_temp_dir()
    self.spec = _spec()

  def test_parts_are_disjoint_cover_every_row_and_decode_exactly(self):
    parts = worker_input.write_parts(self.shards, self.spec, 3, self.out)
    self.assertEqual(sorted(parts), [0, 1, 2])
    # Row groups of 7 and 6 rows cut in 3: part 0 gets [0, 2) + [7, 9), part 1 [2, 4) + [9, 11), ...
    self.assertEqual([parts[i].rows for i in range(3)], [4, 4, 5])
    self.assertEqual(worker_input.part_rows(self.shards, 3), [4, 4, 5])
    seen = {}
    for i in range(3):
      rows = _rows(worker_input.part_dataset(parts[i], self.spec, 1, seed=i))
      self.assertEqual(len(rows), parts[i].rows)
      self.assertFalse(set(rows) & set(seen), "parts overlap")
      seen.update(rows)
    self.assertEqual(sorted(seen), list(range(self.n)))
    for r, (i1, s1, i2, label) in seen.items():
      self.assertEqual((i1, s1, i2, label), (r * 0.5, (r, r + 100, r + 200), -float(r), r % 2))
    self.assertEqual(sorted(_rows(worker_input.part_dataset(parts[0], self.spec, 1, 0))),
                     [0, 1, 7, 8])

  def test_parts_of_prepared_data_hold_its_rows_for_every_encoding(self):
    # experiments.data's shards: an integer field both as a float and as quantile
    # ids (two features of one raw column), hashed categoricals, a separate valid file.
    directory = self.make_temp_dir()
    paths = [os.path.join(directory, f"{name}.tsv") for name in ("train", "valid")]
    for seed, path in enumerate(paths):
      datasets.generate_criteo_tsv(path, 150, seed=seed)
    with mock.patch.dict(os.environ, {"CTR_ZOO_CACHE": self.make_temp_dir()}):
      cfg = resolve.resolve(configs.get("dnn_synthetic", {
          "data.source": "file", "data.path": paths[0], "data.valid_path": paths[1],
          "data.valid_fraction": 0, "data.integer_encoding": "continuous+quantile",
          "data.num_buckets": 4, "data.hash_buckets": 50})).data
      prepared = data_lib.prepare(cfg)
    spec = prepared.spec
    self.assertIn("I1_bucket", spec.feature_names)
    parts = worker_input.write_parts(prepared.split_dir("train"), spec, 2, self.out)

    def key(features, label, i):
      return tuple(tuple(np.asarray(features[f.name][i]).reshape(-1).tolist())
                   for f in spec.features) + (float(label[i]),)

    got = []
    for part in parts.values():
      for features, labels in worker_input.part_dataset(part, spec, 1, seed=0):
        for f in spec.features:
          self.assertEqual(features[f.name].dtype, spec.input_dtype(f), f.name)
        got.append(key(features, labels, 0))
    features, labels = input_pipeline.read_encoded(prepared.split_dir("train"), spec)
    expected = [key(features, labels, i) for i in range(len(labels))]
    self.assertLen(expected, prepared.rows["train"])
    self.assertEqual(sorted(got), sorted(expected))

  def test_batches_have_the_spec_signature_and_follow_the_seed(self):
    part = worker_input.write_parts(self.shards, self.spec, 1, self.out)[0]
    ds = worker_input.part_dataset(part, self.spec, 4, seed=3)
    features, labels = ds.element_spec
    for f in self.spec.features:
      self.assertEqual(features[f.name].dtype, self.spec.input_dtype(f))
      self.assertEqual(features[f.name].shape, (4,) + self.spec.input_shape(f))
    self.assertEqual(labels.shape, (4,))
    order = lambda seed: [int(x) for f, _ in worker_input.part_dataset(part, self.spec, 4, seed)
                          for x in f["C1"]]
    self.assertEqual(order(3), order(3))
    self.assertNotEqual(order(3), order(4))
    self.assertLen(order(3), 12)  # 13 rows, full batches of 4
    skipped = [int(x) for f, _ in worker_input.part_dataset(part, self.spec, 4, 3, skip_batches=1,
                                                            num_batches=1) for x in f["C1"]]
    self.assertEqual(skipped, order(3)[4:8])
    forever = worker_input.part_dataset(part, self.spec, 4, 3, repeat=True).take(7)
    self.assertEqual(sum(1 for _ in forever), 7)

  def test_written_parts_are_reused_and_only_the_asked_parts_are_written(self):
    first = worker_input.write_parts(self.shards, self.spec, 2, self.out, parts=[1])
    self.assertEqual(sorted(first), [1])
    self.assertIsNone(worker_input.load_part(self.out, 2, 0))
    mtime = os.path.getmtime(first[1].files[0])
    again = worker_input.write_parts(self.shards, self.spec, 2, self.out)
    self.assertEqual(again[1], first[1])
    self.assertEqual(os.path.getmtime(first[1].files[0]), mtime)
    with self.assertRaisesRegex(ValueError, "part 2 is not one of the 2 parts"):
      worker_input.write_parts(self.shards, self.spec, 2, self.out, parts=[2])


class ShardedLookupTest(testing.TestCase):

  def test_local_table_is_a_plain_gather(self):
    table = tf.Variable(np.arange(12, dtype=np.float32).reshape(6, 2))
    ids = tf.constant([[1, 1], [4, 0]], tf.int64)
    self.assertFalse(embedding_lib.is_remote(table))
    self.assertEqual(embedding_lib.table_parts(table), [table])
    with tf.GradientTape() as tape:
      rows = embedding_lib.gather_rows(table, ids)
    grad = tape.gradient(rows, table)
    self.assertAllEqual(rows, tf.gather(table, ids))
    self.assertIsInstance(grad, tf.IndexedSlices)
    self.assertAllEqual(grad.indices, [1, 1, 4, 0])  # one row per id, duplicates kept

  def test_sharded_table_reads_each_touched_row_once_per_shard(self):
    full = np.arange(14, dtype=np.float32).reshape(7, 2)
    shards = [tf.Variable(full[:4]), tf.Variable(full[4:])]
    table = sharded_variable.ShardedVariable(shards)
    self.assertTrue(embedding_lib.is_sharded(table) and embedding_lib.is_remote(table))
    self.assertEqual(embedding_lib.table_parts(table), shards)
    ids = tf.constant([[5, 1, 5], [6, 1, 1]], tf.int64)

    @tf.function
    def lookup_and_grad():
      with tf.GradientTape() as tape:
        rows = embedding_lib.gather_rows(table, ids)  # (2, 3, 2)
        loss = tf.reduce_sum(rows * tf.reshape(tf.range(12, dtype=tf.float32), (2, 3, 2)))
      return rows, tape.gradient(loss, shards)

    rows, grads = lookup_and_grad()
    self.assertEqual(rows.shape, (2, 3, 2))
    self.assertAllEqual(rows, full[ids.numpy()])
    weights = np.arange(12, dtype=np.float32).reshape(6, 2)
    for shard_grad, offset, size in zip(grads, (0, 4), (4, 3)):
      self.assertIsInstance(shard_grad, tf.IndexedSlices)
      local = shard_grad.indices.numpy()
      self.assertLen(set(local), len(local))  # de-duplicated: one row per touched id
      expected = np.zeros((size, 2), np.float32)
      for position, row in enumerate(ids.numpy().reshape(-1)):
        if offset <= row < offset + size:
          expected[row - offset] += weights[position]
      dense = np.zeros((size, 2), np.float32)
      dense[local] = shard_grad.values.numpy()
      self.assertAllEqual(dense, expected)

  def test_embedding_variables_list_the_shards(self):
    layer = embedding_lib.FeatureEmbedding([("a", 7, 2), ("b", 3, 2)])
    layer.build(None)
    shards = [tf.Variable(tf.zeros((4, 2))), tf.Variable(tf.zeros((3, 2)))]
    layer.table_variables[0] = sharded_variable.ShardedVariable(shards)
    self.assertEqual(layer.embedding_variables, shards + [layer.table_variables[1]])


class OptimizersUnderStrategyTest(testing.TestCase):
  """Sparse updates through the slots' handles: under MirroredStrategy (slots are
  MirroredVariables, which have no sparse_read) exactly as in one process."""

  def _train(self, make_optimizer, strategy=None):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
      table = tf.Variable(np.linspace(-1, 1, 80, dtype=np.float32).reshape(20, 4),
                          name="embedding/t")
      optimizer = make_optimizer()
    grads = [tf.IndexedSlices(tf.constant(np.linspace(-2, 3, 16, dtype=np.float32).reshape(4, 4)
                                          * (k + 1)), tf.constant([1, 5, 5, 7]),
                              tf.constant([20, 4])) for k in range(3)]

    @tf.function
    def step(grad):
      def replica():
        optimizer.apply_gradients([(grad, table)])
      strategy.run(replica)

    for grad in grads:
      step(grad)
    slots = {name: optimizer.get_slot(table, name).numpy() for name in optimizer.get_slot_names()}
    return table.numpy(), slots

  def test_sparse_optimizers_match_one_process_bit_for_bit(self):
    makers = {
        "adagrad": lambda: optimizers.get({"name": "adagrad", "learning_rate": 0.1,
                                           "dense_row_factor": 0.0}),
        "ftrl": lambda: optimizers.get({"name": "ftrl", "learning_rate": 0.1, "l1": 0.01}),
        "group_lasso_ftrl": lambda: optimizers.get(
            {"name": "group_lasso_ftrl", "learning_rate": 0.1, "group_lasso": 0.01}),
        "lazy_adam": lambda: optimizers.get({"name": "lazy_adam", "learning_rate": 0.1}),
    }
    initial = np.linspace(-1, 1, 80, dtype=np.float32).reshape(20, 4)
    for name, make in makers.items():
      with self.subTest(name):
        expected, expected_slots = self._train(make)
        got, got_slots = self._train(make, tf.distribute.MirroredStrategy(["/cpu:0"]))
        np.testing.assert_array_equal(got, expected)
        for slot in expected_slots:
          np.testing.assert_array_equal(got_slots[slot], expected_slots[slot])
        untouched = [r for r in range(20) if r not in (1, 5, 7)]
        np.testing.assert_array_equal(got[untouched], initial[untouched])
        self.assertFalse(np.array_equal(got[[1, 5, 7]], initial[[1, 5, 7]]))

  def test_locking_kernels_of_a_parameter_server_give_the_same_updates(self):
    # On a ps task AdaGrad and FTRL update rows with TF's fused sparse kernels
    # (they hold the variable's lock); in one process they gather, compute and scatter.
    makers = {
        "adagrad": lambda: optimizers.get({"name": "adagrad", "learning_rate": 0.1,
                                           "dense_row_factor": 0.0}),
        "ftrl": lambda: optimizers.get({"name": "ftrl", "learning_rate": 0.1, "l1": 0.01,
                                        "initial_accumulator_value": 0.1}),
    }
    initial = np.linspace(-1, 1, 80, dtype=np.float32).reshape(20, 4)
    for name, make in makers.items():
      with self.subTest(name):
        expected, expected_slots = self._train(make)
        with mock.patch.object(sparse_rows, "on_parameter_server", return_value=True) as on_ps:
          got, got_slots = self._train(make)
        self.assertTrue(on_ps.called)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
        for slot in expected_slots:
          np.testing.assert_allclose(got_slots[slot], expected_slots[slot], rtol=1e-6, atol=1e-7)
        untouched = [r for r in range(20) if r not in (1, 5, 7)]
        np.testing.assert_array_equal(got[untouched], initial[untouched])
        self.assertFalse(np.array_equal(got[[1, 5, 7]], initial[[1, 5, 7]]))

  def test_tables_here_are_not_on_a_parameter_server(self):
    self.assertFalse(sparse_rows.on_parameter_server(tf.Variable([1.0])))


class LearningRateTest(testing.TestCase):

  def test_linear_scaling_with_warmup(self):
    rate = distributed.WarmupScaledRate(0.01, 4, 10)
    for step, expected in ((0, 0.01), (5, 0.025), (10, 0.04), (50, 0.04)):
      self.assertAllClose(rate(step), expected)
    self.assertAllClose(distributed.WarmupScaledRate(0.01, 4, 0)(0), 0.04)
    self.assertEqual(distributed.scaled_learning_rate(0.01, 1, 10), 0.01)

  def test_round_trips_in_an_optimizer_config(self):
    opt = optimizers.get({"name": "adam", "learning_rate": distributed.scaled_learning_rate(
        1e-3, 2, 5)})
    again = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(opt),
                                            use_legacy_optimizer=True)
    self.assertIsInstance(again.learning_rate, distributed.WarmupScaledRate)
    self.assertEqual(again.learning_rate.get_config(), {"base": 1e-3, "factor": 2.0,
                                                        "warmup_steps": 5})


class ReplicaLossTest(testing.TestCase):

  def test_replica_gradients_sum_to_the_global_batch_gradient(self):
    spec = training_fixtures.tiny_spec()
    model = models.build("dcn_v2", spec, embedding={"dim": 4, "l2": 0.05},
                         tower={"dims": (8,), "dropout": 0.0}, num_cross_layers=1, cross_l2=0.1)
    rng = np.random.default_rng(0)
    features = {f.name: (rng.integers(0, 12, 8) if f.is_categorical else rng.normal(size=8))
                for f in spec.features}
    features = {f.name: tf.constant(features[f.name], spec.input_dtype(f)) for f in spec.features}
    labels = tf.constant(rng.integers(0, 2, 8), tf.float32)

    def grads(f, y, replicas):
      with tf.GradientTape() as tape:
        loss, report, _ = distributed.model_loss(model, f, y, replicas)
      return [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)], \
          loss, report

    full, full_loss, full_report = grads(features, labels, 1)
    self.assertAllClose(full_loss, full_report)
    halves = [grads({k: v[s] for k, v in features.items()}, labels[s], 2)
              for s in (slice(0, 4), slice(4, 8))]
    for i, g in enumerate(full):
      self.assertAllClose(halves[0][0][i] + halves[1][0][i], g, atol=1e-6)
    self.assertAllClose(halves[0][1] + halves[1][1], full_loss, atol=1e-6)
    per_call, weights = distributed._loss_terms(model)  # pylint: disable=protected-access
    self.assertLen(weights, 1)  # the cross kernel's L2
    self.assertNotEmpty(per_call)  # the looked-up rows' L2


class ClusterTest(testing.TestCase):

  def _cluster(self, task_type="chief", index=0, **jobs):
    jobs = jobs or {"chief": ["h:1"], "worker": ["h:2", "h:3"], "ps": ["h:4", "h:5"]}
    return distributed.Cluster.from_env(
        {"TF_CONFIG": json.dumps({"cluster": jobs, "task": {"type": task_type, "index": index}})})

  def test_roles(self):
    local = distributed.Cluster.from_env({})
    self.assertTrue(local.is_chief and not local.is_server)
    chief = self._cluster().check("parameter_server")
    self.assertTrue(chief.is_chief and not chief.is_server)
    self.assertEqual((chief.num_workers, chief.num_ps), (2, 2))
    worker = self._cluster("worker", 1)
    self.assertTrue(worker.is_server and not worker.is_chief)
    self.assertEqual(worker.role, "worker:1")
    mw = self._cluster("worker", 0, worker=["h:1", "h:2"]).check("multi_worker")
    self.assertTrue(mw.is_chief and not mw.is_server)
    self.assertFalse(self._cluster("worker", 1, worker=["h:1", "h:2"]).is_chief)

  def test_errors_name_the_problem(self):
    with self.assertRaisesRegex(distributed.ClusterError, "not JSON"):
      distributed.Cluster.from_env({"TF_CONFIG": "{"})
    with self.assertRaisesRegex(distributed.ClusterError, r"task.index 5 is out of range"):
      self._cluster("worker", 5)
    with self.assertRaisesRegex(distributed.ClusterError, r"has no \['ps'\] task"):
      self._cluster(chief=["h:1"], worker=["h:2"]).check("parameter_server")
    with self.assertRaisesRegex(distributed.ClusterError, "needs TF_CONFIG"):
      distributed.Cluster.from_env({}).check("parameter_server")
    with self.assertRaisesRegex(distributed.ClusterError, "takes no ps tasks"):
      self._cluster("worker", 0).check("multi_worker")

  def test_only_large_tables_are_sharded_one_shard_per_ps_at_most(self):
    partitioner = distributed.TablePartitioner(16 << 10, 2)
    cases = [("embedding/C1", (1000, 16), [2, 1]),    # 64 KiB -> 2 shards of 32 KiB
             ("embedding/C2", (100, 16), [1, 1]),     # 6.4 KiB < 16 KiB
             ("embedding/C3", (100000, 16), [2, 1]),  # capped at one per ps
             ("cross/kernel", (1000, 16), [1, 1])]    # not a table
    for name, shape, expected in cases:
      with self.subTest(name):
        partitioner._creating.name = name  # pylint: disable=protected-access
        self.assertEqual(list(partitioner(tf.TensorShape(shape), tf.float32)), expected)
        if name.startswith("embedding"):
          self.assertEqual(distributed.num_shards(shape, 4, 16 << 10, 2), expected[0])

  def test_trainer_config_checks_the_distribute_settings(self):
    with self.assertRaisesRegex(ValueError, "TrainerConfig.distribute must be one of"):
      TrainerConfig(distribute="horovod")
    cfg = resolve.trainer_config({"distribute": "parameter_server", "min_shard_bytes": 1024})
    self.assertEqual((cfg.distribute, cfg.min_shard_bytes), ("parameter_server", 1024))
    with self.assertRaisesRegex(configs.ConfigError, "lr_scaling"):
      resolve.trainer_config({"lr_scaling": "sqrt"})

  def test_lazy_adam_tables_are_refused_before_a_parameter_server_cluster_starts(self):
    from experiments import cluster_run  # pylint: disable=g-import-not-at-top
    from experiments import runner  # pylint: disable=g-import-not-at-top
    cfg = runner.resolve_config(
        "dnn_synthetic", "trainer.distribute=parameter_server,optimizer.embedding=lazy_adam")
    with mock.patch.object(distributed.Cluster, "from_env",
                           side_effect=AssertionError("the cluster was reached")):
      with self.assertRaisesRegex(configs.ConfigError, "lazy_adam is not supported with "
                                  "trainer.distribute=parameter_server"):
        cluster_run.run(cfg, self.make_temp_dir())
    # Synchronous training takes it (the MirroredStrategy test trains with it).
    sync = runner.resolve_config(
        "dnn_synthetic", "trainer.distribute=multi_worker,optimizer.embedding=lazy_adam")
    with mock.patch.object(distributed.Cluster, "from_env",
                           side_effect=RuntimeError("reached the cluster")):
      with self.assertRaisesRegex(RuntimeError, "reached the cluster"):
        cluster_run.run(sync, self.make_temp_dir())


# A stand-in task for the launcher tests: behaves by its TF_CONFIG role, no TensorFlow.
# chief: prints, sleeps CHIEF_SECONDS, exits 0; worker 1: exits 9 the first time
# (a marker file remembers it), else sleeps; others: print and sleep "forever".
_STAND_IN = r"""
import json, os, sys, time
task = json.loads(os.environ["TF_CONFIG"])["task"]
print("hello from", task["type"], task["index"], flush=True)
if task["type"] == "chief":
  time.sleep(float(os.environ["CHIEF_SECONDS"]))
  sys.exit(0)
marker = os.path.join(os.environ["MARKER_DIR"], "crashed")
if task["type"] == "worker" and task["index"] == 1 and not os.path.exists(marker):
  open(marker, "w").close()
  sys.exit(9)
time.sleep(600)
"""

_LAUNCH = r"""
import io, sys
sys.argv = ["launcher"]
from experiments import local_cluster
launcher = local_cluster.Launcher(2, 1, [], program=["-c", STAND_IN], grace_seconds=2)
local_cluster.stop_on_signals(lambda: launcher)
sys.exit(launcher.run())
"""


class LauncherTest(testing.TestCase):

  def setUp(self):
    super().setUp()
    self.env = {"MARKER_DIR": self.make_temp_dir(), "CHIEF_SECONDS": "600"}

  def _job(self):
    return cluster_testing.Job([], env=self.env,
                               program=f"STAND_IN = {_STAND_IN!r}\n" + _LAUNCH)

  def test_restarts_a_dead_worker_streams_roles_and_stops_every_task_at_the_end(self):
    self.env["CHIEF_SECONDS"] = "6"
    job = self._job()
    self.assertEqual(job.wait(60), 0, job.output)
    out = job.output
    self.assertIn("[worker:1] hello from worker 1", out)
    self.assertIn("[ps:0] hello from ps 0", out)
    self.assertRegex(out, r"\[launcher\] worker:1 ended \(exit code 9\); restarting it \(1/3\)")
    self.assertRegex(out, r"\[launcher\] chief ended \(exit code 0\)")
    pids = job.pids()
    self.assertEqual(sorted(pids), ["chief", "ps:0", "worker:0", "worker:1"])
    self.assertLen(pids["worker:1"], 2)  # started again
    cluster_testing.assert_ended(self, job.all_pids())

  def test_ctrl_c_and_sigterm_stop_every_task(self):
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
      with self.subTest(sig.name):
        job = self._job()
        job.wait_for(r"\[ps:0\] hello", 60)
        job.signal(sig)
        self.assertEqual(job.wait(60), code, job.output)
        self.assertIn(f"received {sig.name}: stopping every task", job.output)
        cluster_testing.assert_ended(self, job.all_pids())

  def test_a_launcher_killed_with_sigkill_leaves_no_task(self):
    job = self._job()
    job.wait_for(r"\[ps:0\] hello", 60)
    pids = job.all_pids()
    self.assertGreaterEqual(len(pids), 4)  # worker:1 may have been started again already
    job.signal(signal.SIGKILL)
    job.wait(30)
    cluster_testing.assert_ended(self, pids)  # the parent-death signal

  def test_an_isolated_job_sees_only_the_loopback(self):
    command = local_cluster.isolated_command(
        [sys.executable, "-c", "print(sorted(line.split(':')[0].strip() "
                               "for line in open('/proc/net/dev').readlines()[2:]))"])
    if command is None:
      self.skipTest("no user + network namespaces here (unshare -rn): jobs run on the host network")
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    self.assertEqual(out.strip(), "['lo']")

  def test_output_lines_include_progress_redraws_at_once(self):
    split = local_cluster.split_output
    self.assertEqual(split(b"", b"one\ntw"), ([b"one"], b"tw"))
    self.assertEqual(split(b"tw", b"o\n"), ([b"two"], b""))
    # A progress bar's redraws: each complete as soon as it is read.
    self.assertEqual(split(b"", b"\repoch 1 [#.] 1/2"), ([b"epoch 1 [#.] 1/2"], b""))
    self.assertEqual(split(b"", b"\rA\rB"), ([b"A", b"B"], b""))
    self.assertEqual(split(b"", b"x\n\rA\nhalf"), ([b"x", b"A"], b"half"))

  def test_free_ports_and_cluster_spec(self):
    ports = local_cluster.free_ports(5)
    self.assertLen(set(ports), 5)
    spec = local_cluster.cluster_spec(2, 2)
    self.assertEqual({k: len(v) for k, v in spec.items()}, {"chief": 1, "worker": 2, "ps": 2})
    self.assertTrue(all(a.startswith("127.0.0.1:") for v in spec.values() for a in v))
    self.assertEqual(list(local_cluster.cluster_spec(3, 0)), ["worker"])
