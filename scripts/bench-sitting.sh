#!/usr/bin/env bash
# Runs every measurement BENCHMARKS.md reports, one after another on the
# code as it is, and keeps each command's output beside the command
# (BENCHMARKS.md, "One sitting"). About 20 minutes with the defaults (18
# on 2026-12-04, 21 on 2026-12-06, 17 on 2026-12-07); needs about 12 GB
# of memory for the 10M-event restart and replay.
#
#   ./scripts/bench-sitting.sh [OUT_DIR]        # default: bench-sitting-<UTC time>
#
# SITTING_EVENTS sets the restart, takeover and replay log size (default
# 10000000); SITTING_REPEAT how many times the noisy scenarios (flood,
# scoped) run (default 3). The soak (30 minutes) and the three-node R3
# figures (scripts/bench-r3.sh) are not part of it.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-bench-sitting-$(date -u +%Y%m%dT%H%M%SZ)}
events=${SITTING_EVENTS:-10000000}
repeat=${SITTING_REPEAT:-3}
mkdir -p "$out"
go build -o bin/agentbill ./cmd/agentbill

# cpu_times prints the CPUs' total time and the part of it the hypervisor
# took for other guests (steal), in ticks, from /proc/stat ("0 0" where
# there is none).
cpu_times() {
  local cpu user nice system idle iowait irq softirq steal rest
  if read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat 2>/dev/null; then
    echo "$((user + nice + system + idle + iowait + irq + softirq + steal)) $steal"
  else
    echo "0 0"
  fi
}

n=0
step() {
  n=$((n + 1))
  local f before after
  f=$(printf '%s/%02d.txt' "$out" "$n")
  {
    echo "\$ $*"
    echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (modified)') load $(cut -d' ' -f1-3 /proc/loadavg)"
  } >"$f"
  echo "[$n] $*" >&2
  before=($(cpu_times))
  "$@" >>"$f" 2>&1 || echo "# exit status $?" >>"$f"
  after=($(cpu_times))
  # A virtual machine's figures move with its host's load: the share of
  # the CPUs' time other guests took during the step (vmstat's "st").
  if ((after[0] > before[0])); then
    echo "# $(date -u +%FT%TZ) ended; steal $((100 * (after[1] - before[1]) / (after[0] - before[0])))% of the CPUs' time during the step" >>"$f"
  fi
}

step ./bin/agentbill bench
step ./bin/agentbill bench --clients 1 --only preflight_record_spread,js_append_single
step ./bin/agentbill bench --duration 3s --only preflight_record_spread,replay,commit_signature
step ./bin/agentbill bench --webhooks --only preflight_record_spread
for _ in $(seq "$repeat"); do
  step ./bin/agentbill bench --duration 8s --only preflight_record_spread_scoped
  step ./bin/agentbill bench --duration 5s --only flood
done
step ./bin/agentbill bench --duration 20s --customers 1000000 --only snapshot_stall
step go test -run XXX -bench 'DecidePreflightRecord' -benchtime 100000x -benchmem -count 3 ./ledger
step go test -run XXX -bench 'DecidePreflightRecord$|DecidePreflightRecordPriced' -benchtime 50000x -count 3 ./ledger
step go test -run XXX -bench 'Apply$|Encode|DecodeCommit|IdleCustomerHeap|ScopedCustomerHeap' -benchmem ./events ./ledger
step go test -run XXX -bench Rebuild -benchtime 3x ./projections
step go test -run '^$' -bench 'Snapshot' -benchtime 2x ./ledger
step env AGENTBILL_BENCH_EVENTS="$events" go test -run '^$' -bench Restart -benchtime 1x -timeout 60m -v ./projections
step env AGENTBILL_BENCH_EVENTS="$events" go test -run '^$' -bench Takeover -benchtime 1x -timeout 60m -v ./projections
step env AGENTBILL_BENCH_EVENTS="$events" go test -run '^$' -bench ReplayLarge -benchtime 1x -timeout 60m ./projections
step go test -run '^$' -bench FreshMemory -benchtime 3x ./projections
echo "outputs in $out" >&2
