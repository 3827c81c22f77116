package hcloud

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	hc "github.com/hetznercloud/hcloud-go/v2/hcloud"
	"github.com/moby/buildkit/client"
	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/sshx"
)

type runner struct {
	p        *Provider
	lease    compute.Lease
	tier     string
	key      *hc.SSHKey
	server   *hc.Server
	location string
	typeName string
	hostKey  ssh.PublicKey
	addr     string
	conn     *sshx.Conn
	created  time.Time
	spawn    compute.SpawnTimes

	mu   sync.Mutex
	peak uint64

	once       sync.Once
	destroyErr error
}

func (r *runner) Info() compute.RunnerInfo {
	i := compute.RunnerInfo{ID: r.lease.ID, Provider: "hcloud", Tier: r.tier, Type: r.typeName, Location: r.location,
		Owner: r.lease.Owner, Created: r.created, Expires: r.lease.Expires(r.created), Spawn: r.spawn}
	if r.server != nil {
		i.Server = fmt.Sprintf("%s (id %d)", r.server.Name, r.server.ID)
	}
	if r.addr != "" {
		i.Address = "ssh://" + r.addr + r.p.s.Socket
	}
	return i
}

// MinSampleInterval: a reading is an SSH round trip; at most one a second.
func (r *runner) MinSampleInterval() time.Duration { return time.Second }

// statsTimeout bounds one counters reading over SSH.
const statsTimeout = 3 * time.Second

// Health is the SSH connection's (lost, or the server not answering) and
// then buildkitd's: its socket on the server no longer answering means the
// daemon died — killed, or out of memory (Stats then says which).
func (r *runner) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.conn.Ping(ctx); err != nil {
		return err
	}
	c, err := r.conn.DialUnix(ctx, r.p.s.Socket)
	if err != nil {
		return fmt.Errorf("buildkitd on %s is not answering: %w", r.server.Name, err)
	}
	return c.Close()
}

func (r *runner) Client(ctx context.Context) (*client.Client, error) {
	return r.conn.BuildKit(ctx, r.p.s.Socket)
}

// Stats reads the server's build cgroup (cgroup v2) in one SSH round trip.
func (r *runner) Stats(ctx context.Context) (compute.Stats, error) {
	// A reading never holds up the build: bounded, like every remote call.
	ctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	out, err := r.conn.Run(ctx, statsCommand)
	if err != nil {
		return compute.Stats{}, err
	}
	s, err := parseStats(string(out))
	if err != nil {
		return compute.Stats{}, fmt.Errorf("hcloud runner %s: %w", r.lease.ID, err)
	}
	r.mu.Lock()
	r.peak = max(r.peak, s.MemoryPeak, s.MemoryBytes)
	s.MemoryPeak = r.peak
	r.mu.Unlock()
	return s, nil
}

// Destroy deletes the server and the key and confirms they are gone; a
// failed delete is retried, then reported — never dropped.
func (r *runner) Destroy(ctx context.Context) error {
	r.once.Do(func() {
		if r.conn != nil {
			_ = r.conn.Close()
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
