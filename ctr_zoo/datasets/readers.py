"""Streaming readers for raw CTR data: TSV, CSV with a header, Parquet, libFM / libFFM.

Everything is read in record batches, so memory is bounded by the batch size
(``block_size`` bytes of text, or ``batch_rows`` Parquet rows), not by the
file size. Text is parsed with pyarrow (libFM lines are split and typed with
pyarrow compute, a block at a time).

Formats (``file_format="auto"`` picks one from the file name):

- ``"tsv"``: no header, tab separated, the spec's ``raw_columns`` in order
  (label, I1..I13, C1..C26 for ``criteo_spec()``): Kaggle ``train.txt``,
  ``dac_sample.txt``, Criteo 1TB ``day_N``. Any name that matches nothing
  below is read as this.
- ``"csv"`` (``*.csv``): comma separated with a header line (e.g.
  ``Id,Label,I1..C26``, or Avazu's ``id,click,hour,...``). The columns the
  spec reads are matched to header names exactly, else case-insensitively;
  other columns are ignored.
- ``"parquet"`` (``*.parquet``, ``*.pq``): columns matched by name like ``"csv"``.
- ``"libfm"`` (``*.libfm``, ``*.libsvm``, ``*.svm``): ``label feat:val
  feat:val ...`` separated by whitespace; label 1 / -1 (or +1, or 0 / 1).
  The fields are the spec's raw columns other than the label, in order. An
  item's field is given by a feature-id -> field map (``field_map``: a file
  of ``<feature id> <field name>`` lines, or a dict), or, without a map, by
  its position in the line: item i belongs to field i, and every line must
  then have exactly one item per field (one-hot data with a fixed field
  order, such as Frappe's 10 fields; a line with another number of items is
  a "field count" bad row). A categorical field's value is the feature id
  (its value must be 1: one-hot); a dense field's value is ``val``; a
  sequence field's value is its items' feature ids in line order. A field
  without an item is missing; two items for a non-sequence field make a bad
  row. Blank lines are skipped.
- ``"libffm"`` (``*.libffm``, ``*.ffm``): ``label field:feat:val ...``, the
  field given by its 0-based index into those fields.
- A ``pandas.DataFrame`` or ``pyarrow.Table`` in memory (columns by name).

``.gz`` / ``.bz2`` / ``.zst`` text files are decompressed on the fly.

Raw values and validation (done vectorised per batch):

- label: the string ``"0"`` or ``"1"`` (or an integer / bool / float column
  holding 0 and 1). Anything else, including missing, is a bad row.
- DenseFeature, ``value_type="int"``: one grammar everywhere, base-10
  ``-?[0-9]+`` within int64 (no ``+``, no spaces, no ``0x``; the serving
  export's in-graph parse accepts exactly the same); empty is missing.
  ``value_type="float"``: a decimal number ``-?(digits[.digits]|.digits)
  [e[+-]digits]``, finite. Integer Parquet/DataFrame columns are cast to
  int64, float columns are kept as float64 (NaN is missing, +-inf is a bad
  row). Anything else is a bad row.
- CategoricalFeature / SequenceFeature: the exact string (no trimming, case
  sensitive); empty is missing. Integer columns become their decimal string.
  A feature with ``derive`` reads its source through `derive_tokens` (a
  value that is not a valid YYMMDDHH time is a bad row).

Each feature reads its ``raw_column`` (its ``source``, else its name); a
yielded batch has one column per feature (named like the feature) plus the
label, so one raw column can feed several features. Bad values are reported
under the raw column's name.

A wrong number of fields, a non-numeric value, a label that is not 0/1, a
malformed libFM item, an empty file, a truncated or corrupt compressed
stream and an unreadable path raise `DataError`, whose message names the
file, the line (1-based, counting a header line; "record batch k, row r"
for Parquet; "row r" for a DataFrame) and the field. With
``on_bad_rows="skip"`` bad rows are dropped and counted in the `ReadSummary`
instead (never silently). Empty files and unreadable or truncated files
always raise. The last line of a file, with or without a final newline, is
checked like every other line.

A file must not change while it is read: its size and modification time are
compared with those at the start after every batch and at the end, and a
change (e.g. rows appended by a writer that is still running) raises
`DataError`.

Each row carries a ``row_key``: its 0-based ordinal among the rows of its file
that have the right number of fields (for a clean file: line number - 1 -
header; libFM: among the non-blank lines). Splits are a function of (file
index, row key), so fit and transform agree on them whatever the policy or
batch size.
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
FILE_FORMATS = ("auto", "tsv", "csv", "parquet", "libfm", "libffm")
DEFAULT_BLOCK_SIZE = 2 << 20  # bytes of text per record batch (~8k Criteo rows)
DEFAULT_BATCH_ROWS = 65536  # Parquet / DataFrame rows per record batch
MAX_EXAMPLES = 10  # bad rows quoted in a summary

_INT_PATTERN = r"^-?[0-9]+$"


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
    skipped_rows: list or None. When a list (``ReadSummary(skipped_rows=[])``),
      every skipped row is appended as (file_index, row, reason), row being
      its 0-based position among ALL the data rows of its file (header
      excluded), so a caller can place it among the rows read.
  """
  rows_read: int = 0
  rows_skipped: int = 0
  skipped_by_reason: dict = dataclasses.field(default_factory=dict)
  examples: list = dataclasses.field(default_factory=list)
  files: list = dataclasses.field(default_factory=list)
  skipped_rows: Optional[list] = None

  def add_skip(self, reason: str, example: str, count: int = 1, rows=(),
               file_index: int = 0) -> None:
    self.rows_skipped += count
    self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + count
    if len(self.examples) < MAX_EXAMPLES:
      self.examples.append(example)
    if self.skipped_rows is not None:
      self.skipped_rows.extend((file_index, int(r), reason) for r in rows)

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
  """The format of a file from its name (see the module doc); "tsv" when nothing else fits."""
  name = os.path.basename(path).lower()
  for ext in (".gz", ".bz2", ".zst", ".lz4"):
    if name.endswith(ext):
      name = name[: -len(ext)]
  if name.endswith((".parquet", ".pq")):
    return "parquet"
  if name.endswith(".csv"):
    return "csv"
  if name.endswith((".libffm", ".ffm")):
    return "libffm"
  if name.endswith((".libfm", ".libsvm", ".svm")):
    return "libfm"
  return "tsv"


