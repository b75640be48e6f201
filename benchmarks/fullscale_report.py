"""Renders the fullscale records: per-stage table, scaling curve (table + PNG), 1TB projection.

`render(path, out_dir)` reads a fullscale record file ({"records": [one per
scale]}, written by `benchmarks.fullscale run`), writes `fullscale.md` and
`fullscale.png` into `out_dir` and returns the markdown. Every figure in it
comes from the records; the projection is arithmetic on them (labelled so),
with its one assumption (the network bandwidth) stated beside it.
"""

from __future__ import annotations

import json
import math
import os
from typing import List, Optional

from benchmarks import records

MD_FILE = "fullscale.md"
PNG_FILE = "fullscale.png"
# Criteo 1TB click logs (Criteo Terabyte): 24 days, 4,373,472,329 rows.
TB_ROWS = 4_373_472_329
TB_DAYS = 24
ASSUMED_LINK_BYTES_PER_S = 1.25e9  # 10 Gbit/s per worker: an assumption, not a measurement
WORKERS = (1, 4, 16, 64)
SCALED_STAGES = ("generate", "preprocess_min10", "preprocess_all", "train_min10", "train_all",
                 "evaluate_min10", "export_min10", "export_all", "predict_min10", "predict_all")
MIB = 2 ** 20


def load(path: str) -> List[dict]:
  with open(path) as fh:
    return sorted(json.load(fh)["records"], key=lambda r: r["rows"])


def _fmt_rate(v: Optional[float]) -> str:
  return "-" if not v else f"{v:,.0f}"


def _mib(v: Optional[float]) -> str:
  return "-" if v is None else f"{v / MIB:,.0f}"


def _rss_sources(record: dict) -> set:
  """How the stages' peak RSS was taken: "VmHWM" (their own) and/or "wait4" (older records)."""
  return {s.get("peak_rss_source", "wait4") for s in record["stages"].values()
          if "peak_rss_bytes" in s}


def _rss_cell(record: dict, stage: dict) -> str:
  star = len(_rss_sources(record)) > 1 and stage.get("peak_rss_source", "wait4") == "wait4"
  return _mib(stage["peak_rss_bytes"]) + ("*" if star else "")


def _runner_note(record: dict) -> str:
  if record.get("stage_runner") == "fork":
    note = ("Every stage is a process forked from one that had imported TensorFlow "
            f"(--stage_runner=fork): ~{record.get('startup_s', 0):.2f} s of its wall time is "
            "start-up, and its peak RSS counts pages it inherits (not comparable with a "
            "process of its own).")
  else:
    note = (f"Every stage is one process; its wall time includes the "
            f"~{record.get('startup_s', 0):.0f} s a process takes to import TensorFlow.")
    sources = _rss_sources(record)
    if "wait4" in sources:
      which = "marked * is" if len(sources) > 1 else "is"
      note += (f" Peak RSS {which} wait4's ru_maxrss, which on Linux is at least the "
               "runner's own peak when it started the stage (about 0.6 GiB, more after a "
               "stage whose outputs it read)"
               + ("; the others are the stage's own (VmHWM)." if len(sources) > 1 else "."))
    else:
      note += " Peak RSS is the stage's own (the VmHWM of its address space)."
  jobs = record.get("stage_jobs", 1)
  if jobs > 1:
    note += (f" Up to {jobs} stages at a time (--stage_jobs): a wall time includes the "
             "others' competition for the cores.")
  return note


def _cpu(machine: str) -> str:
  """The cores and CPU model of a `records.machine_description()` string."""
  return machine.split(";")[0].strip()


