package hcloud

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	hc "github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/sizing"
)

// Runner images: a snapshot of a server that installed runc and the pinned
// buildkitd at its first boot, so that a server booted from it is ready
// when its sshd is, with nothing downloaded.
const (
	// StockImage is what a server boots without a runner image.
	StockImage = "debian-12"
	// RunnerImageLabel marks a runner image; its value is RunnerImageVersion.
	RunnerImageLabel = "lian-build/runner-image"
	// RunnerImageVersion names what a runner image holds: the BuildKit
	// lian-build is built and tested against.
	RunnerImageVersion = "buildkit-" + remote.BuildkitVersion
	// RunnerImageSelector selects this version's runner images.
	RunnerImageSelector = RunnerImageLabel + "=" + RunnerImageVersion
)

// MakeRunnerImage boots a stock-image server of the smallest tier whose
// user-data installs the pinned buildkitd, waits until buildkitd answers,
// stops it and removes what a server must not inherit (its state, its
// host keys, cloud-init's record of the boot), snapshots it with the
// runner-image label, and deletes the server and its key.
func (p *Provider) MakeRunnerImage(ctx context.Context) (*hc.Image, error) {
	arch := debianArch(hc.Architecture(p.s.Arch))
	if _, ok := p.s.BuildkitPins[arch]; !ok {
		return nil, &compute.OptionError{Option: OptBuildkitSHA256, Err: fmt.Errorf("a runner image installs buildkitd from its pinned download: give %s=SHA256 (the sha256 of %s)",
			arch, remote.For(p.s.BuildkitURL, map[string]string{arch: "x"}, arch).URL)}
	}
	stock := *p
	stock.s.Image = StockImage
	host, _ := os.Hostname()
	lease := compute.Lease{ID: fmt.Sprintf("runner-image-%d", time.Now().UnixNano()%1e9), Owner: compute.SafeLabel(fmt.Sprintf("image-%s-%d", host, os.Getpid())), TTL: time.Hour,
		Labels: map[string]string{"lian-build/purpose": "runner-image"}}
	rc, err := stock.Spawn(ctx, sizing.HCloud[0], lease)
	if err != nil {
		return nil, fmt.Errorf("hcloud: runner image: %w", err)
	}
	r := rc.(*runner)
	img, err := r.snapshot(ctx)
	return img, errors.Join(err, r.Destroy(context.WithoutCancel(ctx)))
}

// snapshot prepares the runner's server and snapshots it.
func (r *runner) snapshot(ctx context.Context) (*hc.Image, error) {
	if _, err := remote.RunScript(ctx, r.SSH, "image-prep"); err != nil {
		return nil, fmt.Errorf("hcloud: runner image: preparing %s: %w", r.server.Name, err)
	}
	res, _, err := r.p.c.Server.CreateImage(ctx, r.server, &hc.ServerCreateImageOpts{Type: hc.ImageTypeSnapshot,
		Description: hc.Ptr(fmt.Sprintf("lian-build runner image: runc and BuildKit %s", remote.BuildkitVersion)),
		Labels:      map[string]string{RunnerImageLabel: RunnerImageVersion}})
	if err != nil {
		return nil, fmt.Errorf("hcloud: runner image: snapshot of %s: %w", r.server.Name, err)
	}
	if err := r.p.c.Action.WaitFor(ctx, res.Action); err != nil {
		return nil, fmt.Errorf("hcloud: runner image: snapshot of %s: %w", r.server.Name, err)
	}
	return res.Image, nil
}

// MakeImage is MakeRunnerImage as compute.ImageMaker says it.
func (p *Provider) MakeImage(ctx context.Context) (compute.Image, error) {
	img, err := p.MakeRunnerImage(ctx)
	if err != nil {
		return compute.Image{}, err
	}
	return compute.Image{ID: fmt.Sprint(img.ID), Description: img.Description, Labels: img.Labels}, nil
}

var _ compute.ImageMaker = (*Provider)(nil)
