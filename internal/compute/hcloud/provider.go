package hcloud

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	hc "github.com/hetznercloud/hcloud-go/v2/hcloud"
	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/compute/sshx"
	"github.com/lian-build/action/internal/sizing"
)

// Provider creates Hetzner servers.
type Provider struct {
	s Settings
	c *hc.Client
}

// New checks the settings and makes the API client.
func New(s Settings) (*Provider, error) {
	if s.Token == "" {
		return nil, &compute.OptionError{Option: OptToken, Err: errors.New("a Hetzner Cloud API token is required")}
	}
	if len(s.Locations) == 0 {
		s.Locations = []string{"fsn1", "nbg1", "hel1"}
	}
	switch s.Arch {
	case "":
		s.Arch = "arm"
	case "arm", "x86":
	default:
		return nil, &compute.OptionError{Option: OptArch, Err: fmt.Errorf("%q: want arm or x86", s.Arch)}
	}
	if s.Socket == "" {
		s.Socket = remote.DefaultSocket
	}
	if s.PollEvery <= 0 {
		s.PollEvery = time.Second
	}
	if s.DeleteRetries <= 0 {
		s.DeleteRetries = 3
	}
	opts := []hc.ClientOption{hc.WithToken(s.Token), hc.WithApplication("lian-build", "1"),
		hc.WithPollOpts(hc.PollOpts{BackoffFunc: hc.ExponentialBackoffWithOpts(hc.ExponentialBackoffOpts{Base: s.PollEvery, Multiplier: 2, Cap: 10 * s.PollEvery})})}
	if s.Endpoint != "" {
		opts = append(opts, hc.WithEndpoint(s.Endpoint))
	}
	return &Provider{s: s, c: hc.NewClient(opts...)}, nil
}

func (p *Provider) Name() string        { return "hcloud" }
func (p *Provider) Tiers() sizing.Table { return sizing.HCloud }
func (p *Provider) Note() string {
	switch {
	case p.s.Image == "" && len(p.s.BuildkitPins) == 0:
		return "hcloud: servers boot the newest runner image (" + RunnerImageSelector + "; lian-build runners image --provider hcloud makes one); without one they boot " + StockImage + ", which without --hcloud-buildkit-sha256 downloads no buildkitd"
	case p.s.Image != "" && !strings.HasPrefix(p.s.Image, "label:") && len(p.s.BuildkitPins) == 0:
		return "hcloud: no --hcloud-buildkit-sha256: a stock-image server downloads nothing at boot, so its image must have buildkitd (boot from a runner image, --hcloud-image label:lian-build/runner-image=…)"
	}
	return ""
}

// Spawn creates the lease's key and server, waits until sshd and buildkitd
// answer, and destroys everything it made when any step fails.
func (p *Provider) Spawn(ctx context.Context, tier sizing.Tier, lease compute.Lease) (compute.Runner, error) {
	if lease.State != "" {
		return nil, errors.New("hcloud: a local state store's clone cannot reach a server; use --state-store volumes (a Hetzner Volume per namespace)")
	}
	r := &runner{p: p, lease: lease, tier: tier.Name}
	fail := func(err error) (compute.Runner, error) {
		return nil, errors.Join(err, r.Destroy(context.WithoutCancel(ctx)))
	}
	start := time.Now()
	labels := lease.LabelSet(start)
	if lease.RemoteState != nil {
		st, err := r.chooseVolume(ctx, lease.RemoteState)
		if err != nil {
			return fail(err)
		}
		r.state = st
	}
	signer, err := r.createKey(ctx, labels)
	if err != nil {
		return fail(err)
	}
	if err := r.createServer(ctx, tier, labels); err != nil {
		return fail(err)
	}
	created := time.Now()
	if err := r.connect(ctx, signer); err != nil {
		return fail(err)
	}
	booted := time.Now()
	if r.state != nil && r.state.vol != nil {
		if err := r.openState(ctx); err != nil {
			return fail(err)
		}
	}
	if err := r.WaitReady(ctx, p.sshPoll()); err != nil {
		return fail(err)
	}
	r.created = start
	r.spawn = compute.SpawnTimes{CreateMS: created.Sub(start).Milliseconds(), BootMS: booted.Sub(created).Milliseconds(), ReadyMS: time.Since(booted).Milliseconds()}
	return r, nil
}

func (r *runner) createKey(ctx context.Context, labels map[string]string) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	key, _, err := r.p.c.SSHKey.Create(ctx, hc.SSHKeyCreateOpts{
		Name: r.lease.ID, PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))), Labels: labels,
	})
	if err != nil {
		return nil, fmt.Errorf("hcloud: create SSH key: %w", err)
	}
	r.key = key
	return signer, nil
}