def stage_table(record: dict) -> str:
  """One scale: wall, rows/s, peak RSS, disk written per stage."""
  lines = [f"Scale {record['scale']:g}: {record['rows']:,} rows, {record['file_bytes'] / 2**30:.2f} "
           f"GiB of TSV; {record['machine']}; load after {record['load_after'][0]:.1f}; git "
           f"{record['git_revision']}, {record['time']}. {_runner_note(record)}", "",
           "| stage | wall s | rows | rows/s | rows/s after start-up | peak RSS MiB | "
           "disk written MiB |",
           "|---|---|---|---|---|---|---|"]
  reruns = []
  for name, s in record["stages"].items():
    if s.get("rerun"):
      where = ""
      if _cpu(s["rerun"].get("machine") or record["machine"]) != _cpu(record["machine"]):
        where = f" on another machine ({_cpu(s['rerun']['machine'])})"
      reruns.append(f"{name} was measured again at git {s['rerun']['git_revision']}, "
                    f"{s['rerun']['time']}{where}")
      name += " (rerun)"
    if s.get("skipped"):
      lines.append(f"| {name} | reused | {s['rows']:,} | - | - | - | - |")
      continue
    rows = f"{s['rows']:,}" if s.get("rows") else "-"
    lines.append(f"| {name} | {s['wall_s']:.1f} | {rows} | {_fmt_rate(s.get('rows_per_s'))} | "
                 f"{'-' if name.startswith('train') else _fmt_rate(s.get('rows_per_s_after_startup'))} | {_rss_cell(record, s)} | "
                 f"{s['disk_written_bytes'] / MIB:,.1f} |")
  if reruns:
    lines += ["", "Rerun: " + "; ".join(reruns) + "."]
  return "\n".join(lines) + "\n"


def training_table(record: dict) -> str:
  """Training: ex/s, step time at start / middle / end, tables against the formula, sizes."""
  lines = ["| run | ids | steady ex/s | step s start / middle / end | end / start | "
           "tables+slots formula MiB | checkpoint MiB | export MiB | test AUC |",
           "|---|---|---|---|---|---|---|---|---|"]
  st = record["stages"]
  for key in ("base", "min10", "all"):
    s = st.get(f"train_{key}")
    if not s or "step_s_start" not in s:
      continue
    export = st.get(f"export_{key}", {}).get("export_bytes")
    lines.append(
        f"| {key} | {s['ids']:,} | {s['steady_examples_per_sec']:,.0f} | "
        f"{s['step_s_start']:.3f} / {s['step_s_middle']:.3f} / {s['step_s_end']:.3f} | "
        f"{s['end_over_start']:.2f} | {_mib(s['embedding_formula_bytes'])} | "
        f"{_mib(s['checkpoint_bytes'])} | {_mib(export)} | {s['test_auc']:.4f} |")
  oracle = record.get("oracle_test", {})
  lines.append("")
  train = st.get("train_min10", {})
  # Records from before the trainings named their optimizer used Keras Adam on the tables.
  optimizer = train.get("embedding_optimizer", "adam")
  lines.append(f"Formula: ids x {train.get('embedding_dim', 16)} x 4 bytes x "
               f"(1 + {train.get('optimizer_slots', 2)} slots of the tables' optimizer, "
               f"{optimizer}); the "
               "checkpoint also holds the dense layers and their slots. The oracle's test AUC is "
               f"{oracle.get('auc', float('nan')):.4f}. base = the same config on "
               "hashed 10k-id tables (day 0, at most 60 steps), the reference of the ex/s target.")
  return "\n".join(lines) + "\n"


def targets_table(record: dict) -> str:
  lines = ["| target | measured | met |", "|---|---|---|"]
  for name, t in record["targets"].items():
    v = t["value"]
    if v is None:
      shown = "not run"
    elif "rss" in name:
      shown = f"{v / 2**30:.2f} GiB"
    elif isinstance(v, float) and v < 100:
      shown = f"{v:.2f}"
    else:
      shown = f"{v:,.0f}"
    met = "-" if t["met"] is None else ("yes" if t["met"] else "**no**")
    lines.append(f"| {name} | {shown} | {met} |")
  return "\n".join(lines) + "\n"


