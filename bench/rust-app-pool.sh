# Sourced by bench/rust-app-warm.sh when WARM_VIA=pool: the warm builds go through a VM pool
# (lian-build pool serve, its NATS embedded) on the fake Hetzner API's runner hosts (network
# namespaces on this kernel, each with sshd and buildkitd), whose disks are an XFS image with
# reflink, as a pool VM's warm-state disk is (POOL_FS=btrfs for btrfs). Each build is a ci lease asking for its namespace's state
# (--state-store volumes); the pool commits it after the build and makes the VM ready for the
# namespace's next lease. POOL_LINK=lan|eu|transatlantic shapes the link to every runner host
# (fake-hcloud --link). Sets warm_flags and pool_settle.
pooldir=$work/pool
umount "$pooldir" 2>/dev/null || true
rm -f "$work/pool.img" && truncate -s 40G "$work/pool.img"
case ${POOL_FS:-xfs} in
xfs) mkfs.xfs -q -f -m reflink=1 "$work/pool.img" ;;
btrfs) mkfs.btrfs -q -f "$work/pool.img" ;;
*) echo "POOL_FS=$POOL_FS: want xfs or btrfs" >&2; exit 2 ;;
esac
mkdir -p "$pooldir" && mount -o loop "$work/pool.img" "$pooldir"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hc=127.0.0.1:$(free_port) pl=127.0.0.1:$(free_port)
echo fake-hcloud-token > "$pooldir/hcloud-token"; head -c 24 /dev/urandom | base64 > "$pooldir/pool-token"
fake-hcloud --listen "$hc" --dir "$pooldir/fake" --buildkitd "$PWD/bin/buildkitd" --registry-port "$port" ${POOL_LINK:+--link "$POOL_LINK"} \
  >"$work/fake-hcloud.log" 2>&1 & fakepid=$!
lian-build pool serve --listen "$pl" --token-file "$pooldir/pool-token" --ssh-key-file "$pooldir/key" \
  --data-dir "$pooldir/nats" --hcloud-token-file "$pooldir/hcloud-token" --hcloud-endpoint "http://$hc/v1" \
  --hcloud-location fsn1 --insecure-registry "$reg" >"$work/pool.log" 2>&1 & poolpid=$!
pool_down() {
  lian-build pool drain --pool-url "http://$pl" --pool-token-file "$pooldir/pool-token" >/dev/null 2>&1 || true
  kill "$poolpid" "$fakepid" 2>/dev/null || true; wait "$poolpid" "$fakepid" 2>/dev/null || true
  umount "$pooldir" 2>/dev/null; rm -f "$work/pool.img"
}
trap 'pool_down; kill $regpid 2>/dev/null || true; umount "$statebase" 2>/dev/null && rm -f "$work/state.img"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/${pl%:*}/${pl#*:}") 2>/dev/null && break; sleep 0.1; done
warm_flags=(--provider vm-pool --pool-url "http://$pl" --pool-token-file "$pooldir/pool-token" --state-store volumes)
# pool_settle waits, untimed, until no VM is recycling: the return (commit, recycle, made ready)
# follows the build, and builds minutes apart find it done.
pool_settle() {
  for _ in $(seq 600); do
    lian-build pool ls --pool-url "http://$pl" --pool-token-file "$pooldir/pool-token" 2>/dev/null |
      grep -q -E 'recycling|creating' || return 0
    sleep 0.1
  done
}
# pool_direct builds the app by buildctl on the socket of the runner host's buildkitd (the
# one the last return started on the namespace's tree: the newest socket under fake-hcloud's
# runners), as keptb does on the persistent one.
pool_direct() {
  local sock t0
  sock=$(find "$pooldir/fake/runners" -name buildkitd.sock -type s -printf '%T@ %p\n' | sort -rn | head -n 1 | cut -d' ' -f2-)
  [ -S "$sock" ] || { echo "pool_direct: no runner host's buildkitd socket under $pooldir/fake/runners" >&2; exit 1; }
  t0=$(now)
  buildctl --addr "unix://$sock" build --frontend dockerfile.v0 --local context="$app" --local dockerfile="$app" \
    --opt filename="$df" "${bk_args[@]}" --progress plain 2>>"$work/direct.log"
  elapsed "$t0" "$(now)"
}
