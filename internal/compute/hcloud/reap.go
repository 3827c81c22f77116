package hcloud

import (
	"context"
	"errors"
	"fmt"
	"time"

	hc "github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/lian-build/action/internal/compute"
)

// ownedBy is the selector of everything lian-build creates.
const ownedBy = compute.LabelLease

// List finds lian-build's servers and keys by label, in both directions: a
// server without a lease record anywhere, and a key whose server is gone.
func (p *Provider) List(ctx context.Context) ([]compute.RunnerInfo, error) {
	servers, keys, err := p.owned(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var out []compute.RunnerInfo
	withServer := map[string]bool{}
	for _, s := range servers {
		lease := s.Labels[compute.LabelLease]
		withServer[lease] = true
		i := compute.RunnerInfo{ID: lease, Provider: "hcloud", Tier: s.Labels[compute.LabelTier], Server: fmt.Sprintf("%s (id %d)", s.Name, s.ID),
			Type: s.ServerType.Name, Owner: s.Labels[compute.LabelOwner], Created: s.Created}
		if s.Location != nil {
			i.Location = s.Location.Name
		}
		i.Expires, _ = compute.ParseExpires(s.Labels[compute.LabelExpires])
		i.Orphan, i.Why = compute.Orphaned(s.Labels, now)
		out = append(out, i)
	}
	for _, k := range keys {
		lease := k.Labels[compute.LabelLease]
		if withServer[lease] {
			continue
		}
		i := compute.RunnerInfo{ID: lease, Provider: "hcloud", Server: "SSH key " + k.Name + " without a server", Owner: k.Labels[compute.LabelOwner], Created: k.Created}
		i.Expires, _ = compute.ParseExpires(k.Labels[compute.LabelExpires])
		i.Orphan, i.Why = compute.Orphaned(k.Labels, now)
		out = append(out, i)
	}
	pooled, err := p.poolServers(ctx)
	return append(out, pooled...), err
}

// poolServers are the servers VM pools keep: listed, so that an operator
// sees every server lian-build has, but never reaped here.
func (p *Provider) poolServers(ctx context.Context) ([]compute.RunnerInfo, error) {
	servers, err := p.c.Server.AllWithOpts(ctx, hc.ServerListOpts{ListOpts: hc.ListOpts{LabelSelector: compute.LabelPool}})
	if err != nil {
		return nil, fmt.Errorf("hcloud: list pool servers: %w", err)
	}
	var out []compute.RunnerInfo
	for _, s := range servers {
		i := compute.RunnerInfo{ID: s.Labels[compute.LabelPoolVM], Provider: "hcloud", Tier: s.Labels[compute.LabelTier],
			Server: fmt.Sprintf("%s (id %d)", s.Name, s.ID), Type: s.ServerType.Name, Created: s.Created, Pool: s.Labels[compute.LabelPool]}
		if s.Location != nil {
			i.Location = s.Location.Name
		}
		out = append(out, i)
	}
	return out, nil
}

func (p *Provider) owned(ctx context.Context) ([]*hc.Server, []*hc.SSHKey, error) {
	servers, err := p.c.Server.AllWithOpts(ctx, hc.ServerListOpts{ListOpts: hc.ListOpts{LabelSelector: ownedBy}})
	if err != nil {
		return nil, nil, fmt.Errorf("hcloud: list servers: %w", err)
	}
	keys, err := p.c.SSHKey.AllWithOpts(ctx, hc.SSHKeyListOpts{ListOpts: hc.ListOpts{LabelSelector: ownedBy}})
	if err != nil {
		return nil, nil, fmt.Errorf("hcloud: list SSH keys: %w", err)
	}
	return servers, keys, nil
}

// GC deletes orphaned servers and keys; every failure is returned.
func (p *Provider) GC(ctx context.Context) ([]compute.RunnerInfo, error) {
	servers, keys, err := p.owned(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var removed []compute.RunnerInfo
	var errs []error
	gone := map[string]bool{}
	for _, s := range servers {
		orphan, why := compute.Orphaned(s.Labels, now)
		if !orphan {
			continue
		}
		if err := p.deleteServer(ctx, s); err != nil {
			errs = append(errs, err)
			continue
		}
		gone[s.Labels[compute.LabelLease]] = true
		removed = append(removed, compute.RunnerInfo{ID: s.Labels[compute.LabelLease], Provider: "hcloud", Server: s.Name, Why: why, Orphan: true})
	}
	alive := map[string]bool{}
	for _, s := range servers {
		if l := s.Labels[compute.LabelLease]; !gone[l] {
			alive[l] = true
		}
	}
	for _, k := range keys {
		lease := k.Labels[compute.LabelLease]
		orphan, why := compute.Orphaned(k.Labels, now)
		if alive[lease] || (!orphan && !gone[lease]) {
			continue
		}
		if err := p.deleteKey(ctx, k); err != nil {
			errs = append(errs, err)
			continue
		}
		if why == "" {
			why = "its server was removed"
		}
		removed = append(removed, compute.RunnerInfo{ID: lease, Provider: "hcloud", Server: "SSH key " + k.Name, Why: why, Orphan: true})
	}
	return removed, errors.Join(errs...)
}