def growth(recs: List[dict], stage: str, key: str) -> Optional[float]:
  """Exponent k of value ~ rows^k between the smallest and largest scale (1 = linear)."""
  pts = [(r["rows"], r["stages"][stage].get(key)) for r in recs
         if stage in r["stages"] and not r["stages"][stage].get("skipped")]
  pts = [(n, v) for n, v in pts if v]
  if len(pts) < 2 or pts[0][0] == pts[-1][0]:
    return None
  return math.log(pts[-1][1] / pts[0][1]) / math.log(pts[-1][0] / pts[0][0])


def _k(v: Optional[float]) -> str:
  return "-" if v is None else f"{v:.2f}"


def scaling_table(recs: List[dict]) -> str:
  """Time and peak RSS per stage at each scale, with the growth exponents against rows.

  k over the smallest to the largest scale, and with three scales or more also
  over the two largest, where the fixed costs (the ~5 s import, TensorFlow's
  start) no longer hide how a stage grows.
  """
  head = " | ".join(f"{r['rows']:,} rows: s / MiB" for r in recs)
  last_two = len(recs) >= 3
  extra = " time k, two largest | RSS k, two largest |" if last_two else ""
  lines = [f"| stage | {head} | time ~ rows^k | RSS ~ rows^k |{extra}",
           "|---|" + "---|" * len(recs) + "---|---|" + ("---|---|" if last_two else "")]
  for stage in SCALED_STAGES:
    cells = []
    for r in recs:
      s = r["stages"].get(stage)
      if not s or s.get("skipped"):
        cells.append("-")
      else:
        cells.append(f"{s['wall_s']:.1f} / {s['peak_rss_bytes'] / MIB:,.0f}")
    ks = [growth(recs, stage, "wall_s"), growth(recs, stage, "peak_rss_bytes")]
    if last_two:
      ks += [growth(recs[-2:], stage, "wall_s"), growth(recs[-2:], stage, "peak_rss_bytes")]
    lines.append(f"| {stage} | " + " | ".join(cells) + " | " + " | ".join(_k(k) for k in ks) + " |")
  return "\n".join(lines) + "\n"


