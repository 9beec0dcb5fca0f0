#!/usr/bin/env bash
# Runs every test of the project. This is the README's test command, and
# what CI runs (through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# npm_ready DIR installs DIR's devDependencies exactly as its
# package-lock.json pins them, unless node_modules was installed from
# that very lock file (a copy is kept beside it).
npm_ready() {
  if ! cmp -s "$1/package-lock.json" "$1/node_modules/.installed-lock.json"; then
    (cd "$1" && npm ci --no-audit --no-fund && cp package-lock.json node_modules/.installed-lock.json)
  fi
}

echo "== go vet"
go vet ./...
echo "== go build bin/agentbill (for the SDK suites)"
go build -o bin/agentbill ./cmd/agentbill
export AGENTBILL_BIN="$PWD/bin/agentbill"
echo "== go build bin/nats-server (for the deploy and crash tests)"
go build -o bin/nats-server github.com/nats-io/nats-server/v2
export AGENTBILL_NATS_SERVER_BIN="$PWD/bin/nats-server"
# prices/crosscheck_test.go prices the starter list with the pinned
# @pydantic/genai-prices (scripts/prices/package-lock.json).
npm_ready scripts/prices
echo "== go test"
go test -count=1 -timeout 15m ./...
echo "== go test -race (the ledger's snapshot reading, its index, the heap's advice)"
# The concurrent parts of the money core, and the advice that once made a
# race-detector build crash at its start (checkptr).
go test -race -count=1 -run 'TestAdviseHeap|Snapshot|HashIndex' ./ledger
echo "== python SDK (unittest)"
python3 -m unittest discover -s sdk/python/tests
echo "== node SDK (node --test)"
# The integrations' and the webhook tests need sdk/node's devDependencies
# (@langchain/core, the provider SDKs, ai, @openai/agents, standardwebhooks);
# CI installs them first.
npm_ready sdk/node
node --test sdk/node/test/
echo "== contracts (node --test: docs/openapi.json, docs/asyncapi.yaml)"
# The wire contracts against the binary and the SDKs (contracts/README.md);
# they need contracts/'s devDependencies (pinned by its package-lock.json).
npm_ready contracts
node --test contracts/test/
echo "== price list generator (node --test scripts/prices/)"
# The exact number-to-text conversion of the starter list's generator; the
# list itself is checked by go test (prices/crosscheck_test.go).
node --test scripts/prices/
