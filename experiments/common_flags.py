"""Flags shared by the experiment targets (defined once: tests import several targets)."""

from absl import flags

flags.DEFINE_string(
    "data", "",
    "Raw data file(s) (Criteo TSV, CSV with a header, Parquet; path, glob or comma list) "
    "or a prepared data directory; empty = the experiment's own data (the built-in "
    "synthetic data unless the data setup names a file). evaluate --model_dir: raw file(s) "
    "scored with the run's fitted spec (empty = the run's --eval_split); --export_dir: a "
    "raw TSV file with the label first.")
flags.DEFINE_string("model_dir", "", "Run directory (train: default runs/<experiment>).")
flags.DEFINE_string(
    "params_override", "",
    "Comma-separated dotted overrides, e.g. trainer.epochs=2,input.batch_size=512,"
    "model.params.tower.dropout=0.1")
flags.DEFINE_string(
    "spec", "",
    "What the data file is: a FeatureSpec / schema JSON file (train: sets data.spec; "
    "preprocess: also 'criteo', its default).")
flags.DEFINE_integer(
    "seed", None,
    "Random seed. train: trainer.seed (weights, shuffles, dropout; default: the "
    "experiment's); preprocess: the split and synthetic data seed (default 0).")
flags.DEFINE_enum(
    "on_bad_rows", None, ["error", "skip"],
    "Bad input rows: 'error' stops at the first (naming file, line and field), 'skip' drops "
    "and counts them (train: data.on_bad_rows, default the experiment's; preprocess: "
    "default error).")
