"""The run directory: one experiment per --model_dir, refused if it holds another.

Layout written by a training run (see `experiments/train.py`):

  model_dir/
    params.json        the resolved experiment config, every default filled in
                       (the identity of the run)
    spec.json          the fitted FeatureSpec of the run's data
    checkpoints/       tf.train.Checkpoint files (model, optimizer slots, data
                       position, RNG state), written by ctr_zoo.training.Trainer
    tensorboard/       scalars (train/, valid/, test/), written by the Trainer
    metrics.json       final AUC / logloss per split and throughput
    export/            the raw-feature SavedModel (when export is on)
"""

import json
import os
import shutil
from typing import Any, Dict, List, Mapping, Optional

from absl import logging

from ctr_zoo.training import trainer as trainer_lib

PARAMS_FILE = "params.json"
SPEC_FILE = "spec.json"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = trainer_lib.CHECKPOINT_DIR
TENSORBOARD_DIR = trainer_lib.TENSORBOARD_DIR
EXPORT_DIR = "export"


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
  it was trained with. Current params are returned unchanged (a copy).
  """
  params = json.loads(json.dumps(params))
  trainer = params.get("trainer") or {}
  data = params.get("data") or {}
  moved = {key: trainer.pop(key) for key in ("batch_size", "eval_batch_size") if key in trainer}
  if moved:
    params["input"] = {**moved, **(params.get("input") or {})}
  data.pop("embedding_dim", None)
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


def prepare(model_dir: str, params: Mapping[str, Any], overwrite: bool = False) -> bool:
  """Claims `model_dir` for the experiment `params`; returns True when resuming.

  - empty or absent directory: creates it and writes params.json;
  - params.json equal to `params`: a restart of the same run (resume);
  - params.json different: raises ExperimentMismatchError naming the
    differing keys, unless `overwrite`, which deletes the old run first;
  - a non-empty directory without params.json is never deleted.

  Args:
    model_dir: str. The run directory.
    params: dict. The resolved experiment config (JSON-serialisable).
    overwrite: bool. Replace a different experiment's run. Defaults to False.
  """
  params = json.loads(json.dumps(params))  # normalise tuples -> lists, etc.
  params_path = os.path.join(model_dir, PARAMS_FILE)
  if os.path.isdir(model_dir) and os.listdir(model_dir):
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
      logging.info("model_dir %s holds this experiment: resuming", model_dir)
      return True
    differences = diff_params(old, params)
    if not overwrite:
      shown = "\n  ".join(differences[:20])
      more = f"\n  ... and {len(differences) - 20} more" if len(differences) > 20 else ""
      raise ExperimentMismatchError(
          f"model_dir {model_dir!r} holds a different experiment "
          f"({old.get('name', '?')!r}); differences (old -> new):\n  {shown}{more}\n"
          f"Pass --overwrite to delete it, or choose another --model_dir.")
    logging.warning("overwrite: deleting the previous run in %s", model_dir)
    shutil.rmtree(model_dir)
  os.makedirs(model_dir, exist_ok=True)
  write_json(params_path, params)
  return False


def checkpoint_dir(model_dir: str) -> str:
  return os.path.join(model_dir, CHECKPOINT_DIR)


def load_params(model_dir: str) -> Optional[Dict[str, Any]]:
  path = os.path.join(model_dir, PARAMS_FILE)
  return read_json(path) if os.path.exists(path) else None
