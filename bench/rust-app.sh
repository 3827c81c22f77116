#!/usr/bin/env bash
# The rust-app workload of bench/rust-app (a lamina chain: Debian rootfs →
# Rust toolchain with Debian's crates, offline → an app with 94 crates), built by
# lian-build's pipeline and by BuildKit driven by hand (fresh buildkitd + buildctl),
# in three scenarios on fresh runners with a registry cache:
#   cold · src/ changed (ci/ cache) · nothing changed (ci/ cache)
# Prints the times and ratios next to the reference figures. Root; ~20 min cold.
# Usage: bench/rust-app.sh [ROUNDS]   (default 1; the reference used the median of 3)
#        RUST_APP_PHASE=warm bench/rust-app.sh   warm runner state (--state-store) against a
#        persistent buildkitd and against the registry cache alone, with sccache on a cache
#        mount (Dockerfile.warm): cold · src/ changed · Cargo.toml changed · nothing changed
#        RUST_APP_PHASE=warm-go bench/rust-app.sh   the same for the Go service of bench/go-app
#        (lamina/go: Debian's golang-go; the go-build cache on a cache mount)
#        WARM_VIA=pool with either: the warm builds go through a VM pool on runner hosts
#        (bench/rust-app-pool.sh) instead of the local runner's --state-store
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
export PATH="$PWD/bin:$PATH"
workload=$PWD/bench/rust-app
work=$PWD/.lian/bench/rust-app
mkdir -p "$work"
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
make -s tools build >/dev/null

# --- registry
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat > "$work/registry.yml" <<YML
version: 0.1
storage: {filesystem: {rootdirectory: $work/registry}, delete: {enabled: true}}
http: {addr: $reg}
log: {level: error, accesslog: {disabled: true}}
YML
rm -rf "$work/registry"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
regpid=$!
trap 'kill $regpid 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

# Both sides keep their runner state side by side on one filesystem: by default
# a journaled ext4 image mounted for the run, like a runner VM's disk. This
# machine's root is ext4 *without* a journal, where creating files right after
# many were deleted costs seconds of kernel time (ext4 skips recently deleted
# inodes one by one; fs/ext4/ialloc.c): there every build's time depends on how
# many files the builds before it deleted, and the comparison would measure the
# filesystem's history rather than the pipeline. RUST_APP_STATE=DIR uses DIR
# instead (e.g. to see that effect).
if [ -n "${RUST_APP_STATE:-}" ]; then
  statebase=$RUST_APP_STATE
else
  statebase=$work/state
  mkdir -p "$statebase"
  if ! mountpoint -q "$statebase"; then
    rm -f "$work/state.img" && truncate -s 48G "$work/state.img"
    mkfs.ext4 -q -F "$work/state.img"
    mount -o loop "$work/state.img" "$statebase"
  fi
  trap 'kill $regpid 2>/dev/null || true; umount "$statebase" 2>/dev/null && rm -f "$work/state.img"' EXIT
fi
mkdir -p "$statebase/runners" "$statebase/byhand"
common=(--insecure-registry "$reg" --progress plain --state-dir "$statebase/runners" --metrics-dir "$work/metrics")

