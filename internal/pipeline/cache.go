package pipeline

import (
	"context"
	"fmt"

	"github.com/lian-build/action/internal/cache"
)

// planCache turns the request's actor and cache settings into imports and
// exports; internal/cache enforces the namespace rules.
func (p *Pipeline) planCache(req Request) (cache.Plan, error) {
	c := req.Cache
	if c.Registry == "" {
		return cache.Plan{}, nil
	}
	actor := req.Actor
	if actor.Kind == "" {
		actor = cache.Actor{Kind: cache.ActorCI}
	}
	plan, err := cache.NewPlan(cache.Input{
		Registry: c.Registry, Workspace: req.Workspace, Actor: actor, Disposition: c.Disposition,
		Provider: c.Provider, ExtraImports: c.ExtraImports, BuildID: req.BuildID,
		IgnoreError: c.IgnoreError, Insecure: c.Insecure,
	})
	if err != nil {
		return cache.Plan{}, fmt.Errorf("cache: %w", err)
	}
	return plan, nil
}

// promote moves a rollback staging ref to the session ref.
func (p *Pipeline) promote(ctx context.Context, req Request, pr cache.Promotion) error {
	reg := cache.Registry{Auth: req.Cache.Auth, Insecure: req.Cache.Insecure}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.DestroyTimeout)
	defer cancel()
	if err := reg.Promote(ctx, pr); err != nil {
		return fmt.Errorf("cache rollback: %w", err)
	}
	return nil
}
