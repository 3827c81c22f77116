package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/sizing"
)

// spawnRunner is step 3: a fresh runner under a lease that names it as ours.
func (p *Pipeline) spawnRunner(ctx context.Context, buildID string, attempt int, tier sizing.Tier, ttl time.Duration) (compute.Runner, string, error) {
	id := fmt.Sprintf("%s-a%d", buildID, attempt)
	lease := compute.Lease{
		ID:  id,
		TTL: ttl,
		Labels: map[string]string{
			compute.LabelLease:   id,
			compute.LabelExpires: time.Now().Add(ttl).UTC().Format(time.RFC3339),
			"lian-build/build":   buildID,
			"lian-build/tier":    tier.Name,
		},
	}
	r, err := p.cfg.Provider.Spawn(ctx, tier, lease)
	if err != nil {
		return nil, id, fmt.Errorf("spawn %s runner (%s): %w", p.cfg.Provider.Name(), tier.Name, err)
	}
	return r, id, nil
}
