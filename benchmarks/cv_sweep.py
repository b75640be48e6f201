r"""Defaults chosen by K-fold cross-validation: a one-setting-at-a-time sweep.

  python -m benchmarks.cv_sweep --data_setup=frappe --experiments=lr,fm,dnn,dcn_v2 \
      --point=default: --point=epochs30:trainer.epochs=30 \
      --point=emb_lr0.05:optimizer.embedding_learning_rate=0.05

Every model is trained on every fold of `--folds` (default 5) for every point
(a tag and the overrides it applies on top of the named experiment and
--params_override), with seed 0, exactly as `benchmarks.auc --folds` trains
them: fold f is scored by a model trained and early-stopped on the other
folds. The records of a point go to <results>/cv_sweep/<data setup>/<tag>/
auc_records.jsonl (the auc benchmark's format; --results defaults to
runs/benchmarks), and one summary line per (model, point) to
<results>/cv_sweep/<data setup>/summary.jsonl and, with --record=PATH.jsonl,
to that tracked file; `--render` prints that summary as a markdown table.

Selection uses the cross-validation estimate: the mean over folds of the AUC
on each fold's held-out part (every row of the file is held out once), and
each point's paired difference to the first point (the baseline), fold by
fold, with the number of folds it won. The early-stopping split inside each
fold's training rows (a tenth of 80% of the file) is too small to choose
on, and choosing the epoch budget on the split that early stopping itself
maximises favours the largest budget; its AUC is in the summary for
information. A README K-fold table built on the same folds after such a
choice is slightly optimistic for the chosen setting (fresh rows are the
real test).
"""

import json
import os
import sys

from absl import app
from absl import flags

from experiments import cli

cli.import_tensorflow_quietly()  # Keras 2 before TensorFlow, without its start-up lines

from benchmarks import auc as auc_lib
from benchmarks import common_flags  # noqa: F401  (--results, --record)
from benchmarks import fold_flags  # noqa: F401  (--folds)
from benchmarks import records

FLAGS = flags.FLAGS
flags.DEFINE_bool("render", False, "Only print the markdown table of the data setup's summary.")
flags.DEFINE_multi_string("point", [], "TAG:OVERRIDES (dotted key=value pairs, comma "
                          "separated; empty = the experiment as it is). The first is the baseline.")


class UsageError(Exception):
  """A bad flag value: reported as one line on stderr."""


def parse_points(items) -> list:
  """[(tag, overrides)] from TAG:OVERRIDES strings; tags are unique path-safe names."""
  out = []
  for item in items:
    tag, sep, overrides = item.partition(":")
    if not sep or not tag or not all(c.isalnum() or c in "._-" for c in tag):
      raise UsageError(f"--point={item!r} must be TAG:OVERRIDES with a TAG of letters, digits, "
                       "'.', '_' or '-'")
    if tag in [t for t, _ in out]:
      raise UsageError(f"--point tag {tag!r} is given twice")
    out.append((tag, overrides))
  if not out:
    raise UsageError("give at least one --point (e.g. --point=default:)")
  return out


def summarize(model: str, tag: str, overrides: str, recs: list, baseline: dict = None) -> dict:
  """One summary line of a model at a point from its fold records (seed 0)."""
  by_fold = {r["fold"]: r for r in recs}
  folds = sorted(by_fold)
  valid = [by_fold[f]["valid_auc"] for f in folds]
  test = [by_fold[f]["auc"] for f in folds]
  line = {"model": model, "point": tag, "overrides": overrides, "folds": folds,
          "valid_auc": valid, "test_auc": test,
          "mean_valid_auc": sum(valid) / len(valid), "mean_test_auc": sum(test) / len(test),
          "git_revision": records.git_revision(), "time": records.now()}
  if baseline is not None:
    for key in ("test", "valid"):
      base = dict(zip(baseline["folds"], baseline[f"{key}_auc"]))
      diffs = [v - base[f] for f, v in zip(folds, line[f"{key}_auc"]) if f in base]
      line[f"{key}_gain_vs_baseline"] = sum(diffs) / len(diffs) if diffs else None
      if key == "test":
        line["folds_better"] = sum(d > 0 for d in diffs)
        mean = line["test_gain_vs_baseline"]
        line["test_gain_std"] = ((sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5
                                 if len(diffs) > 1 else None)
  return line


def render(lines: list) -> str:
  """A markdown table of summary lines (the last line per model and point wins), by model."""
  latest = {}
  for line in lines:
    latest[(line["model"], line["point"])] = line
  rows = ["| model | point | overrides | CV AUC | gain vs first point (mean ± std) | folds "
          "better | early-stopping split AUC |", "|---|---|---|---|---|---|---|"]
  for (model, tag), line in latest.items():
    gain = line.get("test_gain_vs_baseline")
    std = line.get("test_gain_std")
    rows.append(
        f"| {model} | {tag} | `{line['overrides'] or '(as named)'}` | {line['mean_test_auc']:.4f} | "
        + ("baseline" if gain is None else f"{gain:+.4f}" + (f" ± {std:.4f}" if std else ""))
        + f" | {'' if gain is None else str(line['folds_better']) + '/' + str(len(line['folds']))}"
        f" | {line['mean_valid_auc']:.4f} |")
  return "\n".join(rows)


def main(argv):
  del argv
  root = os.path.join(records.results_dir(FLAGS.results), "cv_sweep", FLAGS.data_setup)
  if FLAGS.render:
    with open(os.path.join(root, "summary.jsonl")) as fh:
      print(render([json.loads(line) for line in fh if line.strip()]))
    return 0
  try:
    points = parse_points(FLAGS.point)
    if FLAGS.folds < 2:
      raise UsageError(f"--folds must be >= 2 for a cross-validated sweep, got {FLAGS.folds}")
    names = auc_lib.experiment_names(FLAGS.experiments, FLAGS.data_setup)
    tracked = records.user_path(FLAGS.record)
    if tracked and not tracked.endswith(".jsonl"):
      raise UsageError(f"--record={tracked} must name a JSON-lines file (*.jsonl)")
    # Every config is resolved before any training: a bad override fails at once.
    plan = [(tag, overrides, auc_lib.resolve_all(
        names, 1, ",".join(x for x in (FLAGS.params_override, overrides) if x), FLAGS.data,
        FLAGS.folds)) for tag, overrides in points]
  except (UsageError, auc_lib.UsageError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  baselines = {}
  for name in names:
    for tag, overrides, runs in plan:
      mine = [run for run in runs if run[0] == name]
      directory = os.path.join(root, tag, name)
      auc_lib.train_and_record(mine, directory, "")
      with open(os.path.join(directory, auc_lib.RECORDS_FILE)) as fh:
        recs = [json.loads(line) for line in fh][-len(mine):]
      line = summarize(name, tag, overrides, recs, baselines.get(name))
      baselines.setdefault(name, line)
      records.write_records([line], root, "summary.jsonl", tracked)
      gain = line.get("test_gain_vs_baseline")
      print(f"== {name} {tag}: CV AUC {line['mean_test_auc']:.4f} (early-stopping split "
            f"{line['mean_valid_auc']:.4f})" + ("" if gain is None else
                                               f", gain {gain:+.4f} "
                                               f"({line['folds_better']}/{len(recs)} folds)"),
            flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(app.run(main))
