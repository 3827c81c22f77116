#!/usr/bin/env bash
# The main job: build examples/hello twice on fresh local runners, sharing a
# registry cache, and show lian-build's report. Run by `make demo` (as root).
# With the argument "base" it only makes the busybox base image, .lian/demo/base.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
work=.lian/demo
rm -rf "$work" && mkdir -p "$work"

# 1. A busybox root filesystem from Debian's busybox-static.
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,tmp,etc,root}
chmod 1777 "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo 'root:x:0:' > "$rootfs/etc/group"

echo "== base image (FROM scratch + busybox) → OCI layout $work/base"
lian-build build --progress plain -q --build-context rootfs="$rootfs" \
  --output "type=oci,dest=$work/base,tar=false,name=lamina/busybox:demo" examples/base >/dev/null
# `examples/demo.sh base` stops here (the self-test workflow uses the base).
[ "${1:-}" = base ] && exit 0

# 2. A local OCI registry (Debian's docker-registry) for the image and the cache.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 5055)
registry=127.0.0.1:$port
cat > "$work/registry.yml" <<YML
version: 0.1
storage: {filesystem: {rootdirectory: $PWD/$work/registry}}
http: {addr: $registry}
log: {level: error, accesslog: {disabled: true}}
YML
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done

common=(--insecure-registry "$registry" --progress plain)


cache="type=registry,ref=$registry/cache/hello:main"
hello=(build "${common[@]}" --build-context "base=oci-layout://$work/base"
       -t "$registry/demo/hello:latest" --push
       --cache-from "$cache" --cache-to "$cache,mode=max" examples/hello)

echo
echo "== examples/hello, cold, on a fresh runner"
lian-build "${hello[@]}" --report-json "$work/cold.json" 2>"$work/cold.log"
echo
echo "== examples/hello again, on another fresh runner, importing the registry cache"
lian-build "${hello[@]}" --report-json "$work/warm.json" 2>"$work/warm.log"

echo
echo "Progress logs: $work/cold.log, $work/warm.log; JSON reports: $work/cold.json, $work/warm.json"
lian-build runners ls
