"""Input for distributed training: each worker's part of the prepared shards, read in-graph.

The single-process input (`ctr_zoo.datasets.make_dataset`) reads Parquet in
Python and feeds `tf.data` through `from_generator`. A `py_function` runs only
in the process that created it, so that dataset cannot be built on a remote
worker, which is what `ParameterServerStrategy` does with a dataset function:
the coordinator traces it and the worker runs the graph. Here the training
split is written once into fixed-length binary records, which a pure `tf.data`
graph (`FixedLengthRecordDataset` + `decode_raw`) reads on any task.

Parts. With P parts, every row group of n rows (in file order) is cut into P
contiguous slices, part i holding rows [floor(i n / P), floor((i + 1) n / P)):
the parts are disjoint, cover every row and differ in size by at most one row
per row group. Part i of P is written to `<out_dir>/of<P>/part-<i>-<k>.rec`,
one file per row group k, with `part-<i>.json` (its rows and files) written
last, so a part whose json exists is complete.

Record layout (little-endian, R = 8 K + 4 (M + 1) bytes a row): the K int64
values of the id features (a sequence feature contributes its max_len ids),
in spec order, then the M float32 dense values and the float32 label.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.feature_columns import spec as spec_lib

RECORD_SUFFIX = ".rec"
# Rows held by the record-level shuffle buffer of a worker's dataset.
SHUFFLE_BUFFER_ROWS = 1 << 16


@dataclasses.dataclass(frozen=True)
class RecordLayout:
  """Where each feature sits in a record.

  Attributes:
    ints: ((feature name, width), ...) of the int64 block, in order (width 1
      for an id feature, max_len for a sequence).
    floats: (feature name, ...) of the float32 block, the label last.
    label: str. The label column.
  """
  ints: Tuple[Tuple[str, int], ...]
  floats: Tuple[str, ...]
  label: str

  @classmethod
  def from_spec(cls, spec: spec_lib.FeatureSpec) -> "RecordLayout":
    dense = {f.name for f in spec.dense_features}
    ints = tuple((f.name, spec.input_shape(f)[0] if spec.input_shape(f) else 1)
                 for f in spec.features if f.name not in dense)
    floats = tuple(f.name for f in spec.features if f.name in dense) + (spec.label,)
    return cls(ints=ints, floats=floats, label=spec.label)

  @property
  def num_ints(self) -> int:
    return sum(width for _, width in self.ints)

  @property
  def record_bytes(self) -> int:
    return 8 * self.num_ints + 4 * len(self.floats)


def _check_little_endian():
  if sys.byteorder != "little":
    raise RuntimeError("worker record files are little-endian; this host is big-endian")


def row_group_slices(shard_dir: str, num_parts: int) -> List[List[Tuple[str, int, int, int]]]:
  """Per part, its (file, row group, start, stop) slices, in file order.

  Args:
    shard_dir: str. A directory of Parquet shards (e.g. a prepared `train/`).
    num_parts: int. P, the number of parts.
  """
  checks.positive_int(num_parts, "num_parts")
  paths = sorted(glob.glob(os.path.join(shard_dir, "**", "*.parquet"), recursive=True))
  if not paths:
    raise FileNotFoundError(f"no Parquet shards under {shard_dir}")
  parts = [[] for _ in range(num_parts)]
  for path in paths:
    meta = pq.ParquetFile(path).metadata
    for rg in range(meta.num_row_groups):
      n = meta.row_group(rg).num_rows
      for i in range(num_parts):
        start, stop = i * n // num_parts, (i + 1) * n // num_parts
        if stop > start:
          parts[i].append((path, rg, start, stop))
  return parts


def part_rows(shard_dir: str, num_parts: int) -> List[int]:
  """Rows of each of the `num_parts` parts (from the Parquet metadata only)."""
  return [sum(stop - start for _, _, start, stop in part)
          for part in row_group_slices(shard_dir, num_parts)]


def _encode(table, layout: RecordLayout) -> bytes:
  """A pyarrow table's rows -> concatenated records."""
  n = table.num_rows
  blocks = []
  for name, width in layout.ints:
    column = table.column(name).combine_chunks()
    if width > 1:
      column = column.flatten()
    blocks.append(np.asarray(column.to_numpy(zero_copy_only=False), "<i8").reshape(n, width))
  ints = np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0), "<i8")  # (n, K)
  floats = np.stack([np.asarray(table.column(name).to_numpy(zero_copy_only=False), "<f4")
                     for name in layout.floats], axis=1)  # (n, M + 1)
  rows = np.concatenate([ints.view(np.uint8).reshape(n, -1),
                         floats.view(np.uint8).reshape(n, -1)], axis=1)  # (n, R)
  return rows.tobytes()


