"""The throughput record: one row per model from its timings, and the record's table.

`model_row` turns one model's timings (ctr_zoo's, its DeepCTR peer's, the
matmul roofline measured in the same windows) into the record's row: the
ratio to DeepCTR, the training FLOPs per example and the fraction of the
roofline. `render_table` renders a whole record (as written to
benchmarks/results/throughput.json) as plain text or as the README's markdown.

Speed ratios compare equal precision: the float32 ratio is ctr_zoo float32
over the float32 DeepCTR peer (the headline); the bf16 ratio is ctr_zoo built
with precision="mixed_bfloat16" over the DeepCTR peer built under the Keras
global policy "mixed_bfloat16", and is not shown for a record that has no such
peer run.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, Optional

from benchmarks import flops as flops_lib
from benchmarks import harness

# The key of ctr_zoo's mixed_bfloat16 step variant in a row's "modes".
BF16_MODE = "bf16"

# Targets: ctr_zoo examples/s over DeepCTR's, in one run.
TARGET_RATIOS = {"dcn_v2": 2.0, "dcn_mix": 3.0, "deepfm": 1.5}
TARGET_ROOFLINE = {"dcn_v2": 0.8}
TARGET_INPUT_OVER_STEP = 5.0

HEADERS = ("model", "ctr_zoo ex/s", "DeepCTR peer", "DeepCTR ex/s", "ratio", "MFLOP/ex",
           "matmul GFLOP/s", "roofline ex/s", "of roofline", "DeepCTR of roofline",
           "best possible ratio", "embedding step ms", "ceiling ex/s", "ceiling ratio",
           "bf16 ex/s", "DeepCTR bf16 ex/s", "bf16 ratio", "bf16 of bf16 roofline",
           "peak RSS MiB", "jit", "notes")


def model_row(model_name: str, batch_size: int, gflops: float, zoo: Dict[str, Any],
              peer: Optional[Dict[str, Any]]) -> Dict[str, Any]:
  """One model's record row: rates, ratios to DeepCTR, FLOPs and fractions of the roofline.

  Args:
    model_name: str. The ctr_zoo model name.
    batch_size: int. Examples per step (for the ceiling).
    gflops: float. The roofline measured at the start, used when `zoo` has no
      "roofline_gflops" of its own windows.
    zoo: dict. ctr_zoo's timings: "examples_per_sec", "forward_flops_per_example"
      (from the model's graph), "modes" (per step variant, BF16_MODE among
      them), "roofline_gflops", "roofline_bf16_gflops", "embedding_step_ms", ...
    peer: dict or None. The DeepCTR peer's: "examples_per_sec", and "bf16"
      (the peer under mixed_bfloat16: "examples_per_sec" or "note").
  """
  forward = zoo.get("forward_flops_per_example")
  flops = flops_lib.train_flops_per_example(forward) if forward else None
  gflops = zoo.get("roofline_gflops") or gflops  # measured in this model's own rounds
  roof = harness.roofline_examples_per_sec(gflops, flops) if flops else None
  row = {"model": model_name, "train_mflop_per_example": flops / 1e6 if flops else None,
         "roofline_examples_per_sec": roof}
  row.update({k: v for k, v in zoo.items() if k != "model"})
  rate = zoo.get("examples_per_sec")
  row["fraction_of_roofline"] = rate / roof if rate and roof else None
  if zoo.get("embedding_step_ms") is not None and flops:
    row["ceiling_examples_per_sec"] = harness.ceiling_examples_per_sec(
        gflops, flops, batch_size, zoo["embedding_step_ms"])
  peer_rate = (peer or {}).get("examples_per_sec")
  if peer is not None:
    row["deepctr"] = peer
    if rate and peer_rate:
      row["ratio_to_deepctr"] = rate / peer_rate
    if peer_rate and roof:
      peer["fraction_of_roofline"] = peer_rate / roof
    if row.get("ceiling_examples_per_sec") and peer_rate:
      row["ceiling_ratio_to_deepctr"] = row["ceiling_examples_per_sec"] / peer_rate
  bf16 = (zoo.get("modes") or {}).get(BF16_MODE) or {}
  peer_bf16 = (peer or {}).get("bf16") or {}
  if bf16.get("examples_per_sec"):
    row["bf16_examples_per_sec"] = bf16["examples_per_sec"]
    if zoo.get("roofline_bf16_gflops") and flops:
      row["bf16_fraction_of_bf16_roofline"] = bf16["examples_per_sec"] / (
          harness.roofline_examples_per_sec(zoo["roofline_bf16_gflops"], flops))
    if peer_bf16.get("examples_per_sec"):
      row["bf16_ratio_to_deepctr"] = bf16["examples_per_sec"] / peer_bf16["examples_per_sec"]
  notes = [n for n in (zoo.get("note"), zoo.get("flops_error"), (peer or {}).get("note"),
                       peer_bf16.get("note")) if n]
  row["note"] = "; ".join(notes)
  return row


def fmt_rate(x: Optional[float]) -> str:
  """Examples/s as "30.7k" (or "512", or "-" for None)."""
  if x is None:
    return "-"
  return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def fmt(x, spec: str, suffix: str = "") -> str:
  """`x` formatted with `spec` plus `suffix`, or "-" for None."""
  return "-" if x is None else f"{x:{spec}}{suffix}"


def _percent(x: Optional[float]) -> str:
  return fmt(None if x is None else 100 * x, ".0f", "%")


def bf16_ratio(row: Dict[str, Any]) -> Optional[float]:
  """The row's bf16 ratio when its DeepCTR peer also ran under mixed_bfloat16, else None."""
  peer_bf16 = (row.get("deepctr") or {}).get("bf16") or {}
  return row.get("bf16_ratio_to_deepctr") if peer_bf16.get("examples_per_sec") else None


