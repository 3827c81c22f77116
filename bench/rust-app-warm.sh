# Sourced by bench/rust-app.sh (RUST_APP_PHASE=warm, or warm-go for bench/go-app) after the lamina images are built:
# $reg, $work, $app, $workload, $statebase, $common, $args, $bk_args, now, elapsed, median are set.
# Every lian-build build runs on a fresh runner; "warm" ones start on a clone of the
# committed state of ci/<workload> in a btrfs image (--state-store), without a registry
# cache; "registry" ones import and export the registry cache only. The reference is one
# buildkitd kept running (a persistent builder).
if [ "$RUST_APP_PHASE" = warm-go ]; then
  lian-build build "${common[@]}" --build-arg "BASE=$reg/lamina/debian:bookworm" -t "$reg/lamina/go:bookworm" --push -q \
    bench/go-app/toolchain 2>"$work/go-toolchain.log" >/dev/null
  workload=$PWD/bench/go-app workspace=go-app df=Dockerfile deps_label="go.mod changed" deps_target="—"
  args=(--build-arg "BASE=$reg/lamina/debian:bookworm" --build-arg "TOOLCHAIN=$reg/lamina/go:bookworm")
  bk_args=(--opt "build-arg:BASE=$reg/lamina/debian:bookworm" --opt "build-arg:TOOLCHAIN=$reg/lamina/go:bookworm")
  touch_src() { printf '\nfunc benchTouch%s() {}\n' "$(date +%s%N)" >> "$app/internal/api/api.go"; }
  touch_deps() { printf '\n// changed\n' >> "$app/go.mod"; }
else
  workspace=rust-app df=Dockerfile.warm deps_label="Cargo.toml changed" deps_target="≤30 s"
  touch_src() { echo "fn _bench_touch_$(date +%s%N)() {}" >> "$app/src/main.rs"; }
  touch_deps() { printf '\n[package.metadata.bench]\nchanged = true\n' >> "$app/Cargo.toml"; }
fi
src_rounds=${WARM_SRC_ROUNDS:-0}
warm_store=$work/warm-state.img
rm -f "$warm_store"; umount "$warm_store.mnt" 2>/dev/null || true
trap 'kill $regpid 2>/dev/null || true; umount "$work/warm-state.img.mnt" 2>/dev/null; rm -f "$work/warm-state.img"; umount "$statebase" 2>/dev/null && rm -f "$work/state.img"' EXIT
warm_flags=(--state-store "$warm_store" --state-store-size 40GiB)
# WARM_STORE_FS=xfs: the store is a directory on an XFS image with reflink (file-by-file
# reflink clones) instead of the btrfs image lian-build makes (subvolume snapshots).
if [ "${WARM_STORE_FS:-btrfs}" = xfs ]; then
  truncate -s 40G "$warm_store" && mkfs.xfs -q -f -m reflink=1 "$warm_store"
  mkdir -p "$warm_store.mnt" && mount -o loop "$warm_store" "$warm_store.mnt"
  warm_flags=(--state-store "$warm_store.mnt")
  warm_store=$warm_store.mnt
fi
[ "${WARM_VIA:-}" = pool ] && . bench/rust-app-pool.sh