def read_batches(source: Any, spec: spec_lib.FeatureSpec, *, on_bad_rows: str = "error",
                 file_format: str = "auto", block_size: int = DEFAULT_BLOCK_SIZE,
                 batch_rows: int = DEFAULT_BATCH_ROWS, summary: Optional[ReadSummary] = None,
                 progress=None, field_map=None, with_label: bool = True,
                 extra_columns: Sequence[str] = ()) -> Iterator[RawBatch]:
  """Streams validated raw record batches from every file of `source`.

  Args:
    source: a path, glob, list of paths, pandas DataFrame or pyarrow Table.
    spec: FeatureSpec. Which columns to read and how to validate them.
    on_bad_rows: str. "error" raises `DataError` at the first bad row; "skip"
      drops bad rows and counts them in `summary`. Defaults to "error".
    file_format: str. One of FILE_FORMATS. Defaults to "auto".
    block_size: int. Bytes of text per record batch. Defaults to 2 MiB.
    batch_rows: int. Rows per Parquet / in-memory batch, and the least rows
      per yielded text batch (small text blocks are merged). Defaults to 65536.
    summary: ReadSummary or None. Filled in with counts while reading.
    progress: callable(path, bytes_done, bytes_total) or None, called per batch.
    field_map: libFM only: a path (see `load_field_map`) or a dict feature id
      -> field name; None = fields by position in the line. Defaults to None.
    with_label: bool. The files hold the label column. False reads
      feature-only rows (a headerless TSV then has the spec's columns without
      the label; a CSV / Parquet label column is not read) and the batches
      have no label column. libFM / libFFM lines always start with a label.
      Defaults to True.
    extra_columns: column names of a CSV / Parquet / DataFrame source that
      are not in the spec, returned as strings beside the spec's columns,
      unvalidated (e.g. an id to pass through). Defaults to ().

  Yields:
    RawBatch, in file order then row order.

  Raises:
    DataError: bad data (see the module docstring).
  """
  checks.choice(on_bad_rows, "on_bad_rows", BAD_ROW_POLICIES)
  checks.choice(file_format, "file_format", FILE_FORMATS)
  summary = summary if summary is not None else ReadSummary()
  layout = _Layout(with_label, tuple(extra_columns))
  for file_index, item in enumerate(expand_source(source)):
    if isinstance(item, str):
      summary.files.append(item)
      fmt = detect_format(item) if file_format == "auto" else file_format
      if fmt == "parquet":
        gen = _read_parquet(item, file_index, spec, on_bad_rows, batch_rows, summary, progress,
                            layout)
      elif fmt in ("libfm", "libffm"):
        if not with_label or extra_columns:
          raise DataError(f"{item}: {fmt} lines always start with a label and have no named "
                          "columns (read them with the label; no extra columns)", path=item)
        gen = _read_libfm(item, file_index, spec, fmt, on_bad_rows, block_size, summary, progress,
                          field_map)
      else:
        gen = _read_text(item, file_index, spec, fmt, on_bad_rows, block_size, summary, progress,
                         layout)
    else:
      summary.files.append("<DataFrame>")
      gen = _read_memory(item, file_index, spec, on_bad_rows, batch_rows, summary, layout)
    for batch in _coalesce(gen, batch_rows):
      summary.rows_read += batch.num_rows
      yield batch


@dataclasses.dataclass(frozen=True)
class _Layout:
  """Whether a read has the label column, and the extra columns it passes on."""
  with_label: bool = True
  extra: tuple = ()

  def needed(self, spec: spec_lib.FeatureSpec) -> list:
    """The spec columns a read validates: [label] + input columns (label only `with_label`)."""
    return ([spec.label] if self.with_label else []) + list(spec.input_columns)


def _with_extra(typed: pa.Table, raw: pa.Table, extra, keep) -> pa.Table:
  """`typed` plus the `extra` columns of `raw` (as strings), filtered like the typed rows."""
  for name in extra:
    column = raw.column(name)
    if keep is not None:
      column = column.filter(pa.array(keep))
    typed = typed.append_column(name, pc.cast(column, pa.string()))
  return typed


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

_FLOAT_PATTERN = r"^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"
_TIME_PATTERN = r"^[0-9]{8}$"
LABEL_REASON = "label must be 0 or 1"


def _kind_of(feature) -> str:
  """"int", "float" (dense values) or "string" (categorical and sequence tokens)."""
  if isinstance(feature, spec_lib.DenseFeature):
    return feature.value_type
  return "string"


def _is_text(t) -> bool:
  return pa.types.is_string(t) or pa.types.is_large_string(t)


