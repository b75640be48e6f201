"""Runs one experiment config as one task of a tf.distribute cluster (trainer.distribute != none).

`experiments.runner.run` hands a config here when `trainer.distribute` is
"mirrored", "multi_worker" or "parameter_server". Every task of a cluster
runs the same program and config; what it does depends on its TF_CONFIG
task (see `ctr_zoo.training.distributed`):

- parameter_server, a worker or ps task: serve (block until killed);
- parameter_server, the chief: prepare the run directory and the data (each
  worker's part of the training split), build the model under the strategy
  (tables sharded over the ps tasks), schedule the training steps, evaluate
  valid and test, and write checkpoints, metrics.json, model.keras and the
  export;
- multi_worker / mirrored, every worker: build the model under the strategy
  (the chief's initial values), write and read its own part of the training
  split, train in lock-step; the chief (worker 0, or the "chief" task)
  writes the run directory and evaluates.

The chief also checks that the run is portable: a single-process copy of the
trained model (`distributed.plain_copy`) is what it saves as model.keras and
exports, and metrics.json records how far its test predictions are from the
distributed model's (`portable.max_abs_diff`).
"""

import os

from absl import logging
import numpy as np

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf

from ctr_zoo import training
from ctr_zoo.optimizers import split as split_lib
from ctr_zoo.training import distributed
from ctr_zoo.training import worker_input
from experiments import configs
from experiments import data as data_lib
from experiments import paths
from experiments import progress as progress_lib
from experiments import resolve as resolve_lib
from experiments import run_dir
from experiments import run_lock
from experiments import zoo

MODEL_FILE = "model.keras"


def parts_dir(prepared) -> str:
  """Where the workers' record parts of `prepared`'s training split are written."""
  return os.path.join(paths.cache_root(), "worker_parts", prepared.fingerprint)


def part_seed(seed: int, epoch: int, part: int) -> int:
  """The shuffle seed of worker part `part` in epoch `epoch` (parameter servers: the start step)."""
  return ((seed * 1_000_003 + epoch) * 1009 + part) % (1 << 62)


def build_optimizer(cfg, model, lr_factor: float, sparse_only: bool):
  """The config's SplitOptimizer, learning rates scaled by `lr_factor` (with warm-up).

  `sparse_only`: AdaGrad's dense path for densely covered small tables is
  turned off, so every table update reads and writes only touched rows.
  """
  embedding, dense = zoo.optimizer_args(cfg.optimizer)
  warmup = cfg.trainer.lr_warmup_steps
  for args in (embedding, dense):
    args["learning_rate"] = distributed.scaled_learning_rate(args["learning_rate"], lr_factor,
                                                             warmup)
  if sparse_only and str(embedding["name"]).lower() == "adagrad":
    embedding["dense_row_factor"] = 0.0
  return split_lib.SplitOptimizer.for_model(model, embedding, dense)


def _summary(role: str, fit: dict) -> str:
  return (f"{role}: trained {fit.get('steps', 0)} steps "
          f"({fit.get('examples', 0):,} examples); the chief writes the results")


