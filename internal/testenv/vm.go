package testenv

import (
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/lian-build/action/internal/testenv/vmhost"
)

// VMHosts are runner hosts that are real VMs (internal/testenv/vmhost),
// their consoles in the test log after the test's own messages; the guest image is built on first use
// (~1–5 minutes, then cached in vmhost.CacheDir). At the end of the test no
// VM, namespace or qemu process of this process may be left.
func VMHosts(t testing.TB, forward ...int) *vmhost.Hosts {
	t.Helper()
	Require(t)
	var missing []string
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		missingPrereq(t, strings.Join(missing, ", ")+" (apt-get install qemu-system-x86 qemu-utils debootstrap)")
	}
	log := &testLog{t: t}
	img, err := vmhost.BuildImage(context.Background(), log)
	if err != nil {
		t.Fatal(err)
	}
	h := &vmhost.Hosts{Image: img, Dir: t.TempDir(), Forward: forward, Log: log}
	t.Cleanup(func() {
		for _, id := range h.IDs() {
			_ = h.Stop(context.Background(), id)
		}
		log.flush()
		if left := vmhost.Leftovers(); len(left) > 0 {
			t.Errorf("left after the test: %s", strings.Join(left, ", "))
		}
	})
	t.Logf("VM runner hosts: accel %s", vmhost.Accel(context.Background(), img))
	return h
}

// testLog keeps what the VMs print (the last keepLines lines) and writes it
// into the test's log when the test ends, after the test's own messages,
// which a failure's excerpt then shows first.
type testLog struct {
	mu    sync.Mutex
	t     testing.TB
	lines []string
	cut   int
	done  bool
}

const keepLines = 3000

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return len(p), nil
	}
	l.lines = append(l.lines, strings.TrimRight(string(p), "\n"))
	if len(l.lines) > 2*keepLines {
		l.cut += len(l.lines) - keepLines
		l.lines = append(l.lines[:0], l.lines[len(l.lines)-keepLines:]...)
	}
	return len(p), nil
}

func (l *testLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	if l.cut > 0 {
		l.t.Logf("(the VMs' first %d lines left out)", l.cut)
	}
	for _, line := range l.lines {
		l.t.Log(line)
	}
	l.lines = nil
}

// RunnerDownloads serves this machine's buildkitd, buildctl and runc to
// the test's VMs (vmhost.ServeDownloads); Forward its Port.
func RunnerDownloads(t testing.TB) *vmhost.Downloads {
	t.Helper()
	bk := Require(t)
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	d, err := vmhost.ServeDownloads(t.TempDir(), bk, runc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}
