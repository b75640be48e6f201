r"""Regenerates the README's results sections from the tracked records.

  python -m benchmarks.render_readme        # what `make results` runs

It runs no benchmark: it reads benchmarks/results/ (written by the benchmark
programs only when given --record=PATH) and rewrites the rendered files there
and the README's marked blocks.

- AUC tables: benchmarks/results/auc_records.jsonl -> auc_<data>.md,
  auc_summary.csv, auc.png and the README's `auc-table:<data>` blocks.
- Throughput: benchmarks/results/throughput.json -> the README's
  `throughput-table` block (with the run's machine, date and revision).
- Precision: auc_records.jsonl against auc_records_bf16.jsonl (the same
  experiments with model.precision=mixed_bfloat16) -> `precision-table`.
- Reliability: benchmarks/results/reliability.json (the fault-injection
  suite's cases and outcomes, `make reliability`) -> `reliability-table`
  (when the README has that block).
- Serving: benchmarks/results/serving_records.jsonl (`benchmarks.serving`) ->
  serving.md and the README's `serving-table` block (when the README has one).
- Distributed training: the last record of benchmarks/results/distributed.jsonl
  -> the `distributed-table` block (when the README has one).
- Full scale: benchmarks/results/fullscale.md (rendered from fullscale.json by
  `python -m benchmarks.fullscale render`) -> the `fullscale` block (when the
  README has one).

Nothing in those README blocks is typed by hand.
"""

import json
import os
import re
import sys

from absl import app

from experiments import cli

cli.import_tensorflow_quietly()  # Keras 2 before TensorFlow, without its start-up lines

from benchmarks import auc_tables
from benchmarks import records
from benchmarks import reliability
from benchmarks import throughput_report

ROOT = records.REPO_ROOT
RESULTS = records.TRACKED_DIR


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
  table = throughput_report.render_table(record, markdown=True).rstrip("\n")
  head = f"Measured {when} on {where} (git {rev}); ratios are from one run, medians of timed windows."
  return f"{head}\n\n{table}\n"


def precision_markdown(float32_path: str, bfloat16_path: str) -> str:
  """Test AUC, float32 runs against precision="mixed_bfloat16" runs, per (data, model).

  Only (data, model) pairs recorded in both files are shown; each cell is the
  mean +- std over that file's seeds.
  """
  full = {(r["data"], r["model"]): r for r in auc_tables.summarize(
      auc_tables.load_records(float32_path))}
  mixed = auc_tables.summarize(auc_tables.load_records(bfloat16_path)) if os.path.exists(
      bfloat16_path) else []
  lines = ["| data | model | float32 test AUC | mixed_bfloat16 test AUC | difference | seeds |",
           "|---|---|---|---|---|---|"]
  for r in mixed:
    f = full.get((r["data"], r["model"]))
    if f is None:
      continue
    lines.append(f"| {r['data']} | {r['model']} | {f['auc_mean']:.4f} ± {f['auc_std']:.4f} | "
                 f"{r['auc_mean']:.4f} ± {r['auc_std']:.4f} | {r['auc_mean'] - f['auc_mean']:+.4f} | "
                 f"{f['runs']} / {r['runs']} |")
  if len(lines) == 2:
    return "No mixed_bfloat16 runs are recorded yet.\n"
  return "\n".join(lines) + "\n"


def main(argv):
  readme = records.user_path(argv[1]) if len(argv) > 1 else os.path.join(ROOT, "README.md")
  auc_tables.render(os.path.join(RESULTS, "auc_records.jsonl"), RESULTS, readme)
  with open(os.path.join(RESULTS, "throughput.json")) as fh:
    record = json.load(fh)
  with open(readme) as fh:
    text = fh.read()
  text = replace_block(text, "throughput-table", throughput_markdown(record))
  text = replace_block(text, "precision-table", precision_markdown(
      os.path.join(RESULTS, "auc_records.jsonl"), os.path.join(RESULTS, "auc_records_bf16.jsonl")))
  from benchmarks import serving  # pylint: disable=g-import-not-at-top  (defines its own flags)
  serving_records = os.path.join(RESULTS, serving.RECORDS_FILE)
  if os.path.exists(serving_records):
    table = serving.render(records.load_jsonl(serving_records))
    with open(os.path.join(RESULTS, serving.TABLE_FILE), "w") as fh:
      fh.write(table)
    if "<!-- serving-table:begin -->" in text:
      text = replace_block(text, "serving-table", table)
  distributed_records = os.path.join(RESULTS, "distributed.jsonl")
  if os.path.exists(distributed_records) and "<!-- distributed-table:begin -->" in text:
    from benchmarks import distributed  # pylint: disable=g-import-not-at-top
    text = replace_block(text, "distributed-table",
                         distributed.render(records.load_jsonl(distributed_records)[-1]))
  fullscale_section = os.path.join(RESULTS, "fullscale.md")
  if os.path.exists(fullscale_section) and "<!-- fullscale:begin -->" in text:
    with open(fullscale_section) as fh:
      text = replace_block(text, "fullscale", fh.read().strip())
  with open(readme, "w") as fh:
    fh.write(text)
  record = os.path.join(RESULTS, reliability.RECORD_FILE)
  if os.path.exists(record) and not reliability.render_readme(readme, record):
    print(f"note: {readme} has no {reliability.BLOCK} block; the reliability table was not rendered")
  print(f"regenerated the results sections of {readme}")
  return 0


if __name__ == "__main__":
  sys.exit(app.run(main))
