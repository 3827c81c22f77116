package pipeline

import (
	"context"

	"github.com/lian-build/action/internal/sizing"
)

// resolveSizing is step 1: which tier, by which rule, and why.
func (p *Pipeline) resolveSizing(ctx context.Context, req Request) (sizing.Decision, error) {
	if req.Spec == nil && p.cfg.Specs != nil {
		s, err := p.cfg.Specs.Load(ctx, req.Build.ContextDir)
		if err != nil {
			return sizing.Decision{}, err
		}
		req.Spec = s
	}
	return sizing.Resolve(ctx, sizing.Input{
		Table:      p.cfg.Provider.Tiers(),
		Override:   req.RunnerOverride,
		Spec:       req.Spec,
		Workspace:  req.Workspace,
		History:    p.cfg.History,
		ContextDir: req.Build.ContextDir,
	})
}
