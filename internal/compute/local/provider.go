// Package local is the embedded compute provider: one buildkitd process per
// lease on this machine, with its own state dir, socket and buildkitd.toml,
// RUN containers confined to a cgroup sized to the tier.
package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/nosync"
	"github.com/lian-build/action/internal/proc"
	"github.com/lian-build/action/internal/sizing"
	"github.com/moby/buildkit/client"
)

// Options configures the local provider.
type Options struct {
	// Buildkitd is the buildkitd binary (default: "buildkitd" on PATH).
	Buildkitd string
	// StateDir holds one directory per runner (default /var/lib/lian-build/runners).
	StateDir string
	// TierMemory overrides the memory limit of tiers, in bytes (for tests and small machines).
	TierMemory map[string]int64
	// InsecureRegistries are HOST:PORT registries reached over plain HTTP.
	InsecureRegistries []string
	// CgroupRoot is where cgroups are mounted (default /sys/fs/cgroup).
	CgroupRoot string
	// Table is the tier table (default sizing.HCloud).
	Table sizing.Table
	// ReadyTimeout bounds the wait for buildkitd to answer (default 60s).
	ReadyTimeout time.Duration
	// DaemonInCgroup puts buildkitd itself into the lease's cgroup, beside
	// its RUN steps: the cgroup then stands for a whole machine of the
	// tier's size, where the kernel may kill the daemon too (the runner
	// hosts of the fake Hetzner API).
	DaemonInCgroup bool
}

// DefaultStateDir is where runners live unless configured.
const DefaultStateDir = "/var/lib/lian-build/runners"

// cgroupPrefix is the parent of every lease's cgroup.
const cgroupPrefix = "lian-build"

// Provider is the local compute provider.
type Provider struct{ opts Options }

