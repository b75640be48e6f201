"""Raw CTR data -> fitted spec + Parquet shards per split.

  python -m experiments.preprocess --input=train.txt --output=data_cache/criteo \
      --spec=criteo --min_count=10 --split=random:0.8,0.1,0.1
  python -m experiments.preprocess --input=avazu.csv --output=/tmp/avazu --spec=avazu \
      --split=random:0.8,0.2
  bazel run //experiments:preprocess -- --input=... --output=... --spec=criteo

--input: a file, a glob or a comma-separated list (TSV, CSV with a header,
Parquet, libFM / libFFM; .gz allowed); or "synthetic:<rows>" to generate the
built-in synthetic Criteo-style data first (into <output>/raw/synthetic.tsv).
--spec: a built-in spec (criteo, avazu, frappe), a schema file or a saved
FeatureSpec JSON (empty = criteo); --min_count, --hash_buckets,
--dense_transform and --integer_encoding apply to built-in specs and schema
files. The embedding width is not a data setting: a model sets it
(`model.params.embedding.dim`).
--split: "random:0.8,0.1,0.1" (train, valid, test), "random:0.8,0.2" (train,
valid), "random:train=0.8,test=0.2", "files:N", "kfold:K,F[,V]" or "none"
(everything "train"); the spec is fitted on "train".
Prints a progress bar and a summary (rows, CTR, vocabulary sizes, OOV rates,
skipped rows); writes <output>/spec.json and <output>/summary.json.
"""

import os
import sys

from absl import flags

from experiments import cli

cli.import_tensorflow_quietly()  # (selects Keras 2 before TensorFlow)
# pylint: disable=g-import-not-at-top,wrong-import-position
from ctr_zoo import datasets
from ctr_zoo.datasets import preprocessing as preprocessing_lib
from ctr_zoo.datasets import readers
from ctr_zoo.feature_columns import integers
from ctr_zoo.feature_columns import spec as spec_lib
from experiments import common_flags  # noqa: F401  (--spec, --seed, --output, --on_bad_rows)
from experiments import data as data_lib
from experiments import progress
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
for _name in ("spec", "seed", "on_bad_rows"):
  flags.declare_key_flag(_name)  # listed by --help
flags.DEFINE_string("input", None, "Raw file(s): path, glob, comma list, or synthetic:<rows>.")
flags.DEFINE_integer("min_count", 1, "Vocabulary min count (built-in specs and schema files).")
flags.DEFINE_enum("dense_transform", "log1p", list(spec_lib.DENSE_TRANSFORMS),
                  "Transform of integer fields when --integer_encoding is empty.")
flags.DEFINE_enum("integer_encoding", "", list(integers.INTEGER_ENCODINGS),
                  "Encoding of integer fields (e.g. continuous+bucketize: a float and an id).")
flags.DEFINE_integer("hash_buckets", None, "Hash categorical fields instead of a vocabulary.")
flags.DEFINE_string("split", "random:0.8,0.1,0.1",
                    "'random:a,b,c', 'random:a,b', 'random:train=a,test=b', 'files:N', "
                    "'kfold:K,F[,V]' or 'none'.")
flags.DEFINE_enum("format", "auto", list(readers.FILE_FORMATS), "Input format.")
flags.DEFINE_string("field_map", "", "libFM: a '<feature id> <field>' file (default: fields "
                    "by position in the line).")
flags.DEFINE_integer("rows_per_shard", 1 << 20, "Rows per output Parquet file.")
flags.DEFINE_float("max_stage_gib", preprocessing_lib.DEFAULT_MAX_STAGE_BYTES / 2**30,
                   "The raw text is parsed once when its size (x5 if compressed) is at most this "
                   "many GiB and half the free disk of --output; the parsed rows are staged there "
                   "(about 70 bytes per Criteo row), else it is parsed twice.")


def _inputs(text: str, output: str, seed: int) -> list:
  if text.startswith("synthetic:"):
    rows = int(float(text.split(":", 1)[1]))
    path = os.path.join(output, "raw", "synthetic.tsv")
    info = datasets.generate_criteo_tsv(path, rows, seed=seed)
    print(f"generated {rows:,} synthetic rows -> {path} (CTR {info['ctr']:.4f}, "
          f"oracle AUC {info['oracle_auc']:.4f}, logloss {info['oracle_logloss']:.4f})")
    return [path]
  return [p for p in text.split(",") if p]


def main(argv):
  del argv
  if not FLAGS.input or not FLAGS.output:
    return cli.error("--input and --output are required", cli.USAGE)
  seed = FLAGS.seed if FLAGS.seed is not None else 0
  on_bad_rows = FLAGS.on_bad_rows or "error"
  try:
    spec = data_lib.load_spec_arg(
        FLAGS.spec, min_count=FLAGS.min_count, hash_buckets=FLAGS.hash_buckets,
        dense_transform=FLAGS.dense_transform, integer_encoding=FLAGS.integer_encoding)
    split = datasets.parse_split(FLAGS.split, seed=seed)
  except (spec_lib.SpecError, ValueError) as e:
    return cli.error(e, cli.USAGE)
  os.makedirs(FLAGS.output, exist_ok=True)
  sources = _inputs(FLAGS.input, FLAGS.output, seed)
  common = dict(split=split, on_bad_rows=on_bad_rows, file_format=FLAGS.format,
                field_map=FLAGS.field_map or None)
  try:
    # One parse of the raw text: fit, then transform the staged batches.
    bar = progress.ProgressBar("fit+transform", width=30, min_interval=0.5)
    fitted, fit_summary, summary = datasets.fit_transform(
        sources, spec, FLAGS.output, progress=bar.file_callback,
        rows_per_shard=FLAGS.rows_per_shard,
        max_stage_bytes=int(FLAGS.max_stage_gib * 2**30), **common)
    bar.finish()
  except (datasets.DataError, ValueError) as e:
    print(f"\nerror: {e}", file=sys.stderr)
    return 1
  print(f"\nfit on {fit_summary.rows:,} rows in {fit_summary.seconds:.1f}s; "
        f"transform in {summary.seconds:.1f}s")
  print(f"{'split':<8}{'rows':>12}{'CTR':>9}")
  for name, rows in summary.rows.items():
    print(f"{name:<8}{rows:>12,}{summary.ctr[name]:>9.4f}")
  print(f"\n{'feature':<14}{'ids':>10}{'OOV rate':>10}{'missing':>10}")
  for name, size in summary.vocabulary_sizes.items():
    print(f"{name:<14}{size:>10,}{summary.oov_rate[name]:>10.4f}{summary.missing_rate[name]:>10.4f}")
  read = summary.read
  print(f"\nskipped rows: {read['rows_skipped']:,}" +
        (f" {read['skipped_by_reason']}" if read["rows_skipped"] else ""))
  for example in read["examples"]:
    print(f"  {example}")
  print(f"wrote {os.path.join(FLAGS.output, 'spec.json')}, summary.json and "
        f"{sum(len(v) for v in summary.shards.values())} shard(s)")
  return 0


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