// createServer makes the lease's server, waiting for its create actions.
func (r *runner) createServer(ctx context.Context, tier sizing.Tier, labels map[string]string) error {
	var vol *hc.Volume
	if r.state != nil {
		vol = r.state.vol
	}
	c, err := r.p.createServer(ctx, r.lease.ID, tier, []*hc.SSHKey{r.key}, labels, vol, r.p.s.Locations)
	if vol != nil && (hc.IsError(err, hc.ErrorCodeConflict) || hc.IsError(err, hc.ErrorCodeLocked)) {
		// Another build's server took the volume since it was listed.
		r.state.vol, r.state.opened.Note = nil, "the state volume of "+r.state.namespace+" was attached to another build's server meanwhile: registry cache only"
		c, err = r.p.createServer(ctx, r.lease.ID, tier, []*hc.SSHKey{r.key}, labels, nil, r.p.s.Locations)
	}
	if c.srv != nil {
		r.server, r.location, r.typeName, r.hourly = c.srv, c.loc, c.typeName, c.hourly
	}
	return err
}

// created is a server createServer made: where, of which type, at what
// hourly price (net EUR; 0: the API gave none for the location).
type created struct {
	srv           *hc.Server
	loc, typeName string
	hourly        float64
}

// hourlyPrice is a server type's net hourly price in a location.
func hourlyPrice(st *hc.ServerType, loc string) float64 {
	for _, p := range st.Pricings {
		if p.Location != nil && p.Location.Name == loc {
			if v, err := strconv.ParseFloat(p.Hourly.Net, 64); err == nil {
				return v
			}
		}
	}
	return 0
}

// createServer tries each location in turn while Hetzner has no capacity
// there; it never takes another, larger type. A server it returns with an
// error exists and is the caller's to delete.
func (p *Provider) createServer(ctx context.Context, name string, tier sizing.Tier, keys []*hc.SSHKey, labels map[string]string, vol *hc.Volume, locations []string) (created, error) {
	typeName := serverType(tier.Name, p.s.Arch)
	st, _, err := p.c.ServerType.GetByName(ctx, typeName)
	if err != nil || st == nil {
		return created{}, fmt.Errorf("hcloud: server type %s: %v", typeName, errOr(err, "not offered"))
	}
	img, err := p.image(ctx, st.Architecture)
	if err != nil {
		return created{}, err
	}
	opts := hc.ServerCreateOpts{Name: name, ServerType: st, Image: img, SSHKeys: keys, Labels: labels, UserData: remote.CloudInit(p.s.Socket, p.s.Insecure, p.software(debianArch(st.Architecture)))}
	if vol != nil {
		// A volume attaches only to a server in its own location.
		locations, opts.Volumes, opts.Automount = []string{vol.Location.Name}, []*hc.Volume{vol}, hc.Ptr(true)
	}
	var tried []string
	for _, loc := range locations {
		opts.Location = &hc.Location{Name: loc}
		res, _, err := p.c.Server.Create(ctx, opts)
		if serverFault(err) {
			res, err = p.createdDespite(ctx, opts, err)
		}
		if hc.IsError(err, hc.ErrorCodeResourceUnavailable) || hc.IsError(err, hc.ErrorCodePlacementError) {
			e := err.(hc.Error)
			tried = append(tried, fmt.Sprintf("%s (%s: %s)", loc, e.Code, e.Message))
			continue
		}
		if err != nil {
			return created{}, fmt.Errorf("hcloud: create server %s in %s: %w", typeName, loc, err)
		}
		c := created{srv: res.Server, loc: loc, typeName: typeName, hourly: hourlyPrice(st, loc)}
		if err := p.waitCreated(ctx, res); err != nil {
			return c, fmt.Errorf("hcloud: server %s: %w", res.Server.Name, err)
		}
		return c, nil
	}
	return created{}, fmt.Errorf("hcloud: no capacity for %s in any location tried: %s", typeName, strings.Join(tried, ", "))
}

// serverFault is an answer to a create that says nothing of whether the
// server was made: a 5xx other than the capacity errors.
func serverFault(err error) bool {
	var he hc.Error
	if !errors.As(err, &he) || hc.IsError(err, hc.ErrorCodeResourceUnavailable) || hc.IsError(err, hc.ErrorCodePlacementError) {
		return false
	}
	r := he.Response()
	return r != nil && r.Response != nil && r.StatusCode >= 500
}

// createdDespite follows a create answered with a server fault: the
// server is looked up by its name (unique in a project) and taken when it
// was made; when it was not, it is created once more.
func (p *Provider) createdDespite(ctx context.Context, opts hc.ServerCreateOpts, fault error) (hc.ServerCreateResult, error) {
	srv, _, err := p.c.Server.GetByName(ctx, opts.Name)
	if err != nil {
		return hc.ServerCreateResult{}, errors.Join(fault, err)
	}
	if srv != nil {
		return hc.ServerCreateResult{Server: srv}, nil
	}
	res, _, err := p.c.Server.Create(ctx, opts)
	return res, err
}

