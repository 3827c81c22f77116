// Package proxmox is the Proxmox VE compute provider: a clone of a
// template VM per lease, sized from the tier table, its address read
// through the QEMU guest agent, reached over SSH like a Hetzner server
// (internal/compute/remote), tagged and described as lian-build's, and
// always stopped and deleted.
package proxmox

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/compute/sshx"
	"github.com/lian-build/action/internal/redact"
	"github.com/lian-build/action/internal/sizing"
)

// Tag marks every VM the provider makes.
const Tag = "lian-build"

// Settings are the provider's typed settings.
type Settings struct {
	Endpoint string // https://pve:8006/api2/json
	Token    string // USER@REALM!TOKENID=SECRET
	Node     string
	Template int  // the template VM's id
	Full     bool // a full clone (default: linked)
	CAFile   string
	// InsecureHTTP allows an http:// endpoint.
	InsecureHTTP bool
	// PollEvery is the wait between guest agent and SSH polls.
	PollEvery time.Duration
}

// Provider clones VMs.
type Provider struct {
	s   Settings
	api *api
	// stockOnly clones the stock template even when a runner template
	// exists (MakeImage makes one from it).
	stockOnly bool
}

// New checks the settings.
func New(s Settings) (*Provider, error) {
	switch {
	case s.Endpoint == "":
		return nil, &compute.OptionError{Option: OptEndpoint, Err: errors.New("the API URL is required (https://HOST:8006/api2/json)")}
	case !strings.Contains(s.Token, "!") || !strings.Contains(s.Token, "="):
		return nil, &compute.OptionError{Option: OptToken, Err: errors.New("an API token USER@REALM!TOKENID=SECRET is required")}
	case s.Node == "":
		return nil, &compute.OptionError{Option: OptNode, Err: errors.New("the node is required")}
	case s.Template <= 0:
		return nil, &compute.OptionError{Option: OptTemplate, Err: errors.New("the template VM's id is required")}
	}
	if s.PollEvery <= 0 {
		s.PollEvery = time.Second
	}
	u, err := url.Parse(s.Endpoint)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return nil, &compute.OptionError{Option: OptEndpoint, Err: fmt.Errorf("%q: want https://HOST:8006/api2/json", redact.URL(s.Endpoint))}
	case u.Scheme == "http" && !s.InsecureHTTP:
		return nil, &compute.OptionError{Option: OptEndpoint, Err: fmt.Errorf("%q is plain http: the API token would cross the network in clear; use https (with --proxmox-ca-file for a self-signed certificate), or say --proxmox-insecure-http", redact.URL(s.Endpoint))}
	}
	a, err := newAPI(s.Endpoint, s.Token, s.CAFile)
	if err != nil {
		return nil, &compute.OptionError{Option: OptCAFile, Err: err}
	}
	return &Provider{s: s, api: a}, nil
}

func (p *Provider) Name() string        { return "proxmox" }
func (p *Provider) Tiers() sizing.Table { return sizing.HCloud }
func (p *Provider) Note() string        { return "" }

// Spawn clones the template, sizes and starts the clone, reads its address
// through the guest agent, and waits until sshd and buildkitd answer; a
// failed step stops and deletes what was made.
func (p *Provider) Spawn(ctx context.Context, tier sizing.Tier, lease compute.Lease) (compute.Runner, error) {
	if err := compute.RefuseState("proxmox", lease); err != nil {
		return nil, err
	}
	r := &runner{p: p, lease: lease, tier: tier.Name}
	fail := func(err error) (compute.Runner, error) {
		return nil, errors.Join(err, r.Destroy(context.WithoutCancel(ctx)))
	}
	start := time.Now()
	signer, err := r.clone(ctx, tier, lease.LabelSet(start))
	if err != nil {
		return fail(err)
	}
	created := time.Now()
	if err := r.boot(ctx, signer); err != nil {
		return fail(err)
	}
	booted := time.Now()
	if err := r.WaitReady(ctx, p.poll()); err != nil {
		return fail(err)
	}
	r.created = start
	r.spawn = compute.SpawnTimes{CreateMS: created.Sub(start).Milliseconds(), BootMS: booted.Sub(created).Milliseconds(), ReadyMS: time.Since(booted).Milliseconds()}
	return r, nil
}

func (p *Provider) poll() time.Duration { return min(p.s.PollEvery, 250*time.Millisecond) }

// clone makes the lease's VM: a clone of the runner template (else the
// stock one) with the tier's cores and memory, the lease's key for
// cloud-init, the tag and the labels.
func (r *runner) clone(ctx context.Context, tier sizing.Tier, labels map[string]string) (ssh.Signer, error) {
	a, node := r.p.api, r.p.s.Node
	var next string
	if err := a.do(ctx, http.MethodGet, "/cluster/nextid", nil, &next); err != nil {
		return nil, err
	}
	id, err := strconv.Atoi(next)
	if err != nil {
		return nil, fmt.Errorf("proxmox: next id %q: %w", next, err)
	}
	full := "0"
	if r.p.s.Full {
		full = "1"
	}
	template, err := r.p.template(ctx)
	if err != nil {
		return nil, err
	}
	var upid string
	form := url.Values{"newid": {next}, "name": {vmName(r.lease.ID)}, "full": {full}, "description": {describe(labels)}}
	if err := a.do(ctx, http.MethodPost, fmt.Sprintf("/nodes/%s/qemu/%d/clone", node, template), form, &upid); err != nil {
		return nil, err
	}
	r.vmid = id // from here on the VM may exist: Destroy deletes it
	if err := a.wait(ctx, node, upid); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	// ciupgrade 0: a runner does not upgrade its packages at boot (Proxmox's
	// default): that costs minutes, fails on a node without a mirror, and
	// the template is what is kept current.
	cfg := url.Values{"cores": {strconv.Itoa(tier.CPU)}, "memory": {strconv.Itoa(tier.MemoryGB * 1024)}, "tags": {Tag},
		"sshkeys": {url.QueryEscape(remote.AuthorizedKey(signer.PublicKey()))}, "agent": {"1"}, "ciupgrade": {"0"}}
	if err := a.do(ctx, http.MethodPut, fmt.Sprintf("/nodes/%s/qemu/%d/config", node, id), cfg, nil); err != nil {
		return nil, err
	}
	return signer, nil
}

