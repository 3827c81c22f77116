package pool

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute/hcloud"
	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/natsjs"
	"github.com/lian-build/action/internal/sizing"
)

// Events receives the pool's VM events (events.Publisher).
type Events interface {
	PublishJSON(ctx context.Context, subject, msgID string, v any)
}

// Event is one VM event: created, reused or retired.
type Event struct {
	Name     string    `json:"event"`
	Pool     string    `json:"pool"`
	VM       string    `json:"vm"`
	ServerID int64     `json:"server_id,omitempty"`
	Tier     string    `json:"tier"`
	Lease    string    `json:"lease,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Leases   int       `json:"leases"`
	Billed   int64     `json:"billed_minutes,omitempty"`
	Time     time.Time `json:"time"`
}

// Options configure a Service.
type Options struct {
	Name   string // the pool's name: its servers' label and its bucket
	Policy Policy
	// Clouds make the servers, one per architecture (arm, x86).
	Clouds map[string]Cloud
	// Signer is the pool's own SSH key: the only key its servers are
	// created with, and the one that recycles them.
	Signer ssh.Signer
	Store  *Store
	Events Events // nil: none
	// Metrics are the pool's Prometheus metrics (nil: none).
	Metrics *Metrics
	Logger  *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// WaitPoll is the wait between looks for a free VM when a tier is full.
	WaitPoll time.Duration
	// SSHTimeout bounds one SSH operation on a VM, a new server's first
	// answer included (default DefaultSSHTimeout).
	SSHTimeout time.Duration
}

// Service is the pool.
type Service struct {
	o     Options
	keyID int64
	// keySecret derives the keys of prepared leases (nil: none are).
	keySecret []byte
	// bg counts the returns being settled after their answer.
	bg sync.WaitGroup
}

// New checks the options; Start then readies the pool.
func New(o Options) (*Service, error) {
	if o.Name == "" {
		o.Name = "default"
	}
	if o.Signer == nil || o.Store == nil || len(o.Clouds) == 0 {
		return nil, errors.New("pool: a signer, a store and a cloud are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SSHTimeout <= 0 {
		o.SSHTimeout = DefaultSSHTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.WaitPoll <= 0 {
		o.WaitPoll = 250 * time.Millisecond
	}
	return &Service{o: o, keySecret: keySecret(o.Signer)}, nil
}

// Start registers the pool's key and reconciles the bucket with the servers.
func (s *Service) Start(ctx context.Context) error {
	for _, c := range s.o.Clouds {
		sum := sha256.Sum256(s.o.Signer.PublicKey().Marshal())
		name := "lian-build-pool-" + s.o.Name + "-" + hex.EncodeToString(sum[:4])
		id, err := c.EnsureKey(ctx, name, s.o.Signer.PublicKey(), map[string]string{LabelPool: s.o.Name})
		if err != nil {
			return err
		}
		s.keyID = id
		break // keys are the project's, whatever the architecture
	}
	_, err := s.Reconcile(ctx)
	return err
}

// Lease hands out a VM of the request's tier: an idle one whose billed
// hour holds the build, else a new one; when the tier is full it waits
// for a return until ctx ends.
func (s *Service) Lease(ctx context.Context, req Request) (Grant, error) {
	if err := req.Normalize(); err != nil {
		return Grant{}, err
	}
	if _, err := s.cloud(req.Arch); err != nil {
		return Grant{}, err
	}
	if s.o.Policy.Closed(req.Tier) {
		return Grant{}, &RequestError{Field: "tier", Msg: fmt.Sprintf("%s: this pool serves none (--max-vms %s=0)", req.Tier, req.Tier)}
	}
	if err := s.servesLocation(req.Location); err != nil {
		return Grant{}, err
	}
	s.takeBackEarlierTries(ctx, req.RequestID)
	start := s.o.Now()
	replaced := false
	for {
		waited := s.o.Now().Sub(start)
		g, err := s.lease(ctx, req, waited < s.o.Policy.awaitRecycling(), waited < s.o.Policy.AwaitBusy)
		if err == nil {
			g.WaitMS = s.o.Now().Sub(start).Milliseconds()
			s.o.Metrics.leased(req.Tier, g.Reused, s.o.Now().Sub(start))
			return g, nil
		}
		var unready *unreadyError
		if errors.As(err, &unready) && !replaced && ctx.Err() == nil {
			s.o.Logger.Warn("a new server did not become ready (deleted); making another", "tier", req.Tier, "err", err)
			replaced = true
			continue
		}
		if !errors.Is(err, errFull) && !errors.Is(err, errRecycling) {
			return Grant{}, err
		}
		select {
		case <-ctx.Done():
			return Grant{}, fmt.Errorf("%w: %s (waited %s)", errFull, req.Tier, s.o.Now().Sub(start).Round(time.Millisecond))
		case <-time.After(s.o.WaitPoll):
		}
	}
}

// takeBackEarlierTries returns, as an error (recycled, its key revoked),
// every lease granted for an earlier try of this request: a replica that
// granted it died, or broke off, before its answer reached the client,
// which asks again. Without it the VM stays leased to no one until the
// lease expires.
func (s *Service) takeBackEarlierTries(ctx context.Context, requestID string) {
	if requestID == "" {
		return
	}
	entries, err := s.o.Store.All(ctx)
	if err != nil {
		return // the lease that follows meets the same store
	}
	for _, e := range entries {
		if e.State == StateLeased && e.Lease != nil && e.Lease.Request == requestID {
			s.o.Logger.Warn("taking back a lease granted for an earlier try of this request (its answer never reached the client)",
				"vm", e.ID, "lease", e.Lease.ID, "request", requestID)
			if _, err := s.Return(ctx, e.Lease.ID, Return{Outcome: "error"}); err != nil {
				s.o.Logger.Warn("taking back an orphaned lease failed; it ends with its TTL", "lease", e.Lease.ID, "err", err)
			}
		}
	}
}

// unreadyError is a new server that did not become ready: it never
// answered on SSH, its first recycle or grant failed, or upkeep took it
// for stuck while it was made. It is deleted; the lease it was made for
// makes another, once.
type unreadyError struct{ err error }

func (e *unreadyError) Error() string { return e.err.Error() }
func (e *unreadyError) Unwrap() error { return e.err }

// errRecycling is a lease waiting for a VM being recycled, or back soon.
var errRecycling = errors.New("pool: waiting for a VM being recycled or back soon")

// lease is one try: reuse, else errRecycling while a VM that could serve is
// being recycled (when awaitRecycling) or a leased VM holding the
// request's newest state is expected back soon (when awaitBusy), else
// create, else errFull.
func (s *Service) lease(ctx context.Context, req Request, awaitRecycling, awaitBusy bool) (Grant, error) {
	entries, err := s.o.Store.All(ctx)
	if err != nil {
		return Grant{}, err
	}
	priv, lease, err := s.newLease(req)
	if err != nil {
		return Grant{}, err
	}
	for _, v := range s.o.Policy.Pick(s.o.Now(), req, vmsOf(entries)) {
		g, err := s.reuse(ctx, find(entries, v.ID), lease, priv, vmsOf(entries))
		if err == nil || !errors.Is(err, ErrConflict) && !errors.Is(err, errUnfit) {
			return g, err
		}
	}
	if awaitRecycling && s.o.Policy.Recycling(s.o.Now(), req, vmsOf(entries)) ||
		awaitBusy && s.o.Policy.Busy(s.o.Now(), req, vmsOf(entries)) {
		return Grant{}, errRecycling
	}
	if !s.o.Policy.MayCreate(req.Tier, vmsOf(entries)) {
		return Grant{}, errFull
	}
	return s.create(ctx, req, &lease, priv)
}

// errUnfit is a VM that could not be granted to a lease (and was retired).
var errUnfit = errors.New("pool: VM unfit")

// reuse claims an idle VM by compare-and-set, opens the lease's warm
// state on it and lets the lease's key in.
func (s *Service) reuse(ctx context.Context, e entry, lease Lease, priv ed25519.PrivateKey, vms []VM) (Grant, error) {
	v := e.VM
	ready, prepared := v.Ready, adoptable(v, lease)
	if prepared && ready.KeyNonce != "" {
		priv = s.preparedKey(v.ID, ready.KeyNonce)
		lease.Key = ssh.FingerprintSHA256(pubOf(priv))
	}
	v.State, v.Since, v.Lease, v.Ready = StateLeased, s.o.Now(), &lease, nil
	if v.Group == "" {
		v.Group = ClassGroup(lease.Class)
	}
	e2, err := s.o.Store.Update(ctx, e, v)
	if err != nil {
		return Grant{}, err
	}
	var gs *GrantState
	if prepared {
		gs, err = s.adopt(ctx, v, *ready, pubOf(priv), vms)
	} else {
		gs, err = s.grant(ctx, v, pubOf(priv), vms)
	}
	if err == nil && gs != nil {
		_, err = s.o.Store.Update(ctx, e2, v)
	}
	if err != nil {
		s.retire(ctx, e2, "grant failed: "+err.Error())
		return Grant{}, fmt.Errorf("%w: %v", errUnfit, err)
	}
	s.publish(ctx, "reused", v, "")
	g, err := s.grantOf(v, priv, true)
	g.State, g.Prepared = gs, prepared
	return g, err
}

// create makes a new VM, for a lease (nil: to stand idle).
func (s *Service) create(ctx context.Context, req Request, lease *Lease, priv ed25519.PrivateKey) (Grant, error) {
	tier, _ := sizing.HCloud.Lookup(req.Tier)
	now := s.o.Now()
	v := VM{Tier: req.Tier, Arch: req.Arch, State: StateCreating, Since: now, Created: now, Lease: lease}
	if lease != nil {
		v.Group = ClassGroup(lease.Class)
	}
	e, err := s.claimSlot(ctx, v)
	if err != nil {
		return Grant{}, err
	}
	v = e.VM
	fail := func(err error) (Grant, error) {
		s.retire(context.WithoutCancel(ctx), e, "creation failed: "+err.Error())
		return Grant{}, err
	}
	cloud, _ := s.cloud(req.Arch)
	m, err := cloud.CreateMachine(ctx, hcloud.MachineSpec{Name: v.ID, Tier: tier, KeyID: s.keyID, Location: req.Location,
		Labels: map[string]string{LabelPool: s.o.Name, LabelVM: v.ID, LabelTier: req.Tier, LabelArch: req.Arch}})
	if err != nil {
		return fail(err)
	}
	v.ServerID, v.Type, v.Location, v.Addr, v.Created, v.HourlyEUR, v.DiskGB = m.ID, m.Type, m.Location, m.Addr, s.o.Now(), m.HourlyEUR, m.DiskGB
	if e, err = s.o.Store.Update(ctx, e, v); err != nil {
		// The server exists but the entry moved on (a reconcile took it
		// for stuck): delete the server, which no entry names now; the
		// lease makes another.
		return Grant{}, &unreadyError{errors.Join(err, s.destroyMachine(context.WithoutCancel(ctx), v))}
	}
	if lease == nil {
		v.HostKey, err = s.makeReady(ctx, &v, nil)
	} else {
		// Its lease's grant follows: it starts buildkitd on what the lease asks for.
		v.HostKey, err = s.recycle(ctx, v, remote.RecycleOptions{Cold: lease.State != nil})
	}
	if err != nil {
		return fail(&unreadyError{err})
	}
	var gs *GrantState
	if lease != nil {
		if gs, err = s.grantNew(ctx, v, pubOf(priv)); err != nil {
			return fail(&unreadyError{err})
		}
		// The lease's time counts from when its holder gets the server.
		ttl := lease.Expires.Sub(lease.Started)
		lease.Started = s.o.Now()
		lease.Expires = lease.Started.Add(ttl)
		v.State = StateLeased
	} else {
		v.State = StateIdle
	}
	v.Since = s.o.Now()
	if _, err := s.o.Store.Update(ctx, e, v); err != nil {
		return fail(err)
	}
	s.publish(ctx, "created", v, "")
	purpose := "standby (--min-idle)"
	if lease != nil {
		purpose = "lease " + lease.ID
	}
	s.o.Logger.Info("pool VM created", "vm", v.ID, "server", v.ServerID, "tier", v.Tier, "type", v.Type, "location", v.Location, "for", purpose)
	if lease == nil {
		return Grant{}, nil
	}
	g, err := s.grantOf(v, priv, false)
	g.State = gs
	return g, err
}

// grantNew lets a new VM's first lease in (on an empty warm tree when it
// asked for state, its commit numbered after the newest generation the
// pool holds).
func (s *Service) grantNew(ctx context.Context, v VM, key ssh.PublicKey) (*GrantState, error) {
	var vms []VM
	if v.Lease.State != nil {
		entries, err := s.o.Store.All(ctx)
		if err != nil {
			return nil, err
		}
		vms = vmsOf(entries)
	}
	return s.grant(ctx, v, key, vms)
}

// claimSlot adds the new VM's entry. A tier with a MaxVMs has that many
// slots, and a VM's id names its slot: the entry's create is the claim, so
// replicas creating at once never exceed the maximum. Other tiers' VMs get
// a random id.
func (s *Service) claimSlot(ctx context.Context, v VM) (entry, error) {
	max, bounded := s.o.Policy.MaxVMs[v.Tier]
	if !bounded {
		v.ID = "lbp-" + s.o.Name + "-" + randomHex(6)
		return s.o.Store.Create(ctx, v)
	}
	for i := range max {
		v.ID = fmt.Sprintf("lbp-%s-%s-%d", s.o.Name, v.Tier, i)
		e, err := s.o.Store.Create(ctx, v)
		if err == nil || !natsjs.IsConflict(err) {
			return e, err
		}
	}
	return entry{}, errFull
}

// newLease makes a lease record and its own SSH key.
func (s *Service) newLease(req Request) (ed25519.PrivateKey, Lease, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, Lease{}, err
	}
	now := s.o.Now()
	l := Lease{ID: "pl-" + randomHex(8), Class: req.Class, Workspace: req.Workspace, Build: req.Build, Request: req.RequestID,
		Expected: req.Expected(), Started: now, Expires: now.Add(req.TTL()), Key: ssh.FingerprintSHA256(pubOf(priv))}
	if req.State != nil {
		l.State = &LeaseState{StateRequest: *req.State}
	}
	return priv, l, nil
}

func (s *Service) grantOf(v VM, priv ed25519.PrivateKey, reused bool) (Grant, error) {
	block, err := ssh.MarshalPrivateKey(priv, "lian-build lease "+v.Lease.ID)
	if err != nil {
		return Grant{}, err
	}
	return Grant{LeaseID: v.Lease.ID, VM: v.ID, ServerID: v.ServerID, Tier: v.Tier, Type: v.Type, Location: v.Location, HourlyEUR: v.HourlyEUR,
		Addr: v.Addr, HostKey: v.HostKey, User: "root", Key: string(pem.EncodeToMemory(block)), Socket: remote.DefaultSocket,
		Dial: remote.LeaseDial, Reused: reused, Created: v.Created, Expires: v.Lease.Expires, Kernel: v.Kernel, CgroupVersion: v.CgroupVersion}, nil
}

func pubOf(priv ed25519.PrivateKey) ssh.PublicKey {
	pub, _ := ssh.NewPublicKey(priv.Public())
	return pub
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func vmsOf(entries []entry) []VM {
	out := make([]VM, len(entries))
	for i, e := range entries {
		out[i] = e.VM
	}
	return out
}

func find(entries []entry, id string) entry {
	for _, e := range entries {
		if e.ID == id {
			return e
		}
	}
	return entry{}
}

func (s *Service) publish(ctx context.Context, name string, v VM, reason string) {
	now := s.o.Now()
	e := Event{Name: name, Pool: s.o.Name, VM: v.ID, ServerID: v.ServerID, Tier: v.Tier, Reason: reason, Leases: v.Leases, Time: now.UTC()}
	if v.Lease != nil {
		e.Lease = v.Lease.ID
	}
	if name == "retired" && v.ServerID != 0 {
		e.Billed = BilledMinutes(v.Created, now)
	}
	s.o.Metrics.event(name, v, e.Billed)
	if s.o.Events != nil {
		s.o.Events.PublishJSON(ctx, "pool.vm."+name, fmt.Sprintf("%s.%s.%d.%s", v.ID, name, v.Leases, e.Lease), e)
	}
}