def _parse_ints(arr: pa.Array):
  """Base-10 integer strings -> (int64 array, bad mask or None). Nulls stay null.

  The grammar is `-?[0-9]+` within the int64 range: no "+", no spaces, no "0x"
  (pyarrow's cast alone would read "0x10" as 16).
  """
  try:
    typed = pc.cast(arr, pa.int64())
    if not _holds_x(arr):  # the cast also reads hexadecimal "0x10"; nothing else off-grammar
      return typed, None
  except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
    pass
  ok = pc.fill_null(pc.match_substring_regex(arr, _INT_PATTERN), True).to_numpy(
      zero_copy_only=False)
  candidates = pc.if_else(pa.array(ok), arr, pa.scalar(None, pa.string()))
  try:
    typed = pc.cast(candidates, pa.int64())
  except pa.ArrowInvalid:  # digits outside the int64 range
    values = []
    for i, v in enumerate(candidates.to_pylist()):
      if v is not None and not -(1 << 63) <= int(v) < (1 << 63):
        ok[i] = False
        v = None
      values.append(None if v is None else int(v))
    typed = pa.array(values, pa.int64())
  return typed, ~ok


def _string_bytes(arr: pa.Array) -> np.ndarray:
  """The UTF-8 bytes of a string array's values, concatenated (a view, no copy)."""
  bufs = arr.buffers()
  if bufs[2] is None or len(arr) == 0:
    return np.zeros(0, np.uint8)
  offsets = np.frombuffer(bufs[1], np.int32, count=len(arr) + 1, offset=4 * arr.offset)
  return np.frombuffer(bufs[2], np.uint8)[offsets[0]:offsets[-1]]


def _holds_x(arr: pa.Array) -> bool:
  """Whether any value of a string array holds "x" or "X" (one vectorised pass over its bytes)."""
  if arr.type != pa.string():
    return bool(pc.any(pc.match_substring(arr, "x", ignore_case=True)).as_py())
  data = _string_bytes(arr)
  return bool(data.size) and bool(((data | 0x20) == ord("x")).any())


def _parse_floats(arr: pa.Array):
  """Decimal number strings -> (float64 array, bad mask or None); non-finite values are bad."""
  ok = pc.fill_null(pc.match_substring_regex(arr, _FLOAT_PATTERN), True).to_numpy(
      zero_copy_only=False)
  typed = pc.cast(pc.if_else(pa.array(ok), arr, pa.scalar(None, pa.string())), pa.float64())
  x = typed.to_numpy(zero_copy_only=False)  # nulls -> nan
  ok &= ~np.isinf(x)  # "1e400"
  if not ok.all():
    typed = pc.if_else(pa.array(ok), typed, pa.scalar(None, pa.float64()))
  return typed, ~ok


def _coerce_column(arr: pa.Array, kind: str, empty_is_null: bool = False,
                   label_reason: str = LABEL_REASON):
  """Returns (typed array, bad mask np.bool_ or None, reason) for one column.

  `kind`: "label", "int" or "float" (dense values), "string" (tokens).
  `empty_is_null`: the reader already turned empty strings into nulls (text
  files read with null_values=[""]), so strings need no further check.
  """
  t = arr.type
  if pa.types.is_dictionary(t) and kind != "string":
    arr = arr.dictionary_decode()
    t = arr.type
  if kind == "label":
    if _is_text(t):
      ok = pc.is_in(arr, value_set=pa.array(["0", "1"]))
      ok = pc.fill_null(ok, False)
      bad = ~ok.to_numpy(zero_copy_only=False)
      typed = pc.cast(pc.if_else(ok, arr, "0"), pa.int8())
      return typed, (bad if bad.any() else None), label_reason
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
      values = arr.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> nan
      bad = ~((values == 0) | (values == 1))
      typed = pa.array(np.where(bad, 0, values).astype(np.int8))
      return typed, (bad if bad.any() else None), label_reason
    raise TypeError(f"label column has type {t}, expected string, integer, float or bool")
  if kind in ("int", "float"):
    if _is_text(t):
      if t != pa.string():
        arr = pc.cast(arr, pa.string())
      if not empty_is_null:
        arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
      typed, bad = (_parse_ints if kind == "int" else _parse_floats)(arr)
      reason = "not an integer" if kind == "int" else "not a finite number"
      return typed, (bad if bad is not None and bad.any() else None), reason
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
      return pc.cast(arr, pa.int64()), None, ""
    if pa.types.is_floating(t):
      arr = pc.cast(arr, pa.float64())
      x = arr.to_numpy(zero_copy_only=False)
      arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, pa.float64()), arr)
      bad = np.isinf(x)
      if bad.any():
        return pc.if_else(pa.array(~bad), arr, pa.scalar(None, pa.float64())), bad, "not finite"
      return arr, None, ""
    if pa.types.is_null(t):
      return pa.nulls(len(arr), pa.int64() if kind == "int" else pa.float64()), None, ""
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


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)


def days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
  """Days since 1970-01-01 of the proleptic Gregorian date y-m-d (int64 arrays, y >= 0)."""
  y = y - (m <= 2)
  era = y // 400
  yoe = y - era * 400
  doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
  doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468


