package remote

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/sshx"
)

// DefaultSocket is buildkitd's socket on a runner machine.
const DefaultSocket = "/run/buildkit/buildkitd.sock"

// statsTimeout bounds one counters reading over SSH.
const statsTimeout = 3 * time.Second

// Conn is a runner machine over one SSH connection: the compute.Runner
// methods a provider's runner shares (it adds Info and Destroy).
type Conn struct {
	SSH    *sshx.Conn
	Socket string // buildkitd's socket on the machine
	Name   string // the machine, in errors ("server lb-1-a1")

	mu   sync.Mutex
	peak uint64
}

// MinSampleInterval: a reading is an SSH round trip; at most one a second.
func (c *Conn) MinSampleInterval() time.Duration { return time.Second }

// Health is the SSH connection's (lost, or the machine not answering) and
// then buildkitd's: its socket no longer answering means the daemon died —
// killed, or out of memory (Stats then says which).
func (c *Conn) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.SSH.Ping(ctx); err != nil {
		return err
	}
	nc, err := c.SSH.DialUnix(ctx, c.Socket)
	if err != nil {
		return fmt.Errorf("buildkitd on %s is not answering: %w", c.Name, err)
	}
	return nc.Close()
}

// Client connects to buildkitd through the SSH connection.
func (c *Conn) Client(ctx context.Context) (*client.Client, error) {
	return c.SSH.BuildKit(ctx, c.Socket)
}

// Stats reads the machine's build cgroup in one SSH round trip; the peak is
// the highest seen by this connection (a reading never goes down).
func (c *Conn) Stats(ctx context.Context) (compute.Stats, error) {
	// A reading never holds up the build: bounded, like every remote call.
	ctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	out, err := c.SSH.Run(ctx, StatsCommand)
	if err != nil {
		return compute.Stats{}, err
	}
	s, err := ParseStats(string(out))
	if err != nil {
		return compute.Stats{}, fmt.Errorf("%s: %w", c.Name, err)
	}
	c.mu.Lock()
	c.peak = max(c.peak, s.MemoryPeak, s.MemoryBytes)
	s.MemoryPeak = c.peak
	c.mu.Unlock()
	return s, nil
}

// WaitBuildkitd waits until buildkitd answers through the connection,
// polling every poll.
func (c *Conn) WaitBuildkitd(ctx context.Context, poll time.Duration) error {
	for {
		bc, err := c.SSH.BuildKit(ctx, c.Socket)
		if err == nil {
			werr := bc.Wait(ctx)
			bc.Close()
			if werr == nil {
				return nil
			}
			err = werr
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("buildkitd on %s never answered (%v): %w", c.Name, err, ctx.Err())
		case <-time.After(poll):
		}
	}
}
