package hcloud

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	hc "github.com/hetznercloud/hcloud-go/v2/hcloud"
	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/remote"
)

type runner struct {
	p        *Provider
	lease    compute.Lease
	tier     string
	key      *hc.SSHKey
	server   *hc.Server
	location string
	typeName string
	hourly   float64 // net EUR
	hostKey  ssh.PublicKey
	addr     string
	created  time.Time
	spawn    compute.SpawnTimes
	// Conn is the server over SSH: Client, Stats, Health come from it.
	remote.Conn
	state *volumeState // nil: no state asked for

	once       sync.Once
	destroyErr error
}

func (r *runner) Info() compute.RunnerInfo {
	i := compute.RunnerInfo{ID: r.lease.ID, Provider: "hcloud", Tier: r.tier, Type: r.typeName, Location: r.location,
		Owner: r.lease.Owner, Created: r.created, Expires: r.lease.Expires(r.created), Spawn: r.spawn}
	if r.server != nil {
		i.Server = fmt.Sprintf("%s (id %d)", r.server.Name, r.server.ID)
	}
	if r.hourly > 0 {
		i.Price = &compute.Price{HourlyEUR: r.hourly, Billing: compute.BilledHours}
	}
	if r.addr != "" {
		i.Address = "ssh://" + r.addr + r.p.s.Socket
	}
	r.Describe(&i)
	return i
}

// Destroy deletes the server and the key and confirms they are gone; a
// failed delete is retried, then reported — never dropped.
func (r *runner) Destroy(ctx context.Context) error {
	r.once.Do(func() {
		r.discardState(ctx)
		if r.SSH != nil {
			_ = r.Conn.Close()
		}
		var errs []error
		if r.server != nil {
			errs = append(errs, r.p.deleteServer(ctx, r.server))
		}
		if r.key != nil {
			errs = append(errs, r.p.deleteKey(ctx, r.key))
		}
		r.destroyErr = errors.Join(errs...)
	})
	return r.destroyErr
}

// retry runs fn until it succeeds or the retries are spent, backing off.
func (p *Provider) retry(ctx context.Context, what string, fn func() error) error {
	var err error
	for i := 0; i <= p.s.DeleteRetries; i++ {
		if err = fn(); err == nil || hc.IsError(err, hc.ErrorCodeNotFound) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("hcloud: %s: %w (then %v)", what, err, ctx.Err())
		case <-time.After(p.s.PollEvery << i):
		}
	}
	return fmt.Errorf("hcloud: %s failed %d times: %w", what, p.s.DeleteRetries+1, err)
}

func (p *Provider) deleteServer(ctx context.Context, s *hc.Server) error {
	err := p.retry(ctx, "delete server "+s.Name, func() error {
		res, _, err := p.c.Server.DeleteWithResult(ctx, s)
		if err != nil {
			return err
		}
		return p.c.Action.WaitFor(ctx, res.Action)
	})
	if err != nil {
		return err
	}
	// Confirm: a server that is still there is reported, not assumed gone.
	if got, _, err := p.c.Server.GetByID(ctx, s.ID); err != nil || got != nil {
		return fmt.Errorf("hcloud: server %s still exists after delete (%v)", s.Name, err)
	}
	return nil
}

func (p *Provider) deleteKey(ctx context.Context, k *hc.SSHKey) error {
	err := p.retry(ctx, "delete SSH key "+k.Name, func() error {
		_, err := p.c.SSHKey.Delete(ctx, k)
		return err
	})
	if err != nil {
		return err
	}
	if got, _, err := p.c.SSHKey.GetByID(ctx, k.ID); err != nil || got != nil {
		return fmt.Errorf("hcloud: SSH key %s still exists after delete (%v)", k.Name, err)
	}
	return nil
}