def _cells(r: Dict[str, Any]) -> list:
  peer = r.get("deepctr") or {}
  peer_bf16 = peer.get("bf16") or {}
  ratio = r.get("ratio_to_deepctr")
  target = TARGET_RATIOS.get(r["model"])
  ratio_s = fmt(ratio, ".2f", "x")
  if ratio is not None and target is not None:
    ratio_s += f" (target {target:.1f}x)"
  frac = r.get("fraction_of_roofline")
  frac_s = _percent(frac)
  if frac is not None and r["model"] in TARGET_ROOFLINE:
    frac_s += f" (target {100 * TARGET_ROOFLINE[r['model']]:.0f}%)"
  peer_frac = peer.get("fraction_of_roofline")
  # At 100% of the roofline ctr_zoo would be 1 / peer_frac times DeepCTR: no ratio above that is
  # reachable on this machine, whatever the implementation.
  best = None if not peer_frac else 1.0 / peer_frac
  rss = max([v for v in (r.get("peak_rss_mib"), peer.get("peak_rss_mib")) if v] or [0]) or None
  return [
      r["model"], fmt_rate(r.get("examples_per_sec")), peer.get("name", "-"),
      fmt_rate(peer.get("examples_per_sec")), ratio_s,
      fmt(r.get("train_mflop_per_example"), ".2f"), fmt(r.get("roofline_gflops"), ".1f"),
      fmt_rate(r.get("roofline_examples_per_sec")), frac_s, _percent(peer_frac),
      fmt(best, ".2f", "x"), fmt(r.get("embedding_step_ms"), ".1f"),
      fmt_rate(r.get("ceiling_examples_per_sec")),
      fmt(r.get("ceiling_ratio_to_deepctr"), ".2f", "x"),
      fmt_rate(r.get("bf16_examples_per_sec")), fmt_rate(peer_bf16.get("examples_per_sec")),
      fmt(bf16_ratio(r), ".2f", "x"), _percent(r.get("bf16_fraction_of_bf16_roofline")),
      fmt(rss, ".0f"), r.get("jit_compile", "-") if r.get("examples_per_sec") else "-",
      r.get("note", "")]


def _bf16_note(record: Dict[str, Any]) -> Optional[str]:
  models = record.get("models", [])
  bf16_roofs = [r["roofline_bf16_gflops"] for r in models if r.get("roofline_bf16_gflops")]
  if not bf16_roofs:
    return None
  text = ("bf16 columns: the same ctr_zoo model built with precision='mixed_bfloat16' (bfloat16 "
          "compute, float32 variables, logit and loss), timed in the same interleaved windows; its "
          f"roofline is a bfloat16 tf.matmul (median {statistics.median(bf16_roofs):.0f} "
          "GFLOP/s). ")
  peers = [(r["model"], (r.get("deepctr") or {}).get("bf16") or {}) for r in models
           if (r.get("deepctr") or {}).get("examples_per_sec")]
  ran = [(m, p) for m, p in peers if p.get("examples_per_sec")]
  if ran:
    shares = [p["matmul_flop_share_bfloat16"] for _, p in ran
              if p.get("matmul_flop_share_bfloat16") is not None]
    text += ("The bf16 ratio is over the DeepCTR peer built under the Keras global policy "
             "'mixed_bfloat16', in the same windows")
    if shares:
      share = ("all" if min(shares) >= 1.0 else f"at least {100 * min(shares):.0f}% of")
      text += (f" ({share} its forward matmul FLOPs in bfloat16; its probability and loss are "
               "bfloat16 too)")
    text += ". "
  elif peers:
    reasons = sorted({p["note"] for _, p in peers if p.get("note")})
    text += ("No bf16 ratio: this record has no DeepCTR run under 'mixed_bfloat16' "
             + (f"({'; '.join(reasons)}) " if reasons else "(its peers ran float32 only) ")
             + "and a speed ratio compares equal precision. ")
  return text + "The float32 columns are the headline."