def derive_tokens(arr: pa.Array, derive: str):
  """(string tokens, bad mask or None) of a `spec.DERIVATIONS` derivation; nulls stay null.

  "hour_of_day": YYMMDDHH -> str(HH) ("0".."23"); "weekday": YYMMDDHH ->
  str(weekday of 20YY-MM-DD), Monday = "0" .. Sunday = "6". A value that is
  not 8 digits with month 1..12, a day of that month and hour 0..23 is bad.
  """
  checks.choice(derive, "derive", spec_lib.DERIVATIONS)
  present = pc.is_valid(arr).to_numpy(zero_copy_only=False)
  ok = pc.fill_null(pc.match_substring_regex(arr, _TIME_PATTERN), False).to_numpy(
      zero_copy_only=False)
  digits = pc.if_else(pa.array(ok), arr, "00010100").to_numpy(zero_copy_only=False)
  n = np.asarray(digits.astype("U8").astype(np.int64) if len(digits) else np.zeros(0, np.int64))
  yy, mm, dd, hh = n // 1000000, n // 10000 % 100, n // 100 % 100, n % 100
  year = 2000 + yy
  leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
  month_ok = (mm >= 1) & (mm <= 12)
  dim = _DAYS_IN_MONTH[np.where(month_ok, mm, 1)] + ((mm == 2) & leap)
  ok &= month_ok & (dd >= 1) & (dd <= dim) & (hh <= 23)
  if derive == "hour_of_day":
    value = hh
  else:
    value = (days_from_civil(year, np.where(month_ok, mm, 1), dd) + 3) % 7  # 1970-01-01: Thu
  tokens = pa.array(value.astype(str).astype(object), pa.string(), mask=~(ok & present))
  bad = present & ~ok
  return tokens, (bad if bad.any() else None)


def _derived_only_columns(spec: spec_lib.FeatureSpec) -> list:
  """Input columns that every feature reading them derives (e.g. Avazu's `hour`)."""
  out = []
  for column in spec.input_columns:
    readers_of_column = [f for f in spec.features if f.raw_column == column]
    if readers_of_column and all(getattr(f, "derive", None) for f in readers_of_column):
      out.append(column)
  return out


def _validate(table: pa.Table, spec: spec_lib.FeatureSpec, on_bad_rows: str, where,
              summary: ReadSummary, path: str, empty_is_null: bool = False,
              label_reason: str = LABEL_REASON, with_label: bool = True, row_index=None,
              file_index: int = 0) -> tuple:
  """Types every feature's column; drops or raises on bad rows.

  Args:
    table: raw table with (at least) the columns [label] + spec.input_columns.
    where: callable(row_index_in_batch) -> str location (e.g. "line 12").
    empty_is_null: bool. Empty strings are already null (text reader).
    label_reason: str. The message of a bad label.
    with_label: bool. The table has the label column. Defaults to True.
    row_index: callable(np.ndarray of rows in the batch) -> their 0-based
      rows in the file, for `ReadSummary.skipped_rows`; None: the batch
      rows themselves.
    file_index: int. The file's index in the source list (for skipped_rows).

  Returns:
    (typed table with the columns [label] + spec.feature_names, plus the raw
    strings of columns read only through derivations (`_derived_only_columns`),
    kept-row mask or None). Bad values are reported under their raw column's
    name.
  """
  outputs = ([(spec.label, spec.label, "label", None)] if with_label else []) + [
      (f.name, f.raw_column, _kind_of(f), getattr(f, "derive", None)) for f in spec.features]
  columns = []
  bad_any = None
  reasons = []
  done = {}
  for _, source, kind, derive in outputs:
    key = (source, kind, derive)
    if key in done:
      columns.append(done[key])
      continue
    col = table.column(source)
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    not_utf8 = _invalid_utf8(arr) if pa.types.is_string(arr.type) else None
    if not_utf8 is not None:  # (the text reader leaves UTF-8 to this check: bad rows get a line)
      as_bytes = arr.cast(pa.binary())
      row = int(np.argmax(not_utf8))
      if on_bad_rows == "error":
        loc = where(row)
        raise DataError(f"{path}: {loc}, field {source!r}: invalid UTF-8, got "
                        f"{as_bytes[row].as_py()!r}", path=path, line=_line_of(loc), field=source)
      reasons.append((source, "invalid UTF-8", not_utf8, as_bytes))
      bad_any = not_utf8 if bad_any is None else (bad_any | not_utf8)
      arr = pc.if_else(pa.array(~not_utf8), arr, pa.scalar(None, pa.string()))
    try:
      typed, bad, reason = _coerce_column(arr, kind, empty_is_null, label_reason)
    except TypeError as e:
      raise DataError(f"{path}: field {source!r}: {e}", path=path, field=source) from e
    if derive is not None:
      typed, bad_derived, reason_derived = (*derive_tokens(typed, derive),
                                            f"not a YYMMDDHH time (for {derive})")
      if bad_derived is not None:
        bad, reason = bad_derived, reason_derived
    done[key] = typed
    columns.append(typed)
    if bad is not None:
      row = int(np.argmax(bad))
      value = arr[row].as_py()
      if on_bad_rows == "error":
        loc = where(row)
        raise DataError(f"{path}: {loc}, field {source!r}: {reason}, got {value!r}",
                        path=path, line=_line_of(loc), field=source)
      reasons.append((source, reason, bad, arr))
      bad_any = bad if bad_any is None else (bad_any | bad)
  names = [o[0] for o in outputs]
  for column in _derived_only_columns(spec):  # the raw value too, for re-serving the row
    if column not in names:
      col = table.column(column)
      arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
      columns.append(_coerce_column(arr, "string", empty_is_null, label_reason)[0])
      names.append(column)
  typed_table = pa.Table.from_arrays(columns, names=names)
  if bad_any is None:
    return typed_table, None
  # count each bad row once, under its first bad field
  counted = np.zeros(len(bad_any), bool)
  for source, reason, bad, arr in reasons:
    new = bad & ~counted
    if new.any():
      row = int(np.argmax(new))
      bad_rows = np.flatnonzero(new)
      summary.add_skip(f"{source}: {reason}",
                       f"{path}: {where(row)}, field {source!r}: {reason}, got "
                       f"{arr[row].as_py()!r}", int(new.sum()),
                       rows=row_index(bad_rows) if row_index is not None else bad_rows,
                       file_index=file_index)
      counted |= new
  keep = ~bad_any
  return typed_table.filter(pa.array(keep)), keep


