package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/compute"
)

func leaseFor(name string) compute.Lease {
	return compute.Lease{ID: fmt.Sprintf("test-%s-%d", name, os.Getpid())}
}

// ProcessesMentioning lists pids whose command line contains s.
func ProcessesMentioning(s string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, s) {
			out = append(out, e.Name()+": "+cmd)
		}
	}
	return out
}

// AssertNoRunners fails when any runner of stateDir left a process, a state
// directory, a socket or a cgroup behind.
func AssertNoRunners(t testing.TB, stateDir string) {
	t.Helper()
	if p := ProcessesMentioning(stateDir); len(p) > 0 {
		t.Errorf("processes of %s left running: %v", stateDir, p)
	}
	entries, err := os.ReadDir(stateDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("runner state left behind: %s", filepath.Join(stateDir, e.Name()))
		AssertNoCgroup(t, e.Name())
	}
}

// AssertNoCgroup fails when the lease's cgroup still exists in any hierarchy.
func AssertNoCgroup(t testing.TB, leaseID string) {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", "lian-build", leaseID))
	more, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "lian-build", leaseID))
	for _, m := range append(matches, more...) {
		t.Errorf("cgroup left behind: %s", m)
	}
}

// LeaseIDs lists the runner directories currently in stateDir.
func LeaseIDs(stateDir string) []string {
	entries, _ := os.ReadDir(stateDir)
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	return ids
}

// AssertNothingMountedUnder fails when a mount point (a loop-mounted store
// image, say) is left at or below dir, and unmounts it so that the test's
// clean-up can remove dir; loop devices backed by a file below dir fail too.
func AssertNothingMountedUnder(t testing.TB, dir string) {
	t.Helper()
	b, _ := os.ReadFile("/proc/self/mountinfo")
	prefix := filepath.Clean(dir)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == prefix || strings.HasPrefix(f[4], prefix+"/")) {
			t.Errorf("left mounted: %s", f[4])
			_ = exec.Command("umount", "-l", f[4]).Run()
		}
	}
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, l := range loops {
		if b, err := os.ReadFile(l); err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), prefix+"/") {
			dev := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(l)))
			t.Errorf("loop device left attached: %s → %s", dev, strings.TrimSpace(string(b)))
			_ = exec.Command("losetup", "-d", dev).Run()
		}
	}
}

// Usage is what a process holds: goroutines (this process only), open
// files and resident memory.
type Usage struct {
	Goroutines, Files int
	RSS               int64
}

// UsageOf reads a process's open files and resident memory from /proc
// (pid 0: this process, after a garbage collection, with its goroutines).
func UsageOf(pid int) (Usage, error) {
	p := "self"
	var u Usage
	if pid != 0 {
		p = strconv.Itoa(pid)
	} else {
		runtime.GC()
		debug.FreeOSMemory()
		u.Goroutines = runtime.NumGoroutine()
	}
	fds, err := os.ReadDir("/proc/" + p + "/fd")
	if err != nil {
		return u, err
	}
	u.Files = len(fds)
	status, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return u, err
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			u.RSS = kb << 10
			return u, err
		}
	}
	return u, fmt.Errorf("no VmRSS in /proc/%s/status", p)
}

// Grown says how after grew past before beyond a bound: goroutines by
// more than 50, open files by more than 20, resident memory by more than
// half plus 64 MiB ("": within it).
func (after Usage) Grown(before Usage) string {
	var out []string
	if after.Goroutines > before.Goroutines+50 {
		out = append(out, fmt.Sprintf("goroutines %d → %d", before.Goroutines, after.Goroutines))
	}
	if after.Files > before.Files+20 {
		out = append(out, fmt.Sprintf("open files %d → %d", before.Files, after.Files))
	}
	if after.RSS > before.RSS+before.RSS/2+64<<20 {
		out = append(out, fmt.Sprintf("RSS %d MiB → %d MiB", before.RSS>>20, after.RSS>>20))
	}
	return strings.Join(out, ", ")
}

func (u Usage) String() string {
	return fmt.Sprintf("%d goroutines, %d open files, %d MiB resident", u.Goroutines, u.Files, u.RSS>>20)
}
