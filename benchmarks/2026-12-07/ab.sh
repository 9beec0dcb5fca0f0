#!/bin/bash
# ab.sh OUT N DURATION spec... ; spec = name:envs:binary  (envs comma-separated or -)
out=$1; n=$2; dur=$3; shift 3
: > $out
for i in $(seq $n); do
  for spec in "$@"; do
    name=${spec%%:*}; rest=${spec#*:}; envs=${rest%%:*}; bin=${rest#*:}
    [ "$envs" = "-" ] && envs="" || envs=$(echo $envs | tr ',' ' ')
    r=$(env $envs $bin bench --duration $dur --only preflight_record_spread 2>&1)
    bare=$(echo "$r" | awk '/^nats_request_reply/{print $2, $11}' | head -1)
    line=$(echo "$r" | awk '/^  *preflight_record_spread/{print $3, $8, $9, $10}')
    app=$(echo "$r" | awk '/^preflight_record_spread:/{match($0,/[0-9.]+ requests per commit, [0-9.]+ ms per append/); print substr($0,RSTART,RLENGTH)}')
    echo "$name bare $bare spread $line $app" | tee -a $out
  done
done