def run(cfg, model_dir: str, overwrite: bool = False, export: bool = True, callbacks=(),
        progress: bool = False, quantize=None):
  """This task's part of a distributed run of `cfg`; the chief returns the metrics dict.

  A worker or ps task of parameter-server training never returns (it serves
  until it is stopped). A synchronous worker that is not the chief returns
  {"role", "train", "summary"}. The arguments are `experiments.runner.run`'s
  (`quantize`: the export's weight storage, None, "float16" or "int8").
  """
  cfg = resolve_lib.resolve(cfg)
  tcfg = cfg.trainer
  mode = tcfg.distribute
  embedding, _ = zoo.optimizer_args(cfg.optimizer)
  if mode == "parameter_server" and str(embedding["name"]).lower() == "lazy_adam":
    # Checked before any task starts: LazyAdam refuses tables on a ps when it first updates one.
    raise configs.ConfigError(
        "optimizer.embedding=lazy_adam is not supported with trainer.distribute=parameter_server "
        "(TensorFlow has no locking sparse Adam kernel, so workers updating the same rows at once "
        "could lose updates): use adagrad or adam for the tables")
  cluster = distributed.Cluster.from_env().check(mode)
  if cluster.is_server:
    logging.info("%s: serving parameter-server training of %s", cluster.role, cfg.name)
    distributed.serve(cluster)
    return {"role": cluster.role, "summary": f"{cluster.role}: stopped serving"}

  if tcfg.patience or tcfg.eval_every_steps:
    logging.warning(
        "trainer.distribute=%s trains trainer.epochs=%d epochs: validation during training and "
        "early stopping (trainer.patience=%d, trainer.eval_every_steps=%d) run only in a "
        "single process; the last checkpoint is scored and exported", mode, tcfg.epochs,
        tcfg.patience, tcfg.eval_every_steps)
  if cluster.is_chief:  # the chief owns the run directory: a second trainer there is refused
    with run_lock.RunLock(os.path.normpath(model_dir)):
      return _train(cfg, cluster, os.path.normpath(model_dir), overwrite, export, callbacks,
                    progress, quantize)
  return _train(cfg, cluster, model_dir, overwrite, export, callbacks, progress, quantize)


