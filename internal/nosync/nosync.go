// Package nosync starts a process whose sync calls — fsync, fdatasync,
// sync_file_range, syncfs, sync — succeed without doing anything: a
// seccomp filter, inherited by everything the process starts. A runner's
// buildkitd root is scratch until the build's state is committed (a fresh
// directory destroyed with the runner, or a clone that becomes a
// generation only after the commit has synced it), so its databases'
// per-transaction syncs buy nothing and cost a cache flush each (ADR 0007's
// addendum: 0.25 s of a 0.75 s Go-service change on a btrfs store).
package nosync

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os/exec"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// machine is one architecture as seccomp sees it, and its sync calls.
type machine struct {
	audit uint32
	calls []uint32 // fsync, fdatasync, sync_file_range, syncfs, sync
}

// machines by uname -m (Hetzner's cx/cpx/ccx are x86_64, cax aarch64).
var machines = map[string]machine{
	"x86_64":  {unix.AUDIT_ARCH_X86_64, []uint32{74, 75, 277, 306, 162}},
	"aarch64": {unix.AUDIT_ARCH_AARCH64, []uint32{82, 83, 84, 267, 81}},
}

// goMachine is uname -m of this build's GOARCH.
var goMachine = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// Filter is the BPF program for a machine (uname -m): its sync calls
// return 0 without running; every other call, and every call of another
// architecture, runs.
func Filter(uname string) ([]unix.SockFilter, error) {
	m, ok := machines[uname]
	if !ok {
		return nil, fmt.Errorf("no seccomp filter for %q", uname)
	}
	n := uint8(len(m.calls))
	f := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 4}, // seccomp_data.arch
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jf: n + 1, K: m.audit},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
	}
	for i, nr := range m.calls {
		f = append(f, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: n - uint8(i), K: nr})
	}
	return append(f,
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO}, // errno 0: success
	), nil
}

// Hex is the filter of a machine as struct sock_filter's bytes (little
// endian, as both machines are), hex-encoded: what a runner machine's
// script hands to prctl(PR_SET_SECCOMP) before it execs buildkitd.
func Hex(uname string) (string, error) {
	f, err := Filter(uname)
	if err != nil {
		return "", err
	}
	b := make([]byte, 0, 8*len(f))
	for _, i := range f {
		b = binary.LittleEndian.AppendUint16(b, i.Code)
		b = append(b, i.Jt, i.Jf)
		b = binary.LittleEndian.AppendUint32(b, i.K)
	}
	return hex.EncodeToString(b), nil
}

// install puts this machine's filter on the calling thread only.
func install() error {
	f, err := Filter(goMachine[runtime.GOARCH])
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(f)
	if errno != 0 {
		return fmt.Errorf("seccomp: %w", errno)
	}
	return nil
}

// Start starts cmd with the sync calls made no-ops. The filter goes on an
// OS thread of its own, which forks the child (a child inherits its
// forking thread's filter) and then ends with its goroutine, still locked,
// so no other goroutine ever runs under the filter. It needs
// CAP_SYS_ADMIN (no no_new_privs: that would reach the build's setuid
// programs). When the filter cannot be installed, cmd starts as it is and
// filterErr says why.
func Start(cmd *exec.Cmd) (filterErr, startErr error) {
	done := make(chan result, 1)
	go startLocked(cmd, done)
	r := <-done
	return r.filter, r.start
}

type result struct{ filter, start error }

func startLocked(cmd *exec.Cmd, done chan<- result) {
	runtime.LockOSThread() // never unlocked once filtered: the thread exits with the goroutine
	if unix.Gettid() == unix.Getpid() {
		// The main thread is parked, not ended, when its goroutine exits
		// locked: it would keep the filter. Hold it, so that another
		// thread takes the filter, and give it back clean.
		inner := make(chan result, 1)
		go startLocked(cmd, inner)
		done <- <-inner
		runtime.UnlockOSThread()
		return
	}
	ferr := install()
	done <- result{ferr, cmd.Start()}
}