// boot starts the VM, reads its IPv4 address from the guest agent and
// connects over SSH (the first host key shown is pinned: the VM is new).
func (r *runner) boot(ctx context.Context, signer ssh.Signer) error {
	a, node := r.p.api, r.p.s.Node
	var upid string
	if err := a.do(ctx, http.MethodPost, fmt.Sprintf("/nodes/%s/qemu/%d/status/start", node, r.vmid), url.Values{}, &upid); err != nil {
		return err
	}
	if err := a.wait(ctx, node, upid); err != nil {
		return err
	}
	ip, err := r.address(ctx)
	if err != nil {
		return err
	}
	r.addr = net.JoinHostPort(ip, "22")
	for {
		conn, err := sshx.Dial(ctx, sshx.Config{Addr: r.addr, Signer: signer, TrustFirst: true, Timeout: 10 * time.Second})
		if err == nil {
			r.SSH, r.Socket, r.Name = conn, remote.DefaultSocket, fmt.Sprintf("VM %d", r.vmid)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("proxmox: VM %d (%s) never answered on SSH (%v): %w", r.vmid, r.addr, err, ctx.Err())
		case <-time.After(r.p.poll()):
		}
	}
}

// address polls the guest agent until the VM reports a non-loopback IPv4.
func (r *runner) address(ctx context.Context) (string, error) {
	var last error
	for {
		var res struct {
			Result []Interface `json:"result"`
		}
		err := r.p.api.do(ctx, http.MethodGet, fmt.Sprintf("/nodes/%s/qemu/%d/agent/network-get-interfaces", r.p.s.Node, r.vmid), nil, &res)
		if err == nil {
			for _, i := range res.Result {
				for _, ip := range i.IPAddresses {
					if ip.Type == "ipv4" && !strings.HasPrefix(ip.Address, "127.") {
						return ip.Address, nil
					}
				}
			}
			err = errors.New("no IPv4 address yet")
		}
		if ctx.Err() == nil || last == nil {
			last = err // not the request the deadline cut: what the agent said
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("proxmox: the guest agent of VM %d never gave an address (%v): %w", r.vmid, last, ctx.Err())
		case <-time.After(r.p.poll()):
		}
	}
}

// vmName is a VM name (a DNS name) for a lease.
func vmName(lease string) string {
	return strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace("lb-" + lease))
}

// describe writes the labels into a runner VM's description, one per line.
func describe(labels map[string]string) string {
	return "lian-build runner; deleted after its build\n" + describeLabels(labels)
}

// describeLabels are the labels as description lines, sorted.
func describeLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, labels[k])
	}
	return b.String()
}

// labelsOf reads describe's lines back.
func labelsOf(description string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(description, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && strings.HasPrefix(k, "lian-build/") {
			out[k] = v
		}
	}
	return out
}

type runner struct {
	p       *Provider
	lease   compute.Lease
	tier    string
	vmid    int
	addr    string
	created time.Time
	spawn   compute.SpawnTimes
	remote.Conn

	once       sync.Once
	destroyErr error
}

func (r *runner) Info() compute.RunnerInfo {
	i := compute.RunnerInfo{ID: r.lease.ID, Provider: "proxmox", Tier: r.tier, Server: fmt.Sprintf("VM %d (%s)", r.vmid, vmName(r.lease.ID)),
		Location: r.p.s.Node, Address: "ssh://" + r.addr + remote.DefaultSocket, Owner: r.lease.Owner, Created: r.created,
		Expires: r.lease.Expires(r.created), Spawn: r.spawn}
	r.Describe(&i)
	return i
}

// Destroy stops and deletes the VM and confirms it is gone. It is safe to call twice.
func (r *runner) Destroy(ctx context.Context) error {
	r.once.Do(func() {
		if r.SSH != nil {
			_ = r.Conn.Close()
		}
		if r.vmid != 0 {
			r.destroyErr = r.p.deleteVM(ctx, r.p.s.Node, r.vmid)
		}
	})
	return r.destroyErr
}

// deleteVM stops a VM (if it runs) and deletes it with its disks.
func (p *Provider) deleteVM(ctx context.Context, node string, id int) error {
	a := p.api
	base := fmt.Sprintf("/nodes/%s/qemu/%d", node, id)
	var upid string
	err := a.do(ctx, http.MethodPost, base+"/status/stop", url.Values{}, &upid)
	if err == nil {
		err = a.wait(ctx, node, upid)
	}
	if err != nil && !isNotFound(err) && !strings.Contains(err.Error(), "not running") {
		return fmt.Errorf("proxmox: stop VM %d: %w", id, err)
	}
	upid = ""
	err = a.do(ctx, http.MethodDelete, base, url.Values{"purge": {"1"}, "destroy-unreferenced-disks": {"1"}}, &upid)
	if err == nil {
		err = a.wait(ctx, node, upid)
	}
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("proxmox: delete VM %d: %w", id, err)
	}
	if err := a.do(ctx, http.MethodGet, base+"/config", nil, &struct{}{}); !isNotFound(err) {
		return fmt.Errorf("proxmox: VM %d still exists after delete (%v)", id, err)
	}
	return nil
}