def _blank_rows(table: pa.Table) -> Optional[np.ndarray]:
  """Mask of the rows whose every field is missing (blank lines), or None if there are none."""
  if table.num_rows == 0 or table.num_columns == 0:
    return None
  # A blank row has no value in any column: only columns holding nulls can make one.
  if any(column.null_count == 0 for column in table.columns):
    return None
  blank = None
  for column in table.columns:
    missing = column.is_null()
    blank = missing if blank is None else pc.and_(blank, missing)
  mask = blank.to_numpy(zero_copy_only=False) if isinstance(blank, pa.Array) else \
      np.asarray(blank.to_pylist(), dtype=bool)
  return mask if mask.any() else None


def _invalid_utf8(arr: pa.Array) -> Optional[np.ndarray]:
  """Mask of the values of a string array that are not valid UTF-8, or None if all are."""
  if arr.type == pa.string():
    data = _string_bytes(arr)
    if not data.size or data.max() < 0x80:  # ASCII is UTF-8 (one pass, no decoding)
      return None
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


class _ChangeWatch:
  """Fails a read whose file changes under it (size or mtime differ from the start).

  A data file must not change while it is read: a row appended meanwhile, or
  a last line still being written, would be read as data. The check runs
  after every batch and at the end of the file.
  """

  def __init__(self, path: str):
    self.path = path
    self.start = self._identity()

  def _identity(self):
    try:
      st = os.stat(self.path)
    except OSError:
      return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)

  def check(self) -> None:
    now = self._identity()
    if now != self.start:
      before = "absent" if self.start is None else f"{self.start[0]} bytes"
      after = "deleted or replaced" if now is None else f"{now[0]} bytes"
      raise DataError(f"{self.path}: the file changed while it was being read ({before} -> "
                      f"{after}, or a new modification time); a data file must not change "
                      "while it is read: wait until it is complete, or read a copy",
                      path=self.path)


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


def _read_text(path, file_index, spec, fmt, on_bad_rows, block_size, summary, progress, layout):
  needed = layout.needed(spec)
  header = fmt == "csv"
  delimiter = "," if fmt == "csv" else "\t"
  if layout.extra and not header:
    raise DataError(f"{path}: a headerless file has no column names: columns "
                    f"{list(layout.extra)} can only come from a CSV or Parquet file", path=path)
  file_columns = [c for c in spec.raw_columns if layout.with_label or c != spec.label]
  if header:
    names = _header_names(path, delimiter)
    colmap = _match_columns(names, needed + list(layout.extra), path)
    read_options = dict(skip_rows=0)
  else:
    colmap = {w: w for w in needed}
    read_options = dict(column_names=file_columns)
  read_columns = needed + list(layout.extra)
  errors = _RowCountErrors()
  exact_lines = on_bad_rows == "skip"  # threaded parsing gives no line numbers
  ropts = pa_csv.ReadOptions(use_threads=not exact_lines, block_size=block_size, **read_options)
  popts = pa_csv.ParseOptions(delimiter=delimiter, quote_char='"' if header else False,
                              ignore_empty_lines=False, invalid_row_handler=errors)
  copts = pa_csv.ConvertOptions(
      check_utf8=False,  # checked per column in _validate: bad rows get their line number
      column_types={colmap[w]: pa.string() for w in read_columns},
      include_columns=[colmap[w] for w in read_columns], strings_can_be_null=True,
      null_values=[""], quoted_strings_can_be_null=True)
  watch = _ChangeWatch(path)
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

    def handle_row_count_errors(n_handled):
      """Raises (error policy) or counts (skip) the rows with a wrong number of fields."""
      if len(errors.numbers) <= n_handled:
        return n_handled
      if on_bad_rows == "error":
        text = errors.texts[n_handled]
        line = _locate_line(path, needed, colmap, delimiter, header, text, file_columns)
        raise DataError(
            f"{path}: line {line}, field count: expected {errors.expected} fields, got "
            f"{errors.actual[n_handled]} (text {text[:80]!r})",
            path=path, line=line, field="field count")
      for i in range(n_handled, len(errors.numbers)):
        summary.add_skip("field count",
                         f"{path}: line {errors.numbers[i]}, field count: expected "
                         f"{errors.expected} fields, got {errors.actual[i]}",
                         rows=[errors.numbers[i] - 1 - offset_lines], file_index=file_index)
      return len(errors.numbers)

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
      watch.check()
      n = batch.num_rows
      n_errors_handled = handle_row_count_errors(n_errors_handled)
      keys = np.arange(rows_seen, rows_seen + n, dtype=np.int64)
      skipped_lines = np.sort(np.array([x for x in errors.numbers if x is not None], np.int64))

      table = pa.Table.from_batches([batch])
      blank = _blank_rows(table)
      if blank is not None:  # lines with no value at all (e.g. a trailing blank line): ignored
        table = table.filter(pa.array(~blank))
        keys = keys[~blank]

      def where(row, keys=keys, skipped_lines=skipped_lines):
        k = int(keys[row])
        if len(skipped_lines):
          j = int(np.searchsorted(skipped_lines - offset_lines - np.arange(len(skipped_lines)) - 1,
                                  k, side="right"))
        else:
          j = 0
        return f"line {k + 1 + j + offset_lines}"

      def row_index(rows, keys=keys, skipped_lines=skipped_lines):
        k = keys[rows]
        if not len(skipped_lines):
          return k
        return k + np.searchsorted(skipped_lines - offset_lines - np.arange(len(skipped_lines)) - 1,
                                   k, side="right")

      # include_columns = the read columns in that order; rename by position.
      table = table.rename_columns(read_columns)
      typed, keep = _validate(table, spec, on_bad_rows, where, summary, path, empty_is_null=True,
                              with_label=layout.with_label, row_index=row_index,
                              file_index=file_index)
      typed = _with_extra(typed, table, layout.extra, keep)
      rows_seen += n
      if keep is not None:
        keys = keys[keep]
      if progress is not None:
        progress(path, raw.tell(), size)
      if typed.num_rows:
        yield RawBatch(typed, keys, file_index, path)
    watch.check()
    handle_row_count_errors(n_errors_handled)
  finally:
    raw.close()
  if rows_seen == 0 and not errors.numbers:
    raise DataError(f"{path}: the file has no data rows", path=path)


