package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
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

	// Kernel and CgroupVersion are the machine's, found once it is ready.
	Kernel        string
	CgroupVersion int

	mu       sync.Mutex
	peak     uint64
	baseline *compute.Stats // read as buildkitd first answered
	// spare is the client WaitReady reached buildkitd with: the next
	// Client call takes it rather than dial again.
	spare *client.Client
	// unreachable: a new connection could not be made (afterLoss).
	unreachable error
}

// Close closes the client no one took and the SSH connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	spare := c.spare
	c.spare = nil
	c.mu.Unlock()
	if spare != nil {
		_ = spare.Close()
	}
	return c.SSH.Close()
}

// Describe adds what the connection found about the machine to a
// runner's info.
func (c *Conn) Describe(i *compute.RunnerInfo) {
	i.Kernel, i.CgroupVersion = c.Kernel, c.CgroupVersion
}

// Health is the SSH connection's (lost, or the machine not answering) and
// then buildkitd's: its socket no longer answering means the daemon died —
// killed, or out of memory (Stats then says which). A machine that does
// not answer on the connection is asked about buildkitd on a new one
// (afterLoss).
func (c *Conn) Health(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.SSH.Ping(pctx); err != nil {
		// The connection's loss stays the answer; a new one adds whether
		// buildkitd died (an OOM's sign, Stats reads the counters).
		return errors.Join(err, c.afterLoss(ctx, func(fresh *sshx.Conn) error { return c.daemonAnswers(ctx, fresh) }))
	}
	return c.daemonAnswers(pctx, c.SSH)
}

// daemonAnswers reaches buildkitd over s.
func (c *Conn) daemonAnswers(ctx context.Context, s *sshx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var nc net.Conn
	var err error
	if c.Dial != "" {
		nc, err = s.DialCommand(ctx, c.Dial)
		if err == nil {
			// The bridge runs once it reached the socket: a byte or EOF says.
			err = probe(nc)
		}
	} else {
		nc, err = s.DialUnix(ctx, c.Socket)
	}
	if err != nil {
		if nc != nil {
			nc.Close()
		}
		return fmt.Errorf("buildkitd on %s is not answering: %w", c.Name, err)
	}
	return nc.Close()
}

// lostRedialTimeout bounds afterLoss: a TCG guest on a loaded machine,
// thrashing at its memory limit, went 20+ s without answering.
const lostRedialTimeout = 60 * time.Second

// afterLoss runs fn over a new connection to the machine, when the
// connection's own answer did not come: a guest thrashing at its memory
// limit misses keep-alives for tens of seconds and then answers, and what
// it says then (buildkitd's death, the OOM counters) tells an OOM from a
// lost machine. A redial that failed on its own (not for ctx) ends the
// tries for this connection: a machine that is gone is waited for once.
func (c *Conn) afterLoss(ctx context.Context, fn func(*sshx.Conn) error) error {
	c.mu.Lock()
	gone := c.unreachable
	c.mu.Unlock()
	if gone != nil {
		return gone
	}
	rctx, cancel := context.WithTimeout(ctx, lostRedialTimeout)
	defer cancel()
	fresh, err := c.SSH.Redial(rctx)
	if err != nil {
		if ctx.Err() == nil {
			c.mu.Lock()
			c.unreachable = fmt.Errorf("%s: no new connection either: %w", c.Name, err)
			gone = c.unreachable
			c.mu.Unlock()
			return gone
		}
		return err
	}
	defer fresh.Close()
	return fn(fresh)
}

// Client connects to buildkitd through the SSH connection.
func (c *Conn) Client(ctx context.Context) (*client.Client, error) {
	c.mu.Lock()
	spare := c.spare
	c.spare = nil
	c.mu.Unlock()
	if spare != nil {
		return spare, nil
	}
	if c.Dial != "" {
		return c.SSH.BuildKitCommand(ctx, c.Dial)
	}
	return c.SSH.BuildKit(ctx, c.Socket)
}

// ListenOnRunner is a listener on the machine's loopback that reaches
// this process (compute.ContextStreamer): a remote forward over the SSH
// connection.
func (c *Conn) ListenOnRunner(ctx context.Context) (net.Listener, error) {
	ln, err := c.SSH.ListenLoopback(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s forwards no port to this machine: %w", c.Name, err)
	}
	return ln, nil
}

var _ compute.ContextStreamer = (*Conn)(nil)

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
func (c *Conn) Stats(parent context.Context) (compute.Stats, error) {
	// A reading never holds up the build: bounded, like every remote call
	// (a lost connection's reading waits for a new one: afterLoss).
	ctx, cancel := context.WithTimeout(parent, statsTimeout)
	defer cancel()
	out, err := c.SSH.Run(ctx, StatsCommand)
	if err != nil && c.SSH.Err() != nil {
		err = c.afterLoss(parent, func(fresh *sshx.Conn) error {
			rctx, cancel := context.WithTimeout(parent, statsTimeout)
			defer cancel()
			out, err = fresh.Run(rctx, StatsCommand)
			return err
		})
	}
	if err != nil {
		return compute.Stats{}, err
	}
	s, err := ParseStats(string(out))
	if err != nil {
		return compute.Stats{}, fmt.Errorf("%s: %w", c.Name, err)
	}
	return c.record(s), nil
}

// record carries a reading's peak over the readings before it.
func (c *Conn) record(s compute.Stats) compute.Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peak = max(c.peak, s.MemoryPeak, s.MemoryBytes)
	s.MemoryPeak = c.peak
	return s
}

