"""The Kaggle-Criteo-shaped generator at --scale=0.0001 and the fullscale pipeline end to end."""

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from benchmarks import fullscale
from benchmarks import fullscale_report
from ctr_zoo.datasets import synthetic_fullscale as sf
from experiments import paths

SCALE = 0.0001
_COLUMNS = [f"c{i}" for i in range(40)]


def _read_days(files):
  tables = [pa_csv.read_csv(
      f, read_options=pa_csv.ReadOptions(column_names=_COLUMNS),
      parse_options=pa_csv.ParseOptions(delimiter="\t"),
      convert_options=pa_csv.ConvertOptions(
          column_types={c: pa.string() for c in _COLUMNS[1:]}, strings_can_be_null=True))
      for f in files]
  return pa.concat_tables(tables)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("fullscale") / "days")
  manifest = sf.generate_days(out, sf.FullScaleConfig(scale=SCALE), seed=3)
  return out, manifest, _read_days(manifest["files"])


def test_rows_days_and_layout(generated):
  """45,840,617 x 0.0001 rows in 7 day files by row order, 40 columns, labels 0/1, oracle aligned."""
  _, manifest, table = generated
  assert table.num_rows == round(sf.KAGGLE_ROWS * SCALE) == sum(manifest["rows_per_day"])
  assert len(manifest["files"]) == 7 and max(manifest["rows_per_day"]) - min(
      manifest["rows_per_day"]) <= 1
  labels = np.asarray(table.column(0).to_numpy(zero_copy_only=False), np.int64)
  assert set(np.unique(labels)) == {0, 1}
  oracle = np.concatenate([pq.read_table(f + ".oracle.parquet").column("label").to_numpy()
                           for f in manifest["files"]])
  np.testing.assert_array_equal(oracle, labels)
  assert 0.2 < labels.mean() < 0.32  # calibrated to Kaggle's 0.256


def test_cardinality_ratios_follow_kaggle(generated):
  """Distinct values per field match D_f x scale (ratios between the large fields within 15%)."""
  _, manifest, table = generated
  targets = sf.target_cardinality(SCALE)
  assert manifest["world"]["target_cardinality"] == targets
  distinct = [pc.count_distinct(table.column(14 + f)).as_py() for f in range(26)]
  for f, (got, want) in enumerate(zip(distinct, targets)):
    if want >= 100:
      assert abs(got / want - 1) < 0.15, (f"C{f + 1}", got, want)
    else:  # a few values: the tail's draws make the count noisy
      assert 0.5 * want <= got <= 1.5 * want + 3, (f"C{f + 1}", got, want)
  big = [f for f in range(26) if targets[f] >= 100]
  assert len(big) >= 5
  for f in big:  # the Kaggle ratio C3 : C_f
    want = sf.KAGGLE_CARDINALITY[2] / sf.KAGGLE_CARDINALITY[f]
    assert abs((distinct[2] / distinct[f]) / want - 1) < 0.2, f"C{f + 1}"


def test_missing_rates_follow_kaggle(generated):
  """Empty values per field at Kaggle Criteo's rates (within 4 binomial std + 0.005)."""
  _, _, table = generated
  n = table.num_rows
  rates = list(sf.KAGGLE_INT_MISSING) + list(sf.KAGGLE_CAT_MISSING)
  for j, want in enumerate(rates):
    got = table.column(1 + j).null_count / n
    tol = 4 * np.sqrt(want * (1 - want) / n) + 0.005
    assert abs(got - want) <= tol, (_COLUMNS[1 + j], got, want)


def test_integer_fields_are_heavy_tailed(generated):
  """I5 (lognormal sigma 2) spans orders of magnitude: max / median > 100."""
  _, _, table = generated
  i5 = table.column(5).drop_null().to_numpy().astype(np.float64)
  assert np.max(i5) / max(np.median(i5), 1) > 100


