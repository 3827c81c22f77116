package hcloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	hc "github.com/hetznercloud/hcloud-go/v2/hcloud"
	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/compute/sshx"
	"github.com/lian-build/action/internal/sizing"
)

// Machine is a server kept by its creator across leases (a VM pool), rather
// than spawned and deleted per lease. It carries the creator's labels only:
// no lease label, so the per-lease reaper (`runners gc`) leaves it alone.
type Machine struct {
	ID       int64             `json:"id"`
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Location string            `json:"location"`
	Addr     string            `json:"addr"` // sshd, host:22
	Labels   map[string]string `json:"labels,omitempty"`
	Created  time.Time         `json:"created"`
	// HourlyEUR is its net list price per hour in its location (0: unknown).
	HourlyEUR float64 `json:"hourly_eur,omitempty"`
	// DiskGB is its server type's local disk (0: unknown).
	DiskGB int `json:"disk_gb,omitempty"`
}

// MachineSpec is a machine to create: its name, tier, labels and the one
// key that may log in (the creator's).
type MachineSpec struct {
	Name   string
	Tier   sizing.Tier
	Labels map[string]string
	KeyID  int64 // from EnsureKey
	// Location, when set, is the only location tried (one of Locations).
	Location string
}

// Locations are the locations servers are created in, in the order tried.
func (p *Provider) Locations() []string { return slices.Clone(p.s.Locations) }

// EnsureKey registers pub under name (once: a key already there with the
// same fingerprint is reused) and returns its id.
func (p *Provider) EnsureKey(ctx context.Context, name string, pub ssh.PublicKey, labels map[string]string) (int64, error) {
	fp := ssh.FingerprintLegacyMD5(pub)
	k, _, err := p.c.SSHKey.GetByFingerprint(ctx, fp)
	if err != nil {
		return 0, fmt.Errorf("hcloud: look up SSH key %s: %w", fp, err)
	}
	if k != nil {
		return k.ID, nil
	}
	k, _, err = p.c.SSHKey.Create(ctx, hc.SSHKeyCreateOpts{Name: name, PublicKey: remote.AuthorizedKey(pub), Labels: labels})
	if hc.IsError(err, hc.ErrorCodeUniquenessError) {
		// Another replica registered the same key meanwhile: use theirs.
		if k, _, gerr := p.c.SSHKey.GetByFingerprint(ctx, fp); gerr == nil && k != nil {
			return k.ID, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("hcloud: create SSH key %s: %w", name, err)
	}
	return k.ID, nil
}

// CreateMachine creates a server and waits until Hetzner says it runs; a
// server that was created but failed is deleted before the error returns.
func (p *Provider) CreateMachine(ctx context.Context, spec MachineSpec) (Machine, error) {
	locations := p.s.Locations
	if spec.Location != "" {
		if !slices.Contains(locations, spec.Location) {
			return Machine{}, fmt.Errorf("hcloud: location %q is not one of %v", spec.Location, locations)
		}
		locations = []string{spec.Location}
	}
	c, err := p.createServer(ctx, spec.Name, spec.Tier, []*hc.SSHKey{{ID: spec.KeyID}}, spec.Labels, nil, locations)
	if err != nil {
		if c.srv != nil {
			err = errors.Join(err, p.deleteServer(context.WithoutCancel(ctx), c.srv))
		}
		return Machine{}, err
	}
	m := machine(c.srv)
	m.Location, m.Type, m.HourlyEUR = c.loc, c.typeName, c.hourly
	return m, nil
}

// DialMachine connects to a machine's sshd with signer, waiting until it
// answers; a nil hostKey trusts the first one shown (a machine just created).
func (p *Provider) DialMachine(ctx context.Context, m Machine, signer ssh.Signer, hostKey ssh.PublicKey) (*sshx.Conn, error) {
	if hostKey != nil {
		// A machine whose host key is pinned has booted and served: it is
		// given a blip's time to answer, not a boot's.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, RunningDialTimeout)
		defer cancel()
	}
	return p.dialSSH(ctx, m.Name, m.Addr, signer, hostKey)
}

// RunningDialTimeout bounds the dials to a machine that is known to be up.
const RunningDialTimeout = 20 * time.Second

// DeleteMachine deletes a server and confirms it is gone.
func (p *Provider) DeleteMachine(ctx context.Context, id int64) error {
	return p.deleteServer(ctx, &hc.Server{ID: id, Name: fmt.Sprint(id)})
}

// Machines lists the servers matching a label selector.
func (p *Provider) Machines(ctx context.Context, selector string) ([]Machine, error) {
	servers, err := p.c.Server.AllWithOpts(ctx, hc.ServerListOpts{ListOpts: hc.ListOpts{LabelSelector: selector}})
	if err != nil {
		return nil, fmt.Errorf("hcloud: list servers: %w", err)
	}
	out := make([]Machine, 0, len(servers))
	for _, s := range servers {
		out = append(out, machine(s))
	}
	return out, nil
}

func machine(s *hc.Server) Machine {
	m := Machine{ID: s.ID, Name: s.Name, Labels: s.Labels, Created: s.Created}
	if s.ServerType != nil {
		m.Type, m.DiskGB = s.ServerType.Name, int(s.ServerType.Disk)
	}
	if s.Location != nil {
		m.Location = s.Location.Name
	}
	if ip := s.PublicNet.IPv4.IP; ip != nil {
		m.Addr = net.JoinHostPort(ip.String(), "22")
	}
	return m
}
