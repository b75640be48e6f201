r"""Regenerates the README's results sections from the recorded runs.

  python -m benchmarks.render_readme        # what `make results` runs

- AUC tables: benchmarks/results/auc_records.jsonl -> auc_<data>.md,
  auc_summary.csv, auc.png and the README's `auc-table:<data>` blocks.
- Throughput: benchmarks/results/throughput.json -> the README's
  `throughput-table` block (with the run's machine, date and revision).

Nothing in those README blocks is typed by hand.
"""

import json
import os
import re
import sys

from absl import app

import ctr_zoo  # noqa: F401  (selects Keras 2 before TensorFlow)

from benchmarks import auc_tables
from benchmarks import throughput

ROOT = os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")


def replace_block(text: str, name: str, content: str) -> str:
  """Replaces what stands between `<!-- name:begin -->` and `<!-- name:end -->`."""
  pattern = re.compile(rf"(<!-- {re.escape(name)}:begin -->\n).*?(<!-- {re.escape(name)}:end -->)", re.S)
  text, n = pattern.subn(lambda m: m.group(1) + content + m.group(2), text)
  if not n:
    raise ValueError(f"README has no <!-- {name}:begin --> ... <!-- {name}:end --> block")
  return text


def throughput_markdown(record: dict) -> str:
  """The throughput table plus one line saying where and when it was measured."""
  when = record.get("time", "")
  where = record.get("machine") or ""
  rev = record.get("git_revision") or ""
  table = throughput.render_table(record, markdown=True).rstrip("\n")
  head = f"Measured {when} on {where} (git {rev}); ratios are from one run, medians of timed windows."
  return f"{head}\n\n{table}\n"


def main(argv):
  readme = argv[1] if len(argv) > 1 else os.path.join(ROOT, "README.md")
  auc_tables.render(os.path.join(RESULTS, "auc_records.jsonl"), RESULTS, readme)
  with open(os.path.join(RESULTS, "throughput.json")) as fh:
    record = json.load(fh)
  with open(readme) as fh:
    text = fh.read()
  text = replace_block(text, "throughput-table", throughput_markdown(record))
  with open(readme, "w") as fh:
    fh.write(text)
  print(f"regenerated the results sections of {readme}")
  return 0


if __name__ == "__main__":
  sys.exit(app.run(main))
