#!/usr/bin/env bash
# The long fuzzing run: every libFuzzer target (ASan + UBSan) for SECONDS each, two at a time
# (two cores), at low priority (nice), then one summary line per target.
#   tests/fuzz/long.sh          3600 seconds per target (SECONDS x targets / 2 of wall time, 2 at a time)
#   tests/fuzz/long.sh 60       one minute per target: checks that this script works
# Environment: FUZZ_PARALLEL (default 2) targets at once, FUZZ_NICE (default 10) niceness,
# FUZZ_TARGETS (default: all) a space-separated subset, e.g. FUZZ_TARGETS="batch_decoder http_request".
# FUZZ_BUDGET=cpu makes SECONDS a budget of CPU time instead of wall time: each target runs until
# its process has used SECONDS of CPU (user + system, read from /proc), so a run that shares the
# cores with other work, or is paused (kill -STOP / -CONT) during a benchmark, still gets its full
# CPU time. The summary always reports the CPU seconds each target used.
# FUZZ_TIMEOUT (default 10; 1200 with FUZZ_BUDGET=cpu) is libFuzzer's per-input limit in seconds.
# That timer counts wall time: a fuzzer paused (or starved of CPU) for longer than FUZZ_TIMEOUT
# reports a false "timeout" and stops. It happened: two targets paused for 60-70 s beside a
# benchmark with FUZZ_TIMEOUT=60 ended with timeouts whose inputs replay in 0.2 s. Replay every
# timeout-* reproducer before believing it; keep pauses well under FUZZ_TIMEOUT.
#
# Corpora persist and grow in build/fuzz/corpus-<target> (the same directories run.sh uses),
# seeded from tests/fuzz/corpus/<target> (read only). Reproducers of findings (crash-*, leak-*,
# timeout-*, oom-*) go to build/fuzz/findings-<target>/, the full libFuzzer log of the run to
# build/fuzz/long-<target>.log. libFuzzer stops a target at its first finding; replay one with
#   build/fuzz/tests/fuzz/<target>_fuzz build/fuzz/findings-<target>/crash-...
# Exit status: 0 when no target found anything, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-3600}"
parallel="${FUZZ_PARALLEL:-2}"
# Stopping the script (Ctrl-C, SIGTERM) stops every watcher and fuzzer it started (during the
# build, once the build step returns); the waits below are interruptible.
trap 'trap - INT TERM; kill 0' INT TERM
niceness="${FUZZ_NICE:-10}"
budget="${FUZZ_BUDGET:-wall}"
input_timeout="${FUZZ_TIMEOUT:-10}"
if [ "$budget" = cpu ] && [ -z "${FUZZ_TIMEOUT:-}" ]; then input_timeout=1200; fi
scheduler=()
if [ "${FUZZ_IDLE:-0}" = 1 ]; then scheduler=(chrt --idle 0); fi
# Scheduler autogroups (CONFIG_SCHED_AUTOGROUP, on in Debian's kernels): nice and SCHED_IDLE
# order tasks only within their group, and each session (a terminal, a setsid) is a group that
# gets an equal share of the CPU against every other group. Without this, two "nice 19" fuzzers
# started from their own session took half of both cores from a CI run in another session.
# The group is the calling session's: start this script in a terminal or session of its own.
if [ -w /proc/self/autogroup ]; then echo "$niceness" >/proc/self/autogroup 2>/dev/null || true; fi
case "$budget" in wall|cpu) ;; *) echo "fuzz-long: FUZZ_BUDGET must be wall or cpu" >&2; exit 2 ;; esac
clock_ticks=$(getconf CLK_TCK)
build=build/fuzz
all_targets="batch_decoder recovery_scanner metadata_decoder erase_list_decoder consumer_state index_file cursor query_parameters http_request json_body"
read -r -a targets <<< "${FUZZ_TARGETS:-$all_targets}"

# -fno-sanitize=function: clang-14's UBSan function check cannot compile optimised C++20
# coroutines ("Cannot represent a difference across sections", LLVM issue 49689); the HTTP
# targets link the server's Asio coroutines. Every other UBSan check stays on.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize=function -fno-sanitize-recover=undefined" \
  -DMSGSTORE_BUILD_FUZZ=ON -DMSGSTORE_BUILD_TESTS=OFF -DMSGSTORE_BUILD_BENCH=OFF >/dev/null