// New validates opts and returns a provider. It needs root, buildkitd and runc.
func New(opts Options) (*Provider, error) {
	if opts.Buildkitd == "" {
		opts.Buildkitd = DefaultBuildkitd()
	}
	bk, err := exec.LookPath(opts.Buildkitd)
	if err != nil {
		return nil, fmt.Errorf("local provider: buildkitd not found (%s); run `make tools` or pass --buildkitd: %w", opts.Buildkitd, err)
	}
	opts.Buildkitd = bk
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, fmt.Errorf("local provider: runc not found on PATH (apt-get install runc): %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("local provider: needs root (buildkitd with the OCI worker and cgroup limits)")
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.CgroupRoot == "" {
		opts.CgroupRoot = cgroupRoot
	}
	if opts.Table == nil {
		opts.Table = sizing.HCloud
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	for name := range opts.TierMemory {
		if _, err := opts.Table.Lookup(name); err != nil {
			return nil, fmt.Errorf("local provider: tier memory: %w", err)
		}
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("local provider: state dir: %w", err)
	}
	return &Provider{opts: opts}, nil
}

func (p *Provider) Name() string        { return "local" }
func (p *Provider) Tiers() sizing.Table { return p.opts.Table }

// MemoryLimit is the cgroup memory limit a tier gets.
func (p *Provider) MemoryLimit(t sizing.Tier) int64 {
	if n, ok := p.opts.TierMemory[t.Name]; ok {
		return n
	}
	return int64(t.MemoryGB) << 30
}

// Spawn starts a buildkitd for the lease and waits until it answers.
func (p *Provider) Spawn(ctx context.Context, tier sizing.Tier, lease compute.Lease) (compute.Runner, error) {
	if err := validLeaseID(lease.ID); err != nil {
		return nil, err
	}
	if lease.RemoteState != nil {
		return nil, errors.New("local provider: its runner state is a state store's clone (Lease.State), not provider-kept state")
	}
	dir := filepath.Join(p.opts.StateDir, lease.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("local provider: runner dir: %w", err)
	}
	created := time.Now()
	r := &runner{
		tier:   tier.Name,
		limit:  p.MemoryLimit(tier),
		id:     lease.ID,
		dir:    dir,
		socket: filepath.Join(dir, "buildkitd.sock"),
		cg:     detectCgroup(p.opts.CgroupRoot, cgroupPrefix+"/"+lease.ID),
		exited: make(chan struct{}),
	}
	fail := func(err error) (compute.Runner, error) {
		derr := r.Destroy(context.WithoutCancel(ctx))
		return nil, errors.Join(err, derr)
	}
	if err := r.cg.create(p.MemoryLimit(tier), tier.CPU); err != nil {
		return fail(fmt.Errorf("local provider: %w", err))
	}
	root := filepath.Join(dir, "state")
	if lease.State != "" {
		root, r.state = lease.State, lease.State
	}
	cfg := filepath.Join(dir, "buildkitd.toml")
	if err := os.WriteFile(cfg, []byte(BuildkitdConfig(root, r.socket, r.cg.rel, p.opts.InsecureRegistries)), 0o600); err != nil {
		return fail(err)
	}
	logf, err := os.Create(filepath.Join(dir, "buildkitd.log"))
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	// Not exec.CommandContext: the daemon lives as long as the runner, not the spawn call.
	cmd := exec.Command(p.opts.Buildkitd, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a Ctrl-C in the terminal reaches lian-build, which destroys in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	filterErr, err := nosync.Start(cmd)
	if err != nil {
		return fail(fmt.Errorf("local provider: start buildkitd: %w", err))
	}
	if filterErr != nil {
		fmt.Fprintf(logf, "lian-build: buildkitd keeps its fsyncs: %v\n", filterErr)
	}
	r.pid = cmd.Process.Pid
	go func() { r.waitErr = cmd.Wait(); close(r.exited) }()
	if p.opts.DaemonInCgroup {
		if err := r.cg.adopt(r.pid); err != nil {
			return fail(fmt.Errorf("local provider: %w", err))
		}
	}
	booted := time.Now()

	now := time.Now()
	rec := leaseRecord{
		ID: lease.ID, Tier: tier.Name, PID: r.pid, OwnerPID: os.Getpid(),
		CgroupParent: r.cg.rel, Socket: r.socket, State: r.state, Created: now, Labels: lease.Labels,
	}
	rec.OwnerStart, _ = proc.Start(os.Getpid())
	rec.DaemonStart, _ = proc.Start(r.pid)
	r.start = rec.DaemonStart
	if lease.TTL > 0 {
		rec.Expires = now.Add(lease.TTL)
	}
	if err := writeLease(dir, rec); err != nil {
		return fail(err)
	}

	if err := r.waitReady(ctx, p.opts.ReadyTimeout); err != nil {
		return fail(err)
	}
	// Create: the cgroup and the config; boot: the daemon started; ready: it answers.
	r.spawn = compute.SpawnTimes{CreateMS: booted.Sub(created).Milliseconds(), ReadyMS: time.Since(booted).Milliseconds()}
	r.created = created
	return r, nil
}

func validLeaseID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\\. ") || len(id) > 64 {
		return fmt.Errorf("local provider: invalid lease id %q", id)
	}
	return nil
}

type runner struct {
	tier            string
	limit           int64
	created         time.Time
	spawn           compute.SpawnTimes
	id, dir, socket string
	state           string // buildkitd's root outside dir (a lease's state clone), or ""
	cg              cgroup
	pid             int
	start           uint64
	exited          chan struct{}
	waitErr         error

	once       sync.Once
	destroyErr error

	mu   sync.Mutex
	peak uint64 // running high-water mark (the cgroup's is reset at each reading)
}

func (r *runner) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Stop waiting as soon as the daemon dies instead of at the timeout.
	go func() {
		select {
		case <-r.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := waitForSocket(ctx, r.socket)
	var c *client.Client
	if err == nil {
		c, err = client.New(ctx, "unix://"+r.socket)
	}
	if err == nil {
		defer c.Close()
		err = c.Wait(ctx)
	}
	if err == nil {
		return nil
	}
	select {
	case <-r.exited:
		return fmt.Errorf("local provider: buildkitd exited before it was ready (%v):\n%s", r.waitErr, r.logTail(20))
	default:
	}
	return fmt.Errorf("local provider: buildkitd not ready: %w\n%s", err, r.logTail(20))
}

func (r *runner) logTail(n int) string {
	b, err := os.ReadFile(filepath.Join(r.dir, "buildkitd.log"))
	if err != nil {
		return ""
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (r *runner) Info() compute.RunnerInfo {
	return compute.RunnerInfo{
		ID: r.id, Provider: "local", Tier: r.tier, Server: fmt.Sprintf("buildkitd pid %d", r.pid),
		Type: fmt.Sprintf("cgroup memory %d MiB", r.limit>>20), Location: "this machine", Address: "unix://" + r.socket,
		Owner: fmt.Sprintf("pid %d", os.Getpid()), Created: r.created, Spawn: r.spawn,
	}
}

func (r *runner) Health(context.Context) error {
	select {
	case <-r.exited:
		return fmt.Errorf("buildkitd (pid %d) exited: %v", r.pid, r.waitErr)
	default:
		return nil
	}
}

func (r *runner) Client(ctx context.Context) (*client.Client, error) {
	return client.New(ctx, "unix://"+r.socket)
}

func (r *runner) Stats(ctx context.Context) (compute.Stats, error) {
	if err := ctx.Err(); err != nil {
		return compute.Stats{}, err
	}
	s, err := r.cg.stats()
	if err != nil {
		return compute.Stats{}, fmt.Errorf("local runner %s: %w", r.id, err)
	}
	r.mu.Lock()
	r.peak = max(r.peak, s.peak, s.mem)
	peak := r.peak
	r.mu.Unlock()
	return compute.Stats{Time: time.Now(), MemoryBytes: s.mem, MemoryPeak: peak, IntervalPeak: s.intervalPeak, CPUUsageNanos: s.cpuNanos, OOMKills: s.oomKills}, nil
}

// Destroy stops buildkitd and removes its cgroup, mounts and state. ctx bounds
// the wait for a graceful stop; removal itself always runs.
func (r *runner) Destroy(ctx context.Context) error {
	r.once.Do(func() { r.destroyErr = destroy(ctx, r.dir, r.state, r.pid, r.start, r.cg) })
	return r.destroyErr
}

// destroy is shared by Runner.Destroy and the reaper. A state root outside
// the runner dir is unmounted under, never removed: it belongs to the
// state store, which commits or discards it.
func destroy(ctx context.Context, dir, state string, pid int, start uint64, cg cgroup) error {
	grace := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		grace = min(grace, time.Until(dl))
	}
	killWait(pid, start, grace)
	var errs []error
	if proc.Alive(pid, start) {
		errs = append(errs, fmt.Errorf("buildkitd pid %d did not exit", pid))
	}
	if err := cg.remove(); err != nil {
		errs = append(errs, err)
	}
	for _, d := range []string{dir, state} {
		if d == "" {
			continue
		}
		if err := unmountUnder(d); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("destroy runner %s: %w", filepath.Base(dir), err)
	}
	return nil
}

// unmountUnder detaches every mount below dir that a killed buildkitd left behind.
func unmountUnder(dir string) error {
	all, err := readMounts()
	if err != nil {
		return err
	}
	prefix := filepath.Clean(dir) + "/"
	var mounts []string
	for _, m := range all {
		if strings.HasPrefix(m.point+"/", prefix) {
			mounts = append(mounts, m.point)
		}
	}
	var errs []error
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mounts[i], err))
		}
	}
	return errors.Join(errs...)
}

// DefaultBuildkitd is buildkitd on PATH, else the one installed next to the
// running binary (as the release images and make tools lay them out).
func DefaultBuildkitd() string {
	if _, err := exec.LookPath("buildkitd"); err == nil {
		return "buildkitd"
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "buildkitd"); fileExists(p) {
			return p
		}
	}
	return "buildkitd"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
