#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one target per invocation
# (go test -fuzz takes one). CI runs it after the tests (.ci/run). The seed
# corpora under */testdata/fuzz/ also run as plain tests in scripts/test.sh.
#
#   FUZZTIME=20s ./scripts/fuzz.sh      # the default
#   FUZZTIME=10m ./scripts/fuzz.sh      # a longer hunt
#
# A failure leaves the crashing input in <pkg>/testdata/fuzz/<Target>/:
# commit it with the fix, as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-20s}"
targets=(
  "./events FuzzParseUnits"
  "./events FuzzToken"
  "./projections FuzzDecodeRequest"
  "./internal/strictjson FuzzCheck"
  "./ledger FuzzLedger"
  "./events FuzzDecodeCommit"
  "./events FuzzDecodeCommitFields"
)
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "== fuzz $name ($pkg, $fuzztime)"
  if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg" >"$log" 2>&1; then
    cat "$log"
    echo "fuzz $name failed: the input is in $pkg/testdata/fuzz/$name/" >&2
    exit 1
  fi
  # The last progress line has the total executions.
  grep '^fuzz: elapsed' "$log" | tail -n 1
done
# A closing line CI reads as the run's tally (a failure exited above).
echo "fuzz: ${#targets[@]} passed, 0 failed"
