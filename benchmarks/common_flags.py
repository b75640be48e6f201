"""Flags shared by the benchmark programs (defined once: tests import several of them).

--results: the run's results directory (default <repo>/runs/benchmarks, git-ignored).
  Every run writes its records and rendered tables there.
--record: a tracked records file (under benchmarks/results/) that the run ALSO
  writes. Empty by default: only an explicit --record changes the repository.
"""

from absl import flags

from benchmarks import records

flags.DEFINE_string(
    "results", "",
    f"This run's results directory (records and rendered tables); default "
    f"{records.DEFAULT_RESULTS_DIR} (git-ignored).")
flags.DEFINE_string(
    "record", "",
    "Also write this run's record(s) to this tracked file, e.g. "
    "--record=benchmarks/results/auc_records.jsonl (the maintainer's command; "
    "empty: the repository's records are left alone).")
