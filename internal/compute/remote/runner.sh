# The runner machine's own commands, run as root over SSH (sh -s -- CMD …).
# A pool makes a machine fit for its next lease over its own key:
#   recycle ADMIN_KEY [cold | open NAMESPACE|- TREE] [key LEASE_KEY]
#   grant ADMIN_KEY LEASE_KEY [adopt TREE]
# A lease on a machine with a state volume (a Hetzner Volume per cache
# namespace, mounted at VOLUME) runs its buildkitd on a copy of the
# volume's committed generation:
#   state-open VOLUME LEASE | state-commit VOLUME LEASE | state-discard VOLUME LEASE
# A pool VM keeps the committed generations of the namespaces it served on
# its own disk (WARM); the pool opens one for a lease and commits after it:
#   grant ADMIN_KEY LEASE_KEY NAMESPACE|- LEASE | warm-commit NAMESPACE LEASE GENERATION | warm-drop NAMESPACE
#   warm-list (each namespace's committed generation: NAMESPACE generation N bytes B)
# and hand a generation to another VM, as a tar on standard output and input:
#   warm-export NAMESPACE | warm-import NAMESPACE GENERATION
# Before a server is snapshotted as a runner image:
#   image-prep  stops buildkitd and removes its state, the warm state, the
#               host keys and cloud-init's record (a clone boots as new)
#   image-boot PATH SCRIPT UNIT UNIT_TEXT  (base64) makes an image that
#               boots without user-data start buildkitd: a systemd unit
#   recycle  revokes every lease key and ends its sessions, kills everything
#            in the build cgroup (buildkitd and every RUN container), removes
#            buildkitd's root, every warm work tree (never a committed
#            generation) and the cgroup's children, and starts a new
#            buildkitd in new cgroups: none when cold; on the work tree TREE,
#            a copy of NAMESPACE's committed generation, given open (what the
#            next lease will likely ask for); else on an empty root. Given
#            key, it lets the next lease's key in already: a lease that
#            wants what was started needs no grant.
#   grant    (buildkitd started if the recycle left it stopped, or on an
#            empty root if it runs on a work tree the lease does not adopt,
#            or, given a namespace, restarted on a copy of its committed
#            generation) lets one lease key in, with a forced command: "dial-stdio"
#            bridges it to buildkitd's socket (buildctl dial-stdio), anything
#            else reads the build cgroup's counters; no shell, no forwarding
#            of any port or socket, no pty, agent or X11.
set -eu
ROOT=/var/lib/buildkit
CONFIG=/etc/buildkit/buildkitd.toml
BUILDKITD=/usr/local/bin/buildkitd
BUILDCTL=/usr/local/bin/buildctl
SOCKET=/run/buildkit/buildkitd.sock
LOG=/var/log/buildkitd.log
KEYS=/root/.ssh/authorized_keys
B=lian-build
# A pool VM's warm state: ns/NAMESPACE/{gens/N,current} per cache namespace
# it has served, and the work tree of the lease that runs now.
WARM=/var/lib/lian-build/warm
# ... on a filesystem that clones by reflink: where WARM's is not one (a
# stock server's ext4 root, which would copy a generation whole at every
# lease), WARM_IMAGE, an XFS image with reflink on the root disk, made and
# mounted at WARM when warm state is first used (and after a reboot). XFS,
# not btrfs: a Go service's source change builds 15–30 % slower on btrfs
# (bench/README). Empty: WARM as it is.
WARM_IMAGE=/var/lib/lian-build/warm.xfs
# image-prep also removes what a snapshot must not hand on (host keys,
# cloud-init's record of this instance); a test host sharing its
# machine's /etc sets SYSTEM_PREP=0.
SYSTEM_PREP=1
CG=/sys/fs/cgroup
STATS=/run/lian-build/stats
LEASE=/run/lian-build/lease
# A pool VM's sshd forwards only to the VM from this machine (a lease's
# context stream, ssh -R): no unix socket, no port on the VM's side.
SSHD_CONFIG=/etc/ssh/sshd_config
SSHD_DROPIN=/etc/ssh/sshd_config.d/lian-build-pool.conf
SSHD_PID=/run/sshd.pid
# buildkitd starts through this python3 program, which makes its sync calls
# no-ops (a seccomp filter): its root is scratch until a commit, which
# syncs (promote). Empty: buildkitd starts as it is.
NOSYNC=/run/lian-build/nosync.py
# A machine whose layout differs (the tests' runner hosts) says so here.
[ -f /run/lian-build/runner.env ] && . /run/lian-build/runner.env