def _locate_line(path, needed, colmap, delimiter, header, text, raw_columns) -> Optional[int]:
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
                               **({} if header else dict(column_names=list(raw_columns))))
    popts = pa_csv.ParseOptions(delimiter=delimiter, quote_char='"' if header else False,
                                ignore_empty_lines=False, invalid_row_handler=handler)
    copts = pa_csv.ConvertOptions(column_types={colmap[w]: pa.string() for w in needed},
                                  include_columns=[colmap[needed[0]]], strings_can_be_null=True)
    reader = pa_csv.open_csv(stream, read_options=ropts, parse_options=popts, convert_options=copts)
    for _ in reader:
      if found:
        break
    raw.close()
  except (OSError, pa.ArrowException):
    pass
  return found[0] if found else None


# --- parquet and in-memory ------------------------------------------------------

def _read_parquet(path, file_index, spec, on_bad_rows, batch_rows, summary, progress, layout):
  watch = _ChangeWatch(path)
  try:
    pf = pq.ParquetFile(path)
  except OSError as e:
    raise DataError(f"cannot read {path}: {e}", path=path) from e
  except pa.ArrowException as e:
    raise DataError(f"{path}: not a readable Parquet file: {e}", path=path) from e
  read_columns = layout.needed(spec) + list(layout.extra)
  colmap = _match_columns(pf.schema_arrow.names, read_columns, path)
  rows_seen = 0
  total = pf.metadata.num_rows
  for b, batch in enumerate(pf.iter_batches(batch_size=batch_rows,
                                            columns=[colmap[w] for w in read_columns])):
    watch.check()
    table = pa.Table.from_batches([batch]).rename_columns(read_columns)
    n = table.num_rows
    keys = np.arange(rows_seen, rows_seen + n, dtype=np.int64)
    typed, keep = _validate(table, spec, on_bad_rows,
                            lambda r, b=b, s=rows_seen: f"record batch {b}, row {r} (file row {s + r})",
                            summary, path, with_label=layout.with_label,
                            row_index=lambda rows, s=rows_seen: rows + s, file_index=file_index)
    typed = _with_extra(typed, table, layout.extra, keep)
    rows_seen += n
    if keep is not None:
      keys = keys[keep]
    if progress is not None:
      progress(path, rows_seen, total)
    if typed.num_rows:
      yield RawBatch(typed, keys, file_index, path)
  watch.check()
  if rows_seen == 0:
    raise DataError(f"{path}: the file has no data rows", path=path)


def _read_memory(item, file_index, spec, on_bad_rows, batch_rows, summary, layout):
  if _is_dataframe(item):
    table = pa.Table.from_pandas(item, preserve_index=False)
  elif isinstance(item, pa.RecordBatch):
    table = pa.Table.from_batches([item])
  else:
    table = item
  if table.num_rows == 0:
    raise DataError("<DataFrame>: the DataFrame is empty", path="<DataFrame>")
  read_columns = layout.needed(spec) + list(layout.extra)
  colmap = _match_columns(table.column_names, read_columns, "<DataFrame>")
  table = table.select([colmap[w] for w in read_columns]).rename_columns(read_columns)
  for start in range(0, table.num_rows, batch_rows):
    part = table.slice(start, batch_rows)
    keys = np.arange(start, start + part.num_rows, dtype=np.int64)
    typed, keep = _validate(part, spec, on_bad_rows, lambda r, s=start: f"row {s + r}", summary,
                            "<DataFrame>", with_label=layout.with_label,
                            row_index=lambda rows, s=start: rows + s, file_index=file_index)
    typed = _with_extra(typed, part, layout.extra, keep)
    if keep is not None:
      keys = keys[keep]
    if typed.num_rows:
      yield RawBatch(typed, keys, file_index, "<DataFrame>")


# --- libFM / libFFM -----------------------------------------------------------

LIBFM_LABELS = {"1": "1", "+1": "1", "0": "0", "-1": "0"}
_LIBFM_LABEL_REASON = "label must be 1 or -1 (or 0 / 1)"


