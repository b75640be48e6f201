"""Synchronous multi-worker training (MultiWorkerMirroredStrategy) on a real 2-process cluster.

Equivalence: 2 workers with per-worker batch B/2 (their parts of the training
split) take the same steps as one process with batch B whose every batch is
the two workers' batches of that step, concatenated, trained with the same
learning-rate rule from the same initial weights (the run's checkpoint 0):
after N steps every variable and optimizer slot agrees within 1e-5. The
config exercises both kinds of regularization (looked-up rows, cross kernels),
gradient clipping after the all-reduce and the warm-up of the scaled rates.

A mirrored run (one process, this machine's devices) leaves a run directory
that the one-process tools read: its latest checkpoint restores into the
model `experiments.scorers.restore_run` builds (evaluate, export), which
predicts what the run reported, and its int8 export loads.
"""

import json
import os
from unittest import mock

import numpy as np

from tests import cluster_testing
from tests import testing

import tensorflow as tf

from ctr_zoo import training
from ctr_zoo.training import worker_input
from experiments import cluster_run
from experiments import data as data_lib
from experiments import resolve
from experiments import run_dir
from experiments import runner
from experiments import scorers
from experiments import zoo

STEPS = 6
PER_WORKER_BATCH = 64
OVERRIDES = ",".join([
    "data.synthetic_rows=3000", f"input.batch_size={PER_WORKER_BATCH}", f"trainer.max_steps={STEPS}",
    "trainer.checkpoint_every_steps=100", "trainer.lr_warmup_steps=3", "trainer.clipnorm=1.0",
    "model.params.tower.dropout=0", "model.params.tower.dims=[32,16]",
    "model.params.cross_l2=0.001", "input.eval_batch_size=4096",
    "trainer.patience=0"])  # the one-process reference without early stopping, as the cluster


def _concat(a, b):
  (fa, la), (fb, lb) = a, b
  return {k: tf.concat([fa[k], fb[k]], 0) for k in fa}, tf.concat([la, lb], 0)


