#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR (default build-fuzz) for SECONDS each (default
# 30) on its committed seed corpus (tests/fuzz/corpus/<target>, read only) plus a work
# corpus under BUILD_DIR/corpus/<target> (kept between runs, never committed). Crashes
# go to BUILD_DIR/artifacts/. Prints executions per target and in all; exits non-zero
# on the first target that finds a crash, a leak, a timeout or an out-of-memory.
# Usage: tools/fuzz/run.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-30}
build=${2:-build-fuzz}
targets=(fuzz_idx fuzz_csv fuzz_npy fuzz_upload fuzz_state fuzz_config fuzz_filter fuzz_safetensors
         fuzz_predict fuzz_bridge)
mkdir -p "$build/artifacts"
total=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t"
  log="$build/artifacts/$t.log"
  # -rss_limit_mb: a parser that allocates what a header claims shows up as an OOM.
  if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       "$build/tests/fuzz/$t" "$build/corpus/$t" "tests/fuzz/corpus/$t" \
         -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -max_len=65536 \
         -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" >"$log" 2>&1; then
    echo "fuzz: $t FAILED (log: $log)" >&2
    grep -E "ERROR|SUMMARY|runtime error" "$log" | head -20 >&2 || true
    exit 1
  fi
  runs=$(grep -E "stat::number_of_executed_units" "$log" | awk '{print $2}' | tail -1)
  total=$((total + ${runs:-0}))
  printf "fuzz: %-12s %10s executions in %ss, no crash\n" "$t" "${runs:-?}" "$secs"
done
echo "fuzz: $total executions in all, 0 crashes"
