#!/usr/bin/env bash
# Full-size runs of the benchmarks (the commands of benchmarks/README.md), one after another.
#
# Usage: scripts/run_benchmarks.sh [--quick] [--lock FILE] [NAME ...]
#   NAME     one or more of: supernet tabular_benchmark cost_model_quality device_transfer nb201_export
#            per_layer_searchers schedule_transfer inner_loop cosearch_vs_baseline throughput_workers
#            (default: all, in that order)
#   --quick  the test-suite size of each instead (minutes each), written to a fresh temporary folder
#            ($NACOS_BENCH_OUT if set) so that the published results are not overwritten
#   --lock   run each under `flock FILE` (a machine shared with other timing jobs: /tmp/nacos-cpu.lock)
#
# Each benchmark writes benchmarks/results/NAME.json (and .png) and resumes when rerun with the same
# settings, so after a kill or a failure rerun the same command. Runs in the active Python environment
# from the repository root; stops at the first benchmark that fails and says which.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."

ALL=(supernet tabular_benchmark cost_model_quality device_transfer nb201_export per_layer_searchers
     schedule_transfer inner_loop cosearch_vs_baseline throughput_workers)
quick=()
lock=()
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=(--quick); shift ;;
    --lock) lock=(flock "$2"); shift 2 ;;
    -h|--help) sed -n '2,14p' "$self" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run_benchmarks: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
[ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
for name in "${names[@]}"; do
  [[ " ${ALL[*]} " == *" $name "* ]] || { echo "run_benchmarks: unknown benchmark $name; choose from: ${ALL[*]}" >&2; exit 2; }
done

if [ ${#quick[@]} -gt 0 ]; then
  out_dir="${NACOS_BENCH_OUT:-$(mktemp -d)}"
  mkdir -p "$out_dir"
  echo "run_benchmarks: --quick results go to $out_dir" >&2
fi

for name in "${names[@]}"; do
  if [ ${#quick[@]} -eq 0 ]; then
    case "$name" in  # the full runs whose README command has arguments
      device_transfer) args=(--all-devices --seeds 10) ;;
      *) args=() ;;
    esac
  else
    case "$name" in  # device_transfer has no --quick: one seed instead of ten
      device_transfer) args=(--all-devices --seeds 1) ;;
      *) args=(--quick) ;;
    esac
    args+=(--out "$out_dir/$name.json")
  fi
  start=$(date +%s)
  echo "== $name ${args[*]}" >&2
  if ! "${lock[@]}" python -m "benchmarks.$name" "${args[@]}"; then
    echo "run_benchmarks: $name failed after $(( $(date +%s) - start )) s; rerun to resume" >&2
    exit 1
  fi
  echo "== $name done in $(( $(date +%s) - start )) s" >&2
done
