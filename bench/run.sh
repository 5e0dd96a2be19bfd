#!/usr/bin/env bash
# Builds msgstore_bench with the release preset and runs it, writing the report to
# bench/results/<UTC date>-<label>[-quick][-N].md (and to stdout); -N numbers further runs of
# the same day so that no earlier report is overwritten.
#
# Usage: bench/run.sh [--quick] [--label LABEL] [other msgstore_bench options]
#   --quick   small counts, under a minute (a smoke run; do not quote its numbers)
#   --label   machine label for the file name and the report, e.g. 2vcpu-xeon. The default is
#             derived from the processor count and vendor; never use a host name.
# Environment: MSGSTORE_BENCH_BUILD_DIR builds there instead of the preset's build/release.
# Exit status: msgstore_bench's (0 all goals pass, 1 a goal fails or was skipped, 2 error).
set -euo pipefail

repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repository"

quick=()
label=""
passthrough=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=(--quick); shift ;;
    --label) label="${2:?--label needs a value}"; shift 2 ;;
    --output|--dir) echo "run.sh chooses --output and --dir itself" >&2; exit 2 ;;
    *) passthrough+=("$1"); shift ;;
  esac
done

if [[ -z "$label" ]]; then
  model="$(grep -m1 '^model name' /proc/cpuinfo | tr '[:upper:]' '[:lower:]' || true)"
  case "$model" in
    *epyc*) vendor=epyc ;;
    *xeon*) vendor=xeon ;;
    *ryzen*) vendor=ryzen ;;
    *intel*) vendor=intel ;;
    *amd*) vendor=amd ;;
    *) vendor=cpu ;;
  esac
  label="$(nproc)vcpu-${vendor}"
fi
if [[ ! "$label" =~ ^[A-Za-z0-9._-]+$ ]]; then
  echo "label may contain only letters, digits, '.', '_' and '-'" >&2
  exit 2
fi

if [[ -n "${MSGSTORE_BENCH_BUILD_DIR:-}" ]]; then
  build_directory="$MSGSTORE_BENCH_BUILD_DIR"
  cmake --preset release -B "$build_directory" >/dev/null
  cmake --build "$build_directory" --target msgstore_bench
else
  build_directory="build/release"
  cmake --preset release >/dev/null
  cmake --build --preset release --target msgstore_bench
fi

suffix=""
if [[ ${#quick[@]} -gt 0 ]]; then suffix="-quick"; fi
stem="bench/results/$(date -u +%Y-%m-%d)-${label}${suffix}"
output="${stem}.md"
count=2
while [[ -e "$output" ]]; do  # results are history: never overwrite an earlier run
  output="${stem}-${count}.md"
  count=$((count + 1))
done
mkdir -p bench/results/tmp

set +e
"$build_directory/bench/msgstore_bench" "${quick[@]}" --label "$label" --dir bench/results/tmp --output "$output" \
  "${passthrough[@]}"
status=$?
set -e
echo "report written to $output (exit status $status)" >&2
exit "$status"