def load_field_map(path: str, fields: Sequence[str]) -> dict:
  """Reads a libFM feature-id -> field map: one `<feature id> <field name>` per line.

  Blank lines and lines starting with "#" are ignored. Every field name must be
  one of `fields` (the spec's raw columns other than the label), and a
  feature id may appear once.

  Raises:
    DataError: naming the map file, the line and the problem.
  """
  out = {}
  try:
    with open(path, encoding="utf-8") as fh:
      for number, line in enumerate(fh, start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
          continue
        if len(parts) != 2:
          raise DataError(f"{path}: line {number}: expected '<feature id> <field name>', got "
                          f"{line.rstrip()!r}", path=path, line=number)
        feat, field = parts
        if field not in fields:
          raise DataError(f"{path}: line {number}, field {field!r}: not a field of the spec "
                          f"{list(fields)}", path=path, line=number, field=field)
        if feat in out:
          raise DataError(f"{path}: line {number}: feature id {feat!r} is mapped twice",
                          path=path, line=number)
        out[feat] = field
  except OSError as e:
    raise DataError(f"cannot read the field map {path}: {e}", path=path) from e
  except UnicodeDecodeError as e:
    raise DataError(f"{path}: the field map is not UTF-8 text: {e}", path=path) from e
  if not out:
    raise DataError(f"{path}: the field map is empty", path=path)
  return out


def _libfm_lines(path: str, stream, block_size: int):
  """Yields (first line number, [line str, ...]) blocks of a text stream.

  Every line, the last one without a newline included, is yielded whole; a
  trailing "\\r" is dropped.
  """
  pending = b""
  line_number = 1
  while True:
    try:
      chunk = stream.read(block_size)
    except (OSError, pa.ArrowException) as e:
      raise DataError(f"{path}: after line {line_number - 1}: truncated or corrupt compressed "
                      f"stream: {e}", path=path, line=line_number) from e
    if chunk:
      data = pending + chunk
      cut = data.rfind(b"\n")
      if cut < 0:
        pending = data
        continue
      block, pending = data[:cut], data[cut + 1:]
    elif pending:
      block, pending = pending, b""
    else:
      return
    try:
      text = block.decode("utf-8")
    except UnicodeDecodeError as e:
      bad_line = line_number + block.count(b"\n", 0, e.start)
      raise DataError(f"{path}: line {bad_line}: not UTF-8 text ({e.reason})", path=path,
                      line=bad_line) from e
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    yield line_number, lines
    line_number += len(lines)


class _LibFMRows:
  """Bad-row bookkeeping of one libFM block: the first reason per row."""

  def __init__(self, n: int):
    self.bad = np.zeros(n, bool)
    self.reason = [None] * n
    self.field = [None] * n

  def mark(self, rows: np.ndarray, reason, field) -> None:
    """Marks `rows` (indices) bad; reason / field: a str or a callable(row) -> str."""
    for r in np.unique(rows):
      if not self.bad[r]:
        self.bad[r] = True
        self.reason[r] = reason(r) if callable(reason) else reason
        self.field[r] = field(r) if callable(field) else field


def _libfm_table(lines: List[str], spec: spec_lib.FeatureSpec, fmt: str, fields: List[str],
                 field_map: Optional[dict]):
  """Parses libFM / libFFM lines into raw string columns.

  Returns (table of [label] + spec.input_columns as strings, index of the
  non-blank lines, _LibFMRows of those rows).
  """
  arr = pa.array(lines, pa.string())
  blank = pc.equal(pc.utf8_trim_whitespace(arr), "").to_numpy(zero_copy_only=False)
  nonblank = np.flatnonzero(~blank)
  tokens = pc.utf8_split_whitespace(arr.filter(pa.array(~blank)))
  counts = pc.list_value_length(tokens).to_numpy(zero_copy_only=False).astype(np.int64)
  n = len(nonblank)
  rows = _LibFMRows(n)
  flat = pc.list_flatten(tokens)
  parents = pc.list_parent_indices(tokens).to_numpy(zero_copy_only=False).astype(np.int64)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
  pos = np.arange(len(flat), dtype=np.int64) - starts[parents] if len(flat) else \
      np.zeros(0, np.int64)
  is_label = pos == 0
  labels = flat.filter(pa.array(is_label))
  label_index = pc.index_in(labels, value_set=pa.array(list(LIBFM_LABELS)))
  mapped = pa.array(list(LIBFM_LABELS.values())).take(pc.fill_null(label_index, 0))
  labels = pc.if_else(pc.is_valid(label_index), mapped, labels)  # others fail validation
  items = flat.filter(pa.array(~is_label))
  item_row = parents[~is_label]
  item_rank = pos[~is_label] - 1  # 0-based position among the line's items
  parts = pc.split_pattern(items, ":")
  nparts = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
  want = 3 if fmt == "libffm" else 2
  shape_ok = nparts == want
  if not shape_ok.all():
    example = "field:feature:value" if want == 3 else "feature:value"
    rows.mark(item_row[~shape_ok], lambda r: f"malformed item (expected {example})",
              lambda r: "item")
  # Components of the well-formed items (placeholders elsewhere).
  safe = pc.if_else(pa.array(shape_ok), items, ":".join(["0"] * want))
  comps = pc.split_pattern(safe, ":")
  feat = pc.list_element(comps, want - 2).to_numpy(zero_copy_only=False)
  val = pc.list_element(comps, want - 1)
  val_num = pc.cast(pc.if_else(pc.match_substring_regex(val, _FLOAT_PATTERN), val, "nan"),
                    pa.float64()).to_numpy(zero_copy_only=False)
  bad_val = shape_ok & ~np.isfinite(val_num)
  bad_feat = shape_ok & (feat == "")
  # Field of each item.
  nf = len(fields)
  if fmt == "libffm":
    fidx_text = pc.list_element(comps, 0)
    ok_idx = pc.fill_null(pc.match_substring_regex(fidx_text, r"^[0-9]{1,9}$"), False).to_numpy(
        zero_copy_only=False)
    field_of = np.where(ok_idx, pc.cast(pc.if_else(pa.array(ok_idx), fidx_text, "0"),
                                        pa.int64()).to_numpy(zero_copy_only=False), -1)
    out_of_range = shape_ok & ((field_of < 0) | (field_of >= nf))
    if out_of_range.any():
      rows.mark(item_row[out_of_range],
                f"field index not in 0..{nf - 1} (the spec has {nf} fields)", "field index")
  elif field_map is not None:
    keys = pa.array(list(field_map), pa.string())
    index = {f: i for i, f in enumerate(fields)}
    key_field = np.array([index[field_map[k]] for k in field_map.keys()], np.int64)
    found = pc.index_in(pa.array(feat, pa.string()), value_set=keys)
    found = pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    field_of = np.where(found >= 0, key_field[np.maximum(found, 0)], -1)
    unknown = shape_ok & (found < 0)
    if unknown.any():
      rows.mark(item_row[unknown], "feature id not in the field map", "feature id")
  else:  # position within the line
    wrong = counts - 1 != nf
    if wrong.any():
      rows.mark(np.flatnonzero(wrong),
                lambda r: f"expected {nf} feature:value items (one per field), got {counts[r] - 1}",
                "field count")
    field_of = item_rank
  if bad_feat.any():
    rows.mark(item_row[bad_feat], "empty feature id", lambda r: "feature id")
  ok_items = shape_ok & (field_of >= 0) & (field_of < nf)
  columns = {spec.label: labels}
  by_name = {f.raw_column: f for f in spec.features}
  for j, name in enumerate(fields):
    if name not in spec.input_columns:
      continue
    feature = by_name[name]
    sel = ok_items & (field_of == j)
    sel_rows = item_row[sel]
    per_row = np.bincount(sel_rows, minlength=n)
    is_dense = isinstance(feature, spec_lib.DenseFeature)
    if isinstance(feature, spec_lib.SequenceFeature):
      text = feat[sel]
      offsets = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int32)
      lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(text, pa.string()))
      joined = pc.binary_join(lists, feature.separator)
      columns[name] = pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), joined)
    else:
      dup = np.flatnonzero(per_row > 1)
      if len(dup):
        rows.mark(dup, "more than one item for this field", name)
      if not is_dense:
        not_one = sel & bad_val
        rows.mark(item_row[not_one], "not a number", name)
        weighted = sel & ~bad_val & (val_num != 1.0)
        if weighted.any():
          rows.mark(item_row[weighted], "a categorical item's value must be 1 (one-hot)", name)
      values = feat[sel] if not is_dense else \
          val.filter(pa.array(sel)).to_numpy(zero_copy_only=False)
      column = np.full(n, None, object)
      column[sel_rows] = values  # a row with two items for the field is bad anyway
      columns[name] = pa.array(column, pa.string())
  needed = [spec.label] + spec.input_columns
  return pa.table({name: columns[name] for name in needed}), nonblank, rows


