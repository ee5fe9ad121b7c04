#!/usr/bin/env bash
# Pretune the default architecture space into the shared tuning database, resumably.
#
# Usage: scripts/pretune_default_space.sh [MINUTES] [-- extra `nacos pretune` options]
#   MINUTES  stop after this many minutes (default 60); a rerun goes on where the last stopped
#
# The database is $NACOS_TUNING_DB (default .nacos-cache/tuning-db, the one `nacos search` reads). The
# run holds the lock file $NACOS_CPU_LOCK (default /tmp/nacos-cpu.lock; set it empty for no lock) while
# it measures, so timing jobs on a shared machine do not overlap. Exit codes are `nacos pretune`'s:
# 0 done or out of time, 2 bad input, 130 interrupted (what was measured is kept). The coverage of the
# space without tuning: `nacos pretune --enumerate-only --database DIR`.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=60
if [ $# -gt 0 ] && [ "$1" != "--" ]; then minutes="$1"; shift; fi
[ "${1:-}" = "--" ] && shift
case "$minutes" in ''|*[!0-9.]*) echo "pretune_default_space: MINUTES must be a number, got $minutes" >&2; exit 2 ;; esac
lock="${NACOS_CPU_LOCK-/tmp/nacos-cpu.lock}"
cmd=(nacos pretune --database "${NACOS_TUNING_DB:-.nacos-cache/tuning-db}" --minutes "$minutes" "$@")
if [ -n "$lock" ]; then exec flock "$lock" "${cmd[@]}"; else exec "${cmd[@]}"; fi
