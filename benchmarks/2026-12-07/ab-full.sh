#!/bin/bash
# ab-full.sh OUT N ARGS spec... : alternate binaries N times, keeping each
# run's whole output under a header (name, time, load average, command).
# spec = name:envs:binary (envs comma-separated, or -); ARGS is one string of
# `agentbill bench` arguments. A summary line a run, as ab.sh prints it,
# goes to OUT.summary.
out=$1; n=$2; args=$3; shift 3
: > "$out"; : > "$out.summary"
for i in $(seq "$n"); do
  for spec in "$@"; do
    name=${spec%%:*}; rest=${spec#*:}; envs=${rest%%:*}; bin=${rest#*:}
    [ "$envs" = "-" ] && envs="" || envs=$(echo "$envs" | tr ',' ' ')
    echo "### $name ($(date -u +%Y-%m-%dT%H:%M:%SZ), load $(cut -d' ' -f1-3 /proc/loadavg)): ${envs:+$envs }agentbill bench $args" >> "$out"
    r=$(env $envs "$bin" bench $args 2>&1)
    echo "$r" >> "$out"; echo >> "$out"
    bare=$(echo "$r" | awk '/^nats_request_reply/{print $2, $11}' | head -1)
    line=$(echo "$r" | awk '/^  *preflight_record_spread /{print $3, $8, $9, $10}')
    echo "$name bare $bare spread $line" | tee -a "$out.summary"
  done
done
