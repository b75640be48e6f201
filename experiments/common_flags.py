"""Flags shared by the experiment targets (defined once: tests import several targets)."""

from absl import flags

flags.DEFINE_string(
    "data", "",
    "Raw data file(s) (TSV, CSV with a header, Parquet, libFM/libFFM; path, glob or comma "
    "list) or a prepared data directory; empty = the experiment's own data (the built-in "
    "synthetic data unless the data setup names a file). evaluate --model_dir: raw file(s) "
    "scored with the run's fitted spec (empty = the run's --eval_split); --export_dir and "
    "predict: raw rows in any layout the spec describes.")
flags.DEFINE_string(
    "spec", "",
    "What the data files are: a built-in spec (criteo, avazu, frappe), a schema file "
    "(columns, kinds, label, ignored and derived columns) or a saved FeatureSpec JSON; "
    "empty = the experiment's data.spec (criteo unless the data setup says otherwise).")
flags.DEFINE_string("model_dir", "", "Run directory (train: default runs/<experiment>).")
flags.DEFINE_string(
    "params_override", "",
    "Comma-separated dotted overrides, e.g. trainer.epochs=2,input.batch_size=512,"
    "model.params.tower.dropout=0.1")
flags.DEFINE_integer(
    "seed", None,
    "Random seed. train: trainer.seed (weights, shuffles, dropout; default: the "
    "experiment's); preprocess: the split and synthetic data seed (default 0).")
flags.DEFINE_enum(
    "on_bad_rows", None, ["error", "skip"],
    "Bad input rows: error = stop at the first one, naming file, line and field; skip = "
    "leave them out, counted and reported (predict writes each one in its place with a null "
    "probability and a skip_reason). train: data.on_bad_rows (default: the experiment's); "
    "other targets: default error.")
flags.DEFINE_string("export_dir", "", "A raw-feature SavedModel (e.g. model_dir/export).")
flags.DEFINE_string("output", None,
                    "Output: preprocess, a directory; predict, a .parquet or .csv file; "
                    "export, a SavedModel directory.")
flags.DEFINE_bool("progress", True, "Draw a progress bar on stderr.")
flags.DEFINE_enum("quantize", "none", ["none", "float16", "int8"],
                  "Storage of an exported SavedModel's weights: none (float32), float16, or "
                  "int8 (per-row int8 tables, float16 dense kernels; all computed in float32).")
