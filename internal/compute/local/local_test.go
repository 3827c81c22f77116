package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/sizing"
)

func TestBuildkitdConfig(t *testing.T) {
	got := BuildkitdConfig("/s/state", "/s/sock", "lian-build/x", []string{"127.0.0.1:5000"})
	for _, want := range []string{
		`root = "/s/state"`, `address = ["unix:///s/sock"]`, `defaultCgroupParent = "lian-build/x"`,
		`snapshotter = "overlayfs"`, "[worker.containerd]\n  enabled = false", `[registry."127.0.0.1:5000"]` + "\n  http = true",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
}

func TestOrphaned(t *testing.T) {
	now := time.Now()
	tests := []struct {
		info   runnerState
		recErr error
		want   bool
		why    string
	}{
		{runnerState{OwnerAlive: true}, nil, false, ""},
		{runnerState{OwnerAlive: true, Expires: now.Add(time.Hour)}, nil, false, ""},
		{runnerState{OwnerAlive: false, OwnerPID: 42}, nil, true, "owner pid 42 is gone"},
		{runnerState{OwnerAlive: true, Expires: now.Add(-time.Minute)}, nil, true, "lease expired"},
		{runnerState{}, os.ErrNotExist, true, "no readable lease record"},
	}
	for _, tt := range tests {
		got, why := orphaned(tt.info, tt.recErr, now)
		if got != tt.want || !strings.Contains(why, tt.why) {
			t.Errorf("orphaned(%+v) = %v %q", tt.info, got, why)
		}
	}
}

func TestWaitForSocket(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.sock")
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = os.WriteFile(p, nil, 0o600)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := waitForSocket(ctx, p); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := waitForSocket(ctx2, filepath.Join(dir, "never")); err == nil {
		t.Fatal("waited for a socket that never came")
	}
}

func TestInvalidLeaseID(t *testing.T) {
	p := &Provider{opts: Options{StateDir: t.TempDir(), Table: sizing.HCloud}}
	for _, id := range []string{"", "../x", "a/b", "a b"} {
		if _, err := p.Spawn(context.Background(), sizing.HCloud[0], compute.Lease{ID: id}); err == nil || !strings.Contains(err.Error(), "invalid lease id") {
			t.Errorf("lease %q: err = %v", id, err)
		}
	}
}

func TestCgroupErrorSaysWhatToDo(t *testing.T) {
	err := cgroupErr("/sys/fs/cgroup/memory/lian-build", &os.PathError{Op: "mkdir", Path: "/sys/fs/cgroup/memory/lian-build", Err: syscall.EROFS})
	if !strings.Contains(err.Error(), "read-only file system") || !strings.Contains(err.Error(), "compute-provider: hcloud") {
		t.Fatalf("err = %v", err)
	}
	if err := cgroupErr("/x", os.ErrNotExist); strings.Contains(err.Error(), "hcloud") {
		t.Fatalf("advice on an unrelated error: %v", err)
	}
}
