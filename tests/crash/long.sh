#!/usr/bin/env bash
# Runs every crash test with many seeds and prints the summed figures.
#
#   tests/crash/long.sh [build directory]        (default: build/release)
#
# Environment: CRASH_SEEDS (default 10000), CRASH_SEED_FIRST (default 1), JOBS (test binaries
# run at once, default 2), LOG_DIR (default: a new temporary directory; one log per binary),
# CRASH_TESTS (a space-separated subset of the binaries below; default all of them).
# Exit status: 0 when every test passed, 1 otherwise. A failing seed prints its replay command
# in its log ("CRASH-FAILED seed=... replay: ...").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build/release}"
binaries="$build/tests/crash"
seeds="${CRASH_SEEDS:-10000}"
jobs="${JOBS:-2}"
log_dir="${LOG_DIR:-$(mktemp -d /tmp/msgstore-crash-long.XXXXXX)}"
mkdir -p "$log_dir"

# Every crash test binary (tests/crash/CMakeLists.txt), slowest first so two jobs finish together.
all_tests=(rewrite_crash_test step_crash_test power_loss_test consumer_ack_crash_test io_error_test no_space_test
  dedup_crash_test model_test timestamps_test regression_test checker_test)
read -r -a tests <<< "${CRASH_TESTS:-${all_tests[*]}}"
for binary in "$binaries"/*_test; do
  if [[ -x "$binary" && " ${all_tests[*]} " != *" $(basename "$binary") "* ]]; then
    echo "$(basename "$binary") is not in long.sh's list: add it to all_tests" >&2
    exit 2
  fi
done
for test in "${tests[@]}"; do
  if [[ ! -x "$binaries/$test" ]]; then
    echo "missing $binaries/$test: build first (cmake --build $build)" >&2
    exit 2
  fi
done

# Stopping the script stops the tests it started (xargs would carry on otherwise). The tests
# run in the background so that the trap runs at once (bash holds traps until a foreground
# command ends).
trap 'trap - INT TERM; kill 0' INT TERM
echo "crash suite: CRASH_SEEDS=$seeds, $jobs at a time, logs in $log_dir"
started=$(date +%s)
export CRASH_SEEDS="$seeds"
printf '%s\n' "${tests[@]}" | xargs -P "$jobs" -I{} sh -c \
  'start=$(date +%s); if "$0/{}" > "$1/{}.log" 2>&1; then r=passed; else r=FAILED; fi; echo "  {}: $r in $(( $(date +%s) - start )) s"' \
  "$binaries" "$log_dir" &
wait $!

echo
grep -h '^CRASH-FIGURES' "$log_dir"/*.log | sed 's/^CRASH-FIGURES //' | column -t || true
echo
grep -h '^CRASH-FIGURES' "$log_dir"/*.log | awk '
  {
    for (i = 2; i <= NF; ++i) {
      split($i, kv, "=")
      if (kv[1] ~ /^recovery_ms_max$/) { if (kv[2] + 0 > max_recovery) max_recovery = kv[2] + 0; continue }
      if (kv[1] ~ /^recovery_ms_mean$/) continue
      total[kv[1]] += kv[2]
    }
  }
  END {
    printf "TOTAL seeds=%d cycles=%d messages_checked=%d acked=%d lost=%d lost_allowed=%d unexpected=%d duplicates=%d inconsistent=%d order_violations=%d index_checks=%d index_mismatches=%d damaged_offsets=%d other_violations=%d failures=%d recoveries=%d recovery_ms_max=%.3f\n",
      total["seeds"], total["cycles"], total["messages_checked"], total["acked"], total["lost"], total["lost_allowed"],
      total["unexpected"], total["duplicates"], total["inconsistent"], total["order_violations"], total["index_checks"],
      total["index_mismatches"], total["damaged_offsets"], total["other_violations"], total["failures"], total["recoveries"],
      max_recovery
  }'
failed_seeds=$(grep -h '^CRASH-FAILED' "$log_dir"/*.log || true)
failed_tests=$(grep -l '^\[  FAILED  \]' "$log_dir"/*.log || true)
echo "elapsed: $(( $(date +%s) - started )) s"
if [[ -n "$failed_seeds" || -n "$failed_tests" ]]; then
  echo "FAILURES:"
  [[ -n "$failed_seeds" ]] && echo "$failed_seeds"
  [[ -n "$failed_tests" ]] && echo "failing logs: $failed_tests"
  exit 1
fi
echo "all crash tests passed"
