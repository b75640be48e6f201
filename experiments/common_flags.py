"""Flags shared by the experiment targets (defined once: tests import several targets)."""

from absl import flags

flags.DEFINE_string(
    "data", "",
    "Raw data file(s) (TSV, CSV with a header, Parquet, libFM/libFFM; path, glob or comma "
    "list) or a prepared data directory; empty = the experiment's own data (the built-in "
    "synthetic data unless the data setup names a file). evaluate --model_dir: raw file(s) "
    "scored with the run's fitted spec (empty = the run's --eval_split); --export_dir: a "
    "raw TSV file with the label first.")
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