def plot(recs: List[dict], path: str) -> Optional[str]:
  """Wall time and peak RSS per stage against rows (log-log) as a PNG; None without matplotlib."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  for stage in SCALED_STAGES:
    pts = [(r["rows"], r["stages"][stage]) for r in recs
           if stage in r["stages"] and not r["stages"][stage].get("skipped")]
    if not pts:
      continue
    xs = [n for n, _ in pts]
    axes[0].plot(xs, [s["wall_s"] for _, s in pts], marker="o", label=stage)
    axes[1].plot(xs, [s["peak_rss_bytes"] / MIB for _, s in pts], marker="o", label=stage)
  for ax, title in zip(axes, ("wall time (s)", "peak RSS (MiB)")):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
  axes[1].legend(fontsize=7, loc="upper left")
  fig.suptitle("fullscale pipeline (dcn_v2_criteo_x4) against rows")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def _distributed_comm(path: str) -> Optional[dict]:
  """Per-example table bytes and the dense-variable bytes of the last distributed record."""
  if not os.path.exists(path):
    return None
  rec = records.load_jsonl(path)[-1]
  ps = {k: v for k, v in rec["configs"].items() if k.startswith("ps") and "bytes_per_step" in v}
  if not ps:
    return None
  dense = 2 * 4 * rec["layout"]["dense_params"]
  per_example = [(v["bytes_per_step"] - dense) / rec["batch_size"] for v in ps.values()]
  return {"table_bytes_per_example": max(per_example), "batch_size": rec["batch_size"],
          "configs": sorted(ps), "time": rec["time"]}


def projection(recs: List[dict], distributed_path: str) -> str:
  """The Criteo 1TB projection: arithmetic on the largest scale's measured rates."""
  r = recs[-1]
  st = r["stages"]
  train_rows = TB_ROWS * (TB_DAYS - 1) / TB_DAYS
  test_rows = TB_ROWS / TB_DAYS / 2
  lines = ["**Projection, not a measurement.** Criteo 1TB logs: 4,373,472,329 rows in 24 days "
           "(23 train, the last halved into valid and test). Each time below is rows / a rate "
           f"measured at scale {r['scale']:g} ({r['rows']:,} rows) on the machine above (or, for a "
           "stage marked rerun on another machine, that one), with no "
           "correction for the larger vocabulary (the training rows here are measured flat in "
           "vocabulary only up to the ids of that scale).", "",
           "| stage | measured rate, rows/s (training: steady ex/s; others: after start-up) | rows "
           "| one machine of this kind |", "|---|---|---|---|"]

  def hours(rows, rate):
    return f"{rows / rate / 3600:,.1f} h" if rate else "-"

  for name, rows in (("preprocess_min10", TB_ROWS), ("train_min10", train_rows),
                     ("train_all", train_rows), ("evaluate_min10", test_rows),
                     ("predict_min10", test_rows)):
    s = st.get(name, {})
    rate = s.get("steady_examples_per_sec") or s.get("rows_per_s_after_startup") or s.get(
        "rows_per_s")
    lines.append(f"| {name} | {_fmt_rate(rate)} | {rows:,.0f} | {hours(rows, rate)} |")
  comm = _distributed_comm(distributed_path)
  train = st.get("train_min10", {})
  if comm and train.get("steady_examples_per_sec"):
    b = r["batch_size"]
    metrics_params = train.get("params")
    dense_params = (metrics_params - train["ids"] * train["embedding_dim"]) if metrics_params else None
    step_compute = b / train["steady_examples_per_sec"]
    dense_bytes = 2 * 4 * dense_params if dense_params else 0
    step_bytes = dense_bytes + comm["table_bytes_per_example"] * b
    step_comm = step_bytes / ASSUMED_LINK_BYTES_PER_S
    lines += ["", f"With N parameter-server workers: each step sends {step_bytes / 1e6:.1f} MB "
              f"(the dense variables read and their gradients, {dense_bytes / 1e6:.1f} MB, plus "
              f"{comm['table_bytes_per_example']:,.0f} bytes of embedding rows per example, the "
              f"per-step figure of the distributed benchmark ({', '.join(comm['configs'])}, "
              f"{comm['time']}) scaled to batch {b:,}); at an assumed 10 Gbit/s per worker that is "
              f"{step_comm:.3f} s against a measured {step_compute:.3f} s of compute per step. "
              "Workers add throughput linearly when parameter servers are sharded enough not to "
              "be the bottleneck (assumed), and communication does not overlap compute "
              "(conservative):", "",
              "| workers | ex/s | 1 epoch of the 23 train days |", "|---|---|---|"]
    for n in WORKERS:
      rate = n * b / (step_compute + step_comm)
      lines.append(f"| {n} | {rate:,.0f} | {train_rows / rate / 3600:,.1f} h |")
  return "\n".join(lines) + "\n"


def render(path: str, out_dir: str, distributed_path: str = "") -> str:
  """Writes fullscale.md and fullscale.png into `out_dir`; returns the markdown."""
  recs = load(path)
  distributed_path = distributed_path or os.path.join(records.TRACKED_DIR, "distributed.jsonl")
  parts = ["### Full-Criteo scale on one machine", ""]
  largest = recs[-1]
  parts += [stage_table(largest), training_table(largest), "Targets at this scale:", "",
            targets_table(largest)]
  if len(recs) > 1:
    png = plot(recs, os.path.join(out_dir, PNG_FILE))
    parts += ["Scaling: wall seconds / peak RSS MiB per stage against rows; k is the exponent "
              "of value ~ rows^k between the smallest and the largest scale, and between the two "
              "largest where there are three (1 = linear; RSS includes the tables, which grow "
              "with the ids).", "", scaling_table(recs)]
    if png:
      parts += [f"![fullscale scaling](benchmarks/results/{PNG_FILE})", ""]
  parts += [projection(recs, distributed_path)]
  text = "\n".join(parts)
  with open(os.path.join(out_dir, MD_FILE), "w") as fh:
    fh.write(text)
  return text
