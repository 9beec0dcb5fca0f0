#!/usr/bin/env bash
# Measures AgentBill on a local three-node JetStream cluster (R3, fsync
# always on every node), with a leader and a standby, beside the same
# cluster's bare request/reply and bare R3 appends (BENCHMARKS.md).
#
#   ./scripts/bench-r3.sh [agentbill bench flags, e.g. --duration 5s --json]
#
# SERVE_FLAGS adds flags to both serve processes, e.g.
#   SERVE_FLAGS="--commits-in-flight 4" ./scripts/bench-r3.sh
# Everything runs on 127.0.0.1 in a temp dir that is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

go build -o bin/agentbill ./cmd/agentbill
go build -o bin/nats-server github.com/nats-io/nats-server/v2

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ports=() route_ports=() routes=() urls=()
for i in 1 2 3; do
  ports+=("$(free_port)")
  route_ports+=("$(free_port)")
  routes+=("nats-route://127.0.0.1:${route_ports[$((i-1))]}")
done
for i in 1 2 3; do
  cat >"$dir/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:${ports[$((i-1))]}
max_payload: 1MB
jetstream { store_dir: "$dir/n$i", sync_interval: always }
cluster { name: agentbill, listen: 127.0.0.1:${route_ports[$((i-1))]}, routes: [$(IFS=,; echo "${routes[*]}")] }
EOF
  bin/nats-server -c "$dir/n$i.conf" >"$dir/n$i.log" 2>&1 &
  pids+=($!)
  urls+=("nats://127.0.0.1:${ports[$((i-1))]}")
done
url=$(IFS=,; echo "${urls[*]}")

for inst in a b; do
  # shellcheck disable=SC2086 # SERVE_FLAGS is a list of flags
  bin/agentbill serve --nats-url "$url" --replicas 3 --instance "bench-$inst" ${SERVE_FLAGS:-} >"$dir/serve-$inst.log" 2>&1 &
  pids+=($!)
done
echo "cluster: $url; waiting for the writer" >&2
for _ in $(seq 1 300); do
  if bin/agentbill status --nats-url "$url" --customer bench-probe >/dev/null 2>&1; then break; fi
  sleep 0.2
done
bin/agentbill bench --nats-url "$url" --replicas 3 "$@"
