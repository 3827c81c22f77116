package local

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lian-build/action/internal/proc"
)

// leaseRecord is written next to each runner so that `runners gc` can tell
// whether its owner is still alive.
type leaseRecord struct {
	ID           string            `json:"id"`
	Tier         string            `json:"tier"`
	PID          int               `json:"pid"`           // buildkitd
	OwnerPID     int               `json:"owner_pid"`     // the lian-build process that spawned it
	OwnerStart   uint64            `json:"owner_start"`   // its start time in clock ticks (guards against pid reuse)
	DaemonStart  uint64            `json:"daemon_start"`  // same, for buildkitd
	CgroupParent string            `json:"cgroup_parent"` // relative to the cgroup root
	Socket       string            `json:"socket"`
	State        string            `json:"state,omitempty"` // buildkitd's root when outside the runner dir (compute.Lease.State)
	Created      time.Time         `json:"created"`
	Expires      time.Time         `json:"expires"`
	Labels       map[string]string `json:"labels,omitempty"`
}

const leaseFile = "lease.json"

func writeLease(dir string, r leaseRecord) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, leaseFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, leaseFile))
}

func readLease(dir string) (leaseRecord, error) {
	var r leaseRecord
	b, err := os.ReadFile(filepath.Join(dir, leaseFile))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", filepath.Join(dir, leaseFile), err)
	}
	return r, nil
}

// killWait sends sig, then SIGKILL after grace, and waits for the process to go.
func killWait(pid int, start uint64, grace time.Duration) {
	if !proc.Alive(pid, start) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline, killed := time.Now().Add(grace), false
	for proc.Alive(pid, start) {
		if time.Now().After(deadline) {
			if killed {
				return // unkillable (D state); the caller reports what is left
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline, killed = time.Now().Add(5*time.Second), true
		}
		time.Sleep(10 * time.Millisecond)
	}
}