def test_min_count_10_keeps_about_the_head():
  """At scale 0.01 the values seen >= 10 times are about kept_ids x scale (10k of 1M)."""
  world = sf.FullScaleWorld(sf.FullScaleConfig(scale=0.01))
  rng = np.random.default_rng(0)
  rows = world.config.num_rows
  kept = 0
  for field in world.fields:
    v = np.concatenate([field.sample(rng, 100_000) for _ in range(-(-rows // 100_000))])[:rows]
    counts = np.bincount(v[v >= 0])
    kept += int(np.sum(counts >= 10))
  assert 8_000 < kept < 12_500, kept


def test_deterministic_by_seed(tmp_path):
  """The same (scale, seed) writes the same bytes; another seed other rows."""
  cfg = sf.FullScaleConfig(scale=SCALE / 4)
  a = sf.generate_days(str(tmp_path / "a"), cfg, seed=1)
  b = sf.generate_days(str(tmp_path / "b"), cfg, seed=1)
  c = sf.generate_days(str(tmp_path / "c"), cfg, seed=2)
  for fa, fb, fc in zip(a["files"], b["files"], c["files"]):
    with open(fa, "rb") as x, open(fb, "rb") as y, open(fc, "rb") as z:
      da, db, dc = x.read(), y.read(), z.read()
    assert da == db
    assert da != dc


def test_tokens_are_distinct_per_value():
  """The token map is a bijection: distinct value indices give distinct 8-hex tokens."""
  world = sf.FullScaleWorld(sf.FullScaleConfig(scale=SCALE))
  field = world.fields[2]
  idx = np.arange(field.cardinality)
  tokens = sf._hex_tokens(field.codes(idx), np.ones(len(idx), bool))  # pylint: disable=protected-access
  assert pc.count_distinct(tokens).as_py() == len(idx)
  assert all(len(t) == 8 for t in tokens.to_pylist()[:50])


def test_step_profile_leaves_out_tracing_and_the_last_partial_batch():
  windows = [{"step": s, "examples_per_sec": r} for s, r in
             ((2, 10.0), (4, 100.0), (6, 100.0), (8, 50.0), (9, 1.0))]
  out = fullscale.step_profile(windows, batch_size=10, last_full_step=8)
  assert out["step_start"] == 4 and out["step_end"] == 8
  assert out["step_s_start"] == pytest.approx(0.1) and out["step_s_end"] == pytest.approx(0.2)
  assert out["end_over_start"] == pytest.approx(2.0)
  assert fullscale.memory_formula(1000, 16, 2) == 1000 * 16 * 4 * 3


def test_growth_exponent():
  recs = [{"rows": 100, "stages": {"s": {"wall_s": 2.0}}},
          {"rows": 10_000, "stages": {"s": {"wall_s": 200.0}}}]
  assert fullscale_report.growth(recs, "s", "wall_s") == pytest.approx(1.0)


def test_scaling_table_adds_the_two_largest_scales_exponent():
  """A fixed cost flattens k over all scales; k between the two largest shows the growth."""
  def rec(rows, wall, rss):
    return {"rows": rows, "stages": {"generate": {"wall_s": wall, "peak_rss_bytes": rss}}}
  recs = [rec(10, 1.0, 2**20), rec(100, 10.0, 2**20), rec(1000, 200.0, 2**21)]
  row = [line for line in fullscale_report.scaling_table(recs).splitlines()
         if line.startswith("| generate |")][0]
  cells = [c.strip() for c in row.strip("|").split("|")]
  # k(all) = log(200) / log(100) = 1.15; k(two largest) = log(20) / log(10) = 1.30.
  assert cells[4:] == ["1.15", "0.15", "1.30", "0.30"]
  two = fullscale_report.scaling_table(recs[:2])
  assert "two largest" not in two  # (two scales: one exponent)


def test_run_stage_spawn_measures_the_process_and_names_a_failure(tmp_path):
  """The spawn runner: a `python` process's wall / cpu / peak RSS, its output in the log."""
  out = tmp_path / "out.txt"
  code = f"open({str(out)!r}, 'w').write('x' * 1000); print('hello')"
  r = fullscale.run_stage("s", [sys.executable, "-c", code], str(tmp_path), [str(out)])
  assert r["runner"] == "spawn" and r["wall_s"] > 0 and r["cpu_s"] >= 0
  assert r["peak_rss_bytes"] > 0 and r["disk_written_bytes"] == 1000
  with open(r["log"]) as fh:
    assert fh.read() == "hello\n"
  with pytest.raises(RuntimeError, match=r"stage bad failed \(exit 3\); log .*bad.log"):
    fullscale.run_stage("bad", [sys.executable, "-c", "import sys; sys.exit(3)"], str(tmp_path),
                        [])
  with pytest.raises(ValueError, match="python -m"):
    fullscale.fork_stage([sys.executable, "-c", "pass"], 1, {})


def test_spawned_module_stage_reports_its_own_peak_rss(tmp_path):
  """A `python -m` stage's peak RSS is its own VmHWM, not the runner's inherited high-water mark."""
  ballast = bytearray(300 * 2**20)  # the runner's peak: 300 MiB of touched pages
  ballast[::4096] = b"x" * len(ballast[::4096])
  r = fullscale.run_stage("tiny", [sys.executable, "-m", "platform"], str(tmp_path), [])
  assert r["peak_rss_source"] == "VmHWM"
  assert 0 < r["peak_rss_bytes"] < 100 * 2**20  # an interpreter that imported `platform`
  # wait4's ru_maxrss carries the runner's peak (Linux copies it into the child at fork).
  assert r["peak_rss_wait4_bytes"] >= 300 * 2**20 > r["peak_rss_bytes"]
  with open(r["log"]) as fh:
    assert fh.read().strip()  # the module ran (`platform` prints the platform)
  del ballast
  # A plain command (not `python -m`) keeps wait4's figure, and says so.
  r = fullscale.run_stage("plain", [sys.executable, "-c", "pass"], str(tmp_path), [])
  assert r["peak_rss_source"] == "wait4" and r["peak_rss_bytes"] == r["peak_rss_wait4_bytes"]

def test_own_peak_rss_names_a_missing_module_in_one_line():
  proc = subprocess.run([sys.executable, "-m", "benchmarks.own_peak_rss", "no_such_module_x"],
                        cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
  assert proc.returncode == 1 and proc.stderr.strip() == "error: no module named 'no_such_module_x'"


def test_stage_table_says_how_each_peak_rss_was_taken():
  """Old records (wait4) are labelled; a record mixing both stars the wait4 figures."""
  def record(*sources):
    stages = {f"s{i}": {"wall_s": 1.0, "peak_rss_bytes": 2**20 * (i + 1), "disk_written_bytes": 0,
                        **({"peak_rss_source": src} if src else {})}
              for i, src in enumerate(sources)}
    return {"scale": 0.01, "rows": 10, "file_bytes": 2**30, "machine": "m", "load_after": [0.0],
            "git_revision": "g", "time": "t", "startup_s": 3.0, "stages": stages}
  old = fullscale_report.stage_table(record(None, None))
  assert "Peak RSS is wait4's ru_maxrss" in old and "*" not in old
  mixed = fullscale_report.stage_table(record("VmHWM", "wait4"))
  assert "| s0 | 1.0 | - | - | - | 1 |" in mixed and "| s1 | 1.0 | - | - | - | 2* |" in mixed
  assert "marked * is wait4's" in mixed
  own = fullscale_report.stage_table(record("VmHWM"))
  assert "the stage's own (the VmHWM" in own and "*" not in own


def test_stage_table_names_the_machine_of_a_rerun_on_another_host():
  record = {"scale": 1, "rows": 10, "file_bytes": 2**30, "load_after": [0.0],
            "machine": "2 cores, CPU A; TF 2.21.0; load average at start 1.0",
            "git_revision": "g", "time": "t", "startup_s": 3.0, "stages": {}}
  stage = {"wall_s": 1.0, "peak_rss_bytes": 2**20, "disk_written_bytes": 0,
           "peak_rss_source": "VmHWM"}
  record["stages"] = {
      "same": {**stage, "rerun": {"time": "t1", "git_revision": "g1",
                                  "machine": "2 cores, CPU A; TF 2.21.0; load average at start 2.0"}},
      "other": {**stage, "rerun": {"time": "t2", "git_revision": "g2",
                                   "machine": "2 cores, CPU B; TF 2.21.0; load average at start 0.1"}},
      "old": {**stage, "rerun": {"time": "t3", "git_revision": "g3"}}}
  text = fullscale_report.stage_table(record)
  assert "same was measured again at git g1, t1;" in text
  assert "other was measured again at git g2, t2 on another machine (2 cores, CPU B);" in text
  assert "old was measured again at git g3, t3." in text


def _stage(wall, **extra):
  return {"wall_s": wall, "peak_rss_bytes": 1, "cpu_s": wall, "disk_written_bytes": 0, **extra}


def test_merge_record_partial_keeps_the_other_stages_and_scales(tmp_path):
  """A --stages rerun replaces its stages (marked "rerun") in its scale's record, keeps the rest."""
  path = str(tmp_path / "sub" / "fullscale.json")
  full = {"scale": 0.01, "time": "t0", "git_revision": "g0", "rows": 10,
          "stages": {"generate": _stage(5.0, rows=10), "preprocess_min10": _stage(2.0, rows=10),
                     "train_all": _stage(9.0, steady_examples_per_sec=100.0)}}
  other = {"scale": 0.1, "time": "t0", "git_revision": "g0", "rows": 100, "stages": {}}
  fullscale.merge_record(path, full)
  fullscale.merge_record(path, other)
  partial = {"scale": 0.01, "time": "t1", "git_revision": "g1", "rows": 10,
             "machine": "2 cores, CPU B; TF 2.21.0; load average at start 0.5",
             "stages": {"generate": {"skipped": True, "rows": 10, "file_bytes": 1},
                        "preprocess_min10": _stage(1.0, rows=10, rows_per_s=10.0)}}
  fullscale.merge_record(path, partial, partial=True)
  with open(path) as fh:
    recs = json.load(fh)["records"]
  assert [r["scale"] for r in recs] == [0.01, 0.1] and recs[1] == other
  st = recs[0]["stages"]
  assert st["generate"] == full["stages"]["generate"]  # a reused file keeps its measurement
  assert st["train_all"] == full["stages"]["train_all"]
  assert st["preprocess_min10"]["wall_s"] == 1.0
  assert st["preprocess_min10"]["rerun"] == {"time": "t1", "git_revision": "g1",
                                             "machine": partial["machine"]}
  assert recs[0]["time"] == "t0"
  assert recs[0]["targets"]["preprocess_rows_per_s>=250k"] == {"value": 10.0, "met": False}
  # Not partial: the scale's record is replaced whole.
  fullscale.merge_record(path, partial)
  with open(path) as fh:
    assert json.load(fh)["records"][0]["stages"] == partial["stages"]


def test_pipeline_end_to_end_writes_a_well_formed_record(tmp_path):
  """`benchmarks.fullscale run --scale=0.0001`: every stage runs, the record is whole.

  The fork runner, two stages at a time where they are independent: a check
  of the pipeline and its record (the records themselves use spawn, one at a
  time).

  Then a rerun of no stage in this process reuses the generated days and its
  partial record keeps the other stages' figures and outputs.
  """
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": paths.REPO_ROOT}
  cmd = [sys.executable, "-m", "benchmarks.fullscale", "run", f"--scale={SCALE}",
         "--batch_size=256", "--base_steps=4", f"--data_dir={tmp_path / 'days'}",
         f"--work_dir={tmp_path / 'work'}", f"--results={tmp_path / 'results'}",
         "--stage_runner=fork", "--stage_jobs=2"]
  proc = subprocess.run(cmd, cwd=paths.REPO_ROOT, env=env, capture_output=True, text=True,
                        timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(tmp_path / "results" / "fullscale.json") as fh:
    recs = json.load(fh)["records"]
  assert len(recs) == 1
  r = recs[0]
  assert r["rows"] == round(sf.KAGGLE_ROWS * SCALE)
  assert set(r["stages"]) == set(fullscale.STAGES)
  assert r["stage_runner"] == "fork" and r["stage_jobs"] == 2 and r["fork_parent_import_s"] > 0
  for name, s in r["stages"].items():
    assert s["wall_s"] > 0 and s["peak_rss_bytes"] > 0 and s["disk_written_bytes"] >= 0, name
    assert s["runner"] == "fork" and 0 < s["start_s"] < s["wall_s"], name
    with open(s["log"]) as fh:
      assert "Traceback" not in fh.read(), name
  assert 0 < r["startup_s"] < r["fork_parent_import_s"]
  for key in ("min10", "all", "base"):
    t = r["stages"][f"train_{key}"]
    for field in ("step_s_start", "step_s_middle", "step_s_end", "steady_examples_per_sec",
                  "embedding_formula_bytes", "checkpoint_bytes"):
      assert t[field] > 0, (key, field)
    assert t["embedding_formula_bytes"] == t["ids"] * 16 * 4 * 3
    assert t["embedding_optimizer"] == "lazy_adam", key  # the scale run's tables: rows in the batch only
    assert 0 <= t["test_auc"] <= 1, key  # (base: 3 steps and 9 test rows, often 0.5)
  assert r["stages"]["train_all"]["ids"] > r["stages"]["train_min10"]["ids"]
  assert r["stages"]["evaluate_min10"]["auc"] == pytest.approx(
      r["stages"]["train_min10"]["test_auc"], abs=1e-6)
  assert r["stages"]["export_all"]["export_bytes"] > 0
  predicted = pq.read_table(tmp_path / "work" / "predictions_all.parquet")
  assert predicted.num_rows == r["stages"]["predict_all"]["rows"] == r["rows_per_day"][-1]
  assert predicted.column("probability").null_count == 0
  assert set(r["targets"]) >= {"preprocess_rows_per_s>=250k", "export_reload_all_ids"}
  assert r["targets"]["export_reload_all_ids"]["met"] is True
  text = fullscale_report.render(str(tmp_path / "results" / "fullscale.json"),
                                 str(tmp_path / "results"))
  assert "| train_all |" in text and "Projection, not a measurement" in text
  assert "--stage_runner=fork" in text and "Up to 2 stages at a time" in text
  # A rerun (--stages) reuses the generated days and keeps the other stages' figures and outputs.
  said = []
  again = fullscale.run_pipeline(SCALE, None, 0, False, str(tmp_path / "days"),
                                 str(tmp_path / "work"), batch_size=256, base_steps=4,
                                 stages=["generate"], say=said.append)
  assert any("reused" in line for line in said), said
  assert again["stages"] == {"generate": {"skipped": True, "rows": r["rows"],
                                          "file_bytes": r["file_bytes"]}}
  assert again["startup_s"] == 0.0  # nothing ran: no start-up probe
  assert (tmp_path / "work" / "predictions_all.parquet").exists()
  fullscale.merge_record(str(tmp_path / "results" / "fullscale.json"), again, partial=True)
  with open(tmp_path / "results" / "fullscale.json") as fh:
    merged = json.load(fh)["records"]
  assert len(merged) == 1 and merged[0]["stages"] == r["stages"]
