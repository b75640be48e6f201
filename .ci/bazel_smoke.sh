#!/usr/bin/env bash
# Starts every binary target of the workspace as a user would with `bazel run`
# from the repository root: `--help` (which must print its usage and list the
# target's flags), then one small real invocation whose paths are relative (so
# they must resolve in the directory bazel was run from, not in the runfiles
# tree). A target that cannot start, or writes its outputs elsewhere, fails
# this script.
#
# `bazel run --script_path=F //pkg:target` writes the exact command `bazel run`
# would execute (cd into the runfiles tree, BUILD_WORKING_DIRECTORY and
# BUILD_WORKSPACE_DIRECTORY set, then the binary); the checks run those
# launchers, in two lanes at once (the machine has two cores, and a Bazel
# server runs one command at a time).
#
# Usage: .ci/bazel_smoke.sh   (from `make test`; needs bazel on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

# One Bazel server for the launchers (a --batch client per target would
# re-analyse the workspace each time); shut down on exit, and it exits by
# itself after a minute idle should that be missed.
BAZEL=(bazel --max_idle_secs=60)
SMOKE=runs/ci_smoke  # relative on purpose; git-ignored
cleanup() {
  "${BAZEL[@]}" shutdown >/dev/null 2>&1 || true
  rm -rf "$SMOKE"
}
trap cleanup EXIT
rm -rf "$SMOKE"
mkdir -p "$SMOKE/bin" "$SMOKE/logs"
export CTR_ZOO_CACHE="$PWD/$SMOKE/cache"

TARGETS=$("${BAZEL[@]}" query 'kind(py_binary, //...)' 2>/dev/null | sort)
echo "==> bazel run --script_path: the launchers of $(echo "$TARGETS" | wc -l) binary targets"
for target in $TARGETS; do
  "${BAZEL[@]}" run --script_path="$SMOKE/bin/${target//[\/:]/_}" "$target" \
    >"$SMOKE/logs/build.log" 2>&1 || { tail -n 30 "$SMOKE/logs/build.log"; exit 1; }
done

launcher() { echo "$SMOKE/bin/${1//[\/:]/_}"; }

fail() {  # fail LOG MESSAGE
  echo "FAILED: $2" >&2
  tail -n 30 "$1" >&2
  exit 1
}

# check_help TARGET FLAG...: `bazel run TARGET -- --help` prints its usage and lists
# each FLAG (absl's own --help exits 1, so the status is not what is checked).
check_help() {
  local target=$1 log
  shift
  log="$SMOKE/logs/${target//[\/:]/_}.help"
  bash "$(launcher "$target")" --help >"$log" 2>&1 || true
  grep -q -- "--helpfull" "$log" || fail "$log" "bazel run $target -- --help printed no usage"
  for flag in "$@"; do
    grep -q -- "--\(\[no\]\)\?${flag#--}" "$log" || fail "$log" "bazel run $target -- --help does not list $flag"
  done
  echo "    $target --help: usage${*:+, lists $*}"
}

# check_run TARGET OUTPUT ARGS...: `bazel run TARGET -- ARGS` exits 0 and writes
# OUTPUT (a path relative to the repository root).
check_run() {
  local target=$1 output=$2 log start=$SECONDS
  shift 2
  log="$SMOKE/logs/${target//[\/:]/_}.run"
  bash "$(launcher "$target")" "$@" >"$log" 2>&1 || fail "$log" "bazel run $target -- $*"
  [ -e "$output" ] || fail "$log" "bazel run $target -- $* did not write $output (relative paths must be the user's)"
  echo "    $target $*: ok, wrote $output ($((SECONDS - start))s)"
}

TINY="data.synthetic_rows=2000,trainer.max_steps=3,input.batch_size=128"

