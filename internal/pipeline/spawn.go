package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/sizing"
)

// spawnRunner is step 3: a fresh runner under a lease that names it as ours.
func (p *Pipeline) spawnRunner(ctx context.Context, buildID, workspace string, attempt int, tier sizing.Tier, ttl time.Duration) (compute.Runner, string, error) {
	id := fmt.Sprintf("%s-a%d", buildID, attempt)
	lease := compute.Lease{
		ID:    id,
		Owner: compute.Owner(),
		TTL:   ttl,
		Labels: map[string]string{
			"lian-build/build": buildID,
			"lian-build/tier":  tier.Name,
		},
	}
	if workspace != "" {
		lease.Labels[compute.LabelWorkspace] = workspace
	}
	// The spawn has its own timeout: it never eats the build's time budget.
	sctx, cancel := context.WithTimeout(ctx, p.cfg.SpawnTimeout)
	defer cancel()
	r, err := p.cfg.Provider.Spawn(sctx, tier, lease)
	if err != nil {
		return nil, id, fmt.Errorf("spawn %s runner (%s): %w", p.cfg.Provider.Name(), tier.Name, err)
	}
	return r, id, nil
}