def _train(cfg, cluster, model_dir, overwrite, export, callbacks, progress, quantize):
  """`run` for a task that trains (the chief or a worker)."""
  tcfg = cfg.trainer
  mode = tcfg.distribute
  # data.fingerprint, as in the single-process runner: every task that reads the
  # data records the same content fingerprint (part of params.json).
  cfg = data_lib.with_fingerprint(cfg)
  chief = cluster.is_chief
  params = cfg.to_dict()
  if chief:
    run_dir.prepare(model_dir, params, overwrite=overwrite)
  prepared = data_lib.prepare(cfg.data)
  if chief:
    prepared.spec.save(os.path.join(model_dir, run_dir.SPEC_FILE))

  if tcfg.deterministic:
    tf.config.experimental.enable_op_determinism()
  tf.keras.utils.set_random_seed(tcfg.seed)
  strategy = distributed.make_strategy(mode, cluster, tcfg.min_shard_bytes)
  batch_size = cfg.input.batch_size
  replicas = strategy.num_replicas_in_sync
  sync = mode in distributed.SYNC_MODES
  lr_factor = replicas if sync and tcfg.lr_scaling == "linear" else 1
  with distributed.scope(strategy):
    model = zoo.build_model(cfg.model, prepared.spec)
    optimizer = build_optimizer(cfg, model, lr_factor, sparse_only=not sync)
  # A non-chief synchronous worker restores only a checkpoint of this very run.
  restorable = chief or run_dir.load_params(model_dir) == params
  train_rows = prepared.rows.get("train") or sum(
      worker_input.part_rows(prepared.split_dir("train"), 1))
  callbacks = list(callbacks)
  trainer = distributed.DistributedTrainer(
      model, optimizer, strategy, tcfg, model_dir if restorable else None, is_chief=chief,
      callbacks=callbacks)
  report = {"mode": mode, "cluster": cluster.jobs, "role": cluster.role,
            "replicas": replicas, "lr_factor": lr_factor}

  if sync:
    num_parts = max(1, cluster.num_workers + len(cluster.jobs.get("chief", []))) \
        if mode == "multi_worker" else 1
    local_replicas = replicas // num_parts
    rows = worker_input.part_rows(prepared.split_dir("train"), num_parts)
    steps_per_epoch = min(rows) // (batch_size * local_replicas)
    if steps_per_epoch < 1:
      raise configs.ConfigError(
          f"each of the {num_parts} worker parts of the training split ({min(rows)} rows) needs "
          f"at least one global batch ({batch_size} x {local_replicas} replicas)")
    global_batch = batch_size * replicas

    def dataset_fn(epoch, skip):
      def make(context):
        if context.num_input_pipelines != num_parts:
          raise distributed.ClusterError(
              f"the strategy has {context.num_input_pipelines} input pipelines, the cluster "
              f"{num_parts} workers")
        index = context.input_pipeline_id
        part = worker_input.write_parts(prepared.split_dir("train"), prepared.spec, num_parts,
                                        parts_dir(prepared), parts=[index])[index]
        seed = part_seed(tcfg.seed, epoch, index)
        return worker_input.part_dataset(
            part, prepared.spec, batch_size, seed, skip_batches=skip * local_replicas,
            num_batches=(steps_per_epoch - skip) * local_replicas)
      return make

    if chief and progress:
      trainer.callbacks.append(progress_lib.TrainingProgress(steps_per_epoch))
    fit = trainer.fit_sync(dataset_fn, steps_per_epoch, global_batch)
    report.update(global_batch=global_batch, per_replica_batch=batch_size,
                  parts=num_parts, part_rows=rows)
  else:
    coordinator = tf.distribute.experimental.coordinator.ClusterCoordinator(strategy)
    num_parts = cluster.num_workers
    parts = worker_input.write_parts(prepared.split_dir("train"), prepared.spec, num_parts,
                                     parts_dir(prepared))
    steps_per_epoch = max(1, train_rows // batch_size)

    def worker_dataset(index):
      part = parts[index]
      seed = part_seed(tcfg.seed, int(trainer.global_step), index)

      def make():
        return worker_input.part_dataset(part, prepared.spec, batch_size, seed, repeat=True).map(
            lambda features, labels: (features, labels, tf.constant(index, tf.int32)))
      return make

    trainer.restore()  # the data seeds follow the resumed step
    iterators = distributed.per_worker_iterators(
        coordinator, [worker_dataset(i) for i in range(num_parts)])
    if progress:
      trainer.callbacks.append(progress_lib.TrainingProgress(steps_per_epoch))
    fit = trainer.fit_parameter_server(coordinator, iterators, steps_per_epoch, batch_size)
    report.update(batch_size=batch_size, parts=num_parts,
                  part_rows=[parts[i].rows for i in range(num_parts)],
                  shards=distributed.shard_report(model),
                  min_shard_bytes=tcfg.min_shard_bytes)

  if not chief:
    distributed.barrier(strategy)  # wait for the chief's evaluation and export
    return {"role": cluster.role, "train": fit, "summary": _summary(cluster.role, fit)}

  result = {"experiment": cfg.name, "model": cfg.model.name, "data": cfg.data.name,
            "seed": tcfg.seed, "train": fit, "params": training.count_params(model),
            "data_fingerprint": prepared.fingerprint, "split_rows": prepared.rows,
            "oracle": prepared.oracle, "distribute": report,
            "early_stopping": {"applied": False, "reason": f"trainer.distribute={mode}"}}
  eval_batch = cfg.input.eval_batch_size
  predictions = {}
  for split in ("valid", "test"):
    labels, preds = trainer.predict(prepared.dataset(split, eval_batch))
    predictions[split] = preds
    result[split] = training.evaluate_predictions(labels, preds)
    trainer.write_scalars(split, result[split], fit["steps"])
    if split == "test":
      result["calibration"] = training.calibration(labels, preds)

  # The portable model: a single-process copy of the last checkpoint.
  plain = distributed.plain_copy(lambda: zoo.build_model(cfg.model, prepared.spec),
                                 trainer.latest_checkpoint)
  _, plain_preds = distributed.predict(plain, prepared.dataset("test", eval_batch))
  result["portable"] = {
      "checkpoint": trainer.latest_checkpoint,
      "max_abs_diff": float(np.max(np.abs(plain_preds - predictions["test"]))),
      "model_file": os.path.join(model_dir, MODEL_FILE)}
  plain.save(result["portable"]["model_file"])
  if export:
    export_dir = os.path.join(model_dir, run_dir.EXPORT_DIR)
    result["export"] = training.export_saved_model(plain, prepared.spec, export_dir,
                                                   quantize=quantize)
  run_dir.write_json(os.path.join(model_dir, run_dir.METRICS_FILE), result)
  logging.info("metrics: %s", result)
  if sync:
    distributed.barrier(strategy)  # the other workers end with the chief
  return result
