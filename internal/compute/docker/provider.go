// Package docker is the docker-local compute provider: one BuildKit
// container per lease on a Docker Engine (the local one, or DOCKER_HOST),
// limited to the tier's memory and CPUs, its state in a volume of its own,
// labelled as lian-build's and always removed — what buildx's
// docker-container driver gives, without root on the host.
package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/redact"
	"github.com/lian-build/action/internal/sizing"
)

// DefaultImage is the pinned upstream BuildKit image; `make buildkit-image`
// makes one here without a registry (ImportImage).
const DefaultImage = "moby/buildkit:v0.34.2"

// LocalImage is the name `make buildkit-image` gives the image it makes.
const LocalImage = "lian-build/buildkit:v0.34.2-local"

// Settings are the provider's typed settings.
type Settings struct {
	Host       string // Engine API address; "" is DOCKER_HOST or the local socket
	Image      string
	Network    string           // the containers' network ("" the engine's default)
	TierMemory map[string]int64 // bytes per tier; absent: the tier's table memory
	Insecure   []string         // plain-HTTP registries
	// ReadyTimeout bounds buildkitd's start in its container.
	ReadyTimeout time.Duration
}

// Provider makes BuildKit containers.
type Provider struct {
	s       Settings
	c       *client.Client
	secrets []string // of the engine's URL, hidden in errors

	mu   sync.Mutex
	ncpu int // the engine's CPUs, asked once
}

// New makes the engine's client; the engine is first asked at the first spawn.
func New(s Settings) (*Provider, error) {
	if s.Image == "" {
		s.Image = DefaultImage
	}
	if s.ReadyTimeout <= 0 {
		s.ReadyTimeout = time.Minute
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if s.Host != "" {
		opts = append(opts, client.WithHost(s.Host))
	}
	p := &Provider{s: s, secrets: redact.Secrets(s.Host)}
	c, err := client.New(opts...)
	if err != nil {
		return nil, &compute.OptionError{Option: OptHost, Err: p.scrub(err)}
	}
	p.c = c
	return p, nil
}

// scrub hides the credentials of the engine's URL in an error (the
// engine's client quotes the URL whole).
func (p *Provider) scrub(err error) error { return redact.Err(err, p.secrets...) }

// cpus is how many CPUs the engine has: a container may not ask for more.
func (p *Provider) cpus(ctx context.Context) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ncpu == 0 {
		info, err := p.c.Info(ctx, client.InfoOptions{})
		if err != nil {
			return 0, fmt.Errorf("docker: the engine at %s does not answer: %w", p.c.DaemonHost(), err)
		}
		p.ncpu = max(info.Info.NCPU, 1)
	}
	return p.ncpu, nil
}

func (p *Provider) Name() string        { return "docker" }
func (p *Provider) Tiers() sizing.Table { return sizing.HCloud }
func (p *Provider) Note() string        { return "" }

// Close releases the engine connection.
func (p *Provider) Close() error { return p.c.Close() }

// memory is the container's memory limit for a tier.
func (p *Provider) memory(t sizing.Tier) int64 {
	if m, ok := p.s.TierMemory[t.Name]; ok {
		return m
	}
	return int64(t.MemoryGB) << 30
}

// Spawn makes the lease's volume and container, starts it and waits until
// buildkitd answers; whatever it made is removed when a step fails.
func (p *Provider) Spawn(ctx context.Context, tier sizing.Tier, lease compute.Lease) (_ compute.Runner, err error) {
	defer func() { err = p.scrub(err) }()
	if err := compute.RefuseState("docker", lease); err != nil {
		return nil, err
	}
	ncpu, cerr := p.cpus(ctx)
	if cerr != nil {
		return nil, cerr
	}
	start := time.Now()
	labels := lease.LabelSet(start)
	labels[labelProvider] = "docker"
	r := &runner{p: p, lease: lease, tier: tier.Name, limit: p.memory(tier), name: "lian-build-" + lease.ID}
	fail := func(err error) (compute.Runner, error) {
		return nil, errors.Join(err, r.Destroy(context.WithoutCancel(ctx)))
	}
	vol, err := p.c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: r.name, Labels: labels})
	if err != nil {
		return fail(fmt.Errorf("docker: create volume: %w", err))
	}
	r.volume = vol.Volume.Name
	cpus := min(tier.CPU, ncpu)
	res, err := p.c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: r.name,
		Config: &container.Config{Image: p.s.Image, Labels: labels, Entrypoint: []string{"/bin/sh", "-c", bootScript(p.s.Insecure)},
			Cmd: []string{}},
		HostConfig: &container.HostConfig{
			Resources: container.Resources{Memory: r.limit, MemorySwap: r.limit, NanoCPUs: int64(cpus) * 1e9},
			// Not --privileged (refused where the host lacks CAP_SYS_RESOURCE):
			// every capability but that one, as buildkitd and runc need.
			CapAdd: []string{"ALL"}, CapDrop: []string{"SYS_RESOURCE"},
			SecurityOpt: []string{"seccomp=unconfined", "apparmor=unconfined"},
			NetworkMode: container.NetworkMode(p.s.Network),
			Mounts:      []mount.Mount{{Type: mount.TypeVolume, Source: r.volume, Target: "/var/lib/buildkit"}},
		},
	})
	if err != nil {
		return fail(fmt.Errorf("docker: create container from %s: %w", p.s.Image, err))
	}
	r.id = res.ID
	created := time.Now()
	if _, err := p.c.ContainerStart(ctx, r.id, client.ContainerStartOptions{}); err != nil {
		return fail(fmt.Errorf("docker: start container: %w", err))
	}
	booted := time.Now()
	if err := r.waitReady(ctx); err != nil {
		return fail(err)
	}
	r.created = start
	r.spawn = compute.SpawnTimes{CreateMS: created.Sub(start).Milliseconds(), BootMS: booted.Sub(created).Milliseconds(), ReadyMS: time.Since(booted).Milliseconds()}
	return r, nil
}

// bootScript starts buildkitd in the container. The engine mounts the
// cgroup tree read-only in a container that is not privileged; runc, which
// buildkitd runs for RUN steps, creates cgroups under the container's, so
// the script remounts it writable (CAP_SYS_ADMIN, the container's own mount
// namespace). runner.env points the counters at the container's own cgroup.
func bootScript(insecure []string) string {
	var reg strings.Builder
	for _, r := range insecure {
		fmt.Fprintf(&reg, "[registry.%q]\n  http = true\n  insecure = true\n", r)
	}
	return `set -e
mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$d" 2>/dev/null || mount -o remount,rw "$d" 2>/dev/null || true; done
mkdir -p /run/buildkit /run/lian-build
echo 'B=.' > /run/lian-build/runner.env
cat > /run/buildkit/buildkitd.toml <<'LIAN_TOML'
root = "/var/lib/buildkit"
[grpc]
  address = ["unix:///run/buildkit/buildkitd.sock"]
[worker.oci]
  enabled = true
  gc = false
[worker.containerd]
  enabled = false
` + reg.String() + `LIAN_TOML
exec buildkitd --config /run/buildkit/buildkitd.toml
`
}
