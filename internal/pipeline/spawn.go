package pipeline

import (
	"context"
	"fmt"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/sizing"
)

// leaseID names an attempt's runner (and its state clone).
func leaseID(buildID string, attempt int) string { return fmt.Sprintf("%s-a%d", buildID, attempt) }

// spawnRunner is step 3: a fresh runner under a lease that names it as
// ours, on the state directory given ("" a fresh one).
func (p *Pipeline) spawnRunner(ctx context.Context, req Request, attempt int, tier sizing.Tier, stateDir string) (compute.Runner, error) {
	id := leaseID(req.BuildID, attempt)
	lease := compute.Lease{
		ID:      id,
		BuildID: req.BuildID,
		Owner:   compute.Owner(),
		TTL:     req.LeaseTTL,
		Labels: map[string]string{
			compute.LabelBuild: req.BuildID,
			compute.LabelTier:  tier.Name,
		},
		State:       stateDir,
		Expected:    req.Expected,
		RemoteState: p.remoteStateSpec(req),
	}
	lease.Labels[compute.LabelActorClass] = string(req.Actor.Kind)
	if req.Workspace != "" {
		lease.Labels[compute.LabelWorkspace] = req.Workspace
	}
	// The spawn has its own timeout: it never eats the build's time budget.
	sctx, cancel := context.WithTimeout(ctx, p.cfg.SpawnTimeout)
	defer cancel()
	r, err := p.cfg.Provider.Spawn(sctx, tier, lease)
	if err != nil {
		return nil, fmt.Errorf("spawn %s runner (%s): %w", p.cfg.Provider.Name(), tier.Name, err)
	}
	return r, nil
}
