"""Offline AUC benchmark records -> markdown table, CSV and PNG plot.

A record (one JSON line per training run, written by `benchmarks/auc.py`)
holds: experiment, model, data, seed, git_revision, data_fingerprint,
split_rows, auc, logloss (test split), valid_auc, params, train_seconds,
examples_per_sec, oracle_auc / oracle_logloss (synthetic data only).

Tables group by (data, model): mean +- std (sample std, ddof=1) over seeds;
the best mean AUC and logloss are bold; for synthetic data an "oracle" row and
a column with each model's AUC distance to the oracle are added. Where the
records hold the scikit-learn LR anchor (`ANCHOR`, `benchmarks.sklearn_anchor`)
for that data, every model whose mean AUC is below the anchor's is marked
"(below LR anchor)".

README rendering replaces the text between
`<!-- auc-table:<data>:begin -->` and `<!-- auc-table:<data>:end -->`.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from typing import Dict, List, Optional

import numpy as np

from benchmarks import records

ANCHOR = "sklearn_lr"  # the model name of benchmarks.sklearn_anchor's records
BELOW_ANCHOR = "(below LR anchor)"

CSV_FIELDS = ("data", "model", "runs", "auc_mean", "auc_std", "logloss_mean", "logloss_std",
              "oracle_auc", "auc_gap_to_oracle", "params", "train_seconds", "examples_per_sec")


def load_records(path: str) -> List[dict]:
  """Reads JSON lines; a bad line raises ValueError naming the file and line."""
  return records.load_jsonl(path)


def _mean_std(values):
  values = np.asarray(values, np.float64)
  std = float(values.std(ddof=1)) if values.size > 1 else 0.0
  return float(values.mean()), std


def summarize(records: List[dict]) -> List[dict]:
  """One row per (data, model), sorted by data then descending mean AUC."""
  groups: Dict[tuple, List[dict]] = {}
  for r in records:
    groups.setdefault((r["data"], r["model"]), []).append(r)
  rows = []
  for (data, model), rs in groups.items():
    auc_mean, auc_std = _mean_std([r["auc"] for r in rs])
    ll_mean, ll_std = _mean_std([r["logloss"] for r in rs])
    oracle = [r["oracle_auc"] for r in rs if r.get("oracle_auc") is not None]
    oracle_auc = float(np.mean(oracle)) if oracle else None
    rows.append({
        "data": data, "model": model, "runs": len(rs), "auc_mean": auc_mean, "auc_std": auc_std,
        "logloss_mean": ll_mean, "logloss_std": ll_std, "oracle_auc": oracle_auc,
        "oracle_logloss": (float(np.mean([r["oracle_logloss"] for r in rs]))
                           if oracle else None),
        "auc_gap_to_oracle": (oracle_auc - auc_mean) if oracle_auc is not None else None,
        "params": int(np.median([r["params"] for r in rs])),
        "train_seconds": float(np.median([r["train_seconds"] for r in rs])),
        "examples_per_sec": float(np.median([r["examples_per_sec"] for r in rs])),
    })
  rows.sort(key=lambda r: (r["data"], -r["auc_mean"]))
  return rows


def markdown_table(rows: List[dict], data: str) -> str:
  """The markdown table of one data setup (best mean AUC / logloss in bold)."""
  rows = [r for r in rows if r["data"] == data]
  if not rows:
    raise ValueError(f"no records for data {data!r}")
  best_auc = max(r["auc_mean"] for r in rows)
  best_ll = min(r["logloss_mean"] for r in rows)
  has_oracle = any(r["oracle_auc"] is not None for r in rows)
  anchor = next((r["auc_mean"] for r in rows if r["model"] == ANCHOR), None)
  header = ["model", "test AUC (mean ± std)", "test logloss (mean ± std)"]
  if has_oracle:
    header.append("AUC gap to oracle")
  header += ["runs", "params", "train s", "examples/s"]
  out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in rows:
    auc = f"{r['auc_mean']:.4f} ± {r['auc_std']:.4f}"
    ll = f"{r['logloss_mean']:.4f} ± {r['logloss_std']:.4f}"
    if math.isclose(r["auc_mean"], best_auc):
      auc = f"**{auc}**"
    if math.isclose(r["logloss_mean"], best_ll):
      ll = f"**{ll}**"
    name = r["model"]
    if anchor is not None and name != ANCHOR and r["auc_mean"] < anchor:
      name = f"{name} {BELOW_ANCHOR}"
    cells = [name, auc, ll]
    if has_oracle:
      cells.append(f"{r['auc_gap_to_oracle']:.4f}" if r["auc_gap_to_oracle"] is not None else "")
    cells += [str(r["runs"]), f"{r['params']:,}", f"{r['train_seconds']:.1f}",
              f"{r['examples_per_sec']:,.0f}"]
    out.append("| " + " | ".join(cells) + " |")
  if has_oracle:
    oracle = next(r for r in rows if r["oracle_auc"] is not None)
    cells = ["*oracle* (true click probability)", f"{oracle['oracle_auc']:.4f}",
             f"{oracle['oracle_logloss']:.4f}", "0", "", "", "", ""]
    out.append("| " + " | ".join(cells) + " |")
  return "\n".join(out) + "\n"


def csv_text(rows: List[dict]) -> str:
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
  writer.writeheader()
  for r in rows:
    writer.writerow(r)
  return buf.getvalue()


def plot_png(rows: List[dict], path: str) -> None:
  """AUC (mean ± std) vs parameters and vs train time, one panel pair per data setup."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  datas = sorted({r["data"] for r in rows})
  fig, axes = plt.subplots(len(datas), 2, figsize=(11, 4 * len(datas)), squeeze=False)
  for i, data in enumerate(datas):
    rs = [r for r in rows if r["data"] == data]
    for j, (key, label) in enumerate((("params", "parameters"), ("train_seconds", "train time (s)"))):
      ax = axes[i][j]
      for r in rs:
        ax.errorbar(r[key], r["auc_mean"], yerr=r["auc_std"], fmt="o", capsize=3)
        ax.annotate(r["model"], (r[key], r["auc_mean"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
      if rs[0]["oracle_auc"] is not None:
        ax.axhline(rs[0]["oracle_auc"], linestyle="--", color="gray", label="oracle")
        ax.legend(loc="lower right")
      ax.set_xscale("log")
      ax.set_xlabel(label)
      ax.set_ylabel("test AUC")
      ax.set_title(f"{data}: AUC vs {label}")
      ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def render_readme(readme_path: str, tables: Dict[str, str]) -> List[str]:
  """Replaces each `<!-- auc-table:<data>:begin/end -->` block; returns the data names done."""
  with open(readme_path) as fh:
    text = fh.read()
  done = []
  for data, table in tables.items():
    pattern = re.compile(rf"(<!-- auc-table:{re.escape(data)}:begin -->\n).*?(<!-- auc-table:"
                         rf"{re.escape(data)}:end -->)", re.S)
    text, n = pattern.subn(lambda m: m.group(1) + table + m.group(2), text)  # pylint: disable=cell-var-from-loop
    if n:
      done.append(data)
  with open(readme_path, "w") as fh:
    fh.write(text)
  return done


def render(records_path: str, output_dir: str, readme: Optional[str] = None) -> Dict[str, str]:
  """Writes auc_<data>.md, auc_summary.csv and auc.png; optionally updates the README."""
  rows = summarize(load_records(records_path))
  os.makedirs(output_dir, exist_ok=True)
  tables = {data: markdown_table(rows, data) for data in sorted({r["data"] for r in rows})}
  for data, table in tables.items():
    with open(os.path.join(output_dir, f"auc_{data}.md"), "w") as fh:
      fh.write(table)
  with open(os.path.join(output_dir, "auc_summary.csv"), "w") as fh:
    fh.write(csv_text(rows))
  plot_png(rows, os.path.join(output_dir, "auc.png"))
  if readme:
    render_readme(readme, tables)
  return tables
