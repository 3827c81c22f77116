package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/proc"
)

// runnerState is what the state dir says of a runner.
type runnerState struct {
	ID          string    `json:"id"`
	Tier        string    `json:"tier"`
	PID         int       `json:"pid"`
	OwnerPID    int       `json:"owner_pid"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires,omitzero"`
	DaemonAlive bool      `json:"daemon_alive"`
	OwnerAlive  bool      `json:"owner_alive"`
	Orphan      bool      `json:"orphan"`
	Why         string    `json:"why,omitempty"`
}

// List reads every runner record in the state dir.
func (p *Provider) List(ctx context.Context) ([]compute.RunnerInfo, error) {
	states, err := p.states(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]compute.RunnerInfo, 0, len(states))
	for _, st := range states {
		out = append(out, st.info())
	}
	return out, nil
}

// info is the state as the provider-neutral description.
func (st runnerState) info() compute.RunnerInfo {
	i := compute.RunnerInfo{ID: st.ID, Provider: "local", Tier: st.Tier, Location: "this machine", Created: st.Created, Expires: st.Expires, Orphan: st.Orphan, Why: st.Why}
	if st.PID > 0 {
		state := "running"
		if !st.DaemonAlive {
			state = "gone"
		}
		i.Server = fmt.Sprintf("buildkitd pid %d (%s)", st.PID, state)
		i.Owner = fmt.Sprintf("pid %d", st.OwnerPID)
	}
	return i
}

// states reads every runner record in the state dir.
func (p *Provider) states(ctx context.Context) ([]runnerState, error) {
	entries, err := os.ReadDir(p.opts.StateDir)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []runnerState
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(p.opts.StateDir, e.Name())
		rec, err := readLease(dir)
		info := runnerState{ID: e.Name()}
		if err == nil {
			info = runnerState{
				ID: rec.ID, Tier: rec.Tier, PID: rec.PID, OwnerPID: rec.OwnerPID,
				Created: rec.Created, Expires: rec.Expires,
				DaemonAlive: proc.Alive(rec.PID, rec.DaemonStart),
				OwnerAlive:  proc.Alive(rec.OwnerPID, rec.OwnerStart),
			}
		}
		info.Orphan, info.Why = orphaned(info, err, now)
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// orphaned is the reaper's decision: a runner is removed when its owner is
// gone, its lease expired, or its record is unreadable.
func orphaned(info runnerState, recErr error, now time.Time) (bool, string) {
	switch {
	case recErr != nil:
		return true, "no readable lease record"
	case !info.OwnerAlive:
		return true, fmt.Sprintf("owner pid %d is gone", info.OwnerPID)
	case !info.Expires.IsZero() && now.After(info.Expires):
		return true, "lease expired at " + info.Expires.Format(time.RFC3339)
	}
	return false, ""
}

// GC destroys orphaned runners and returns what it removed.
func (p *Provider) GC(ctx context.Context) ([]compute.RunnerInfo, error) {
	infos, err := p.states(ctx)
	if err != nil {
		return nil, err
	}
	var removed []compute.RunnerInfo
	var errs []error
	for _, info := range infos {
		if !info.Orphan {
			continue
		}
		dir := filepath.Join(p.opts.StateDir, info.ID)
		rec, _ := readLease(dir)
		cg := detectCgroup(p.opts.CgroupRoot, cgroupPrefix+"/"+info.ID)
		if err := destroy(ctx, dir, rec.State, rec.PID, rec.DaemonStart, cg); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, info.info())
	}
	return removed, errors.Join(errs...)
}