# --- lamina/debian and lamina/rust (built once, with lian-build)
if [ ! -f "$work/rootfs/.done" ]; then
  echo "debootstrap bookworm (minbase)…"
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1
  rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/*
  touch "$work/rootfs/.done"
fi
mkdir -p "$work/base-ctx" && cp "$workload/base/Dockerfile" "$work/base-ctx/"
echo "building lamina/debian and lamina/rust…"
# The base Dockerfile copies rootfs/ from its own context.
[ -d "$work/base-ctx/rootfs" ] || cp -a "$work/rootfs" "$work/base-ctx/rootfs"
lian-build build "${common[@]}" -t "$reg/lamina/debian:bookworm" --push -q "$work/base-ctx" 2>"$work/base.log" >/dev/null
[ "${RUST_APP_PHASE:-}" = warm-go ] ||
  lian-build build "${common[@]}" --build-arg "BASE=$reg/lamina/debian:bookworm" -t "$reg/lamina/rust:bookworm" --push -q \
    --runner-type cax21 "$workload/toolchain" 2>"$work/toolchain.log" >/dev/null

app=$work/app
args=(--build-arg "BASE=$reg/lamina/debian:bookworm" --build-arg "TOOLCHAIN=$reg/lamina/rust:bookworm")
bk_args=(--opt "build-arg:BASE=$reg/lamina/debian:bookworm" --opt "build-arg:TOOLCHAIN=$reg/lamina/rust:bookworm")

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2-$1:.2f}')"; }

# lian-build: the pipeline, a fresh runner each time, the ci/ namespace of the cache registry.
lian() { # $1 = cache prefix
  local t0; t0=$(now)
  lian-build build "${common[@]}" "${args[@]}" --registry "$reg/$1" --workspace rust-app --actor ci \
    --runner-type cax21 --report-json "$work/last.json" "$app" 2>>"$work/lian.log" >/dev/null
  elapsed "$t0" "$(now)"
}
# By hand: start buildkitd, wait for it, buildctl build with the same cache options, stop it.
byhand() { # $1 = cache prefix
  local t0 state pid ref; t0=$(now); state=$(mktemp -d -p "$statebase/byhand")
  cat > "$state/buildkitd.toml" <<TOML
[worker.oci]
  snapshotter = "overlayfs"
  gc = false
[worker.containerd]
  enabled = false
[registry."$reg"]
  http = true
TOML
  buildkitd --config "$state/buildkitd.toml" --root "$state/root" --addr "unix://$state/sock" >"$state/log" 2>&1 & pid=$!
  until buildctl --addr "unix://$state/sock" debug workers >/dev/null 2>&1; do sleep 0.05; done
  ref="$reg/$1/ci/rust-app:cache"
  buildctl --addr "unix://$state/sock" build --frontend dockerfile.v0 --local context="$app" --local dockerfile="$app" \
    "${bk_args[@]}" --import-cache "type=registry,ref=$ref,registry.insecure=true" \
    --export-cache "type=registry,ref=$ref,mode=max,oci-mediatypes=true,image-manifest=true,compression=zstd,registry.insecure=true" \
    --progress plain 2>>"$work/byhand.log"
  kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$state"
  elapsed "$t0" "$(now)"
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

if [ "${RUST_APP_PHASE:-}" = warm ] || [ "${RUST_APP_PHASE:-}" = warm-go ]; then
  . bench/rust-app-warm.sh
  exit 0
fi

declare -A results
for r in $(seq "$rounds"); do
  # Alternate who goes first: the second run of a round finds the registry's blobs in the page cache.
  order="lian byhand"; [ $((r % 2)) -eq 0 ] && order="byhand lian"
  for who in $order; do
    rm -rf "$app" && cp -a "$workload/app" "$app"
    results[$who,cold,$r]=$($who "$who-r$r")
    echo 'fn _bench_touch() {}' >> "$app/src/main.rs"
    results[$who,src,$r]=$($who "$who-r$r")
    results[$who,none,$r]=$($who "$who-r$r")
    echo "round $r $who: cold ${results[$who,cold,$r]}s · src changed ${results[$who,src,$r]}s · unchanged ${results[$who,none,$r]}s"
  done
done

echo
printf '%-34s %10s %10s %8s %12s\n' scenario lian-build by-hand ratio reference
for s in cold src none; do
  l=$(median $(for r in $(seq "$rounds"); do echo "${results[lian,$s,$r]}"; done))
  h=$(median $(for r in $(seq "$rounds"); do echo "${results[byhand,$s,$r]}"; done))
  ref=$(case $s in cold) echo 90;; src) echo 26;; none) echo 0.11;; esac)
  name=$(case $s in cold) echo "cold (fresh runner, empty cache)";; src) echo "src/ changed, fresh runner, ci/";; none) echo "nothing changed, fresh runner, ci/";; esac)
  printf '%-34s %9ss %9ss %8s %11ss\n' "$name" "$l" "$h" "$(python3 -c "print(f'{$l/$h:.3f}')")" "$ref"
done
echo "(reference: BuildKit 0.34.2 by hand, median of 3, from bench/rust-app/README.md; by-hand times here include daemon start and stop)"
