package pool_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/hcloud"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/events"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/pool"
	"github.com/lian-build/action/internal/testenv"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
	"github.com/lian-build/action/internal/testenv/link"
	"github.com/lian-build/action/internal/testenv/runnerhost"
	"github.com/lian-build/action/internal/testenv/vmhost"

	_ "github.com/lian-build/action/internal/compute/vmpool" // registers vm-pool
)

const (
	hcToken   = "hc-P00L-T0KEN-71"
	poolToken = "pool-BEARER-9d2f"
)

// world is a pool service on the fake Hetzner API (whose servers are
// runner hosts: a netns, sshd, buildkitd in a cgroup) and an embedded
// NATS, behind its HTTP API, and a pipeline on the vm-pool provider.
type world struct {
	hosts   *runnerhost.Hosts
	vms     *vmhost.Hosts     // VM runner hosts (cfg.vms), else nil
	dl      *vmhost.Downloads // what the VMs' user-data downloads
	arch    string            // the pool's one architecture
	links   *link.Hosts
	fake    *fakehcloud.Fake
	local   *local.Provider
	js      jetstream.JetStream
	natsURL string
	policy  pool.Policy
	handler http.Handler
	reg     *prometheus.Registry
	events  *events.Publisher
	logger  *slog.Logger
	svc     *pool.Service
	srv     *httptest.Server
	client  *pool.Client
	signer  ssh.Signer
	// insecure are the plain-HTTP registries the pool's servers may use.
	insecure []string
	pl       *pipeline.Pipeline
	prov     compute.Provider
	now      func() time.Time
	base     buildkit.NamedContext
	// sshTimeout is the services' (0: the default).
	sshTimeout time.Duration
}

type worldConfig struct {
	tierMemory map[string]int64
	policy     pool.Policy
	hosts      bool // runner hosts behind the servers (false: unroutable servers)
	// warm: builds ask for warm runner state (--state-store volumes).
	warm bool
	// link puts every server behind a shaped link (the pool's own SSH and
	// the builds' cross it).
	link *link.Preset
	// vms backs the servers with real VMs (x86, the memory in MiB per
	// server type): the real cloud-init, cgroup v2, a real boot.
	vms map[string]int
	// registry, when set, is a registry on this machine's loopback that
	// the runner hosts reach (and their buildkitd may use over plain HTTP).
	registry string
	// now is the services' clock (nil: time.Now).
	now func() time.Time
	// sshTimeout bounds the pool's SSH operations (0: the default).
	sshTimeout time.Duration
}

func newWorld(t testing.TB, cfg worldConfig) *world {
	w := &world{arch: "arm"}
	var hosts fakehcloud.Hosts
	if cfg.vms != nil {
		w.dl = testenv.RunnerDownloads(t)
		w.vms = testenv.VMHosts(t, w.dl.Port)
		w.vms.MemoryMiB = cfg.vms
		hosts, w.arch = w.vms, "x86"
	}
	if cfg.hosts {
		testenv.Require(t)
		testenv.StartSSHD(t)
		if _, err := exec.LookPath("ip"); err != nil {
			t.Fatal("iproute2 is needed for runner hosts")
		}
		opts := testenv.HostOptions(t, cfg.tierMemory)
		w.hosts = &runnerhost.Hosts{Options: opts, Dir: t.TempDir()}
		if cfg.registry != "" {
			_, port, _ := net.SplitHostPort(cfg.registry)
			n, _ := strconv.Atoi(port)
			w.hosts.Forward = []int{n}
			w.insecure = []string{cfg.registry}
		}
		hosts = w.hosts
		if cfg.link != nil {
			w.links = &link.Hosts{Hosts: w.hosts, Preset: *cfg.link}
			hosts = w.links
		}
		var err error
		if w.local, err = local.New(opts); err != nil {
			t.Fatal(err)
		}
	}
	w.fake = fakehcloud.New(hcToken, hosts)
	t.Cleanup(w.fake.Close)
	ns := testenv.StartNATS(t, true)
	w.natsURL = ns.ClientURL()
	var err error
	if w.js, err = jetstream.New(testenv.ConnectNATS(t, ns)); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	if w.signer, err = ssh.NewSignerFromKey(priv); err != nil {
		t.Fatal(err)
	}
	w.policy, w.now, w.sshTimeout = cfg.policy, cfg.now, cfg.sshTimeout
	w.svc = w.service(t, cfg.policy)
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { w.handler.ServeHTTP(rw, r) }))
	w.serve(w.svc)
	t.Cleanup(w.srv.Close)
	w.client = &pool.Client{URL: w.srv.URL, Token: poolToken}
	w.prov, err = compute.New("vm-pool", compute.Config{Options: map[string]string{"pool-url": w.srv.URL, "pool-token": poolToken}, Arch: w.arch})
	if err != nil {
		t.Fatal(err)
	}
	if w.pl, err = pipeline.New(pipeline.Config{Provider: w.prov, SpawnTimeout: w.leaseWait(), RemoteState: cfg.warm}); err != nil {
		t.Fatal(err)
	}
	if cfg.hosts || cfg.vms != nil {
		w.base, _ = buildkit.ParseNamedContext("base=oci-layout://" + testenv.BaseLayout(t))
	}
	return w
}