def part_dir(out_dir: str, num_parts: int) -> str:
  return os.path.join(out_dir, f"of{num_parts}")


def _part_json(out_dir: str, num_parts: int, part: int) -> str:
  return os.path.join(part_dir(out_dir, num_parts), f"part-{part}.json")


@dataclasses.dataclass(frozen=True)
class Part:
  """One written part: its record files, rows and layout."""
  index: int
  num_parts: int
  files: Tuple[str, ...]
  rows: int
  layout: RecordLayout


def write_parts(shard_dir: str, spec: spec_lib.FeatureSpec, num_parts: int, out_dir: str,
                parts: Optional[Sequence[int]] = None) -> Dict[int, Part]:
  """Writes parts `parts` (default: all) of `shard_dir` into `out_dir`; returns them by index.

  Parts already written (their json exists, for the same layout) are reused.
  Each row group is read once, whatever the number of parts written.
  """
  _check_little_endian()
  layout = RecordLayout.from_spec(spec)
  wanted = list(range(num_parts)) if parts is None else sorted(set(parts))
  for i in wanted:
    if not 0 <= i < num_parts:
      raise ValueError(f"part {i} is not one of the {num_parts} parts")
  out = {}
  missing = []
  for i in wanted:
    part = load_part(out_dir, num_parts, i)
    if part is not None and part.layout == layout:
      out[i] = part
    else:
      missing.append(i)
  if not missing:
    return out
  directory = part_dir(out_dir, num_parts)
  os.makedirs(directory, exist_ok=True)
  slices = row_group_slices(shard_dir, num_parts)
  columns = [name for name, _ in layout.ints] + list(layout.floats)
  files = {i: [] for i in missing}
  rows = {i: 0 for i in missing}
  groups = sorted({(path, rg) for i in missing for path, rg, _, _ in slices[i]})
  for k, (path, rg) in enumerate(groups):
    table = pq.ParquetFile(path).read_row_group(rg, columns=columns)
    for i in missing:
      for p, g, start, stop in slices[i]:
        if (p, g) != (path, rg):
          continue
        name = os.path.join(directory, f"part-{i}-{k:05d}{RECORD_SUFFIX}")
        tmp = f"{name}.tmp{os.getpid()}"
        with open(tmp, "wb") as fh:
          fh.write(_encode(table.slice(start, stop - start), layout))
        os.replace(tmp, name)
        files[i].append(name)
        rows[i] += stop - start
  for i in missing:
    meta = {"index": i, "num_parts": num_parts, "rows": rows[i],
            "files": [os.path.basename(f) for f in files[i]],
            "layout": {"ints": [list(x) for x in layout.ints], "floats": list(layout.floats),
                       "label": layout.label}}
    path = _part_json(out_dir, num_parts, i)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
      json.dump(meta, fh, indent=1)
    os.replace(tmp, path)
    out[i] = Part(i, num_parts, tuple(files[i]), rows[i], layout)
  return out


