package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/hcloud"
	"github.com/lian-build/action/internal/compute/remote"
	"github.com/lian-build/action/internal/compute/sshx"
)

// Cloud makes and removes the pool's servers on one architecture
// (*hcloud.Provider).
type Cloud interface {
	EnsureKey(ctx context.Context, name string, pub ssh.PublicKey, labels map[string]string) (int64, error)
	CreateMachine(ctx context.Context, spec hcloud.MachineSpec) (hcloud.Machine, error)
	DialMachine(ctx context.Context, m hcloud.Machine, signer ssh.Signer, hostKey ssh.PublicKey) (*sshx.Conn, error)
	DeleteMachine(ctx context.Context, id int64) error
	Machines(ctx context.Context, selector string) ([]hcloud.Machine, error)
	// Locations are where it creates servers, in the order it tries them.
	Locations() []string
}

// servesLocation refuses a location none of the pool's clouds creates in.
func (s *Service) servesLocation(loc string) error {
	if loc == "" {
		return nil
	}
	var all []string
	for _, c := range s.o.Clouds {
		for _, l := range c.Locations() {
			if l == loc {
				return nil
			}
			if !slices.Contains(all, l) {
				all = append(all, l)
			}
		}
	}
	return &RequestError{Field: "location", Msg: fmt.Sprintf("%s: this pool creates servers in %s only", quote(loc), strings.Join(all, ", "))}
}

// Labels on the pool's servers and key. No lease label: the per-lease
// reaper (`runners gc`) leaves pool servers alone; the pool reconciles its own.
const (
	LabelPool = compute.LabelPool
	LabelVM   = compute.LabelPoolVM
	LabelTier = compute.LabelTier
	LabelArch = "lian-build/arch"
)

// DefaultSSHTimeout bounds one admin SSH operation on a VM (a recycle
// starts a buildkitd; a new server's sshd may take a minute to answer).
const DefaultSSHTimeout = 2 * time.Minute

// onMachine dials a VM with the pool's key and runs fn. The host key is
// the one pinned at first contact; a VM without one is being created, and
// the key it shows now is pinned (returned).
func (s *Service) onMachine(ctx context.Context, v VM, fn func(*sshx.Conn) error) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.o.SSHTimeout)
	defer cancel()
	cloud, err := s.cloud(v.Arch)
	if err != nil {
		return "", err
	}
	var pinned ssh.PublicKey
	if v.HostKey != "" {
		if pinned, _, _, _, err = ssh.ParseAuthorizedKey([]byte(v.HostKey)); err != nil {
			return "", fmt.Errorf("VM %s: pinned host key: %w", v.ID, err)
		}
	}
	conn, err := cloud.DialMachine(ctx, hcloud.Machine{ID: v.ServerID, Name: v.ID, Addr: v.Addr}, s.o.Signer, pinned)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return remote.AuthorizedKey(conn.HostKey()), fn(conn)
}

// recycle makes a VM fit for its next lease (remote.Recycle) and returns
// its host key.
func (s *Service) recycle(ctx context.Context, v VM, o remote.RecycleOptions) (string, error) {
	return s.onMachine(ctx, v, func(c *sshx.Conn) error {
		_, err := remote.Recycle(ctx, c, s.o.Signer.PublicKey(), o)
		return err
	})
}

// grant lets a lease's key into a VM; for a lease that asked for warm
// state, its buildkitd first restarts on it (warmOpen).
func (s *Service) grant(ctx context.Context, v VM, lease ssh.PublicKey, vms []VM) (*GrantState, error) {
	if v.Lease != nil && v.Lease.State != nil {
		return s.warmOpen(ctx, v, lease, vms)
	}
	_, err := s.onMachine(ctx, v, func(c *sshx.Conn) error { return remote.Grant(ctx, c, s.o.Signer.PublicKey(), lease, "") })
	return nil, err
}

// oomKills reads the VM's count of processes the kernel killed for memory,
// and records its kernel and cgroup version in v (a lease's holder then
// need not read them).
func (s *Service) oomKills(ctx context.Context, v *VM) (uint64, error) {
	var st compute.Stats
	_, err := s.onMachine(ctx, *v, func(c *sshx.Conn) error {
		out, err := c.Run(ctx, remote.StatsCommand)
		if err == nil {
			st, err = remote.ParseStats(string(out))
		}
		if err == nil {
			v.Kernel, v.CgroupVersion, err = remote.ParseMachine(string(out))
		}
		return err
	})
	return st.OOMKills, err
}

func (s *Service) cloud(arch string) (Cloud, error) {
	c := s.o.Clouds[arch]
	if c == nil {
		return nil, &RequestError{Field: "arch", Msg: fmt.Sprintf("%q: this pool has no servers of that architecture", arch)}
	}
	return c, nil
}

// destroyMachine deletes a VM's server, if it has one.
func (s *Service) destroyMachine(ctx context.Context, v VM) error {
	if v.ServerID == 0 {
		return nil
	}
	cloud, err := s.cloud(v.Arch)
	if err != nil {
		return err
	}
	return cloud.DeleteMachine(ctx, v.ServerID)
}

// errFull is a tier at its MaxVMs with none idle.
var errFull = errors.New("pool: every VM of the tier is leased and the tier is at its maximum")
