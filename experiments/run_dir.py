"""The run directory: one experiment per --model_dir, refused if it holds another.

Layout written by a training run (see `experiments/train.py`):

  model_dir/
    run.lock           the exclusive lock of the process training there (its pid
                       and host while it runs; see experiments/run_lock.py)
    params.json        the resolved experiment config, every default filled in
                       (the identity of the run)
    spec.json          the fitted FeatureSpec of the run's data
    checkpoints/       tf.train.Checkpoint files (model, optimizer slots, data
                       position, early-stopping state, RNG state), written by
                       ctr_zoo.training.Trainer; checkpoints/best/ holds the
                       weights of the best validation score
    tensorboard/       scalars (train/, valid/, test/), written by the Trainer
    metrics.json       final AUC / logloss per split and throughput
    export/            the raw-feature SavedModel (when export is on)
"""

import json
import os
import shutil
from typing import Any, Dict, List, Mapping, Optional

from absl import logging

from ctr_zoo import checks
from ctr_zoo.training import trainer as trainer_lib
from experiments import run_lock

PARAMS_FILE = "params.json"
SPEC_FILE = "spec.json"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = trainer_lib.CHECKPOINT_DIR
TENSORBOARD_DIR = trainer_lib.TENSORBOARD_DIR
EXPORT_DIR = "export"
LOCK_FILE = run_lock.LOCK_FILE

# What claiming a run directory does (see `check`).
NEW, RESUME, REPLACE = "new", "resume", "replace"


# Keys of params.json written before the input section and the model's
# embedding config existed -> where those settings live now.
LEGACY_KEYS = {
    "trainer.batch_size": "input.batch_size",
    "trainer.eval_batch_size": "input.eval_batch_size",
    "data.embedding_dim": "model.params.embedding.dim",
}


class ExperimentMismatchError(ValueError):
  """--model_dir holds a different experiment (pass overwrite to replace it)."""


def legacy_keys(params: Mapping[str, Any]) -> List[str]:
  """The LEGACY_KEYS present in `params` (a params.json of an older version)."""
  flat = _flatten(params)
  return [key for key in LEGACY_KEYS if key in flat]


def upgrade_params(params: Mapping[str, Any]) -> Dict[str, Any]:
  """An older version's params.json in the current layout, for reading its run (evaluate).

  The batch sizes move from `trainer` to `input`; `data.embedding_dim` is
  dropped, because the run's spec.json already carries the embedding widths
  it was trained with. Model fields added since take the value that rebuilds
  the run's graph (`OLDER_FILE_DEFAULTS` of the model's config class).
  Current params are returned unchanged (a copy).
  """
  params = json.loads(json.dumps(params))
  trainer = params.get("trainer") or {}
  data = params.get("data") or {}
  moved = {key: trainer.pop(key) for key in ("batch_size", "eval_batch_size") if key in trainer}
  if moved:
    params["input"] = {**moved, **(params.get("input") or {})}
  data.pop("embedding_dim", None)
  model = params.get("model") or {}
  if isinstance(model.get("params"), dict) and model.get("name"):
    from ctr_zoo.models import base as models_base  # pylint: disable=g-import-not-at-top
    from experiments import zoo  # pylint: disable=g-import-not-at-top
    try:
      config_class = zoo.config_class(model["name"])
    except (KeyError, ValueError):
      config_class = None  # an unknown model is reported where the config is built
    if config_class is not None:
      model["params"] = {**models_base.older_file_defaults(config_class), **model["params"]}
  return params


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
  out = {}
  for key, value in d.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping) and value:
      out.update(_flatten(value, name + "."))
    else:
      out[name] = value
  return out


