#!/usr/bin/env bash
# Benchmarks that print numbers (as root; `make bench` builds what they need).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
go test -run '^$' -bench 'SpawnReady' -benchtime 20x ./bench/
go test -run '^$' -bench 'PipelineVsByHand|CacheImport' -benchtime 5x ./bench/