lianw() { # $1 = warm|registry, $2 = cache prefix
  # Warm state alone: no registry cache to export, as the persistent builder exports none.
  local t0 extra=(--registry "$reg/$2"); t0=$(now)
  [ "$1" = warm ] && extra=("${warm_flags[@]}")
  lian-build build "${common[@]}" "${args[@]}" -f "$app/$df" --workspace "$workspace" \
    --actor ci --runner-type cax21 "${extra[@]}" --report-json "$work/last.json" "$app" 2>>"$work/lian.log" >/dev/null
  local t; t=$(elapsed "$t0" "$(now)")
  [ "$1" = warm ] && [ "${WARM_VIA:-}" = pool ] && pool_settle
  [ "$1" = warm ] && python3 -c "import json; s=json.load(open('$work/last.json')).get('state') or {}; print('clone', s.get('clone_ms',0), 'ms, commit', s.get('commit_ms',0), 'ms, state in', round(s.get('bytes_in',0)/2**30, 2), 'GiB')" >> "$work/state_ms.txt"
  echo "$t"
}
kept_start() {
  kept=$(mktemp -d -p "$statebase/byhand")
  printf '[worker.oci]\n  snapshotter = "overlayfs"\n  gc = false\n[worker.containerd]\n  enabled = false\n[registry."%s"]\n  http = true\n' "$reg" > "$kept/buildkitd.toml"
  buildkitd --config "$kept/buildkitd.toml" --root "$kept/root" --addr "unix://$kept/sock" >"$kept/log" 2>&1 & keptpid=$!
  until buildctl --addr "unix://$kept/sock" debug workers >/dev/null 2>&1; do sleep 0.05; done
}
keptb() {
  local t0; t0=$(now)
  buildctl --addr "unix://$kept/sock" build --frontend dockerfile.v0 --local context="$app" --local dockerfile="$app" \
    --opt filename="$df" "${bk_args[@]}" --progress plain 2>>"$work/kept.log"
  elapsed "$t0" "$(now)"
}
scenario() { # $1 = runner function and args…; runs cold, src, cargo, none on a fresh copy of the app
  rm -rf "$app" && cp -a "$workload/app" "$app"
  local c s g n
  c=$("$@"); touch_src
  s=$("$@"); touch_deps
  g=$("$@"); n=$("$@")
  echo "$c $s $g $n"
}

rm -f "$work/state_ms.txt"
echo "persistent buildkitd (reference)…"
kept_start; read -r kc ks kg kn <<<"$(scenario keptb)"
kept_stop() { kill "$keptpid"; wait "$keptpid" 2>/dev/null || true; rm -rf "$kept"; }
[ "$src_rounds" -gt 0 ] || kept_stop
echo "lian-build, registry cache only…"
read -r rc rs rg rn <<<"$(scenario lianw registry reg-only)"
echo "lian-build, warm state…"
read -r wc ws wg wn <<<"$(scenario lianw warm warm)"

if [ "$src_rounds" -gt 0 ]; then
  # One src change more per round, built by both on the same tree, the persistent one first.
  echo "src changed, $src_rounds interleaved rounds…"
  : > "$work/src_rounds.txt"; : > "$work/direct_rounds.txt"
  for _ in $(seq "$src_rounds"); do
    touch_src; k=$(keptb); w=$(lianw warm warm); echo "$k $w" >> "$work/src_rounds.txt"
    # WARM_DIRECT=1 (with WARM_VIA=pool): the same change once more, by buildctl on the socket
    # of the pool VM's buildkitd that the return started for the namespace (no lease, no SSH).
    [ -z "${WARM_DIRECT:-}" ] || { touch_src; pool_direct >> "$work/direct_rounds.txt"; }
  done
  kept_stop
fi

echo
printf '%-22s %12s %14s %14s %10s %10s\n' scenario persistent registry-only warm-state warm/pers target
row() { printf '%-22s %11ss %14s %13ss %10s %10s\n' "$1" "$2" "${3/%[0-9]/&s}" "$4" "$(python3 -c "print(f'{$4/$2:.2f}')")" "$5"; }
row "cold" "$kc" "$rc" "$wc" "—"
row "src/ changed" "$ks" "$rs" "$ws" "≤1.2×"
row "$deps_label" "$kg" "$rg" "$wg" "$deps_target"
row "nothing changed" "$kn" "$rn" "$wn" "≤0.5 s"
if [ "$src_rounds" -gt 0 ]; then
  mk=$(median $(awk '{print $1}' "$work/src_rounds.txt")); mw=$(median $(awk '{print $2}' "$work/src_rounds.txt"))
  row "src/ changed, median of $src_rounds" "$mk" "—" "$mw" "≤1.2×"
  echo "  rounds (persistent warm): $(tr '\n' ';' < "$work/src_rounds.txt")"
  [ -z "${WARM_DIRECT:-}" ] || echo "  the pool VM's buildkitd by buildctl on its socket, median $(median $(cat "$work/direct_rounds.txt")) s: $(tr '\n' ' ' < "$work/direct_rounds.txt")"
fi
echo
echo "warm-state clone and commit per build (cold, src, deps, none):"; cat "$work/state_ms.txt"
[ "${WARM_VIA:-}" = pool ] || lian-build state ls --state-store "$warm_store"