// serve puts svc behind the world's API, with its metrics at /metrics.
func (w *world) serve(svc *pool.Service) {
	w.handler = svc.Handler(pool.HandlerOptions{Token: poolToken, Timeout: w.leaseWait(), Gatherer: w.reg})
}

// leaseWait bounds a lease: a VM's real boot takes a minute under emulation.
func (w *world) leaseWait() time.Duration {
	if w.vms != nil {
		return 5 * time.Minute
	}
	return 2 * time.Minute
}

// useEvents replaces the world's service with one publishing its events
// on the NATS at url.
func (w *world) useEvents(t testing.TB, url string) {
	pub := events.New(events.Options{URL: url})
	t.Cleanup(pub.Close)
	w.events = pub
	w.svc = w.service(t, w.policy)
	w.serve(w.svc)
}

// service is a pool service (a replica) on the world's API, key and NATS.
func (w *world) service(t testing.TB, policy pool.Policy) *pool.Service {
	ctx := context.Background()
	hs := hcloud.Settings{Token: hcToken, Endpoint: w.fake.Endpoint(), PollEvery: 100 * time.Millisecond, Locations: []string{"fsn1"}, Insecure: w.insecure}
	if w.dl != nil {
		hs = w.dl.HCloud(hs)
	}
	hc, err := hcloud.New(hs)
	if err != nil {
		t.Fatal(err)
	}
	store, err := pool.OpenStore(ctx, w.js, "test")
	if err != nil {
		t.Fatal(err)
	}
	w.reg = prometheus.NewRegistry()
	opts := pool.Options{Name: "test", Policy: policy, Clouds: map[string]pool.Cloud{w.arch: hc}, Signer: w.signer,
		Store: store, Metrics: pool.NewMetrics(w.reg), WaitPoll: 50 * time.Millisecond}
	if w.events != nil {
		opts.Events = w.events
	}
	opts.Logger, opts.Now, opts.SSHTimeout = w.logger, w.now, w.sshTimeout
	svc, err := pool.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return svc
}

// build runs dockerfile through the pipeline on the vm-pool provider and
// waits for the pool to settle its returns (the provider returns leases
// asynchronously: commit and recycle follow the answer).
func (w *world) build(t *testing.T, dockerfile string, edit func(*pipeline.Request)) (pipeline.Result, error, string) {
	res, err, progress := testenv.BuildDockerfile(t, w.pl, dockerfile, edit)
	w.svc.Wait()
	return res, err, progress
}

// drainAndCheck retires every idle VM and checks nothing is left: no
// server, no key but the pool's own, no network namespace, no runner host.
func (w *world) drainAndCheck(t *testing.T) { w.drainAndCheckKeys(t, 1) }

// drainAndCheckKeys is drainAndCheck where keys pool keys are registered
// (one per service key: they stay, as a deploy key does).
func (w *world) drainAndCheckKeys(t *testing.T, keys int) {
	t.Helper()
	if _, err := w.client.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if vms, err := w.client.List(context.Background()); err != nil || len(vms) != 0 {
		t.Errorf("VMs left after drain: %+v %v", vms, err)
	}
	if s, k := w.fake.Counts(); s != 0 || k != keys {
		t.Errorf("left %d servers and %d keys (want 0 and the pools' own %d)", s, k, keys)
	}
	if w.local != nil {
		testenv.AssertNoRunnerHosts(t, w.local)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
