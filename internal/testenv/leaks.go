package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
