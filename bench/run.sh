#!/usr/bin/env bash
# Benchmarks that print numbers (as root; `make bench` builds what they need).
# The rust-app workload (lamina chain, ~20 min) is separate: bench/rust-app.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
go test -run '^$' -bench 'SpawnReady' -benchtime 20x ./bench/
go test -run '^$' -bench 'HcloudSpawn' -benchtime 5x ./bench/
go test -run '^$' -bench 'DockerSpawn' -benchtime 5x ./bench/
go test -run '^$' -bench 'PipelineVsByHand|CacheImport' -benchtime 5x ./bench/
go test -run '^$' -bench 'LocalWarmState' -benchtime 2x ./bench/
go test -run '^$' -bench 'SchemasAnd200LineDirectives' ./internal/nickel/
go test -run '^$' -bench 'IntakeBurst' -benchtime 1x ./internal/gateway/
go test -run '^$' -bench 'PoolLease' -benchtime 3x ./internal/pool/
go test -run '^$' -bench 'PoolSimulation' -benchtime 1x ./internal/pool/sim/
go test -run '^$' -bench 'PoolWarmHit' -benchtime 3x ./internal/pool/
go test -run '^$' -bench 'TwoPlatformBuild' -benchtime 3x ./internal/launch/
go test -run '^$' -bench 'TransportOverLink' -benchtime 3x ./internal/compute/sshx/
go test -run '^$' -bench 'ChangeAndOutputOverLink' -benchtime 1x ./internal/compute/sshx/
go test -run '^$' -bench 'VMSpawnPhases' -benchtime 2x ./bench/
