package local

import (
	"fmt"
	"os/exec"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A runner's buildkitd root is scratch until the build's state is committed:
// a fresh directory destroyed with the runner, or a state store's clone that
// becomes a generation only when Commit has made it durable as a whole
// (state.Clone.Commit syncs its filesystem first). buildkitd's own fsyncs
// (its bolt databases sync every transaction) buy nothing there and cost a
// cache flush each: on a btrfs store, 0.25 s of a 0.75 s Go service change
// (bench/README, "fsyncs"). So buildkitd, and everything it starts, gets a
// seccomp filter that makes the sync calls succeed without doing anything.
// A kill loses nothing (the page cache survives it); a host crash loses the
// build in progress, which was never a generation.

// syncCalls are the calls the filter turns into no-ops.
var syncCalls = []uint32{unix.SYS_FSYNC, unix.SYS_FDATASYNC, unix.SYS_SYNC_FILE_RANGE, unix.SYS_SYNCFS, unix.SYS_SYNC}

// auditArch is this build's architecture as seccomp sees it (0: none known).
func auditArch() uint32 {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64
	}
	return 0
}

// noSyncFilter is the BPF program: on arch, the calls in nrs return 0 without
// running; every other call, and every call of another arch, runs.
func noSyncFilter(arch uint32, nrs []uint32) []unix.SockFilter {
	n := uint8(len(nrs))
	f := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 4}, // seccomp_data.arch
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jf: n + 1, K: arch},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
	}
	for i, nr := range nrs {
		f = append(f, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: n - uint8(i), K: nr})
	}
	return append(f,
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO}, // errno 0: success
	)
}

// installNoSync puts the filter on the calling thread only.
func installNoSync() error {
	arch := auditArch()
	if arch == 0 {
		return fmt.Errorf("no seccomp architecture known for %s", runtime.GOARCH)
	}
	f := noSyncFilter(arch, syncCalls)
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(f)
	if errno != 0 {
		return fmt.Errorf("seccomp: %w", errno)
	}
	return nil
}

// startWithoutSyncs starts cmd with the sync calls turned into no-ops. The
// filter goes on an OS thread of its own, which forks the child (a child
// inherits its forking thread's filter) and then ends with its goroutine,
// still locked, so no other goroutine ever runs under the filter. When the
// filter cannot be installed (no seccomp, an unknown architecture) cmd
// starts as it is and filterErr says why.
func startWithoutSyncs(cmd *exec.Cmd) (filterErr, startErr error) {
	type result struct{ filter, start error }
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		ferr := installNoSync()
		done <- result{ferr, cmd.Start()}
	}()
	r := <-done
	return r.filter, r.start
}
