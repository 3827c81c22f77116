package docker

import (
	"context"
	"errors"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/lian-build/action/internal/compute"
)

// labelProvider marks what this provider made (with the lease labels).
const labelProvider = "lian-build/provider"

func ours() client.Filters { return client.Filters{}.Add("label", labelProvider+"=docker") }

// remove deletes a container (killing it) and a volume, and confirms both
// are gone; either may already be.
func (p *Provider) remove(ctx context.Context, id, volume string) error {
	var errs []error
	if id != "" {
		_, err := p.c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("docker: remove container %s: %w", short(id), err))
		} else if _, err := p.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("docker: container %s still exists after remove (%v)", short(id), err))
		}
	}
	if volume != "" {
		if _, err := p.c.VolumeRemove(ctx, volume, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("docker: remove volume %s: %w", volume, err))
		}
	}
	return errors.Join(errs...)
}

// List finds the provider's containers and volumes by label, in both
// directions: a container, and a volume whose container is gone.
func (p *Provider) List(ctx context.Context) (_ []compute.RunnerInfo, err error) {
	defer func() { err = p.scrub(err) }()
	cs, err := p.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: ours()})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers: %w", err)
	}
	vs, err := p.c.VolumeList(ctx, client.VolumeListOptions{Filters: ours()})
	if err != nil {
		return nil, fmt.Errorf("docker: list volumes: %w", err)
	}
	now := time.Now()
	var out []compute.RunnerInfo
	withContainer := map[string]bool{}
	for _, c := range cs.Items {
		lease := c.Labels[compute.LabelLease]
		withContainer[lease] = true
		i := compute.RunnerInfo{ID: lease, Provider: "docker", Tier: c.Labels[compute.LabelTier], Server: "container " + short(c.ID) + " (" + string(c.State) + ")",
			Owner: c.Labels[compute.LabelOwner], Created: time.Unix(c.Created, 0)}
		i.Expires, _ = compute.ParseExpires(c.Labels[compute.LabelExpires])
		i.Orphan, i.Why = compute.Orphaned(c.Labels, now)
		out = append(out, i)
	}
	for _, v := range vs.Items {
		lease := v.Labels[compute.LabelLease]
		if withContainer[lease] {
			continue
		}
		i := compute.RunnerInfo{ID: lease, Provider: "docker", Server: "volume " + v.Name + " without a container", Owner: v.Labels[compute.LabelOwner]}
		i.Expires, _ = compute.ParseExpires(v.Labels[compute.LabelExpires])
		i.Orphan, i.Why = true, "its container is gone"
		out = append(out, i)
	}
	return out, nil
}

// GC removes the orphans' containers and volumes; every failure is returned.
func (p *Provider) GC(ctx context.Context) (_ []compute.RunnerInfo, err error) {
	defer func() { err = p.scrub(err) }()
	infos, err := p.List(ctx)
	if err != nil {
		return nil, err
	}
	var removed []compute.RunnerInfo
	var errs []error
	for _, i := range infos {
		if !i.Orphan {
			continue
		}
		name := "lian-build-" + i.ID
		id := name
		if _, err := p.c.ContainerInspect(ctx, name, client.ContainerInspectOptions{}); cerrdefs.IsNotFound(err) {
			id = ""
		}
		if err := p.remove(ctx, id, name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, i)
	}
	return removed, errors.Join(errs...)
}
