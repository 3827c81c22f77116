package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
	dclient "github.com/moby/moby/client"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/remote"
)

type runner struct {
	p       *Provider
	lease   compute.Lease
	tier    string
	limit   int64
	name    string
	id      string // the container
	volume  string
	created time.Time
	spawn   compute.SpawnTimes

	mu       sync.Mutex
	peak     uint64
	last     compute.Stats
	oomSeen  bool // the engine said the container was OOM-killed
	once     sync.Once
	errDestr error
}

const socket = "/run/buildkit/buildkitd.sock"

var dialStdio = []string{"buildctl", "--addr", "unix://" + socket, "dial-stdio"}

func (r *runner) Info() compute.RunnerInfo {
	return compute.RunnerInfo{ID: r.lease.ID, Provider: "docker", Tier: r.tier, Server: "container " + r.name + " (" + short(r.id) + ")",
		Type: fmt.Sprintf("container memory %d MiB", r.limit>>20), Location: r.p.c.DaemonHost(), Address: "docker-exec://" + r.name + socket,
		Owner: r.lease.Owner, Created: r.created, Expires: r.lease.Expires(r.created), Spawn: r.spawn}
}

// Client connects to buildkitd through `buildctl dial-stdio` in the container.
func (r *runner) Client(ctx context.Context) (*client.Client, error) {
	return client.New(ctx, "", client.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return execAttach(ctx, r.p.c, r.id, dialStdio)
	}))
}

func (r *runner) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.p.s.ReadyTimeout)
	defer cancel()
	var last error
	for {
		if err := r.Health(ctx); err != nil && !errors.Is(err, errNotYet) {
			return fmt.Errorf("docker: buildkitd in %s: %w", r.name, err)
		}
		_, err := execOutput(ctx, r.p.c, r.id, []string{"buildctl", "--addr", "unix://" + socket, "debug", "workers"})
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("docker: buildkitd in %s never answered (%v): %w", r.name, last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var errNotYet = errors.New("not running yet")

// Health is the container's: it must run; an exit says why (out of memory,
// its exit code).
func (r *runner) Health(ctx context.Context) error {
	in, err := r.p.c.ContainerInspect(ctx, r.id, dclient.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("container %s is gone: %w", r.name, err)
	}
	st := in.Container.State
	if st == nil {
		return errNotYet
	}
	if st.OOMKilled {
		r.mu.Lock()
		r.oomSeen = true
		r.mu.Unlock()
	}
	switch {
	case st.Running:
		return nil
	case st.OOMKilled:
		return fmt.Errorf("buildkitd in container %s was killed for memory (OOMKilled, exit %d)", r.name, st.ExitCode)
	case st.Status == "created":
		return errNotYet
	}
	return fmt.Errorf("buildkitd in container %s exited (%s, exit %d) %s", r.name, st.Status, st.ExitCode, st.Error)
}

// Stats reads the container's cgroup from inside it (remote.StatsCommand;
// the boot script's runner.env points it at the container's own cgroup).
// A container the kernel killed for memory cannot be asked: the engine's
// OOMKilled counts as one kill more than the last reading.
func (r *runner) Stats(ctx context.Context) (compute.Stats, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out, err := execOutput(ctx, r.p.c, r.id, []string{"/bin/sh", "-c", remote.StatsCommand})
	var s compute.Stats
	if err == nil {
		s, err = remote.ParseStats(string(out))
	}
	var herr error
	if err != nil {
		herr = r.Health(context.WithoutCancel(ctx)) // notes an OOM kill
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if r.oomSeen {
			s = r.last
			s.Time, s.OOMKills = time.Now(), r.last.OOMKills+1
			return s, nil
		}
		if herr != nil {
			err = herr
		}
		return compute.Stats{}, fmt.Errorf("docker runner %s: %w", r.lease.ID, err)
	}
	r.peak = max(r.peak, s.MemoryPeak, s.MemoryBytes)
	s.MemoryPeak = r.peak
	r.last = s
	return s, nil
}

// Destroy removes the container (killing it) and its volume, and confirms
// both are gone. It is safe to call twice.
func (r *runner) Destroy(ctx context.Context) error {
	r.once.Do(func() { r.errDestr = r.p.remove(ctx, r.id, r.volume) })
	return r.errDestr
}
