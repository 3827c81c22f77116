package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/sizing"
)

// Runner templates: a clone of the stock template that ran its first boot
// (the stock template's cicustom vendor snippet installed runc and the
// pinned buildkitd), made to start buildkitd at every boot by a unit of
// its own, prepared as a Hetzner runner image is, stopped and converted to
// a template without the snippet. Its clones are ready when their sshd is,
// with nothing downloaded. Spawn clones the newest one made from the stock
// template of this BuildKit version, else the stock template.
const (
	// RunnerImageLabel marks a runner template (in its description); its
	// value is RunnerImageVersion.
	RunnerImageLabel   = "lian-build/runner-image"
	RunnerImageVersion = "buildkit-" + remote.BuildkitVersion
	// ImageTag is a runner template's tag: not Tag, so that List and GC
	// never take it for a runner.
	ImageTag = "lian-build-runner-image"
	// labelFrom is the stock template a runner template was made from.
	labelFrom = "lian-build/from"
)

// MakeImage clones the stock template as a runner would, installs the boot
// unit, prepares and stops the clone, and converts it to a runner template
// (named, tagged ImageTag, labelled); a failure deletes the clone.
func (p *Provider) MakeImage(ctx context.Context) (compute.Image, error) {
	host, _ := os.Hostname()
	lease := compute.Lease{ID: fmt.Sprintf("runner-image-%d", time.Now().UnixNano()%1e9), TTL: time.Hour,
		Owner:  compute.SafeLabel(fmt.Sprintf("image-%s-%d", host, os.Getpid())),
		Labels: map[string]string{"lian-build/purpose": "runner-image"}}
	stock := *p
	stock.stockOnly = true
	rc, err := stock.Spawn(ctx, sizing.HCloud[0], lease)
	if err != nil {
		return compute.Image{}, fmt.Errorf("proxmox: runner template: %w", err)
	}
	r := rc.(*runner)
	img, err := r.makeTemplate(ctx)
	if err != nil {
		return compute.Image{}, errors.Join(fmt.Errorf("proxmox: runner template from VM %d: %w", r.vmid, err), r.Destroy(context.WithoutCancel(ctx)))
	}
	return img, nil
}

// makeTemplate turns the runner's VM into a runner template.
func (r *runner) makeTemplate(ctx context.Context) (compute.Image, error) {
	if err := remote.InstallBoot(ctx, r.SSH, remote.DefaultSocket); err != nil {
		return compute.Image{}, err
	}
	if _, err := remote.RunScript(ctx, r.SSH, "image-prep"); err != nil {
		return compute.Image{}, err
	}
	_ = r.Conn.Close()
	a, node, base := r.p.api, r.p.s.Node, fmt.Sprintf("/nodes/%s/qemu/%d", r.p.s.Node, r.vmid)
	var upid string
	if err := a.do(ctx, http.MethodPost, base+"/status/stop", url.Values{}, &upid); err != nil {
		return compute.Image{}, err
	}
	if err := a.wait(ctx, node, upid); err != nil {
		return compute.Image{}, err
	}
	labels := map[string]string{RunnerImageLabel: RunnerImageVersion, labelFrom: strconv.Itoa(r.p.s.Template)}
	desc := fmt.Sprintf("lian-build runner template: runc and BuildKit %s, from template %d\n", remote.BuildkitVersion, r.p.s.Template) + describeLabels(labels)
	name := strings.ToLower(strings.NewReplacer(".", "-", "_", "-").Replace(fmt.Sprintf("lian-build-runner-%s-%d", RunnerImageVersion, r.vmid)))
	cfg := url.Values{"name": {name}, "tags": {ImageTag}, "description": {desc}, "delete": {"cicustom,sshkeys"}}
	if err := a.do(ctx, http.MethodPut, base+"/config", cfg, nil); err != nil {
		return compute.Image{}, err
	}
	upid = ""
	if err := a.do(ctx, http.MethodPost, base+"/template", url.Values{}, &upid); err != nil {
		return compute.Image{}, err
	}
	if upid != "" {
		if err := a.wait(ctx, node, upid); err != nil {
			return compute.Image{}, err
		}
	}
	id := r.vmid
	r.vmid = 0 // a template now: Destroy leaves it
	return compute.Image{ID: strconv.Itoa(id), Description: desc, Labels: labels}, nil
}

// template is the template Spawn clones: the newest runner template made
// from the stock template for this BuildKit version, else the stock one.
func (p *Provider) template(ctx context.Context) (int, error) {
	if p.stockOnly {
		return p.s.Template, nil
	}
	found, err := p.described(ctx, func(v Resource) bool { return v.Template == 1 && v.Node == p.s.Node && hasTag(v.Tags, ImageTag) })
	if err != nil {
		return 0, err
	}
	best := 0
	for _, d := range found {
		if d.labels[RunnerImageLabel] == RunnerImageVersion && d.labels[labelFrom] == strconv.Itoa(p.s.Template) {
			best = max(best, d.VMID)
		}
	}
	if best == 0 {
		return p.s.Template, nil
	}
	return best, nil
}

var _ compute.ImageMaker = (*Provider)(nil)
