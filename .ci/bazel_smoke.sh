#!/usr/bin/env bash
# Starts every binary target of the workspace as a user would, with `bazel run`
# from the repository root: `--help` (which must list the target's flags), then
# one small real invocation whose paths are relative (so they must resolve in
# the directory bazel was run from, not in the runfiles tree). A target that
# cannot start, or writes its outputs elsewhere, fails this script.
#
# Usage: .ci/bazel_smoke.sh   (from `make test`; needs bazel on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

# One Bazel server for the ~20 runs (a --batch client per run would re-analyse
# the workspace each time); it is shut down on exit, and exits by itself
# after a minute idle should that be missed.
BAZEL=(bazel --max_idle_secs=60)
SMOKE=runs/ci_smoke  # relative on purpose; git-ignored
LOG=$(mktemp)
cleanup() {
  "${BAZEL[@]}" shutdown >/dev/null 2>&1 || true
  rm -rf "$SMOKE" "$LOG"
}
trap cleanup EXIT
rm -rf "$SMOKE"
mkdir -p "$SMOKE"
export CTR_ZOO_CACHE="$PWD/$SMOKE/cache"

fail() {
  echo "FAILED: $*" >&2
  tail -n 30 "$LOG" >&2
  exit 1
}

# check_help TARGET FLAG...: `bazel run TARGET -- --help` prints its usage and lists
# each FLAG (absl's own --help exits 1, so the status is not what is checked).
check_help() {
  local target=$1
  shift
  "${BAZEL[@]}" run "$target" -- --help >"$LOG" 2>&1 || true
  grep -q "^flags:" "$LOG" || fail "bazel run $target -- --help printed no usage"
  for flag in "$@"; do
    grep -q -- "--\(\[no\]\)\?${flag#--}" "$LOG" || fail "bazel run $target -- --help does not list $flag"
  done
  echo "    $target --help: lists $*"
}

# check_run TARGET OUTPUT ARGS...: `bazel run TARGET -- ARGS` exits 0 and writes OUTPUT
# (a path relative to the repository root).
check_run() {
  local target=$1 output=$2
  shift 2
  local start=$SECONDS
  "${BAZEL[@]}" run "$target" -- "$@" >"$LOG" 2>&1 || fail "bazel run $target -- $*"
  [ -e "$output" ] || fail "bazel run $target -- $* did not write $output (relative paths must be the user's)"
  echo "    $target $*: ok, wrote $output ($((SECONDS - start))s)"
}

TINY="data.synthetic_rows=2000,trainer.max_steps=3,input.batch_size=128"

echo "==> bazel run: every binary target's --help and one real invocation (relative paths)"
check_help //experiments:preprocess --input --output --spec --seed --on_bad_rows
check_run //experiments:preprocess "$SMOKE/prep/spec.json" --input=synthetic:600 --output="$SMOKE/prep"

check_help //experiments:train --data --spec --model_dir --params_override --seed --experiment
check_run //experiments:train "$SMOKE/train/metrics.json" --experiment=lr_synthetic \
  --model_dir="$SMOKE/train" --progress=false --params_override="$TINY"

check_help //experiments:evaluate --model_dir --export_dir --data
check_run //experiments:evaluate "$SMOKE/eval.json" --model_dir="$SMOKE/train" \
  --metrics_json="$SMOKE/eval.json"

check_help //benchmarks:auc --experiments --seeds --results --record
check_run //benchmarks:auc "$SMOKE/auc/auc_records.jsonl" --experiments=lr --seeds=1 \
  --params_override="$TINY" --results="$SMOKE/auc"

cp README.md "$SMOKE/README.md"
tracked=$(cat README.md benchmarks/results/* | md5sum)
check_help //benchmarks:render_readme
check_run //benchmarks:render_readme "$SMOKE/README.md" "$SMOKE/README.md"
[ "$(cat README.md benchmarks/results/* | md5sum)" = "$tracked" ] ||
  fail "render_readme on a copy changed the repository's README or records"

check_help //benchmarks:throughput --models --batch_size --results
check_run //benchmarks:throughput "$SMOKE/throughput/throughput.json" --models=dnn --batch_size=64 \
  --num_fields=4 --vocab_size=100 --mlp=16 --warmup_steps=1 --steps_per_window=1 \
  --num_windows=1 --num_batches=1 --nodeepctr --noinput_pipeline --nolatency --nobfloat16 \
  --results="$SMOKE/throughput"

check_help //benchmarks:sparse_step_time --vocab_sizes --optimizers --results
check_run //benchmarks:sparse_step_time "$SMOKE/sparse/sparse_step_time.jsonl" --vocab_sizes=100 \
  --optimizers=adagrad --batch=64 --id_range=100 --warmup_steps=1 --windows=1 \
  --window_seconds=0.05 --results="$SMOKE/sparse"

check_help //benchmarks:cdot_scaling --fields --results
check_run //benchmarks:cdot_scaling "$SMOKE/cdot/cdot_scaling.jsonl" --fields=4 --windows=1 --steps=1 \
  --batch=16 --results="$SMOKE/cdot"

check_help //benchmarks:pipeline_throughput --rows --cache_dir --results
check_run //benchmarks:pipeline_throughput "$SMOKE/pipeline/pipeline_throughput.jsonl" --rows=2000 \
  --repeats=1 --cache_dir="$SMOKE/pipe" --results="$SMOKE/pipeline"

check_help //benchmarks:sklearn_anchor --c_grid --min_counts --results
check_run //benchmarks:sklearn_anchor "$SMOKE/anchor/auc_records.jsonl" \
  --data="$SMOKE/prep/raw/synthetic.tsv" --c_grid=0.1 --min_counts=1 --results="$SMOKE/anchor"

check_help //benchmarks:regularization_sweep --sweep_models --sweep_output --results
check_run //benchmarks:regularization_sweep "$SMOKE/sweep.json" --sweep_models=dnn \
  --embedding_l2=1e-5 --dropouts=0.2 --embedding_lrs=0.05 --sweep_data_setup=synthetic \
  --params_override="$TINY" --sweep_output="$SMOKE/sweep.json" --results="$SMOKE/sweep"

check_help //benchmarks:reliability --tests --readme --results
check_run //benchmarks:reliability "$SMOKE/reliability/reliability.json" \
  --tests=tests/faults/faults_run_test.py::PathsAndNoiseTest::test_license_is_an_spdx_string \
  --results="$SMOKE/reliability"

# Every binary target of the workspace was started above.
started=$(grep -o '^check_run //[a-z_]*:[a-z_]*' "$0" | cut -d' ' -f2 | sort -u)
declared=$("${BAZEL[@]}" query 'kind(py_binary, //...)' 2>/dev/null | sort -u)
[ "$started" = "$declared" ] || {
  echo "FAILED: binary targets not started here: $(comm -13 <(echo "$started") <(echo "$declared") | tr '\n' ' ')" >&2
  exit 1
}
echo "==> bazel run: all $(echo "$declared" | wc -l) binary targets started"
