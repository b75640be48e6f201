"""libFM / libFFM, derived and float fields, integer encodings, schema files and built-in specs."""

import json
import os

from absl.testing import parameterized
import numpy as np
import pandas as pd
import pytest

from tests import testing
from ctr_zoo import datasets
from ctr_zoo.datasets import encoding
from ctr_zoo.datasets import readers
from ctr_zoo.feature_columns import avazu as avazu_lib
from ctr_zoo.feature_columns import frappe as frappe_lib
from ctr_zoo.feature_columns import integers
from ctr_zoo.feature_columns import schema as schema_lib
from ctr_zoo.feature_columns import spec as spec_lib
from experiments import paths

THREE = spec_lib.FeatureSpec(features=(
    spec_lib.CategoricalFeature("user"), spec_lib.CategoricalFeature("item"),
    spec_lib.CategoricalFeature("city")), columns=("label", "user", "item", "city"))


class FormatsTest(testing.TestCase, parameterized.TestCase):

  def write(self, name, text, mode="w"):
    path = os.path.join(self.make_temp_dir(), name)
    with open(path, mode) as fh:
      fh.write(text)
    return path

  # --- libFM -----------------------------------------------------------------------
  def test_libfm_fields_by_position_labels_crlf_blank_and_last_line(self):
    text = "1 3:1 10:1 20:1\r\n-1 4:1 10:1 21:1\r\n\n0 3:1 11:1 22:1\r\n+1 3:1 10:1 20:1"
    path = self.write("d.libfm", text)
    fitted, summary = datasets.fit(path, THREE, return_summary=True)
    self.assertEqual(summary.rows, 4)  # the blank line is not a row; the last line is one
    self.assertEqual(summary.positives, 2)
    self.assertEqual(fitted["user"].vocabulary, ("3", "4"))
    self.assertEqual(fitted["item"].vocabulary, ("10", "11"))
    batches = list(datasets.read_batches(path, fitted))
    np.testing.assert_array_equal(batches[0].table.column("label").to_numpy(), [1, 0, 0, 1])
    np.testing.assert_array_equal(batches[0].row_keys, [0, 1, 2, 3])
    self.assertEqual(batches[0].table.column("city").to_pylist(), ["20", "21", "22", "20"])

  @parameterized.named_parameters(
      ("malformed_item", "1 3:1 10 20:1", r"line 2, field 'item': malformed item \(expected "
                                           r"feature:value\)"),
      ("not_a_number", "1 3:1 10:x 20:1", r"line 2, field 'item': not a number"),
      ("weighted", "1 3:1 10:0.5 20:1", r"line 2, field 'item': a categorical item's value must be 1"),
      ("too_few", "1 3:1 10:1", r"line 2, field 'field count': expected 3 feature:value items "
                                r"\(one per field\), got 2"),
      ("label", "2 3:1 10:1 20:1", r"line 2, field 'label': label must be 1 or -1 \(or 0 / 1\), "
                                   r"got '2'"),
      ("empty_feature", "1 :1 10:1 20:1", r"line 2, field 'feature id': empty feature id"),
  )
  def test_libfm_bad_lines_name_file_line_and_field(self, bad, pattern):
    path = self.write("bad.libfm", "\n".join(["1 3:1 10:1 20:1", bad, "0 4:1 11:1 21:1"]) + "\n")
    with self.assertRaisesRegex(datasets.DataError, r"bad.libfm: " + pattern) as cm:
      datasets.fit(path, THREE)
    self.assertEqual(cm.exception.line, 2)
    _, summary = datasets.fit(path, THREE, on_bad_rows="skip", return_summary=True)
    self.assertEqual((summary.rows, summary.read["rows_skipped"]), (2, 1))
    self.assertIn("line 2", summary.read["examples"][0])

  def test_libffm_field_index_and_missing_fields(self):
    text = "1 0:3:1 1:10:1 2:20:1\n0 2:21:1 0:4:1\n1 1:11:1 0:3:1 2:20:1\n"
    path = self.write("d.libffm", text)
    batch = next(iter(datasets.read_batches(path, THREE)))
    self.assertEqual(batch.table.column("user").to_pylist(), ["3", "4", "3"])
    self.assertEqual(batch.table.column("item").to_pylist(), ["10", None, "11"])
    self.assertEqual(batch.table.column("city").to_pylist(), ["20", "21", "20"])
    bad = self.write("bad.libffm", "1 0:3:1 7:10:1\n")
    with self.assertRaisesRegex(datasets.DataError, r"bad.libffm: line 1, field 'field index': "
                                                    r"field index not in 0..2"):
      datasets.fit(bad, THREE)

  def test_libfm_field_map_with_a_sequence_and_a_float_field(self):
    spec = spec_lib.FeatureSpec(features=(
        spec_lib.CategoricalFeature("user"),
        spec_lib.SequenceFeature("tags", max_len=3),
        spec_lib.DenseFeature("price", transform="none", value_type="float")),
        columns=("label", "user", "tags", "price"))
    field_map = self.write("map.txt", "# id field\n1 user\n2 user\n7 tags\n8 tags\n9 tags\n"
                                      "50 price\n")
    path = self.write("d.libfm", "1 1:1 7:1 9:1 50:2.5\n0 2:1 50:-1e-2\n1 8:1 1:1\n")
    batch = next(iter(datasets.read_batches(path, spec, field_map=field_map)))
    self.assertEqual(batch.table.column("user").to_pylist(), ["1", "2", "1"])
    self.assertEqual(batch.table.column("tags").to_pylist(), ["7|9", None, "8"])
    self.assertEqual(batch.table.column("price").to_pylist(), [2.5, -0.01, None])
    unknown = self.write("u.libfm", "1 1:1 99:1\n")
    with self.assertRaisesRegex(datasets.DataError, r"u.libfm: line 1, field 'feature id': "
                                                    r"feature id not in the field map"):
      datasets.fit(unknown, spec, field_map=field_map)
    twice = self.write("t.libfm", "1 1:1 2:1\n")
    with self.assertRaisesRegex(datasets.DataError, r"line 1, field 'user': more than one item"):
      datasets.fit(twice, spec, field_map=field_map)
    bad_map = self.write("bad_map.txt", "1 user\n2 nowhere\n")
    with self.assertRaisesRegex(datasets.DataError, r"bad_map.txt: line 2, field 'nowhere': not "
                                                    r"a field of the spec"):
      datasets.fit(path, spec, field_map=bad_map)

  def test_csv_row_with_a_missing_column(self):
    path = self.write("a.csv", "label,I1,C1\n1,2,a\n0,3\n1,4,b\n")
    spec = spec_lib.FeatureSpec(features=(spec_lib.DenseFeature("I1"),
                                          spec_lib.CategoricalFeature("C1")))
    with self.assertRaisesRegex(datasets.DataError, r"a.csv: line 3, field count: expected 3 "
                                                    r"fields, got 2"):
      datasets.fit(path, spec)
    _, summary = datasets.fit(path, spec, on_bad_rows="skip", return_summary=True)
    self.assertEqual((summary.rows, summary.read["skipped_by_reason"]), (2, {"field count": 1}))

  def test_headerless_tsv_with_ignored_columns(self):
    spec = spec_lib.FeatureSpec(features=(spec_lib.CategoricalFeature("C1"),),
                                columns=("id", "C1", "label"))
    path = self.write("d.tsv", "x1\ta\t1\nx2\tb\t0\n")
    batch = next(iter(datasets.read_batches(path, spec)))
    self.assertEqual(batch.table.column_names, ["label", "C1"])
    self.assertEqual(batch.table.column("C1").to_pylist(), ["a", "b"])
    with self.assertRaisesRegex(datasets.DataError, r"line 1, field count: expected 3 fields"):
      datasets.fit(self.write("e.tsv", "a\t1\n"), spec)

  # --- derived and float fields ----------------------------------------------------------
  def test_hour_of_day_and_weekday_of_yymmddhh(self):
    values = ["14102100", "14102623", "16022912", "00010100", None]
    got = {d: readers.derive_tokens(pd.array(values, dtype="string").__arrow_array__(), d)[0]
           .to_pylist() for d in spec_lib.DERIVATIONS}
    # 2014-10-21 Tuesday, 2014-10-26 Sunday, 2016-02-29 Monday, 2000-01-01 Saturday.
    self.assertEqual(got["hour_of_day"], ["0", "23", "12", "0", None])
    self.assertEqual(got["weekday"], ["1", "6", "0", "5", None])
    import datetime  # pylint: disable=g-import-not-at-top
    days = np.arange(0, 40000, 37)
    dates = [datetime.date(1970, 1, 1) + datetime.timedelta(days=int(d)) for d in days]
    np.testing.assert_array_equal(
        readers.days_from_civil(np.array([d.year for d in dates]), np.array([d.month for d in dates]),
                                np.array([d.day for d in dates])), days)
    for bad in ("15022912", "14132100", "14100024", "1410210", "x4102100"):
      _, mask = readers.derive_tokens(pd.array([bad], dtype="string").__arrow_array__(), "weekday")
      self.assertTrue(mask is not None and mask[0], bad)

  def test_derived_field_bad_value_names_the_source_column(self):
    spec = avazu_lib.avazu_spec()
    header = ",".join(avazu_lib.RAW_COLUMNS)
    row = ["1", "0", "14102100"] + ["a"] * 21
    bad = list(row)
    bad[2] = "14133100"
    path = self.write("a.csv", "\n".join([header, ",".join(row), ",".join(bad)]) + "\n")
    with self.assertRaisesRegex(datasets.DataError, r"a.csv: line 3, field 'hour': not a YYMMDDHH "
                                                    r"time \(for hour_of_day\), got '14133100'"):
      datasets.fit(path, spec)

  def test_float_grammar_and_values(self):
    spec = spec_lib.FeatureSpec(features=(
        spec_lib.DenseFeature("x", transform="none", value_type="float"),
        spec_lib.CategoricalFeature("c", hash_buckets=3)))
    path = self.write("f.tsv", "1\t1.5\ta\n0\t-2e-3\ta\n1\t.5\ta\n0\t\ta\n1\t5.\ta\n")
    batch = next(iter(datasets.read_batches(path, spec)))
    self.assertEqual(batch.table.column("x").to_pylist(), [1.5, -2e-3, 0.5, None, 5.0])
    for bad in ("inf", "nan", "+1", " 1", "1e400", "0x1p3"):
      with self.assertRaisesRegex(datasets.DataError, r"line 1, field 'x': not a finite number"):
        datasets.fit(self.write("b.tsv", f"1\t{bad}\ta\n"), spec)

  # --- integer encodings -------------------------------------------------------------------
  def test_log1p_standardize_and_quantile_fit_and_encode_like_numpy(self):
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 5000, size=3000)
    x[rng.random(3000) < 0.1] = 0
    missing = rng.random(3000) < 0.1
    text = "".join(f"{i % 2}\t{'' if m else v}\n" for i, (v, m) in enumerate(zip(x, missing)))
    path = self.write("i.tsv", text)
    spec = spec_lib.FeatureSpec(features=tuple(integers.integer_features(
        "I1", "continuous+quantile", num_buckets=8)))
    self.assertEqual(spec.feature_names, ["I1", "I1_bucket"])
    self.assertEqual(spec.raw_columns, ["label", "I1"])
    fitted = datasets.fit(path, spec)
    present = x[~missing].astype(np.float64)
    y = np.log1p(np.maximum(present, 0))
    self.assertAllClose(fitted["I1"].mean, y.mean(), rtol=1e-12, atol=0)
    self.assertAllClose(fitted["I1"].std, y.std(), rtol=1e-12, atol=0)
    b = np.asarray(fitted["I1_bucket"].boundaries)
    self.assertBetween(len(b), 5, 7)
    counts = np.bincount(np.searchsorted(b, present, side="right"), minlength=len(b) + 1)
    self.assertLess(counts.max(), 0.3 * len(present))  # about equal-count buckets
    below = np.array([np.mean(present < edge) for edge in b])  # nearest to multiples of 1/8
    self.assertLess(np.max(np.abs(below * 8 - np.round(below * 8))), 0.05)
    out = self.make_temp_dir()
    datasets.transform(path, fitted, out)
    feats, _ = datasets.read_encoded(os.path.join(out, "train"), fitted)
    expected_ids = np.where(missing, 0, np.searchsorted(b, x, side="right") + 2)
    np.testing.assert_array_equal(feats["I1_bucket"], expected_ids)
    cont = np.where(missing, 0.0, (np.log1p(np.maximum(x, 0)) - fitted["I1"].mean) /
                    fitted["I1"].std).astype(np.float32)
    self.assertAllClose(feats["I1"], cont, rtol=0, atol=0)
    self.assertEqual(fitted.num_ids("I1_bucket"), len(b) + 3)

  def test_quantile_boundaries_by_hand(self):
    values = np.array([5.0, 1.0, 2.0, 3.0])
    counts = np.array([1, 4, 4, 1])  # sorted: 1 x4, 2 x4, 3, 5
    # Rows below 1, 2, 3, 5: 0, 4, 8, 9 of 10. The median (5 below) is nearest 2.
    self.assertEqual(encoding.quantile_boundaries(values, counts, 2), (2.0,))
    # Targets 2, 4, 6, 8: 2 (tie 0 / 4: the larger), 2, 3 (tie 4 / 8), 3.
    self.assertEqual(encoding.quantile_boundaries(values, counts, 5), (2.0, 3.0))
    self.assertEqual(encoding.quantile_boundaries(values, counts, 10), (2.0, 3.0, 5.0))
    self.assertEqual(encoding.quantile_boundaries(np.zeros(0), np.zeros(0), 4), ())

  def test_every_integer_encoding_of_criteo(self):
    for enc in integers.INTEGER_ENCODINGS:
      spec = schema_lib.builtin_spec("criteo", integer_encoding=enc)
      names = spec.feature_names
      self.assertEqual(len(names), 39 + (13 if "+" in enc else 0), enc)
      self.assertEqual(spec.raw_columns[:2], ["label", "I1"], enc)
      self.assertLen(spec.raw_columns, 40)
    both = schema_lib.builtin_spec("criteo", integer_encoding="continuous+bucketize")
    self.assertEqual(both["I1"].transform, "log1p_standardize")
    self.assertEqual((both["I1_bucket"].source, both["I1_bucket"].transform), ("I1", "bucketize"))

  # --- schema files and built-in specs ------------------------------------------------------
  def test_schema_file_builds_the_spec(self):
    schema = {"name": "shop", "label": "clicked",
              "columns": ["rid", "clicked", "user", "age", "price", "history", "ts"],
              "ignore": ["rid", "ts"], "kinds": {"age": "integer", "price": "float",
                                                  "history": "sequence"},
              "sequence": {"history": {"max_len": 5, "shares_vocabulary_with": "user"}},
              "derived": [{"name": "hour", "from": "ts", "function": "hour_of_day"}]}
    path = self.write("shop.json", json.dumps(schema))
    spec = schema_lib.load_spec(path, min_count=3, integer_encoding="continuous+bucketize")
    self.assertEqual(spec.name, "shop")
    self.assertEqual(spec.feature_names, ["user", "age", "age_bucket", "price", "price_bucket",
                                          "history", "hour"])
    self.assertEqual(spec.raw_columns, schema["columns"])
    self.assertEqual(spec.input_columns, ["user", "age", "price", "history", "ts"])
    self.assertEqual((spec["price"].value_type, spec["age"].value_type), ("float", "int"))
    self.assertEqual(spec["history"].max_len, 5)
    self.assertEqual(spec["user"].min_count, 3)
    self.assertEqual((spec["hour"].source, spec["hour"].derive), ("ts", "hour_of_day"))
    # A saved FeatureSpec JSON is read as written; the avazu schema round-trips.
    saved = self.write("saved.json", spec.to_json())
    self.assertEqual(schema_lib.load_spec(saved, min_count=99), spec)
    avazu = schema_lib.builtin_spec("avazu")
    again = schema_lib.load_spec(self.write("avazu.json", json.dumps(schema_lib.schema_of(avazu))))
    self.assertEqual(again, avazu)

  @parameterized.named_parameters(
      ("unknown_key", {"colums": []}, r"unknown keys \['colums'\]"),
      ("no_label", {"label": "y"}, r"'label' must be one of the columns"),
      ("bad_kind", {"kinds": {"a": "text"}}, r"kinds\['a'\] must be one of \['categorical'"),
      ("kind_of_unknown", {"kinds": {"zz": "integer"}}, r"'kinds' names 'zz', which is not among"),
      ("ignore_unknown", {"ignore": ["zz"]}, r"'ignore' names 'zz'"),
      ("derive_fn", {"derived": [{"name": "d", "from": "a", "function": "month"}]},
       r"derived\[0\].function must be one of \['hour_of_day', 'weekday'\]"),
      ("derive_from", {"derived": [{"name": "d", "from": "zz", "function": "weekday"}]},
       r"derived\[0\] reads 'zz'"),
      ("sequence_opts", {"sequence": {"a": {"max_len": 3}}}, r"not a sequence column"),
      ("duplicate", {"columns": ["y", "a", "a"]}, r"'columns' names \['a'\] more than once"),
      ("all_ignored", {"ignore": ["a", "b"]}, r"no features"),
  )
  def test_schema_errors_name_the_file_and_key(self, change, pattern):
    schema = {"label": "y", "columns": ["y", "a", "b"], **change}
    if change.get("label") == "y" and "label" in change:
      schema["label"] = "nope"
    path = self.write("s.json", json.dumps(schema))
    with self.assertRaisesRegex(spec_lib.SpecError, "s.json: .*" + pattern):
      schema_lib.load_spec(path)

  def test_load_spec_errors(self):
    with self.assertRaisesRegex(spec_lib.SpecError, r"'nope' is neither a built-in spec "
                                                    r"\(\['avazu', 'criteo', 'frappe'\]\)"):
      schema_lib.load_spec("nope")
    with self.assertRaisesRegex(spec_lib.SpecError, r"x.json: not JSON"):
      schema_lib.load_spec(self.write("x.json", "{"))
    bad_spec = self.write("f.json", json.dumps({"features": [{"kind": "dense", "name": "a",
                                                              "transform": "cube"}]}))
    with self.assertRaisesRegex(spec_lib.SpecError, r"f.json: .*transform must be one of"):
      schema_lib.load_spec(bad_spec)
    with self.assertRaisesRegex(spec_lib.SpecError, r"columns .* lacks \['b'\]"):
      spec_lib.FeatureSpec(features=(spec_lib.CategoricalFeature("b"),), columns=("label", "a"))

  def test_spec_json_keeps_its_format_and_round_trips_new_fields(self):
    plain = spec_lib.FeatureSpec(features=(spec_lib.DenseFeature("I1"),
                                           spec_lib.CategoricalFeature("C1")))
    d = plain.to_dict()
    self.assertNotIn("columns", d)
    self.assertEqual(set(d["features"][0]), {"kind", "name", "transform", "mean", "std",
                                             "min_count", "vocabulary", "embedding_dim"})
    spec = spec_lib.FeatureSpec(features=(
        spec_lib.DenseFeature("I1", transform="quantile", boundaries=(1.0, 4.0), value_type="float"),
        spec_lib.CategoricalFeature("h", source="t", derive="weekday")),
        columns=("t", "label", "I1"))
    self.assertEqual(spec_lib.FeatureSpec.from_json(spec.to_json()), spec)
    self.assertEqual(spec.num_ids("I1"), 5)

  # --- real data ------------------------------------------------------------------------------
  @pytest.mark.real_data
  def test_real_frappe_libfm(self):
    path = testing.require_file(paths.frappe_libfm())
    fitted, summary = datasets.fit(path, frappe_lib.frappe_spec(), return_summary=True)
    self.assertEqual(summary.rows, 57722)
    self.assertEqual(summary.positives, 19063)  # label 1; the other rows are -1
    self.assertEqual(summary.read["rows_skipped"], 0)
    self.assertEqual(len(fitted["isweekend"].vocabulary), 2)
    self.assertEqual(len(fitted["daytime"].vocabulary), 7)
    self.assertEqual(len(fitted["weekday"].vocabulary), 7)

  @pytest.mark.real_data
  def test_real_avazu_sample(self):
    path = testing.require_file(paths.avazu_sample())
    fitted, summary = datasets.fit(path, avazu_lib.avazu_spec(), return_summary=True)
    self.assertEqual(summary.rows, 6000)
    self.assertEqual(summary.read["rows_skipped"], 0)
    self.assertNotIn("id", fitted.feature_names)
    self.assertNotIn("hour", fitted.feature_names)
    self.assertEqual(fitted["weekday"].vocabulary, ("1",))  # 2014-10-21 was a Tuesday
    self.assertLen(fitted.features, 23)


if __name__ == "__main__":
  import tensorflow as tf
  tf.test.main()
