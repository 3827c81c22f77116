package gateway

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/testenv"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
	"github.com/lian-build/action/internal/testenv/runnerhost"
)

const (
	soakHCToken   = "hc-S0AK-T0KEN-33"
	soakPoolToken = "pool-S0AK-BEARER-81"
	// soakDockerfile's last step runs long enough for faults to land in it.
	soakDockerfile = "FROM base\nRUN echo deps > /deps\nCOPY app.txt /app.txt\nRUN cat /app.txt && sleep 2\n"
)

// system is the whole of lian-build as an operator runs it, each part a
// process of its own: three gateway replicas and two pool replicas on a
// three-node JetStream cluster; the fake Hetzner API, whose servers are
// runner hosts (netns, sshd, buildkitd in a cgroup) reaching the test
// registry; the fake GitHub with its git server.
type system struct {
	t        *testing.T
	dir      string
	nats     *testenv.NATSCluster
	gh       *fakeGitHub
	git      *gitServer
	reg      *testenv.Registry
	hosts    *runnerhost.Hosts
	local    *local.Provider // the hosts' buildkitds, to find any left
	fake     *fakehcloud.Fake
	pools    []*testenv.Process
	gateways []*testenv.Process
	// prom scrapes every replica and evaluates deploy/'s alerting rules.
	prom *testenv.Prometheus
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// startSystem starts every part; everything ends with the test.
func startSystem(t *testing.T) *system {
	testenv.Require(t)
	testenv.StartSSHD(t)
	s := &system{t: t, dir: t.TempDir(), gh: newFakeGitHub(t), git: newGitServer(t), reg: testenv.StartRegistry(t)}
	if d := os.Getenv("LIAN_SOAK_DIR"); d != "" { // keeps the replicas' logs
		s.dir = filepath.Join(d, time.Now().Format("20060102-150405"))
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("the replicas' logs are in %s", s.dir)
	}
	s.nats = testenv.StartNATSClusterIn(t, 3, filepath.Join(s.dir, "nats"))

	_, port, _ := net.SplitHostPort(s.reg.Host)
	var regPort int
	fmt.Sscan(port, &regPort)
	s.hosts = &runnerhost.Hosts{Options: testenv.HostOptions(t, nil), Dir: t.TempDir(), Forward: []int{regPort}, BootDelay: 20 * time.Second}
	var err error
	if s.local, err = local.New(s.hosts.Options); err != nil {
		t.Fatal(err)
	}
	s.fake = fakehcloud.New(soakHCToken, s.hosts)
	t.Cleanup(s.fake.Close)
	bin := func(name, pkg string) string {
		out := filepath.Join(s.dir, name)
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
		return out
	}
	lb, gw := bin("lian-build", "../../cmd/lian-build"), bin("gateway", "../../cmd/gateway")
	files := map[string][]byte{"secret": []byte(testSecret), "key.pem": testKey(t), "pool-token": []byte(soakPoolToken), "hc-token": []byte(soakHCToken)}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var addrs []string
	for _, port := range testenv.FreePorts(t, 5) {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	for i := range 2 {
		s.pools = append(s.pools, &testenv.Process{Name: fmt.Sprintf("pool-%d", i), Addr: addrs[i], LogPath: filepath.Join(s.dir, fmt.Sprintf("pool-%d.log", i)),
			Args: []string{lb, "pool", "serve", "--listen", addrs[i], "--token-file", filepath.Join(s.dir, "pool-token"), "--name", "soak",
				"--ssh-key-file", filepath.Join(s.dir, "pool_key"), "--hcloud-token-file", filepath.Join(s.dir, "hc-token"),
				"--hcloud-endpoint", s.fake.Endpoint(), "--hcloud-location", "fsn1", "--nats-url", s.nats.URL(),
				"--insecure-registry", s.reg.Host, "--max-vms", "cax11=3,cax21=2", "--upsize", "--await-recycling", "20s",
				"--upkeep-every", "1s", "--stuck-after", "45s", "--ssh-timeout", "30s"}})
	}
	poolURLs := "http://" + addrs[0] + ",http://" + addrs[1]
	for i := range 3 {
		data := filepath.Join(s.dir, fmt.Sprintf("gateway-%d", i))
		s.gateways = append(s.gateways, &testenv.Process{Name: fmt.Sprintf("gateway-%d", i), Addr: addrs[2+i], LogPath: data + ".log",
			Args: []string{gw, "--listen", addrs[2+i], "--webhook-secret-file", filepath.Join(s.dir, "secret"), "--app-id", "42",
				"--private-key-file", filepath.Join(s.dir, "key.pem"), "--github-url", s.git.srv.URL, "--github-api-url", s.gh.srv.URL,
				"--data-dir", data, "--nats-url", s.nats.URL(), "--concurrency", "2", "--ack-wait", "10s", "--progress-every", "2s",
				"--branches", "master", "--provider", "vm-pool", "--pool-url", poolURLs, "--pool-token-file", filepath.Join(s.dir, "pool-token"),
				"--state-store", "volumes", "--registry", s.reg.Host, "--insecure-registry", s.reg.Host,
				"--build-context", "base=oci-layout://" + testenv.BaseLayout(t)}})
	}
	for _, p := range append(append([]*testenv.Process{}, s.gateways...), s.pools...) {
		p.StopAtCleanup(t, syscall.SIGTERM)
	}
	// The first pool replica makes the pool's key; the second reads it.
	for _, p := range append(append([]*testenv.Process{}, s.pools...), s.gateways...) {
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
	}
	var targets []string
	for _, p := range append(append([]*testenv.Process{}, s.gateways...), s.pools...) {
		targets = append(targets, p.Addr)
	}
	s.prom = testenv.StartPrometheus(t, targets, filepath.Join(testenv.RepoRoot(), "deploy", "prometheus", "lian-build.rules.yml"))
	return s
}

// gatewayURLs are the gateway replicas' URLs.
func (s *system) gatewayURLs() []string {
	var out []string
	for _, g := range s.gateways {
		out = append(out, "http://"+g.Addr)
	}
	return out
}

// poolURL is the pool replicas' URLs, as a client takes them.
func (s *system) poolURL() string {
	var out []string
	for _, p := range s.pools {
		out = append(out, "http://"+p.Addr)
	}
	return strings.Join(out, ",")
}