die() { echo "recycle: $*" >&2; exit 1; }

cg_dirs() {
	if [ -f $CG/cgroup.controllers ]; then echo $CG/$B; return; fi
	for c in $CG/*/; do [ -d "$c$B" ] && echo "${c%/}/$B"; done
	return 0
}

# keys ADMIN [LEASE]: authorized_keys holds the pool's key and at most one
# lease's: its forced command, and a listener on the VM's loopback.
keys() {
	confine_sshd
	mkdir -p -m 700 "$(dirname "$KEYS")"
	{
		echo "$1"
		[ -z "${2:-}" ] || echo "restrict,port-forwarding,permitlisten=\"127.0.0.1:*\",command=\"sh $LEASE\" $2"
	} >"$KEYS.new"
	chmod 600 "$KEYS.new"
	mv "$KEYS.new" "$KEYS"
}

# confine_sshd makes sshd forward nothing but remote forwards (a lease's
# key may ask for one on the loopback): written once, then a listening
# sshd reloads (its sessions live on; new connections wait out its
# restart). A socket-activated sshd (Ubuntu's ssh.socket: no pid file)
# reads its configuration per connection.
confine_sshd() {
	want="AllowTcpForwarding remote
AllowStreamLocalForwarding no"
	[ "$(cat "$SSHD_DROPIN" 2>/dev/null)" = "$want" ] && return 0
	mkdir -p "$(dirname "$SSHD_DROPIN")"
	printf '%s\n' "$want" >"$SSHD_DROPIN.new" && mv "$SSHD_DROPIN.new" "$SSHD_DROPIN"
	eff=$(/usr/sbin/sshd -T -f "$SSHD_CONFIG" 2>&1) || die "sshd -T: $eff"
	for w in "allowtcpforwarding remote" "allowstreamlocalforwarding no"; do
		printf '%s\n' "$eff" | grep -qx "$w" || { rm -f "$SSHD_DROPIN"; die "sshd does not apply $SSHD_DROPIN ($w): its configuration includes no sshd_config.d"; }
	done
	[ -f "$SSHD_PID" ] || return 0
	kill -HUP "$(cat "$SSHD_PID")" || die "cannot reload sshd (pid file $SSHD_PID)"
	sleep 1
}

ppid_of() { sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f2; }
comm_of() { cat "/proc/$1/comm" 2>/dev/null || true; }

# end_sessions kills every SSH session but this one: the children of the
# sshd that accepted this connection, other than the one leading here.
end_sessions() {
	p=$$ mine= listener=
	while [ "$p" -gt 1 ]; do
		up=$(ppid_of "$p")
		if [ "$(comm_of "$up")" = sshd ]; then mine=$p listener=$up; fi
		p=$up
	done
	[ -n "$listener" ] || return 0
	for d in /proc/[0-9]*; do
		q=${d#/proc/}
		[ "$q" != "$mine" ] && [ "$(ppid_of "$q" 2>/dev/null)" = "$listener" ] && kill -9 "$q" 2>/dev/null || true
	done
}

# boot_wait waits, on a machine cloud-init is still setting up (its
# user-data installs and starts buildkitd), until cloud-init has finished:
# a recycle before then would see its buildkitd started behind it. A
# cloud-init that failed is fatal, with the end of its output.
boot_wait() {
	[ -d /run/cloud-init ] || return 0
	i=0
	until [ -f /run/cloud-init/result.json ]; do
		i=$((i + 1))
		[ $i -lt 1200 ] || die "cloud-init did not finish in 10 minutes"
		sleep 0.5
	done
	grep -q '"errors": \[\]' /run/cloud-init/result.json ||
		die "cloud-init failed: $(tr -d '\n' </run/cloud-init/result.json); the end of /var/log/cloud-init-output.log: $(tail -n 20 /var/log/cloud-init-output.log 2>/dev/null)"
}

kill_build() {
	i=0
	while :; do
		pids=$(for d in $(cg_dirs); do find "$d" -name cgroup.procs -exec cat {} +; done | sort -u)
		[ -z "$pids" ] && return 0
		kill -9 $pids 2>/dev/null || true
		i=$((i + 1))
		[ $i -lt 200 ] || die "processes survive in the $B cgroup: $pids"
		sleep 0.05
	done
}

wipe() {
	unmount_under "$ROOT"
	drop_work
	rm -rf "$ROOT" "$SOCKET"
	mkdir -p -m 700 "$ROOT"
	for d in $(cg_dirs); do
		find "$d" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
		[ -z "$(find "$d" -mindepth 1 -type d)" ] || die "cgroups left under $d"
	done
	renew_cgroup
}

# renew_cgroup makes the build cgroup anew on cgroup v2, with its limit:
# v2 keeps memory.peak for a cgroup's life (before Linux 6.12 nothing
# resets it), and the next lease's peak must be its own. (v1's is reset in
# start.)
renew_cgroup() {
	[ -f $CG/cgroup.controllers ] && [ -d $CG/$B ] || return 0
	max=$(cat $CG/$B/memory.max)
	rmdir $CG/$B || die "the $B cgroup cannot be made anew"
	mkdir $CG/$B
	echo "$max" >$CG/$B/memory.max
	echo +memory +cpu >$CG/$B/cgroup.subtree_control
}

# nosync_wrapper writes NOSYNC and prints what buildkitd's command starts
# with to go through it (nothing without python3 or NOSYNC).
nosync_wrapper() {
	[ -n "$NOSYNC" ] && command -v python3 >/dev/null 2>&1 || return 0
	mkdir -p "$(dirname "$NOSYNC")"
	cat >"$NOSYNC.new" <<'LIAN_NOSYNC'
@NOSYNC@
LIAN_NOSYNC
	mv "$NOSYNC.new" "$NOSYNC"
	echo "python3 $NOSYNC"
}

# start [ROOT] starts buildkitd (on ROOT instead of the config's root).
start() {
	root_flag=
	[ -z "${1:-}" ] || root_flag="--root $1"
	if [ -f $CG/cgroup.controllers ]; then
		mkdir -p $CG/$B/daemon $CG/$B/steps
		procs=$CG/$B/daemon/cgroup.procs
	else
		procs=
		for c in memory cpuacct; do
			mkdir -p $CG/$c/$B/daemon
			procs="$procs $CG/$c/$B/daemon/cgroup.procs"
		done
		echo 0 >$CG/memory/$B/memory.max_usage_in_bytes
	fi
	mkdir -p "$(dirname "$SOCKET")" "$(dirname "$LOG")"
	wrap=$(nosync_wrapper) || wrap=
	setsid sh -c 'for f in $0; do echo $$ >"$f"; done; exec $4 "$1" --config "$2" $3' "$procs" "$BUILDKITD" "$CONFIG" "$root_flag" "$wrap" >"$LOG" 2>&1 </dev/null &
	i=0
	until [ -S "$SOCKET" ]; do
		i=$((i + 1))
		[ $i -lt 600 ] || die "buildkitd did not start: $(tail -n 5 "$LOG")"
		sleep 0.05
	done
}

write_stats() {
	mkdir -p "$(dirname $STATS)"
	cat >"$STATS.new" <<'LIAN_STATS'
@STATS@
LIAN_STATS
	mv "$STATS.new" "$STATS"
	cat >"$LEASE.new" <<LIAN_LEASE
case "\$SSH_ORIGINAL_COMMAND" in
dial-stdio) exec "$BUILDCTL" --addr "unix://$SOCKET" dial-stdio ;;
*) exec sh "$STATS" ;;
esac
LIAN_LEASE
	mv "$LEASE.new" "$LEASE"
}

# stop_daemon stops buildkitd cleanly (SIGTERM, then waits): its state on
# disk is whole once it has exited.
stop_daemon() {
	pids=$(for d in $(cg_dirs); do f=$d/daemon/cgroup.procs; [ -f "$f" ] && cat "$f"; done | sort -u)
	[ -n "$pids" ] || pids=$(for d in $(cg_dirs); do cat "$d/cgroup.procs" 2>/dev/null; done | sort -u)
	[ -z "$pids" ] || kill -TERM $pids 2>/dev/null || true
	i=0
	for p in $pids; do
		while kill -0 "$p" 2>/dev/null; do
			i=$((i + 1))
			[ $i -lt 600 ] || die "buildkitd ($p) did not stop"
			sleep 0.05
		done
	done
}

# wait_volume waits for the volume's mount (cloud-init mounts it after boot).
wait_volume() {
	i=0
	until grep -qs " $1 " /proc/self/mountinfo; do
		i=$((i + 1))
		[ $i -lt 1200 ] || die "the state volume is not mounted at $1"
		sleep 0.05
	done
}

# warm_fs puts WARM on a filesystem that clones (see WARM_IMAGE): it mounts
# the image, made the first time (sparse, 3/4 of the disk's free space),
# unless WARM clones already or holds state from before the image.
warm_fs() {
	mkdir -p "$WARM"
	[ -n "$WARM_IMAGE" ] || return 0
	mountpoint -q "$WARM" && return 0
	# Held while it mounts, released before anything starts that would
	# inherit it (buildkitd).
	exec 9>"$WARM_IMAGE.lock"
	flock 9
	mountpoint -q "$WARM" || warm_mount
	exec 9>&-
}

warm_mount() {
	if [ ! -f "$WARM_IMAGE" ]; then
		[ -z "$(ls -A "$WARM")" ] && ! reflinks "$WARM" || return 0
		if ! command -v mkfs.xfs >/dev/null; then
			echo "warm state: no mkfs.xfs (xfsprogs) to make $WARM_IMAGE; generations are copied whole on $(stat -f -c %T "$WARM")" >&2
			return 0
		fi
		avail=$(df -B1 --output=avail "$(dirname "$WARM_IMAGE")" | tail -n 1)
		rm -f "$WARM_IMAGE.new"
		truncate -s $((avail / 4 * 3)) "$WARM_IMAGE.new"
		out=$(mkfs.xfs -q -m reflink=1 "$WARM_IMAGE.new" 2>&1) || { rm -f "$WARM_IMAGE.new"; die "mkfs.xfs $WARM_IMAGE: $out"; }
		mv "$WARM_IMAGE.new" "$WARM_IMAGE"
	fi
	out=$(mount -o loop,noatime "$WARM_IMAGE" "$WARM" 2>&1) || die "cannot mount $WARM_IMAGE at $WARM: $out"
}

# reflinks DIR says whether DIR's filesystem makes reflink copies.
reflinks() {
	: >"$1/.reflink-probe" && cp --reflink=always "$1/.reflink-probe" "$1/.reflink-probe.copy" 2>/dev/null
	r=$?
	rm -f "$1/.reflink-probe" "$1/.reflink-probe.copy"
	return $r
}

# copy_tree copies a committed generation for a lease: a reflink copy (XFS,
# btrfs) shares every block until written; elsewhere it is a full copy.
copy_tree() {
	cp -a --reflink=auto "$1" "$2"
}

# unmount_under DIR unmounts everything mounted at or below DIR.
unmount_under() {
	awk -v r="$1" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" || die "cannot unmount $m"; done
}

# take_tree GEN WORK makes WORK the committed generation GEN's own tree,
# whose files the last build left in memory, and GEN a copy of it (the
# build runs on warm pages, the generation keeps its snapshot: ADR 0007).
# The copy is complete before either rename, so a kill at any point leaves
# GEN whole or GEN.copy whole for recover_gens.
take_tree() {
	g=$1 work=$2
	rm -rf "$g.copy" "$g.copy.tmp"
	copy_tree "$g" "$g.copy.tmp"
	sync -f "$g.copy.tmp"
	mv "$g.copy.tmp" "$g.copy"
	mv "$g" "$work"
	mv "$g.copy" "$g"
}

# recover_gens NSDIR puts back a generation a kill left taken (only its
# complete copy there) and removes copies a kill left behind.
recover_gens() {
	for c in "$1"/gens/*.copy; do
		[ -d "$c" ] || continue
		if [ -d "${c%.copy}" ]; then rm -rf "$c"; else mv "$c" "${c%.copy}"; fi
	done
	rm -rf "$1"/gens/*.copy.tmp
}

# open_tree NSDIR WORK restarts buildkitd on WORK, NSDIR's committed
# generation taken (empty without one).
open_tree() {
	nsdir=$1 work=$2
	recover_gens "$nsdir"
	gen=0
	[ -f "$nsdir/current" ] && gen=$(cat "$nsdir/current")
	rm -rf "$work"
	if [ "$gen" -gt 0 ] && [ -d "$nsdir/gens/$gen" ]; then
		take_tree "$nsdir/gens/$gen" "$work"
	else
		gen=0
		mkdir -p "$work"
	fi
	stop_daemon
	kill_build
	rm -f "$SOCKET"
	start "$work"
	echo "generation $gen bytes $(du -sb "$work" | cut -f1)"
}

# commit_tree NSDIR WORK NEXT stops buildkitd and makes WORK the committed
# generation NEXT of NSDIR: the tree is renamed into place before the
# current pointer moves (each step atomic, synced), so a kill at any point
# leaves the previous generation or NEXT, complete.
commit_tree() {
	nsdir=$1 work=$2 next=$3
	[ -d "$work" ] || die "no work tree $work"
	stop_daemon
	kill_build
	unmount_under "$work"
	promote "$nsdir" "$work" "$next"
}

# promote NSDIR TREE NEXT makes TREE the committed generation NEXT of
# NSDIR, as commit_tree says, with buildkitd left running.
promote() {
	nsdir=$1 work=$2 next=$3
	mkdir -p "$nsdir/gens"
	rm -rf "$nsdir/gens/$next"
	mv "$work" "$nsdir/gens/$next"
	sync
	echo "$next" >"$nsdir/current.new"
	sync
	mv "$nsdir/current.new" "$nsdir/current"
	sync
	for g in "$nsdir"/gens/*; do [ "$g" = "$nsdir/gens/$next" ] || rm -rf "$g"; done
	echo "generation $next bytes $(du -sb "$nsdir/gens/$next" | cut -f1)"
}

state_open() {
	vol=$1 lease=$2
	wait_volume "$vol"
	mkdir -p "$vol/gens"
	# Work trees of leases that never committed nor discarded (a lost server).
	for w in "$vol"/work-*; do [ -e "$w" ] && [ "$w" != "$vol/work-$lease" ] && rm -rf "$w"; done
	open_tree "$vol" "$vol/work-$lease"
}

state_commit() {
	vol=$1 lease=$2
	gen=0
	[ -f "$vol/current" ] && gen=$(cat "$vol/current")
	commit_tree "$vol" "$vol/work-$lease" $((gen + 1))
}

# drop_work removes every warm work tree (what leases ran on), never a
# committed generation.
drop_work() {
	for w in "$WARM"/work-*; do
		[ -e "$w" ] || continue
		unmount_under "$w"
		rm -rf "$w"
	done
}

# restart_empty restarts buildkitd on an empty root, and removes the work
# tree it ran on: a lease that did not ask for warm state never gets one.
restart_empty() {
	stop_daemon
	kill_build
	drop_work
	rm -f "$SOCKET"
	start
}

# adopt TREE checks that buildkitd runs on the work tree a recycle opened.
adopt() {
	[ -d "$WARM/work-$1" ] && [ -S "$SOCKET" ] || die "no buildkitd running on the work tree $1"
	echo "adopted $1"
}

recycle() {
	usage="usage: recycle ADMIN_KEY [cold | open NAMESPACE|- TREE] [key LEASE_KEY]"
	[ $# -ge 1 ] || die "$usage"
	admin=$1 mode=start ns= tree= next=
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		cold) mode=cold; shift ;;
		open) [ $# -ge 3 ] || die "$usage"; mode=open ns=$2 tree=$3; shift 3 ;;
		key) [ $# -ge 2 ] || die "$usage"; next=$2; shift 2 ;;
		*) die "$usage" ;;
		esac
	done
	boot_wait
	keys "$admin"
	end_sessions
	kill_build
	wipe
	write_stats
	case $mode in
	start) start ;;
	open) warm_fs; mkdir -p "$WARM/ns"; open_tree "$WARM/ns/$ns" "$WARM/work-$tree" ;;
	esac
	[ -z "$next" ] || keys "$admin" "$next"
}

# A VM whose warm image exists has it mounted before anything reads or
# cleans the warm directory (after a reboot: the work trees a recycle
# removes are in it).
[ -z "$WARM_IMAGE" ] || [ ! -f "$WARM_IMAGE" ] || [ "${1:-}" = image-prep ] || warm_fs

case "${1:-}" in
recycle)
	shift
	recycle "$@"
	;;
grant)
	[ $# -eq 3 ] || [ $# -eq 5 ] || die "usage: grant ADMIN_KEY LEASE_KEY [NAMESPACE|- LEASE | adopt TREE]"
	if [ $# -eq 5 ] && [ "$4" = adopt ]; then
		warm_fs
		adopt "$5"
	elif [ $# -eq 5 ]; then
		warm_fs
		mkdir -p "$WARM/ns"
		drop_work
		open_tree "$WARM/ns/$4" "$WARM/work-$5"
	elif [ ! -S "$SOCKET" ]; then
		start
	elif ls -d "$WARM"/work-* >/dev/null 2>&1; then
		restart_empty
	fi
	keys "$2" "$3"
	;;
state-open)
	[ $# -eq 3 ] || die "usage: state-open VOLUME LEASE"
	state_open "$2" "$3"
	;;
state-commit)
	[ $# -eq 3 ] || die "usage: state-commit VOLUME LEASE"
	state_commit "$2" "$3"
	;;
warm-commit)
	[ $# -eq 4 ] || die "usage: warm-commit NAMESPACE LEASE GENERATION"
	warm_fs
	commit_tree "$WARM/ns/$2" "$WARM/work-$3" "$4"
	;;
warm-export)
	[ $# -eq 2 ] || die "usage: warm-export NAMESPACE"
	warm_fs
	d="$WARM/ns/$2"
	recover_gens "$d"
	g=$(cat "$d/current" 2>/dev/null) && [ -d "$d/gens/$g" ] || die "no committed generation of $2"
	tar -C "$d/gens/$g" --xattrs --xattrs-include='*' --numeric-owner -cf - .
	;;
warm-import)
	[ $# -eq 3 ] || die "usage: warm-import NAMESPACE GENERATION"
	warm_fs
	d="$WARM/ns/$2" t="$WARM/work-import-$2-$3"
	rm -rf "$t"
	mkdir -p "$t" "$d"
	tar -C "$t" --xattrs --xattrs-include='*' --numeric-owner -xpf - || { rm -rf "$t"; die "generation $3 of $2 did not arrive whole"; }
	cur=0
	[ -f "$d/current" ] && cur=$(cat "$d/current")
	if [ "$3" -gt "$cur" ]; then
		promote "$d" "$t" "$3"
	else
		rm -rf "$t"
		echo "generation $cur bytes $(du -sb "$d/gens/$cur" | cut -f1)"
	fi
	;;
warm-list)
	[ $# -eq 1 ] || die "usage: warm-list"
	warm_fs
	for d in "$WARM"/ns/*/; do
		[ -f "$d/current" ] || continue
		recover_gens "${d%/}"
		g=$(cat "$d/current")
		[ -d "$d/gens/$g" ] && echo "$(basename "$d") generation $g bytes $(du -sb "$d/gens/$g" | cut -f1)"
	done
	;;
warm-drop)
	[ $# -eq 2 ] || die "usage: warm-drop NAMESPACE"
	warm_fs
	rm -rf "$WARM/ns/$2"
	;;
image-prep)
	[ $# -eq 1 ] || die "usage: image-prep"
	boot_wait
	stop_daemon
	kill_build
	wipe
	umount "$WARM" 2>/dev/null || true
	rm -rf "$WARM" "$WARM_IMAGE" "$WARM_IMAGE.lock" "$STATS" "$LEASE"
	if [ "$SYSTEM_PREP" = 1 ]; then
		cloud-init clean --logs
		# An empty machine id, not "uninitialized" (cloud-init's --machine-id):
		# a clone gets a new one without a systemd first boot, which would
		# apply the presets (networkd and its 2-minute wait for an interface
		# it does not manage, timers the image disabled).
		: > /etc/machine-id
		rm -f /var/lib/dbus/machine-id /etc/ssh/ssh_host_*
		# The network configuration cloud-init rendered for this machine's
		# interface (its MAC): a clone renders its own (cloud-init 23's
		# `clean --configs network`).
		rm -f /etc/network/interfaces.d/50-cloud-init /etc/systemd/network/10-cloud-init-*.network /etc/netplan/50-cloud-init.yaml
	fi
	sync
	echo "prepared"
	;;
image-boot)
	# A runner image booted without user-data (a Proxmox runner template)
	# starts buildkitd itself: PATH gets the boot script, the unit runs it.
	[ $# -eq 5 ] || die "usage: image-boot PATH SCRIPT_BASE64 UNIT UNIT_BASE64"
	if [ "$SYSTEM_PREP" = 1 ]; then
		mkdir -p "$(dirname "$2")"
		echo "$3" | base64 -d > "$2"
		echo "$5" | base64 -d > "/etc/systemd/system/$4"
		systemctl enable "$4" 2>&1
	fi
	echo "boot unit installed"
	;;
state-discard)
	[ $# -eq 3 ] || die "usage: state-discard VOLUME LEASE"
	stop_daemon
	rm -rf "$2/work-$3"
	;;
*) die "unknown command ${1:-}" ;;
esac
