// Package vmpool is the compute provider that leases runners from a VM
// pool service (internal/pool) instead of creating them: the pool hands out
// a machine of the tier, with a key of the lease's own and the host key to
// pin, and takes it back at Destroy with the build's outcome.
package vmpool

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/compute/sshx"
	"github.com/lian-build/action/internal/pool/poolapi"
	"github.com/lian-build/action/internal/sizing"
)

// Option names (compute.Config.Options).
const (
	OptURL   = "pool-url"
	OptToken = "pool-token"
)

type factory struct{}

func init() { compute.Register(factory{}) }

func (factory) Name() string        { return "vm-pool" }
func (factory) Tiers() sizing.Table { return sizing.HCloud }
func (factory) Options() []string   { return []string{OptURL, OptToken} }

// Features: the pool's VMs serve again after a lease and keep warm state
// per cache namespace on their disks; arm (cax) and x86 (cpx), as the pool
// serves them; a Stats reading is an SSH round trip.
func (factory) Features() compute.Features {
	return compute.Features{Reuse: true, RemoteState: true, SampleEvery: time.Second, Archs: []string{"arm", "x86"}}
}

func (factory) Settings() []compute.Setting {
	return []compute.Setting{
		{Name: OptURL, Env: "LIAN_POOL_URL", Help: "compute-provider vm-pool: the pool service's URL (lian-build pool serve), or its replicas' comma-separated (a call goes on to the next while one refuses the connection)"},
		{Name: OptToken, Secret: true, Env: "LIAN_POOL_TOKEN", Help: "compute-provider vm-pool: the pool's bearer token (CLI: --pool-token-file or $LIAN_POOL_TOKEN)"},
	}
}

func (factory) New(cfg compute.Config) (compute.Provider, error) {
	if cfg.Options[OptURL] == "" {
		return nil, &compute.OptionError{Option: OptURL, Err: errors.New("the pool's URL is required")}
	}
	clear, err := poolapi.CheckURL(cfg.Options[OptURL])
	if err != nil {
		return nil, &compute.OptionError{Option: OptURL, Err: err}
	}
	if cfg.Options[OptToken] == "" {
		return nil, &compute.OptionError{Option: OptToken, Err: errors.New("the pool's bearer token is required")}
	}
	if err := poolapi.CheckToken(cfg.Options[OptToken]); err != nil {
		return nil, &compute.OptionError{Option: OptToken, Err: err}
	}
	arch := cfg.Arch
	if arch == "" {
		arch = "arm"
	}
	p := &Provider{c: &poolapi.Client{URL: cfg.Options[OptURL], Token: cfg.Options[OptToken]}, arch: arch}
	if clear {
		p.note = "the pool's URL is plain http to another machine: its lease grants, each with a private key, and its bearer token cross the network in clear; serve the pool behind https"
	}
	return p, nil
}

// Provider leases runners from a pool.
type Provider struct {
	c    *poolapi.Client
	arch string
	note string
}

func (p *Provider) Name() string        { return "vm-pool" }
func (p *Provider) Tiers() sizing.Table { return sizing.HCloud }
func (p *Provider) Note() string        { return p.note }

// Spawn leases a machine and connects to its buildkitd with the lease's key,
// pinning the host key the pool pinned; a lease it cannot use goes back
// as an error (the pool destroys the machine).
func (p *Provider) Spawn(ctx context.Context, tier sizing.Tier, lease compute.Lease) (compute.Runner, error) {
	if err := compute.RefuseState("vm-pool", compute.Lease{State: lease.State}); err != nil {
		return nil, err
	}
	start := time.Now()
	ttl := keepAliveTTL(lease.TTL)
	req := poolapi.Request{Tier: tier.Name, Arch: p.arch, Workspace: lease.Labels[compute.LabelWorkspace],
		Class: lease.Labels[compute.LabelActorClass], Build: lease.BuildID,
		ExpectedSeconds: int64(lease.Expected / time.Second), TTLSeconds: int64(ttl / time.Second)}
	if rs := lease.RemoteState; rs != nil {
		req.State = &poolapi.StateRequest{Read: rs.Read, Write: rs.Write}
	}
	for try := 1; ; try++ {
		g, err := p.c.Lease(ctx, req)
		if err != nil {
			return nil, err
		}
		leased := time.Now()
		r := &runner{p: p, lease: lease, g: g, outcome: compute.OutcomeError}
		err = r.connect(ctx)
		// Nothing on a prepared VM was checked on the lease's path: one that
		// died while idle goes back (the pool retires it), and the lease is
		// asked for once more.
		if err != nil && g.Prepared && try == 1 && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return nil, err
		}
		r.spawn = compute.SpawnTimes{CreateMS: leased.Sub(start).Milliseconds(), ReadyMS: time.Since(leased).Milliseconds()}
		r.created = start
		r.keepAlive(ctx, ttl)
		return r, nil
	}
}

