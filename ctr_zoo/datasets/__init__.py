"""ctr_zoo.datasets: readers, fit/transform, splits, tf.data input, synthetic data.

The path of the data: raw rows (TSV, CSV, Parquet, libFM/libFFM, DataFrame) ->
`fit` -> fitted FeatureSpec -> `transform` -> Parquet shards per split ->
`make_dataset` -> tf.data of (features, label). `encoding` documents exactly
how a raw value becomes an id or a float.
"""

from ctr_zoo.datasets.encoding import encode_table
from ctr_zoo.datasets.input_pipeline import (encode_frame, list_shards, make_dataset,
                                             read_encoded)
from ctr_zoo.datasets.preprocessing import (FitSummary, TransformSummary, fit, fit_transform,
                                            output_schema, transform)
from ctr_zoo.datasets.movielens import movielens_spec, read_movielens_100k
from ctr_zoo.datasets.readers import DataError, ReadSummary, detect_format, read_batches
from ctr_zoo.datasets.sequences import (SyntheticSequenceConfig, generate_sequence_data,
                                        sequence_spec)
from ctr_zoo.datasets.splits import (ConstantSplit, FileSplit, KFoldSplit, RandomSplit,
                                     parse_split, split_by_time)
from ctr_zoo.datasets.synthetic import (SyntheticCriteoConfig, generate_criteo_tsv,
                                        load_oracle, oracle_metrics, split_oracle_metrics)
from ctr_zoo.metrics import auc, logloss

__all__ = [
    "ConstantSplit", "DataError", "FileSplit", "FitSummary", "KFoldSplit", "RandomSplit",
    "ReadSummary", "SyntheticCriteoConfig", "SyntheticSequenceConfig", "TransformSummary", "auc",
    "detect_format", "encode_frame", "encode_table", "fit", "fit_transform",
    "generate_criteo_tsv", "generate_sequence_data", "list_shards", "load_oracle", "logloss",
    "make_dataset", "movielens_spec", "oracle_metrics", "output_schema", "parse_split",
    "read_batches", "read_encoded", "read_movielens_100k", "sequence_spec", "split_by_time",
    "split_oracle_metrics", "transform",
]
