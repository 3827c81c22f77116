#!/usr/bin/env bash
# Builds the example catalog for real (root; needs Debian's mirror for debootstrap and apt):
# debian (debootstrap rootfs) → rust, go (Debian packages, built at once) → app, on a local
# registry, then builds again (nothing to do), then a downstream build on --lamina rust.
# Usage: examples/lamina/build.sh        (~10 min the first time; the rootfs is kept in .lian/)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/bin:$PATH"
work=$PWD/.lian/lamina-example
mkdir -p "$work"
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
make -s tools build >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
printf 'version: 0.1\nstorage: {filesystem: {rootdirectory: %s/registry}}\nhttp: {addr: %s}\nlog: {level: error, accesslog: {disabled: true}}\n' "$work" "$reg" > "$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
regpid=$!
trap 'kill $regpid 2>/dev/null || true; rm -rf "$work/catalog"' EXIT
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

if [ ! -f "$work/rootfs/.done" ]; then
  echo "debootstrap bookworm (minbase)…"
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  touch "$work/rootfs/.done"
fi
# The catalog with the rootfs in debian's context (a copy: the repository does not hold it).
rm -rf "$work/catalog" && cp -a examples/lamina "$work/catalog" && cp -a "$work/rootfs" "$work/catalog/debian/rootfs"
flags=(--registry "$reg/example" --insecure-registry "$reg" --progress quiet --metrics-dir "$work/metrics")

lian-build catalog check "$work/catalog" --check-dag
time lian-build catalog build "$work/catalog" "${flags[@]}"
time lian-build catalog build "$work/catalog" "${flags[@]}"   # nothing changed: every layer skipped

mkdir -p "$work/downstream"
printf 'FROM lamina/rust\nRUN cargo --version > /cargo-version\n' > "$work/downstream/Dockerfile"
# Pushed with an SBOM made offline: lian-build's scanner image (syft, FROM scratch) in this registry,
# pinned by digest; the SBOM lists the Debian packages under the toolchain.
scanner=$(lian-build sbom scanner "$reg/tools/lian-sbom-scanner" --insecure-registry "$reg")
lian-build build --lamina rust "${flags[@]}" --workspace downstream --tag "$reg/example/downstream:1" --push \
  --sbom --sbom-scanner "$scanner" --report-json "$work/downstream.json" "$work/downstream"
python3 - "$work/downstream.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n = [a["sbom_packages"] for a in r.get("attestations", [])]
print("SBOM of the downstream image:", n, "packages")
sys.exit(0 if n and n[0] >= 80 else "the downstream image's SBOM lists fewer than 80 packages (Debian minbase has ~90)")
PY