nice -n "$niceness" cmake --build "$build" --parallel "$parallel" --target "${targets[@]/%/_fuzz}"

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "fuzz-long: ${#targets[@]} targets, ${seconds}s ($budget time) each, $parallel at a time, nice $niceness (started $started)"

# CPU seconds (user + system) used so far by process $1, or nothing once it has exited.
cpu_seconds_of() {
  local fields
  fields=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
  read -r -a stat_fields <<<"$fields"
  # After the command name: field 14 (utime) and 15 (stime) of proc(5) are at index 11 and 12.
  echo $(( (stat_fields[11] + stat_fields[12]) / clock_ticks ))
}

run_target() {
  local target="$1"
  local corpus="$build/corpus-$target" findings="$build/findings-$target" log="$build/long-$target.log"
  mkdir -p "$corpus" "$findings"
  touch "$findings/.run-start"  # reproducers newer than this are this run's findings
  local status=0
  local wall_limit="$seconds"
  [ "$budget" = cpu ] && wall_limit=$((seconds * 100))  # the CPU watcher below ends the run
  "${scheduler[@]}" nice -n "$niceness" "$build/tests/fuzz/${target}_fuzz" -max_total_time="$wall_limit" -max_len=65536 -timeout="$input_timeout" \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$findings/" \
    "$corpus" "tests/fuzz/corpus/$target" >"$log" 2>&1 &
  local fuzzer=$! used=0 interrupted=0
  # If this watcher ends early (an error under set -e), the fuzzer ends with it: never an
  # unwatched fuzzer beside the next target.
  trap "kill -INT $fuzzer 2>/dev/null || true" EXIT
  while kill -0 "$fuzzer" 2>/dev/null; do
    used=$(cpu_seconds_of "$fuzzer"); used=${used:-0}
    # Progress only: a full disk must not end the watcher (it did once, and the fuzzers ran on).
    echo "$used" >"$log.cpu" 2>/dev/null || true
    if [ "$budget" = cpu ] && [ "$used" -ge "$seconds" ]; then
      kill -INT "$fuzzer" 2>/dev/null || true  # libFuzzer prints its final stats and exits (72)
      interrupted=1
      break
    fi
    sleep 5
  done
  wait "$fuzzer" || status=$?
  # 72 is libFuzzer's exit status after an interrupt; ours (the CPU budget) is not a finding.
  if [ "$interrupted" = 1 ] && [ "$status" = 72 ] && grep -q 'libFuzzer: run interrupted' "$log"; then status=0; fi
  trap - EXIT
  echo "$status" >"$log.status"
  echo "fuzz-long: $target finished (exit $status)"
}

for target in "${targets[@]}"; do
  rm -f "$build/long-$target.log.status"
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  echo "fuzz-long: $target started"
  run_target "$target" &
done
wait

# One line per target. Executions and coverage come from libFuzzer's final stats and its last
# status line ("#N DONE cov: C ft: F corp: U/B ..."); findings are the reproducer files.
any_findings=0
printf '\n%-18s %-6s %7s %12s %9s %7s %8s %10s %9s  %s\n' target exit cpu-s executions exec/s cov features corpus new findings
for target in "${targets[@]}"; do
  log="$build/long-$target.log"
  status=$(cat "$log.status" 2>/dev/null || echo "?")
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  per_second=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  new_units=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+.*cov: [0-9]+' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  features=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  corpus_files=$(find "$build/corpus-$target" -type f | wc -l)
  findings=$(find "$build/findings-$target" -type f -newer "$build/findings-$target/.run-start" \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) 2>/dev/null | wc -l)
  if [ "$status" != "0" ] || grep -qE '^==[0-9]+==ERROR|runtime error:|^SUMMARY: ' "$log"; then
    any_findings=1
    [ "$findings" -eq 0 ] && findings="1 (see log)"
  fi
  cpu=$(cat "$log.cpu" 2>/dev/null || echo "?")
  printf '%-18s %-6s %7s %12s %9s %7s %8s %10s %9s  %s\n' "$target" "$status" "$cpu" "${executions:-?}" "${per_second:-?}" \
    "${cov:-?}" "${features:-?}" "$corpus_files" "${new_units:-?}" "$findings"
done
echo
echo "fuzz-long: started $started, ended $(date -u +%Y-%m-%dT%H:%M:%SZ); logs: $build/long-<target>.log"
if [ "$any_findings" -ne 0 ]; then
  echo "fuzz-long: FINDINGS: reproducers in $build/findings-<target>/"
  exit 1
fi
echo "fuzz-long: 0 findings"
