package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/sshx"
)

// DefaultSocket is buildkitd's socket on a runner machine.
const DefaultSocket = "/run/buildkit/buildkitd.sock"

// LeaseDial is what a pool lease's key asks for to reach buildkitd: its
// forced command bridges it with `buildctl dial-stdio` (the key forwards
// no socket).
const LeaseDial = "dial-stdio"

// statsTimeout bounds one counters reading over SSH.
const statsTimeout = 3 * time.Second

// Conn is a runner machine over one SSH connection: the compute.Runner
// methods a provider's runner shares (it adds Info and Destroy).
type Conn struct {
	SSH    *sshx.Conn
	Socket string // buildkitd's socket on the machine
	Name   string // the machine, in errors ("server lb-1-a1")
	// Dial, when set, is the command that bridges to buildkitd (a key that
	// may forward no socket: LeaseDial); else the socket is forwarded.
	Dial string

	mu   sync.Mutex
	peak uint64
}

// Health is the SSH connection's (lost, or the machine not answering) and
// then buildkitd's: its socket no longer answering means the daemon died —
// killed, or out of memory (Stats then says which).
func (c *Conn) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.SSH.Ping(ctx); err != nil {
		return err
	}
	var nc net.Conn
	var err error
	if c.Dial != "" {
		nc, err = c.SSH.DialCommand(ctx, c.Dial)
		if err == nil {
			// The bridge runs once it reached the socket: a byte or EOF says.
			err = probe(nc)
		}
	} else {
		nc, err = c.SSH.DialUnix(ctx, c.Socket)
	}
	if err != nil {
		if nc != nil {
			nc.Close()
		}
		return fmt.Errorf("buildkitd on %s is not answering: %w", c.Name, err)
	}
	return nc.Close()
}

// Client connects to buildkitd through the SSH connection.
func (c *Conn) Client(ctx context.Context) (*client.Client, error) {
	if c.Dial != "" {
		return c.SSH.BuildKitCommand(ctx, c.Dial)
	}
	return c.SSH.BuildKit(ctx, c.Socket)
}

// probe checks a dial-stdio bridge reached buildkitd: the HTTP/2 preface
// gets an answer (a SETTINGS frame) from a daemon that is there.
func probe(nc net.Conn) error {
	if _, err := nc.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
		return err
	}
	b := make([]byte, 1)
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(nc, b); done <- err }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		return errors.New("no answer through buildctl dial-stdio")
	}
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
		bc, err := c.Client(ctx)
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
