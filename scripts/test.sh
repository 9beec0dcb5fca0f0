#!/usr/bin/env bash
# Runs every test of the project. This is the README's test command, and
# what CI runs (through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== go vet"
go vet ./...
echo "== go test"
go test -count=1 -timeout 15m ./...