// MaxKeepAliveTTL bounds the TTL a lease is asked for: its holder renews
// it while it lives (keepAlive), so that the VM of a holder that died
// (a gateway killed mid-build) is taken back within it, not after the
// build's whole budget.
const MaxKeepAliveTTL = 3 * time.Minute

// keepAliveTTL is the TTL a lease is asked for: the caller's, at most
// MaxKeepAliveTTL, at least 4 s.
func keepAliveTTL(ttl time.Duration) time.Duration {
	return max(min(ttl, MaxKeepAliveTTL), 4*time.Second)
}

// keepAlive renews the lease every quarter of its TTL until Destroy (the
// build's end: its context's cancellation ends nothing before that).
func (r *runner) keepAlive(ctx context.Context, ttl time.Duration) {
	ctx = context.WithoutCancel(ctx)
	r.stop, r.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.stopped)
		tick := time.NewTicker(ttl / 4)
		defer tick.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-tick.C:
			}
			rctx, cancel := context.WithTimeout(ctx, ttl/4)
			_, err := r.p.c.Renew(rctx, r.g.LeaseID, ttl)
			cancel()
			var ae *poolapi.APIError
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				return // returned or reclaimed: nothing left to keep
			}
		}
	}()
}

// connect reaches the lease's buildkitd; a lease it cannot use goes back.
func (r *runner) connect(ctx context.Context) error {
	conn, err := dial(ctx, r.g)
	if err == nil {
		r.SSH, r.Socket, r.Dial, r.Name = conn, r.g.Socket, r.g.Dial, "pool VM "+r.g.VM
		r.Kernel, r.CgroupVersion = r.g.Kernel, r.g.CgroupVersion
		err = r.WaitReady(ctx, 100*time.Millisecond)
	}
	if err != nil {
		return errors.Join(err, r.Destroy(context.WithoutCancel(ctx)))
	}
	return nil
}

func dial(ctx context.Context, g poolapi.Grant) (*sshx.Conn, error) {
	signer, err := ssh.ParsePrivateKey([]byte(g.Key))
	if err != nil {
		return nil, fmt.Errorf("vm-pool: the lease's key: %w", err)
	}
	hk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(g.HostKey))
	if err != nil {
		return nil, fmt.Errorf("vm-pool: the VM's host key: %w", err)
	}
	return sshx.Dial(ctx, sshx.Config{Addr: g.Addr, User: g.User, Signer: signer, HostKey: hk, Timeout: 15 * time.Second})
}

// List is the pool's leased VMs.
func (p *Provider) List(ctx context.Context) ([]compute.RunnerInfo, error) {
	vms, err := p.c.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []compute.RunnerInfo
	for _, v := range vms {
		i := compute.RunnerInfo{ID: v.ID, Provider: "vm-pool", Tier: v.Tier, Server: fmt.Sprintf("%s (id %d, %s)", v.ID, v.ServerID, v.State),
			Type: v.Type, Location: v.Location, Address: v.Addr, Created: v.Created}
		if v.Lease != nil {
			i.ID, i.Expires = v.Lease.ID, v.Lease.Expires
		}
		out = append(out, i)
	}
	return out, nil
}

// GC reaps nothing here: the pool reclaims expired leases itself.
func (p *Provider) GC(context.Context) ([]compute.RunnerInfo, error) { return nil, nil }

type runner struct {
	p       *Provider
	lease   compute.Lease
	g       poolapi.Grant
	created time.Time
	spawn   compute.SpawnTimes
	remote.Conn

	mu      sync.Mutex
	outcome compute.Outcome
	commit  bool

	once       sync.Once
	destroyErr error
	// stop ends keepAlive, which closes stopped (nil: not started).
	stop, stopped chan struct{}
}