// WaitReady waits until buildkitd answers through the connection, polling
// every poll, then reads the machine's kernel and cgroup version. While it
// waits it watches cloud-init: a boot whose cloud-init finished with errors
// (a download that does not match its pin, a package that cannot be
// installed, no network) will never start buildkitd, and is a *BootError
// quoting the end of cloud-init's output at once, not a timeout.
func (c *Conn) WaitReady(ctx context.Context, poll time.Duration) error {
	// The machine and its counters are read while buildkitd is reached.
	known := c.Kernel != "" && c.CgroupVersion != 0
	probed := make(chan machineProbe, 1)
	go func() { probed <- c.readMachine(ctx) }()
	lastBoot := time.Time{}
	for first := true; ; first = false {
		err := c.answers(ctx)
		if err == nil {
			p := <-probed
			if p.err != nil && !known {
				p, first = c.readMachine(ctx), true // once more: it may have run before the machine was up
			}
			return c.keep(p, known, first)
		}
		if time.Since(lastBoot) >= bootCheckEvery {
			lastBoot = time.Now()
			if berr := c.bootFailed(ctx); berr != nil {
				<-probed
				return berr
			}
		}
		select {
		case <-ctx.Done():
			<-probed
			return fmt.Errorf("buildkitd on %s never answered (%v): %w", c.Name, err, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// answers is one try to reach buildkitd, bounded: BuildKit's Wait would
// wait for as long as ctx lets it, and cloud-init is watched in between.
// The client that reached it is kept for the build.
func (c *Conn) answers(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, bootCheckEvery*3)
	defer cancel()
	bc, err := c.Client(wctx)
	if err != nil {
		return err
	}
	if err := bc.Wait(wctx); err != nil {
		bc.Close()
		return err
	}
	c.mu.Lock()
	c.spare = bc
	c.mu.Unlock()
	return nil
}

// bootCheckEvery is how often WaitReady looks at cloud-init's result.
const bootCheckEvery = 2 * time.Second

// BootError is a machine whose cloud-init finished with errors.
type BootError struct {
	Name   string
	Errors []string // cloud-init's, from /run/cloud-init/result.json
	Output string   // the end of /var/log/cloud-init-output.log
}

func (e *BootError) Error() string {
	return fmt.Sprintf("cloud-init failed on %s (%s); the end of /var/log/cloud-init-output.log:\n%s", e.Name, strings.Join(e.Errors, "; "), e.Output)
}

// bootCheck prints cloud-init's result once its last stage has run, and
// then the end of its output.
const bootCheck = `[ -f /run/cloud-init/result.json ] || exit 0; cat /run/cloud-init/result.json; echo; echo '== output'; tail -n 20 /var/log/cloud-init-output.log 2>/dev/null`

// bootFailed reads cloud-init's result: a *BootError when it finished with
// errors, nil while it runs, when it succeeded, or on a machine without it.
func (c *Conn) bootFailed(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	out, err := c.SSH.Run(ctx, bootCheck)
	if err != nil {
		return nil
	}
	return ParseBootResult(c.Name, string(out))
}

// ParseBootResult reads bootCheck's output.
func ParseBootResult(name, out string) error {
	result, output, _ := strings.Cut(out, "\n== output\n")
	var r struct {
		V1 struct {
			Errors []any `json:"errors"`
		} `json:"v1"`
	}
	if strings.TrimSpace(result) == "" || json.Unmarshal([]byte(result), &r) != nil || len(r.V1.Errors) == 0 {
		return nil
	}
	e := &BootError{Name: name, Output: strings.TrimRight(output, "\n")}
	for _, x := range r.V1.Errors {
		e.Errors = append(e.Errors, fmt.Sprint(x))
	}
	return e
}

// readMachine reads the machine's kernel release, which cgroup tree it
// mounts and the build cgroup's counters, through the counters' command
// (all a pool lease's key may run).
func (c *Conn) readMachine(ctx context.Context) machineProbe {
	ctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	out, err := c.SSH.Run(ctx, StatsCommand)
	if err != nil {
		return machineProbe{err: fmt.Errorf("%s: read its kernel: %w", c.Name, err)}
	}
	var p machineProbe
	if p.kernel, p.cgroupVersion, err = ParseMachine(string(out)); err != nil {
		return machineProbe{err: fmt.Errorf("%s: %w", c.Name, err)}
	}
	p.stats, p.statsErr = ParseStats(string(out))
	return p
}

// machineProbe is one reading of the machine and its counters.
type machineProbe struct {
	kernel        string
	cgroupVersion int
	stats         compute.Stats
	statsErr      error
	err           error
}

// keep takes what a probe read: the machine unless the connection knew it,
// and the counters as the build's baseline when they were read as
// buildkitd first answered (fresh), not during a boot long before.
func (c *Conn) keep(p machineProbe, known, fresh bool) error {
	if p.err != nil {
		if known {
			return nil
		}
		return p.err
	}
	if !known {
		c.Kernel, c.CgroupVersion = p.kernel, p.cgroupVersion
	}
	if fresh && p.statsErr == nil {
		s := c.record(p.stats)
		c.mu.Lock()
		c.baseline = &s
		c.mu.Unlock()
	}
	return nil
}

// Baseline is the counters read as buildkitd first answered, before any
// build (compute.Baseliner): a build needs no reading of its own to start.
func (c *Conn) Baseline() (compute.Stats, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.baseline == nil {
		return compute.Stats{}, false
	}
	return *c.baseline, true
}
