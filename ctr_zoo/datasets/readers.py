"""Streaming readers for raw CTR data: Criteo TSV, CSV with a header, Parquet.

Everything is read with pyarrow in record batches, so memory is bounded by the
batch size (``block_size`` bytes of text, or ``batch_rows`` Parquet rows), not
by the file size. No hand-written parser.

Formats (``file_format="auto"`` picks one from the file name):

- ``"tsv"``: the Criteo layout, no header, tab separated, the spec's
  ``raw_columns`` in order (label, I1..I13, C1..C26 for ``criteo_spec()``):
  Kaggle ``train.txt``, ``dac_sample.txt``, Criteo 1TB ``day_N``. Any name that
  is not ``*.csv*`` or ``*.parquet``/``*.pq`` is read as this.
- ``"csv"``: comma separated with a header line (e.g. ``Id,Label,I1..C26``).
  Spec columns are matched to header names exactly, else case-insensitively;
  extra columns (``Id``) are ignored.
- ``"parquet"``: columns matched by name like ``"csv"``.
- A ``pandas.DataFrame`` or ``pyarrow.Table`` in memory (columns by name).

``.gz`` / ``.bz2`` / ``.zst`` text files are decompressed on the fly.

Raw values and validation (done vectorised per batch):

- label: the string ``"0"`` or ``"1"`` (or an integer / bool / float column
  holding 0 and 1). Anything else, including missing, is a bad row.
- DenseFeature: a base-10 integer ``-?[0-9]{1,18}``, parsed as int64; empty is
  missing. Integer Parquet/DataFrame columns are cast to int64, float columns
  are kept as float64 (NaN is missing). Anything else is a bad row.
- CategoricalFeature / SequenceFeature: the exact string (no trimming, case
  sensitive); empty is missing. Integer columns become their decimal string.

A wrong number of fields, a non-numeric integer field, a label that is not 0/1,
an empty file, a truncated or corrupt compressed stream and an unreadable path
raise `DataError`, whose message names the file, the line (1-based, counting a
header line; "record batch k, row r" for Parquet; "row r" for a DataFrame) and
the field. With ``on_bad_rows="skip"`` bad rows are dropped and counted in the
`ReadSummary` instead (never silently). Empty files and unreadable or truncated
files always raise.

Each row carries a ``row_key``: its 0-based ordinal among the rows of its file
that have the right number of fields (for a clean file: line number - 1 -
header). Splits are a function of (file index, row key), so fit and transform
agree on them whatever the policy or batch size.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import threading
from typing import Any, Iterator, List, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ctr_zoo import checks
from ctr_zoo.feature_columns import spec as spec_lib

BAD_ROW_POLICIES = ("error", "skip")
FILE_FORMATS = ("auto", "tsv", "csv", "parquet")
DEFAULT_BLOCK_SIZE = 2 << 20  # bytes of text per record batch (~8k Criteo rows)
DEFAULT_BATCH_ROWS = 65536  # Parquet / DataFrame rows per record batch
MAX_EXAMPLES = 10  # bad rows quoted in a summary

_INT_PATTERN = r"^-?[0-9]{1,18}$"


class DataError(ValueError):
  """Bad input data: the message names the file, line (or batch/row) and field.

  Attributes:
    path: str. The file (or "<DataFrame>").
    line: int or None. 1-based line number in a text file (header counted), or
      the row within the record batch for Parquet / DataFrame input.
    field: str or None. The offending field, e.g. "I3", "label", "field count".
  """

  def __init__(self, message: str, path: Optional[str] = None, line: Optional[int] = None,
               field: Optional[str] = None):
    super().__init__(message)
    self.path = path
    self.line = line
    self.field = field


@dataclasses.dataclass
class ReadSummary:
  """Counts of one streaming read (filled in as batches are consumed).

  Attributes:
    rows_read: int. Rows returned (good rows).
    rows_skipped: int. Bad rows dropped under on_bad_rows="skip".
    skipped_by_reason: dict. Skips per reason ("field count", "I3: ...", ...).
    examples: list of str. The first bad rows, with file, line and field.
    files: list of str. Files read, in order.
  """
  rows_read: int = 0
  rows_skipped: int = 0
  skipped_by_reason: dict = dataclasses.field(default_factory=dict)
  examples: list = dataclasses.field(default_factory=list)
  files: list = dataclasses.field(default_factory=list)

  def add_skip(self, reason: str, example: str, count: int = 1) -> None:
    self.rows_skipped += count
    self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + count
    if len(self.examples) < MAX_EXAMPLES:
      self.examples.append(example)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass
class RawBatch:
  """One validated record batch of raw values.

  Attributes:
    table: pa.Table. Columns: the label as int8 0/1, dense features as int64
      or float64 (nullable), categorical and sequence features as string
      (nullable; empty strings are null).
    row_keys: np.ndarray int64 (n,). Row ordinals within the file (see module doc).
    file_index: int. Index of the file in the source list.
    path: str. The file (or "<DataFrame>").
  """
  table: pa.Table
  row_keys: np.ndarray
  file_index: int
  path: str

  @property
  def num_rows(self) -> int:
    return self.table.num_rows


def expand_source(source: Any) -> list:
  """Normalises a source to a list of paths / in-memory tables.

  Args:
    source: a path, a glob pattern, a list of paths, a pandas DataFrame or a
      pyarrow Table.

  Returns:
    A list whose items are paths (str) or in-memory tables.
  """
  if isinstance(source, (pa.Table, pa.RecordBatch)) or _is_dataframe(source):
    return [source]
  if isinstance(source, (str, os.PathLike)):
    source = os.fspath(source)
    if any(ch in source for ch in "*?["):
      paths = sorted(glob.glob(source))
      if not paths:
        raise DataError(f"no file matches {source!r}", path=source)
      return paths
    return [source]
  if isinstance(source, (list, tuple)):
    if not source:
      raise DataError("the source is an empty list of files")
    out = []
    for s in source:
      out.extend(expand_source(s))
    return out
  raise TypeError(f"source must be a path, a list of paths, a DataFrame or a pyarrow Table, "
                  f"got {type(source).__name__}")


def _is_dataframe(x) -> bool:
  return type(x).__name__ == "DataFrame" and hasattr(x, "columns")


def detect_format(path: str) -> str:
  """'parquet', 'csv' (with header) or 'tsv' (Criteo, no header) from a file name."""
  name = os.path.basename(path).lower()
  for ext in (".gz", ".bz2", ".zst", ".lz4"):
    if name.endswith(ext):
      name = name[: -len(ext)]
  if name.endswith((".parquet", ".pq")):
    return "parquet"
  if name.endswith(".csv"):
    return "csv"
  return "tsv"


def read_batches(source: Any, spec: spec_lib.FeatureSpec, *, on_bad_rows: str = "error",
                 file_format: str = "auto", block_size: int = DEFAULT_BLOCK_SIZE,
                 batch_rows: int = DEFAULT_BATCH_ROWS, summary: Optional[ReadSummary] = None,
                 progress=None) -> Iterator[RawBatch]:
  """Streams validated raw record batches from every file of `source`.

  Args:
    source: a path, glob, list of paths, pandas DataFrame or pyarrow Table.
    spec: FeatureSpec. Which columns to read and how to validate them.
    on_bad_rows: str. "error" raises `DataError` at the first bad row; "skip"
      drops bad rows and counts them in `summary`. Defaults to "error".
    file_format: str. "auto", "tsv", "csv" or "parquet". Defaults to "auto".
    block_size: int. Bytes of text per record batch. Defaults to 2 MiB.
    batch_rows: int. Rows per Parquet / in-memory batch, and the least rows
      per yielded text batch (small text blocks are merged). Defaults to 65536.
    summary: ReadSummary or None. Filled in with counts while reading.
    progress: callable(path, bytes_done, bytes_total) or None, called per batch.

  Yields:
    RawBatch, in file order then row order.

  Raises:
    DataError: bad data (see the module docstring).
  """
  checks.choice(on_bad_rows, "on_bad_rows", BAD_ROW_POLICIES)
  checks.choice(file_format, "file_format", FILE_FORMATS)
  summary = summary if summary is not None else ReadSummary()
  for file_index, item in enumerate(expand_source(source)):
    if isinstance(item, str):
      summary.files.append(item)
      fmt = detect_format(item) if file_format == "auto" else file_format
      if fmt == "parquet":
        gen = _read_parquet(item, file_index, spec, on_bad_rows, batch_rows, summary, progress)
      else:
        gen = _read_text(item, file_index, spec, fmt, on_bad_rows, block_size, summary, progress)
    else:
      summary.files.append("<DataFrame>")
      gen = _read_memory(item, file_index, spec, on_bad_rows, batch_rows, summary)
    for batch in _coalesce(gen, batch_rows):
      summary.rows_read += batch.num_rows
      yield batch


def _coalesce(batches: Iterator[RawBatch], min_rows: int) -> Iterator[RawBatch]:
  """Merges consecutive batches of one file until each has >= min_rows rows.

  Small text blocks parse fastest; big batches amortise the per-batch cost of
  the vectorised work downstream (e.g. building a vocabulary's hash table).
  """
  pending = []
  rows = 0
  for batch in batches:
    pending.append(batch)
    rows += batch.num_rows
    if rows >= min_rows:
      yield _merge_batches(pending)
      pending, rows = [], 0
  if pending:
    yield _merge_batches(pending)


def _merge_batches(batches: List[RawBatch]) -> RawBatch:
  if len(batches) == 1:
    return batches[0]
  table = pa.concat_tables([b.table for b in batches])  # chunked: no copy
  keys = np.concatenate([b.row_keys for b in batches])
  return RawBatch(table, keys, batches[0].file_index, batches[0].path)


# --- column typing and validation -------------------------------------------

def _target_kind(spec: spec_lib.FeatureSpec, name: str) -> str:
  if name == spec.label:
    return "label"
  f = spec[name]
  if isinstance(f, spec_lib.DenseFeature):
    return "dense"
  return "string"


def _coerce_column(arr: pa.Array, kind: str, empty_is_null: bool = False):
  """Returns (typed array, bad mask np.bool_ or None, reason) for one column.

  `empty_is_null`: the reader already turned empty strings into nulls (text
  files read with null_values=[""]), so strings need no further check.
  """
  t = arr.type
  if kind == "label":
    if pa.types.is_string(t) or pa.types.is_large_string(t):
      ok = pc.is_in(arr, value_set=pa.array(["0", "1"]))
      ok = pc.fill_null(ok, False)
      bad = ~ok.to_numpy(zero_copy_only=False)
      typed = pc.cast(pc.if_else(ok, arr, "0"), pa.int8())
      return typed, (bad if bad.any() else None), "label must be 0 or 1"
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
      values = arr.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> nan
      bad = ~((values == 0) | (values == 1))
      typed = pa.array(np.where(bad, 0, values).astype(np.int8))
      return typed, (bad if bad.any() else None), "label must be 0 or 1"
    raise TypeError(f"label column has type {t}, expected string, integer, float or bool")
  if kind == "dense":
    if pa.types.is_string(t) or pa.types.is_large_string(t):
      try:
        return pc.cast(arr, pa.int64()), None, ""
      except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        ok = pc.fill_null(pc.match_substring_regex(arr, _INT_PATTERN), True)
        bad = ~ok.to_numpy(zero_copy_only=False)
        typed = pc.cast(pc.if_else(ok, arr, pa.scalar(None, pa.string())), pa.int64())
        return typed, bad, "not an integer"
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
      return pc.cast(arr, pa.int64()), None, ""
    if pa.types.is_floating(t):
      arr = pc.cast(arr, pa.float64())
      return pc.if_else(pc.is_nan(arr), pa.scalar(None, pa.float64()), arr), None, ""
    if pa.types.is_null(t):
      return pa.nulls(len(arr), pa.int64()), None, ""
    raise TypeError(f"a dense column has type {t}, expected string, integer or float")
  # string-valued: categorical / sequence
  if pa.types.is_dictionary(t):
    arr = arr.dictionary_decode()
    t = arr.type
  if not (pa.types.is_string(t)):
    if pa.types.is_floating(t):
      raise TypeError(f"a categorical column has float type {t}; give strings or integers")
    arr = pc.cast(arr, pa.string())
  if empty_is_null and arr.type == pa.string():
    return arr, None, ""
  # empty string is missing
  arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
  return arr, None, ""


def _validate(table: pa.Table, spec: spec_lib.FeatureSpec, names: Sequence[str],
              on_bad_rows: str, where, summary: ReadSummary, path: str,
              empty_is_null: bool = False) -> tuple:
  """Types every column; drops or raises on bad rows.

  Args:
    table: raw table whose columns are `names` (spec raw-column names).
    where: callable(row_index_in_batch) -> str location (e.g. "line 12").
    empty_is_null: bool. Empty strings are already null (text reader).

  Returns:
    (typed table, kept-row mask or None).
  """
  columns = []
  bad_any = None
  reasons = []
  for name in names:
    arr = table.column(name).combine_chunks() if table.column(name).num_chunks != 1 else table.column(name).chunk(0)
    not_utf8 = _invalid_utf8(arr) if pa.types.is_string(arr.type) else None
    if not_utf8 is not None:
      row = int(np.argmax(not_utf8))
      value = arr.cast(pa.binary())[row].as_py()
      if on_bad_rows == "error":
        loc = where(row)
        raise DataError(f"{path}: {loc}, field {name!r}: invalid UTF-8, got {value!r}",
                        path=path, line=_line_of(loc), field=name)
      reasons.append((name, "invalid UTF-8", not_utf8))
      bad_any = not_utf8 if bad_any is None else (bad_any | not_utf8)
      arr = pc.if_else(pa.array(~not_utf8), arr, pa.scalar(None, pa.string()))
    try:
      typed, bad, reason = _coerce_column(arr, _target_kind(spec, name), empty_is_null)
    except TypeError as e:
      raise DataError(f"{path}: field {name!r}: {e}", path=path, field=name) from e
    columns.append(typed)
    if bad is not None:
      row = int(np.argmax(bad))
      value = arr[row].as_py()
      if on_bad_rows == "error":
        loc = where(row)
        raise DataError(f"{path}: {loc}, field {name!r}: {reason}, got {value!r}",
                        path=path, line=_line_of(loc), field=name)
      reasons.append((name, reason, bad))
      bad_any = bad if bad_any is None else (bad_any | bad)
  typed_table = pa.Table.from_arrays(columns, names=list(names))
  if bad_any is None:
    return typed_table, None
  # count each bad row once, under its first bad field
  counted = np.zeros(len(bad_any), bool)
  for name, reason, bad in reasons:
    new = bad & ~counted
    if new.any():
      row = int(np.argmax(new))
      value = table.column(name)[row]
      value = value.cast(pa.binary()).as_py() if reason == "invalid UTF-8" else value.as_py()
      summary.add_skip(f"{name}: {reason}",
                       f"{path}: {where(row)}, field {name!r}: {reason}, got {value!r}",
                       int(new.sum()))
      counted |= new
  keep = ~bad_any
  return typed_table.filter(pa.array(keep)), keep


def _blank_rows(table: pa.Table) -> Optional[np.ndarray]:
  """Mask of the rows whose every field is missing (blank lines), or None if there are none."""
  if table.num_rows == 0 or table.num_columns == 0:
    return None
  blank = None
  for column in table.columns:
    missing = column.is_null()
    blank = missing if blank is None else pc.and_(blank, missing)
  mask = blank.to_numpy(zero_copy_only=False) if isinstance(blank, pa.Array) else \
      np.asarray(blank.to_pylist(), dtype=bool)
  return mask if mask.any() else None


def _shifted(where, rows: np.ndarray):
  """`where` for a table whose row i was row `rows[i]` before some rows were dropped."""
  return lambda row: where(int(rows[row]))


def _invalid_utf8(arr: pa.Array) -> Optional[np.ndarray]:
  """Mask of the values of a string array that are not valid UTF-8, or None if all are."""
  try:
    arr.validate(full=True)
    return None
  except pa.ArrowInvalid:
    pass
  values = arr.cast(pa.binary()).to_pylist()
  bad = np.zeros(len(values), dtype=bool)
  for i, value in enumerate(values):
    if value is not None:
      try:
        value.decode("utf-8")
      except UnicodeDecodeError:
        bad[i] = True
  return bad if bad.any() else None


def _line_of(loc: str) -> Optional[int]:
  m = re.search(r"(?:line|row) (\d+)", loc)
  return int(m.group(1)) if m else None


# --- text -------------------------------------------------------------------

class _RowCountErrors:
  """pyarrow invalid-row handler: records rows with a wrong field count."""

  def __init__(self):
    self.numbers = []  # physical 1-based line numbers (None when parsing threaded)
    self.texts = []
    self.actual = []
    self.expected = None
    self._lock = threading.Lock()

  def __call__(self, row) -> str:
    with self._lock:
      self.numbers.append(row.number)
      try:
        self.texts.append(row.text)
      except UnicodeDecodeError:  # pyarrow decodes the row's text; it may not be UTF-8
        self.texts.append("<not UTF-8 text>")
      self.actual.append(row.actual_columns)
      self.expected = row.expected_columns
    return "skip"


def _open_stream(path: str):
  try:
    if os.path.isdir(path):
      raise IsADirectoryError(f"{path} is a directory")
    size = os.path.getsize(path)
    raw = open(path, "rb")  # pylint: disable=consider-using-with
  except OSError as e:
    raise DataError(f"cannot read {path}: {e}", path=path) from e
  if size == 0:
    raw.close()
    raise DataError(f"{path}: the file is empty (0 bytes)", path=path)
  compression = _compression_of(path)
  if compression is None:
    kind = _compressed_magic(raw.read(8))
    raw.seek(0)
    if kind:
      raw.close()
      raise DataError(f"{path} looks compressed ({kind} data) but its name does not end in a "
                      f"compressed suffix: name it *{_SUFFIX_OF[kind]} to read it decompressed, "
                      "or decompress it", path=path)
  try:
    stream = pa.input_stream(raw, compression=compression)
  except (OSError, pa.ArrowException) as e:
    raw.close()
    raise DataError(f"cannot read {path}: {e}", path=path) from e
  return raw, stream, size


_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\x28\xb5\x2f\xfd", "zstd"),
          (b"\x04\x22\x4d\x18", "lz4"))
_SUFFIX_OF = {"gzip": ".gz", "bz2": ".bz2", "zstd": ".zst", "lz4": ".lz4"}


def _compressed_magic(head: bytes) -> Optional[str]:
  """The compression whose magic bytes start `head`, or None."""
  for magic, kind in _MAGIC:
    if head.startswith(magic):
      return kind
  return None


def _compression_of(path: str) -> Optional[str]:
  lower = path.lower()
  for ext, codec in ((".gz", "gzip"), (".bz2", "bz2"), (".zst", "zstd"), (".lz4", "lz4")):
    if lower.endswith(ext):
      return codec
  return None


def _header_names(path: str, delimiter: str) -> list:
  raw, stream, _ = _open_stream(path)
  try:
    head = b""
    while b"\n" not in head:
      chunk = stream.read(1 << 16)
      if not chunk:
        break
      head += chunk
  except (OSError, pa.ArrowException) as e:
    raise DataError(f"{path}: cannot read the header line: {e}", path=path, line=1) from e
  finally:
    raw.close()
  line = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
  if not line.strip():
    raise DataError(f"{path}: line 1: the header line is empty", path=path, line=1)
  return [h.strip().strip('"') for h in line.split(delimiter)]


def _match_columns(available: Sequence[str], wanted: Sequence[str], path: str) -> dict:
  """Maps each spec column to a column of the file (exact, else case-insensitive)."""
  lower = {}
  for a in available:
    lower.setdefault(a.lower(), a)
  out = {}
  for w in wanted:
    if w in available:
      out[w] = w
    elif w.lower() in lower:
      out[w] = lower[w.lower()]
    else:
      raise DataError(f"{path}: field {w!r} is not among the columns {list(available)}",
                      path=path, field=w)
  return out


def _read_text(path, file_index, spec, fmt, on_bad_rows, block_size, summary, progress):
  wanted = spec.raw_columns
  header = fmt == "csv"
  delimiter = "," if fmt == "csv" else "\t"
  if header:
    names = _header_names(path, delimiter)
    colmap = _match_columns(names, wanted, path)
    read_options = dict(skip_rows=0)
    file_columns = names
  else:
    colmap = {w: w for w in wanted}
    file_columns = list(wanted)
    read_options = dict(column_names=file_columns)
  errors = _RowCountErrors()
  exact_lines = on_bad_rows == "skip"  # threaded parsing gives no line numbers
  ropts = pa_csv.ReadOptions(use_threads=not exact_lines, block_size=block_size, **read_options)
  popts = pa_csv.ParseOptions(delimiter=delimiter, quote_char='"' if header else False,
                              ignore_empty_lines=False, invalid_row_handler=errors)
  copts = pa_csv.ConvertOptions(
      check_utf8=False,  # checked per column in _validate: bad rows get their line number
      column_types={colmap[w]: pa.string() for w in wanted},
      include_columns=[colmap[w] for w in wanted], strings_can_be_null=True,
      null_values=[""], quoted_strings_can_be_null=True)
  raw, stream, size = _open_stream(path)
  offset_lines = 1 if header else 0
  rows_seen = 0  # rows with the right field count so far (good or bad values)
  try:
    try:
      reader = pa_csv.open_csv(stream, read_options=ropts, parse_options=popts, convert_options=copts)
    except pa.ArrowInvalid as e:
      if "Empty CSV" in str(e):
        raise DataError(f"{path}: the file is empty", path=path) from e
      raise DataError(f"{path}: cannot parse: {e}", path=path) from e
    except OSError as e:
      raise DataError(f"{path}: cannot read (truncated or corrupt compressed stream?): {e}",
                      path=path) from e
    n_errors_handled = 0
    while True:
      try:
        batch = reader.read_next_batch()
      except StopIteration:
        break
      except pa.ArrowInvalid as e:
        raise DataError(f"{path}: after line {rows_seen + offset_lines}: cannot parse: {e}",
                        path=path, line=rows_seen + offset_lines + 1) from e
      except OSError as e:
        raise DataError(f"{path}: after line {rows_seen + offset_lines}: truncated or corrupt "
                        f"compressed stream: {e}", path=path, line=rows_seen + offset_lines + 1) from e
      n = batch.num_rows
      # Rows with a wrong number of fields (recorded by the handler).
      if len(errors.numbers) > n_errors_handled:
        if on_bad_rows == "error":
          text = errors.texts[n_errors_handled]
          line = _locate_line(path, fmt, wanted, colmap, delimiter, header, text)
          raise DataError(
              f"{path}: line {line}, field count: expected {errors.expected} fields, got "
              f"{errors.actual[n_errors_handled]} (text {text[:80]!r})",
              path=path, line=line, field="field count")
        for i in range(n_errors_handled, len(errors.numbers)):
          summary.add_skip("field count",
                           f"{path}: line {errors.numbers[i]}, field count: expected "
                           f"{errors.expected} fields, got {errors.actual[i]}")
        n_errors_handled = len(errors.numbers)
      keys = np.arange(rows_seen, rows_seen + n, dtype=np.int64)
      skipped_lines = np.sort(np.array([x for x in errors.numbers if x is not None], np.int64))

      def where(row, keys=keys, skipped_lines=skipped_lines):
        k = int(keys[row])
        if len(skipped_lines):
          j = int(np.searchsorted(skipped_lines - offset_lines - np.arange(len(skipped_lines)) - 1,
                                  k, side="right"))
        else:
          j = 0
        return f"line {k + 1 + j + offset_lines}"

      # include_columns = the spec's columns in spec order; rename by position.
      table = pa.Table.from_batches([batch]).rename_columns(list(wanted))
      blank = _blank_rows(table)
      if blank is not None:  # lines with no value at all (e.g. a trailing blank line): ignored
        table = table.filter(pa.array(~blank))
        keys = keys[~blank]
        where = _shifted(where, np.flatnonzero(~blank))
      typed, keep = _validate(table, spec, wanted, on_bad_rows, where, summary, path,
                              empty_is_null=True)
      rows_seen += n
      if keep is not None:
        keys = keys[keep]
      if progress is not None:
        progress(path, raw.tell(), size)
      if typed.num_rows:
        yield RawBatch(typed, keys, file_index, path)
  finally:
    raw.close()
  if rows_seen == 0 and not errors.numbers:
    raise DataError(f"{path}: the file has no data rows", path=path)


def _locate_line(path, fmt, wanted, colmap, delimiter, header, text) -> Optional[int]:
  """Re-reads `path` single-threaded to find the line number of a bad row."""
  found = []

  def handler(row):
    try:
      row_text = row.text
    except UnicodeDecodeError:
      row_text = "<not UTF-8 text>"
    if row_text == text and not found:
      found.append(row.number)
    return "skip"

  try:
    raw, stream, _ = _open_stream(path)
    ropts = pa_csv.ReadOptions(use_threads=False, block_size=1 << 20,
                               **({} if header else dict(column_names=list(wanted))))
    popts = pa_csv.ParseOptions(delimiter=delimiter, quote_char='"' if header else False,
                                ignore_empty_lines=False, invalid_row_handler=handler)
    copts = pa_csv.ConvertOptions(column_types={colmap[w]: pa.string() for w in wanted},
                                  include_columns=[colmap[wanted[0]]], strings_can_be_null=True)
    reader = pa_csv.open_csv(stream, read_options=ropts, parse_options=popts, convert_options=copts)
    for _ in reader:
      if found:
        break
    raw.close()
  except (OSError, pa.ArrowException):
    pass
  return found[0] if found else None


# --- parquet and in-memory ------------------------------------------------------

def _read_parquet(path, file_index, spec, on_bad_rows, batch_rows, summary, progress):
  try:
    pf = pq.ParquetFile(path)
  except OSError as e:
    raise DataError(f"cannot read {path}: {e}", path=path) from e
  except pa.ArrowException as e:
    raise DataError(f"{path}: not a readable Parquet file: {e}", path=path) from e
  wanted = spec.raw_columns
  colmap = _match_columns(pf.schema_arrow.names, wanted, path)
  rows_seen = 0
  total = pf.metadata.num_rows
  for b, batch in enumerate(pf.iter_batches(batch_size=batch_rows, columns=[colmap[w] for w in wanted])):
    table = pa.Table.from_batches([batch]).rename_columns(list(wanted))
    n = table.num_rows
    keys = np.arange(rows_seen, rows_seen + n, dtype=np.int64)
    typed, keep = _validate(table, spec, wanted, on_bad_rows,
                            lambda r, b=b, s=rows_seen: f"record batch {b}, row {r} (file row {s + r})",
                            summary, path)
    rows_seen += n
    if keep is not None:
      keys = keys[keep]
    if progress is not None:
      progress(path, rows_seen, total)
    if typed.num_rows:
      yield RawBatch(typed, keys, file_index, path)
  if rows_seen == 0:
    raise DataError(f"{path}: the file has no data rows", path=path)


def _read_memory(item, file_index, spec, on_bad_rows, batch_rows, summary):
  if _is_dataframe(item):
    table = pa.Table.from_pandas(item, preserve_index=False)
  elif isinstance(item, pa.RecordBatch):
    table = pa.Table.from_batches([item])
  else:
    table = item
  if table.num_rows == 0:
    raise DataError("<DataFrame>: the DataFrame is empty", path="<DataFrame>")
  wanted = spec.raw_columns
  colmap = _match_columns(table.column_names, wanted, "<DataFrame>")
  table = table.select([colmap[w] for w in wanted]).rename_columns(list(wanted))
  for start in range(0, table.num_rows, batch_rows):
    part = table.slice(start, batch_rows)
    keys = np.arange(start, start + part.num_rows, dtype=np.int64)
    typed, keep = _validate(part, spec, wanted, on_bad_rows,
                            lambda r, s=start: f"row {s + r}", summary, "<DataFrame>")
    if keep is not None:
      keys = keys[keep]
    if typed.num_rows:
      yield RawBatch(typed, keys, file_index, "<DataFrame>")