def diff_params(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
  """Human-readable differences "key: old -> new" between two nested dicts."""
  a, b = _flatten(old), _flatten(new)
  missing = object()
  out = []
  for key in sorted(set(a) | set(b)):
    va, vb = a.get(key, missing), b.get(key, missing)
    if va != vb:
      fmt = lambda v: "<absent>" if v is missing else json.dumps(v)  # pylint: disable=unnecessary-lambda-assignment
      out.append(f"{key}: {fmt(va)} -> {fmt(vb)}")
  return out


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented JSON atomically (temp file + rename)."""
  tmp = path + ".tmp"
  with open(tmp, "w") as fh:
    json.dump(obj, fh, indent=2, sort_keys=True, allow_nan=True)
    fh.write("\n")
  os.replace(tmp, path)


def read_json(path: str) -> Any:
  try:
    with open(path) as fh:
      return json.load(fh)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON: {e}") from e


def _entries(model_dir: str) -> List[str]:
  """What the directory holds, its lock file aside."""
  if not os.path.isdir(model_dir):
    return []
  return [name for name in os.listdir(model_dir) if name != LOCK_FILE]


def check(model_dir: str, params: Mapping[str, Any], overwrite: bool = False) -> str:
  """What claiming `model_dir` for the experiment `params` will do; writes nothing.

  Returns NEW (empty or absent directory), RESUME (params.json equal to
  `params`: a restart of the same run) or REPLACE (a different experiment,
  with `overwrite`). Raises ExperimentMismatchError naming the differing keys
  for a different experiment without `overwrite`, for an older version's run
  without `overwrite`, and always for a non-empty directory without
  params.json (never deleted). The lock file does not count as content.

  Args:
    model_dir: str. The run directory.
    params: dict. The resolved experiment config (JSON-serialisable).
    overwrite: bool. Replace a different experiment's run. Defaults to False.
  """
  params = json.loads(json.dumps(params))  # normalise tuples -> lists, etc.
  params_path = os.path.join(model_dir, PARAMS_FILE)
  if not _entries(model_dir):
    return NEW
  if not os.path.exists(params_path):
    raise ExperimentMismatchError(
        f"model_dir {model_dir!r} is not empty and has no {PARAMS_FILE}: it is not a "
        f"ctr_zoo run directory; refusing to use or delete it (choose another --model_dir)")
  old = read_json(params_path)
  old_keys = legacy_keys(old)
  if old_keys and not overwrite:
    raise ExperimentMismatchError(
        f"model_dir {model_dir!r} was written by an older ctr_zoo (its {PARAMS_FILE} has "
        + ", ".join(f"{k} (now {LEGACY_KEYS[k]})" for k in old_keys)
        + "): it cannot be resumed; pass --overwrite to train it again, or choose another "
        "--model_dir (experiments.evaluate still reads it)")
  if old == params:
    return RESUME
  differences = diff_params(old, params)
  if not overwrite:
    shown = "; ".join(differences[:20])
    more = f"; ... and {len(differences) - 20} more" if len(differences) > 20 else ""
    raise ExperimentMismatchError(
        f"model_dir {model_dir!r} holds a different experiment "
        f"({old.get('name', '?')!r}); differences (old -> new): {shown}{more}. "
        f"Pass --overwrite to delete it, or choose another --model_dir.")
  return REPLACE


def commit(model_dir: str, params: Mapping[str, Any], action: str) -> None:
  """Carries out `check`'s decision: REPLACE deletes the old run (its lock file
  kept), NEW and REPLACE write params.json, RESUME writes nothing."""
  checks.choice(action, "action", (NEW, RESUME, REPLACE))
  if action == RESUME:
    logging.info("model_dir %s holds this experiment: resuming", model_dir)
    return
  if action == REPLACE:
    logging.warning("overwrite: deleting the previous run in %s", model_dir)
    for name in _entries(model_dir):
      path = os.path.join(model_dir, name)
      if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
      else:
        os.remove(path)
  os.makedirs(model_dir, exist_ok=True)
  write_json(os.path.join(model_dir, PARAMS_FILE), json.loads(json.dumps(params)))


def prepare(model_dir: str, params: Mapping[str, Any], overwrite: bool = False) -> bool:
  """Claims `model_dir` for the experiment `params` at once; returns True when resuming.

  `check` then `commit` (see both). A trainer instead holds the directory's
  lock (`experiments.run_lock`), checks, builds its data and model, and
  commits only then, so a config rejected on the way claims nothing.
  """
  action = check(model_dir, params, overwrite)
  commit(model_dir, params, action)
  return action == RESUME


def checkpoint_dir(model_dir: str) -> str:
  return os.path.join(model_dir, CHECKPOINT_DIR)


def load_params(model_dir: str) -> Optional[Dict[str, Any]]:
  path = os.path.join(model_dir, PARAMS_FILE)
  return read_json(path) if os.path.exists(path) else None