lane_experiments() {
  check_help //experiments:preprocess --input --output --spec --seed --on_bad_rows
  check_run //experiments:preprocess "$SMOKE/prep/spec.json" --input=synthetic:600 \
    --output="$SMOKE/prep"
  check_help //benchmarks:sklearn_anchor --c_grid --min_counts --results
  check_run //benchmarks:sklearn_anchor "$SMOKE/anchor/auc_records.jsonl" \
    --data="$SMOKE/prep/raw/synthetic.tsv" --c_grid=0.1 --min_counts=1 --results="$SMOKE/anchor"
  check_help //experiments:train --data --spec --model_dir --params_override --seed --experiment
  check_run //experiments:train "$SMOKE/train/metrics.json" --experiment=lr_synthetic \
    --model_dir="$SMOKE/train" --progress=false --params_override="$TINY"
  check_help //experiments:evaluate --model_dir --export_dir --data
  check_run //experiments:evaluate "$SMOKE/eval.json" --model_dir="$SMOKE/train" \
    --metrics_json="$SMOKE/eval.json"
  check_help //experiments:predict --export_dir --data --output --passthrough
  check_run //experiments:predict "$SMOKE/preds.csv" --export_dir="$SMOKE/train/export" \
    --data="$SMOKE/prep/raw/synthetic.tsv" --output="$SMOKE/preds.csv" --progress=false
  check_help //experiments:export --model_dir --output --quantize
  check_run //experiments:export "$SMOKE/export_int8/saved_model.pb" --model_dir="$SMOKE/train" \
    --output="$SMOKE/export_int8" --quantize=int8
  check_help //experiments:local_cluster --workers --ps --experiment
  check_run //experiments:local_cluster "$SMOKE/cluster/metrics.json" --workers=2 \
    --experiment=lr_synthetic --model_dir="$SMOKE/cluster" --progress=false \
    --job_timeout_seconds=300 --params_override="$TINY"
  check_help //benchmarks:auc --experiments --seeds --results --record
  check_run //benchmarks:auc "$SMOKE/auc/auc_records.jsonl" --experiments=lr --seeds=1 \
    --params_override="$TINY" --results="$SMOKE/auc"
  local tracked
  tracked=$(cat README.md benchmarks/results/* | md5sum)
  mkdir -p "$SMOKE/readme"
  check_help //benchmarks:render_readme
  cp README.md "$SMOKE/readme/README.md"
  check_run //benchmarks:render_readme "$SMOKE/readme/README.md" "$SMOKE/readme/README.md"
  [ "$(cat README.md benchmarks/results/* | md5sum)" = "$tracked" ] ||
    fail /dev/null "render_readme on a copy changed the repository's README or records"
}

lane_benchmarks() {
  check_help //benchmarks:throughput --models --batch_size --results
  check_run //benchmarks:throughput "$SMOKE/throughput/throughput.json" --models=dnn \
    --batch_size=64 --num_fields=4 --vocab_size=100 --mlp=16 --warmup_steps=1 \
    --steps_per_window=1 --num_windows=1 --num_batches=1 --nodeepctr --noinput_pipeline \
    --nolatency --nobfloat16 --results="$SMOKE/throughput"
  check_help //benchmarks:sparse_step_time --vocab_sizes --optimizers --results
  check_run //benchmarks:sparse_step_time "$SMOKE/sparse/sparse_step_time.jsonl" \
    --vocab_sizes=100 --optimizers=adagrad --batch=64 --id_range=100 --warmup_steps=1 \
    --windows=1 --window_seconds=0.05 --results="$SMOKE/sparse"
  check_help //benchmarks:cdot_scaling --fields --results
  check_run //benchmarks:cdot_scaling "$SMOKE/cdot/cdot_scaling.jsonl" --fields=4 --windows=1 \
    --steps=1 --batch=16 --results="$SMOKE/cdot"
  check_help //benchmarks:pipeline_throughput --rows --cache_dir --results
  check_run //benchmarks:pipeline_throughput "$SMOKE/pipeline/pipeline_throughput.jsonl" \
    --rows=2000 --repeats=1 --cache_dir="$SMOKE/pipe" --results="$SMOKE/pipeline"
  check_help //benchmarks:regularization_sweep --sweep_models --sweep_output --results
  check_run //benchmarks:regularization_sweep "$SMOKE/sweep.json" --sweep_models=dnn \
    --embedding_l2=1e-5 --dropouts=0.2 --embedding_lrs=0.05 --sweep_data_setup=synthetic \
    --params_override="$TINY" --sweep_output="$SMOKE/sweep.json" --results="$SMOKE/sweep"
  check_help //benchmarks:serving --serving_models --data_setups --results
  mkdir -p "$SMOKE/serving"
  cp benchmarks/results/serving_records.jsonl "$SMOKE/serving/"
  check_run //benchmarks:serving "$SMOKE/serving/serving.md" --serving_render_only \
    --results="$SMOKE/serving"
  check_help //benchmarks:distributed --modes --results
  check_run //benchmarks:distributed "$SMOKE/distributed/distributed.jsonl" --modes=single \
    --synthetic_rows=3000 --examples_per_step=128 --table_rows=100 --window_steps=2 \
    --timed_windows=1 --mode_timeout_seconds=240 --results="$SMOKE/distributed"
  check_help //benchmarks:reliability --tests --readme --results
  check_run //benchmarks:reliability "$SMOKE/reliability/reliability.json" \
    --tests=tests/faults/faults_run_test.py::PathsAndNoiseTest::test_license_is_an_spdx_string \
    --results="$SMOKE/reliability"
  check_help //benchmarks:cv_sweep --point --folds --experiments --render
  check_run //benchmarks:cv_sweep "$SMOKE/cv_sweep/cv_sweep/synthetic/summary.jsonl" \
    --data_setup=synthetic --experiments=dnn --folds=2 --point=default: \
    --params_override="$TINY" --results="$SMOKE/cv_sweep"
  mkdir -p "$SMOKE/fullscale"
  cp benchmarks/results/fullscale.json "$SMOKE/fullscale/"
  check_run //benchmarks:fullscale "$SMOKE/fullscale/section.md" render \
    --input="$SMOKE/fullscale/fullscale.json" --readme_out="$SMOKE/fullscale/section.md"
}

echo "==> bazel run: every binary target's --help and one real invocation (relative paths)"
lane_experiments >"$SMOKE/logs/lane1" 2>&1 &
lane1=$!
lane_benchmarks >"$SMOKE/logs/lane2" 2>&1 &
lane2=$!
status=0
wait "$lane1" || status=1
wait "$lane2" || status=1
cat "$SMOKE/logs/lane1" "$SMOKE/logs/lane2"
[ "$status" = 0 ] || exit 1

# Every binary target of the workspace was started above.
started=$(grep -o '^ *check_run //[a-z_]*:[a-z_]*' "$0" | awk '{print $2}' | sort -u)
[ "$started" = "$TARGETS" ] || {
  echo "FAILED: binary targets not started here: $(comm -13 <(echo "$started") <(echo "$TARGETS") | tr '\n' ' ')" >&2
  exit 1
}
echo "==> bazel run: all $(echo "$TARGETS" | wc -l) binary targets started"