def load_part(out_dir: str, num_parts: int, part: int) -> Optional[Part]:
  """The written part `part` of `num_parts` in `out_dir`, or None when not (completely) written."""
  path = _part_json(out_dir, num_parts, part)
  if not os.path.exists(path):
    return None
  with open(path) as fh:
    meta = json.load(fh)
  layout = RecordLayout(ints=tuple((n, int(w)) for n, w in meta["layout"]["ints"]),
                        floats=tuple(meta["layout"]["floats"]), label=meta["layout"]["label"])
  directory = part_dir(out_dir, num_parts)
  files = tuple(os.path.join(directory, f) for f in meta["files"])
  if not all(os.path.exists(f) for f in files):
    return None
  return Part(int(meta["index"]), int(meta["num_parts"]), files, int(meta["rows"]), layout)


def decode_batch(records: tf.Tensor, layout: RecordLayout, spec: spec_lib.FeatureSpec):
  """(B,) records -> (features dict, label (B,)), with the spec's dtypes and shapes."""
  raw = tf.io.decode_raw(records, tf.uint8)  # (B, R)
  batch = tf.shape(raw)[0]
  k = layout.num_ints
  ints = tf.bitcast(tf.reshape(raw[:, :8 * k], (batch, k, 8)), tf.int64)  # (B, K)
  floats = tf.bitcast(tf.reshape(raw[:, 8 * k:], (batch, len(layout.floats), 4)),
                      tf.float32)  # (B, M + 1)
  columns = {}
  offset = 0
  for name, width in layout.ints:
    columns[name] = ints[:, offset:offset + width] if width > 1 else ints[:, offset]
    offset += width
  for j, name in enumerate(layout.floats):
    columns[name] = floats[:, j]
  features = {f.name: columns[f.name] for f in spec.features}
  return features, columns[layout.label]


def part_dataset(part: Part, spec: spec_lib.FeatureSpec, batch_size: int, seed: int,
                 repeat: bool = False, skip_batches: int = 0,
                 num_batches: Optional[int] = None,
                 shuffle_buffer_rows: int = SHUFFLE_BUFFER_ROWS) -> tf.data.Dataset:
  """Shuffled (features, label) batches of one part, built from TF ops only.

  The file order and the rows (in a window of `shuffle_buffer_rows`) are
  shuffled with `seed`, the same way every time for the same seed and the same
  TF global seed (`tf.data` combines an op seed with `tf.random.set_seed`'s;
  distributed runs set it from trainer.seed on every task). Batches are full
  (`drop_remainder`).

  Args:
    part: Part. From `write_parts` / `load_part`.
    spec: FeatureSpec. The spec the part was written with.
    batch_size: int. Rows per batch.
    seed: int. Shuffle seed.
    repeat: bool. Repeat forever, reshuffling every pass (parameter-server
      workers); else one pass. Defaults to False.
    skip_batches: int. Batches to skip first (a resumed epoch). Defaults to 0.
    num_batches: int or None. Batches to take after the skip. Defaults to None.
    shuffle_buffer_rows: int. Rows of the shuffle window. Defaults to 65536.
  """
  checks.positive_int(batch_size, "batch_size")
  files = tf.data.Dataset.from_tensor_slices(list(part.files))
  files = files.shuffle(len(part.files), seed=seed, reshuffle_each_iteration=True)
  records = files.flat_map(
      lambda f: tf.data.FixedLengthRecordDataset(f, part.layout.record_bytes,
                                                 buffer_size=1 << 20))
  records = records.shuffle(max(1, min(shuffle_buffer_rows, part.rows)), seed=seed + 1,
                            reshuffle_each_iteration=True)
  if repeat:
    records = records.repeat()
  ds = records.batch(batch_size, drop_remainder=True)
  if skip_batches:
    ds = ds.skip(skip_batches)
  if num_batches is not None:
    ds = ds.take(num_batches)
  ds = ds.map(lambda r: decode_batch(r, part.layout, spec), num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True)
  return ds.prefetch(tf.data.AUTOTUNE)