def _extra_lines(record: Dict[str, Any]) -> list:
  extra = []
  roof = record.get("roofline") or {}
  if roof:
    extra.append(f"matmul roofline at start: {roof['gflops']:.1f} GFLOP/s (tf.matmul "
                 f"{'x'.join(map(str, roof['shape']))}); each model's 'matmul GFLOP/s' is measured "
                 "in windows interleaved with its own training windows (same contention)")
  if record.get("flop_count"):
    extra.append(f"MFLOP/ex: {record['flop_count']}")
  if any(r.get("embedding_step_ms") is not None for r in record.get("models", [])):
    extra.append("embedding step ms: the float32 model's lookups, row regularizers and sparse "
                 "AdaGrad table updates alone (no interaction, tower or Adam), timed in the same "
                 "windows; ceiling ex/s = 1 / (matmul FLOPs at the roofline + embedding step): no "
                 "step that keeps this embedding work is faster; ceiling ratio = ceiling / DeepCTR")
  bf16 = _bf16_note(record)
  if bf16:
    extra.append(bf16)
  pipe = record.get("input_pipeline") or {}
  if pipe.get("examples_per_sec"):
    extra.append(
        f"input pipeline ({pipe.get('model', '?')}): make_dataset alone "
        f"{fmt_rate(pipe['examples_per_sec'])} ex/s; train step cached "
        f"{fmt_rate(pipe.get('step_cached_examples_per_sec'))} ex/s, fed by make_dataset "
        f"{fmt_rate(pipe.get('step_fed_examples_per_sec'))} ex/s; input/step = "
        f"{fmt(pipe.get('input_over_step'), '.1f', 'x')} (target {TARGET_INPUT_OVER_STEP:.0f}x)")
  elif pipe.get("note"):
    extra.append(f"input pipeline: {pipe['note']}")
  lat = record.get("latency") or {}
  if lat.get("batches"):
    parts = [f"batch {b}: p50 {v['p50_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms"
             for b, v in sorted(lat["batches"].items(), key=lambda kv: int(kv[0]))]
    extra.append(f"exported SavedModel latency on raw rows ({lat.get('model', '?')}): "
                 + "; ".join(parts))
  elif lat.get("note"):
    extra.append(f"latency: {lat['note']}")
  cfg = record.get("config", {})
  if cfg:
    extra.append(f"sizes: batch {cfg.get('batch_size')}, {cfg.get('num_fields')} fields x "
                 f"{cfg.get('vocab_size')} ids x dim {cfg.get('embedding_dim')} + "
                 f"{cfg.get('num_dense')} dense, MLP {cfg.get('mlp')}, {cfg.get('cross_layers')} "
                 f"cross layers; median of {cfg.get('num_windows')} windows x "
                 f"{cfg.get('steps_per_window')} steps after {cfg.get('warmup_steps')} warm-up")
  if record.get("machine"):
    extra.append(f"machine: {record['machine']}")
  return extra


def render_table(record: Dict[str, Any], markdown: bool = False) -> str:
  """The results table of a throughput record (plain text, or markdown for the README)."""
  rows = [_cells(r) for r in record.get("models", [])]
  extra = _extra_lines(record)
  lines = []
  if markdown:
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("|" + "|".join("---" for _ in HEADERS) + "|")
    for row in rows:
      lines.append("| " + " | ".join(str(c) for c in row) + " |")
    lines.append("")
    lines.extend(f"- {e}" for e in extra)
  else:
    widths = [max(len(str(x)) for x in col) for col in zip(HEADERS, *rows)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths)))
    for row in rows:
      lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    lines.extend(extra)
  return "\n".join(lines)