// waitCreated waits for a new server's actions; a server found after a
// fault (no actions known) is polled until it runs.
func (p *Provider) waitCreated(ctx context.Context, res hc.ServerCreateResult) error {
	if res.Action != nil {
		return p.c.Action.WaitFor(ctx, append(res.NextActions, res.Action)...)
	}
	for srv := res.Server; srv.Status != hc.ServerStatusRunning; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(p.s.PollEvery):
		}
		got, _, err := p.c.Server.GetByID(ctx, srv.ID)
		if err != nil {
			return err
		}
		if got == nil {
			return errors.New("deleted while it was being made")
		}
		srv = got
	}
	return nil
}

// image is what a server boots: --hcloud-image (a name, or the newest
// image with a label), else the newest runner image of this BuildKit, else
// the stock image.
func (p *Provider) image(ctx context.Context, arch hc.Architecture) (*hc.Image, error) {
	switch sel, ok := strings.CutPrefix(p.s.Image, "label:"); {
	case ok:
		img, err := p.newestImage(ctx, sel, arch)
		if err != nil || img == nil {
			return nil, fmt.Errorf("hcloud: no %s image with label %s: %v", arch, sel, errOr(err, "none found"))
		}
		return img, nil
	case p.s.Image == "":
		img, err := p.newestImage(ctx, RunnerImageSelector, arch)
		if err != nil || img != nil {
			return img, err
		}
	}
	name := p.s.Image
	if name == "" {
		name = StockImage
	}
	img, _, err := p.c.Image.GetByNameAndArchitecture(ctx, name, arch)
	if err != nil || img == nil {
		return nil, fmt.Errorf("hcloud: image %s for %s: %v", name, arch, errOr(err, "not found"))
	}
	return img, nil
}

// newestImage is the newest image of arch with the label selector (nil:
// none).
func (p *Provider) newestImage(ctx context.Context, selector string, arch hc.Architecture) (*hc.Image, error) {
	imgs, err := p.c.Image.AllWithOpts(ctx, hc.ImageListOpts{ListOpts: hc.ListOpts{LabelSelector: selector}, Architecture: []hc.Architecture{arch}})
	if err != nil {
		return nil, fmt.Errorf("hcloud: list images %s: %w", selector, err)
	}
	var best *hc.Image
	for _, im := range imgs {
		if best == nil || im.Created.After(best.Created) {
			best = im
		}
	}
	return best, nil
}

// software is what a server of an architecture downloads at boot.
func (p *Provider) software(arch string) remote.Software {
	return remote.Software{Buildkit: remote.For(p.s.BuildkitURL, p.s.BuildkitPins, arch), Runc: remote.RuncFor(p.s.RuncURL, p.s.RuncPins, arch)}
}

func errOr(err error, msg string) string {
	if err != nil {
		return err.Error()
	}
	return msg
}

// connect waits until the server's sshd answers; the host key seen at this
// first contact with the server this lease just created is pinned for the
// lease (docs/adr/0005-ssh-host-key-policy.md).
func (r *runner) connect(ctx context.Context, signer ssh.Signer) error {
	addr := net.JoinHostPort(r.server.PublicNet.IPv4.IP.String(), "22")
	conn, err := r.p.dialSSH(ctx, r.server.Name, addr, signer, nil)
	if err != nil {
		return err
	}
	r.SSH, r.hostKey, r.addr = conn, conn.HostKey(), addr
	r.Socket, r.Name = r.p.s.Socket, r.server.Name
	return nil
}

// dialSSH dials until sshd answers with signer's key accepted; a nil
// hostKey trusts the first one shown (a server just created).
func (p *Provider) dialSSH(ctx context.Context, name, addr string, signer ssh.Signer, hostKey ssh.PublicKey) (*sshx.Conn, error) {
	var last, refused error
	for {
		conn, err := sshx.Dial(ctx, sshx.Config{Addr: addr, Signer: signer, HostKey: hostKey, TrustFirst: hostKey == nil, Timeout: 10 * time.Second})
		if err == nil {
			return conn, nil
		}
		var hk *sshx.HostKeyError
		if errors.As(err, &hk) {
			return nil, err
		}
		last = err
		if strings.Contains(err.Error(), "unable to authenticate") {
			refused = err // the most telling failure, whatever the last dial says
		}
		select {
		case <-ctx.Done():
			if refused != nil {
				last = fmt.Errorf("sshd refused the key: %w", refused)
			}
			return nil, fmt.Errorf("hcloud: server %s never answered on SSH (%v): %w", name, last, ctx.Err())
		case <-time.After(p.sshPoll()):
		}
	}
}

// sshPoll is the wait between SSH dials and readiness checks: they cost no
// API requests, so they need not wait as long as API polls.
func (p *Provider) sshPoll() time.Duration { return min(p.s.PollEvery, 250*time.Millisecond) }