def _read_libfm(path, file_index, spec, fmt, on_bad_rows, block_size, summary, progress,
                field_map):
  """Reads a libFM (`label feat:val ...`) or libFFM (`label field:feat:val ...`) file.

  Fields are the spec's raw columns other than the label, in order. libFFM
  names each item's field by its 0-based index; libFM assigns an item the
  field of its feature id in `field_map`, or, without a map, the field at its
  position in the line (every line then has exactly one item per field, as in
  one-hot data such as Frappe). Row keys are ordinals among non-blank lines.
  """
  fields = [c for c in spec.raw_columns if c != spec.label]
  if isinstance(field_map, str):
    field_map = load_field_map(field_map, fields)
  if field_map is not None and fmt == "libffm":
    raise ValueError("a field map applies to libFM files; libFFM items carry their field index")
  watch = _ChangeWatch(path)
  raw, stream, size = _open_stream(path)
  rows_seen = 0
  try:
    for first_line, lines in _libfm_lines(path, stream, block_size):
      watch.check()
      table, nonblank, rows = _libfm_table(lines, spec, fmt, fields, field_map)
      line_numbers = first_line + nonblank
      n = len(nonblank)
      keys = np.arange(rows_seen, rows_seen + n, dtype=np.int64)
      rows_seen += n
      if rows.bad.any():
        bad = np.flatnonzero(rows.bad)
        if on_bad_rows == "error":
          r = int(bad[0])
          raise DataError(f"{path}: line {line_numbers[r]}, field {rows.field[r]!r}: "
                          f"{rows.reason[r]} (text {lines[nonblank[r]][:80]!r})",
                          path=path, line=int(line_numbers[r]), field=rows.field[r])
        for r in bad:
          summary.add_skip(f"{rows.field[r]}: {rows.reason[r]}",
                           f"{path}: line {line_numbers[r]}, field {rows.field[r]!r}: "
                           f"{rows.reason[r]}", rows=[keys[r]], file_index=file_index)
        keep = pa.array(~rows.bad)
        table, keys, line_numbers = table.filter(keep), keys[~rows.bad], line_numbers[~rows.bad]
      typed, keep = _validate(table, spec, on_bad_rows,
                              lambda r, ln=line_numbers: f"line {ln[r]}", summary, path,
                              label_reason=_LIBFM_LABEL_REASON,
                              row_index=lambda rows, k=keys: k[rows], file_index=file_index)
      if keep is not None:
        keys = keys[keep]
      if progress is not None:
        progress(path, raw.tell(), size)
      if typed.num_rows:
        yield RawBatch(typed, keys, file_index, path)
    watch.check()
  finally:
    raw.close()
  if rows_seen == 0:
    raise DataError(f"{path}: the file has no data rows", path=path)