class MultiWorkerMirroredTest(testing.TestCase):

  def tearDown(self):
    tf.keras.backend.experimental.disable_tf_random_generator()
    super().tearDown()

  def test_a_mirrored_run_directory_is_read_by_the_one_process_tools(self):
    model_dir = os.path.join(self.make_temp_dir(), "run")
    with mock.patch.dict(os.environ, {"CTR_ZOO_CACHE": self.make_temp_dir()}):
      cfg = runner.resolve_config("dnn_synthetic", "data.synthetic_rows=2000,input.batch_size=128,"
                                  "input.eval_batch_size=512,trainer.max_steps=4,"
                                  "trainer.distribute=mirrored,data.hash_buckets=50")
      self.assertGreater(cfg.model.params["tower"]["dropout"], 0)  # RNG state in one process
      result = runner.run(cfg, model_dir, quantize="int8")
      _, spec, model, trainer = scorers.restore_run(model_dir)
      prepared = data_lib.prepare(cfg.data)
      labels, preds = trainer.predict(prepared.dataset("test", 512))
    self.assertEqual(result["distribute"]["mode"], "mirrored")
    self.assertEqual(spec.to_json(), prepared.spec.to_json())
    self.assertEqual(result["train"]["steps"], 4)
    self.assertEqual(result["early_stopping"], {"applied": False,
                                                "reason": "trainer.distribute=mirrored"})
    self.assertAllClose(training.evaluate_predictions(labels, preds)["auc"], result["test"]["auc"],
                        atol=1e-6)
    self.assertEqual(result["export"]["quantize"], "int8")
    export = tf.saved_model.load(result["export"]["path"])
    self.assertNotEmpty(list(export.signatures))
    del model

  def test_two_workers_with_half_batches_match_one_process_with_the_full_batch(self):
    cache = self.make_temp_dir()
    model_dir = os.path.join(self.make_temp_dir(), "run")
    job = cluster_testing.Job(
        ["--workers=2", "--experiment=dcn_v2_synthetic", f"--model_dir={model_dir}",
         f"--params_override={OVERRIDES}", "--export=false"], env={"CTR_ZOO_CACHE": cache})
    try:
      code = job.wait(420)
    finally:
      job.stop()
    self.assertEqual(code, 0, job.output[-6000:])
    self.assertEqual(sorted(job.pids()), ["worker:0", "worker:1"])
    cluster_testing.assert_ended(self, job.all_pids())
    with open(os.path.join(model_dir, run_dir.METRICS_FILE)) as fh:
      metrics = json.load(fh)
    report = metrics["distribute"]
    self.assertEqual((report["mode"], report["replicas"], report["global_batch"]),
                     ("multi_worker", 2, 2 * PER_WORKER_BATCH))
    self.assertEqual(metrics["train"]["steps"], STEPS)
    self.assertEqual(metrics["portable"]["max_abs_diff"], 0.0)
    checkpoints = os.path.join(model_dir, run_dir.CHECKPOINT_DIR)
    self.assertTrue(os.path.exists(os.path.join(checkpoints, "ckpt-0.index")))

    with mock.patch.dict(os.environ, {"CTR_ZOO_CACHE": cache}):
      cfg = resolve.from_params(run_dir.load_params(model_dir))
      prepared = data_lib.prepare(cfg.data)
      parts = [worker_input.load_part(cluster_run.parts_dir(prepared), 2, i) for i in (0, 1)]
    self.assertEqual(metrics["distribute"]["part_rows"], [p.rows for p in parts])
    # The step-k batch of one process: worker 0's and worker 1's step-k batches (the
    # shuffles' op seeds combine with TF's global seed, set from trainer.seed on every task).
    tf.keras.utils.set_random_seed(cfg.trainer.seed)
    streams = [worker_input.part_dataset(p, prepared.spec, PER_WORKER_BATCH,
                                         cluster_run.part_seed(cfg.trainer.seed, 0, i),
                                         num_batches=STEPS) for i, p in enumerate(parts)]
    batches = tf.data.Dataset.zip(tuple(streams)).map(_concat)
    model = zoo.build_model(cfg.model, prepared.spec)
    optimizer = cluster_run.build_optimizer(cfg, model, lr_factor=2, sparse_only=False)
    tf.train.Checkpoint(model=model).read(os.path.join(checkpoints, "ckpt-0")).expect_partial()
    trainer = training.Trainer(model, optimizer, training.TrainerConfig(
        max_steps=STEPS, clipnorm=1.0, checkpoint_every_steps=100, log_every_steps=100))
    fit = trainer.fit(lambda epoch, skip: batches.skip(skip))
    self.assertEqual(fit["examples"], STEPS * 2 * PER_WORKER_BATCH)

    distributed_model = zoo.build_model(cfg.model, prepared.spec)
    distributed_optimizer = cluster_run.build_optimizer(cfg, distributed_model, 2, False)
    distributed_optimizer._create_all_weights(distributed_model.trainable_variables)  # pylint: disable=protected-access
    tf.train.Checkpoint(model=distributed_model, optimizer=distributed_optimizer).read(
        os.path.join(checkpoints, f"ckpt-{STEPS}")).assert_existing_objects_matched()
    moved = 0
    for ours, theirs in zip(model.weights, distributed_model.weights):
      self.assertEqual(ours.name, theirs.name)
      self.assertAllClose(ours, theirs, atol=1e-5, rtol=0, msg=ours.name)
      moved += int(np.any(ours.numpy() != 0))
    self.assertGreater(moved, 10)
    compared = 0
    for which in ("embedding_optimizer", "dense_optimizer"):
      ours, theirs = getattr(optimizer, which), getattr(distributed_optimizer, which)
      for var, other in zip(model.trainable_variables, distributed_model.trainable_variables):
        for slot in ours.get_slot_names():
          try:
            value = ours.get_slot(var, slot)
          except KeyError:  # the variable belongs to the other optimizer
            continue
          self.assertAllClose(value, theirs.get_slot(other, slot), atol=1e-5, rtol=0,
                              msg=f"{which} {slot} of {var.name}")
          compared += 1
    self.assertGreater(compared, len(model.trainable_variables))