func (r *runner) Info() compute.RunnerInfo {
	i := compute.RunnerInfo{ID: r.lease.ID, Provider: "vm-pool", Tier: r.g.Tier, Type: r.g.Type, Location: r.g.Location,
		Server:  fmt.Sprintf("%s (id %d, lease %s, reused %v, prepared %v)", r.g.VM, r.g.ServerID, r.g.LeaseID, r.g.Reused, r.g.Prepared),
		Address: "ssh://" + r.g.Addr + r.g.Socket, Owner: r.lease.Owner, Created: r.created, Expires: r.g.Expires, Spawn: r.spawn}
	if r.g.HourlyEUR > 0 {
		// The pool's VM serves many leases within its billed hour: a lease
		// pays its share.
		i.Price = &compute.Price{HourlyEUR: r.g.HourlyEUR, Billing: compute.ShareOfHour}
	}
	r.Describe(&i)
	return i
}

// SetOutcome records how the build ended, for the return.
func (r *runner) SetOutcome(o compute.Outcome) {
	r.mu.Lock()
	r.outcome = o
	r.mu.Unlock()
}

// Destroy closes the connection and returns the lease with its outcome
// (and whether to commit its state); the pool answers at once and
// commits, recycles or destroys the machine after, off the build's time.
func (r *runner) Destroy(ctx context.Context) error {
	r.once.Do(func() {
		if r.stop != nil {
			close(r.stop)
			<-r.stopped
		}
		if r.SSH != nil {
			_ = r.Conn.Close()
		}
		r.mu.Lock()
		ret := poolapi.Return{Outcome: string(r.outcome), Commit: r.commit && r.outcome == compute.OutcomeOK, Async: true}
		r.mu.Unlock()
		r.destroyErr = r.p.giveBack(ctx, r.g.LeaseID, ret)
	})
	return r.destroyErr
}

// giveBack returns a lease, trying again while the pool cannot be reached
// or answers 5xx (it restarts, or fails over to another replica) until ctx
// ends. A lease the pool no longer holds was reclaimed already: done.
func (p *Provider) giveBack(ctx context.Context, leaseID string, ret poolapi.Return) error {
	wait := 250 * time.Millisecond
	for {
		_, err := p.c.ReturnWith(ctx, leaseID, ret)
		var ae *poolapi.APIError
		switch {
		case err == nil || errors.As(err, &ae) && ae.Status == http.StatusNotFound:
			return nil
		case ae != nil && ae.Status < 500:
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vm-pool: return lease %s: %w (the pool reclaims it when it expires)", leaseID, err)
		case <-time.After(wait):
			wait = min(2*wait, 5*time.Second)
		}
	}
}

// StateOpened is the warm state the pool started the lease's buildkitd
// on; it can be committed when the lease names a write namespace.
func (r *runner) StateOpened() compute.StateOpened {
	gs := r.g.State
	if gs == nil {
		return compute.StateOpened{}
	}
	o := compute.StateOpened{Namespace: gs.Namespace, Generation: gs.Generation, Bytes: gs.Bytes, OpenMS: gs.OpenMS, Committable: gs.Next > 0}
	switch {
	case gs.Namespace == "":
		o.Note = "no free pool VM held this namespace's state (a first build, or its VMs were busy): a fresh buildkitd"
	case gs.Prepared:
		o.OpenMS = 0 // opened when the VM was recycled, before the lease
	}
	return o
}

// CommitState asks the pool to commit the lease's state when it is
// returned: the pool does it after the result is reported, off the
// build's time, as the generation it planned at the lease (later, if
// another VM committed the namespace meanwhile).
func (r *runner) CommitState(context.Context) (int, error) {
	if r.g.State == nil || r.g.State.Next == 0 {
		return 0, errors.New("vm-pool: the lease has no state to commit")
	}
	r.mu.Lock()
	r.commit = true
	r.mu.Unlock()
	return r.g.State.Next, nil
}

var (
	_ compute.OutcomeSetter  = (*runner)(nil)
	_ compute.StatefulRunner = (*runner)(nil)
)
