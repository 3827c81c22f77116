package hcloud_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/compute/hcloud"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
	"github.com/lian-build/action/internal/testenv/link"
	"github.com/lian-build/action/internal/testenv/runnerhost"
)

const token = "hc-T0KEN-e2e-5c0d"

type world struct {
	hosts *runnerhost.Hosts
	links *link.Hosts // the servers' shaped links (nil: none)
	fake  *fakehcloud.Fake
	local *local.Provider
	pl    *pipeline.Pipeline
	base  buildkit.NamedContext
}

// worldConfig: the runner hosts' tier memory, the spawn timeout and the
// plain-HTTP registries the provider writes into the servers' user-data.
type worldConfig struct {
	tierMemory   map[string]int64
	spawnTimeout time.Duration
	insecure     []string
	link         *link.Preset // every server behind a shaped link
}

// newWorld is the fake Hetzner API whose servers are runner hosts (netns,
// sshd, buildkitd in a cgroup of the tier's memory), and a pipeline on the
// hcloud provider pointed at it.
func newWorld(t *testing.T, cfg worldConfig) *world {
	testenv.Require(t)
	testenv.StartSSHD(t) // fails under LIAN_E2E=1 when sshd is missing
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("iproute2 is needed for runner hosts")
	}
	opts := testenv.HostOptions(t, cfg.tierMemory)
	w := &world{hosts: &runnerhost.Hosts{Options: opts, Dir: t.TempDir()}}
	var err error
	if w.local, err = local.New(opts); err != nil {
		t.Fatal(err)
	}
	var hosts fakehcloud.Hosts = w.hosts
	if cfg.link != nil {
		w.links = &link.Hosts{Hosts: w.hosts, Preset: *cfg.link}
		hosts = w.links
	}
	w.fake = fakehcloud.New(token, hosts)
	t.Cleanup(w.fake.Close)
	p, err := hcloud.New(hcloud.Settings{Token: token, Endpoint: w.fake.Endpoint(), PollEvery: 200 * time.Millisecond, Insecure: cfg.insecure})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.spawnTimeout == 0 {
		cfg.spawnTimeout = time.Minute
	}
	if w.pl, err = pipeline.New(pipeline.Config{Provider: p, SpawnTimeout: cfg.spawnTimeout}); err != nil {
		t.Fatal(err)
	}
	w.base, _ = buildkit.ParseNamedContext("base=oci-layout://" + testenv.BaseLayout(t))
	return w
}

func (w *world) build(t *testing.T, dockerfile string) (pipeline.Result, error, string) {
	return w.run(t, dockerfile, func(*pipeline.Request) {})
}

// run builds dockerfile with the request edit makes.
func (w *world) run(t *testing.T, dockerfile string, edit func(*pipeline.Request)) (pipeline.Result, error, string) {
	return testenv.BuildDockerfile(t, w.pl, dockerfile, edit)
}

// assertNothingLeft: no server, key, namespace or runner.
func (w *world) assertNothingLeft(t *testing.T) {
	t.Helper()
	if s, k := w.fake.Counts(); s != 0 || k != 0 {
		t.Errorf("left %d servers and %d keys", s, k)
	}
	testenv.AssertNoRunnerHosts(t, w.local)
}

// A real build through the fake Hetzner API: a server of the resolved tier's
// type in a network namespace of its own, its own key, the build over SSH,
// and afterwards no server, key, namespace or runner left.
func TestBuildThroughFakeHetzner(t *testing.T) {
	w := newWorld(t, worldConfig{})
	res, err, progress := w.build(t, "FROM base\nRUN echo on a remote runner > /where\nCOPY Dockerfile /\n")
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	ri := res.Attempts[0].Runner
	if ri == nil || ri.Provider != "hcloud" || ri.Type != "cax11" || ri.Location != "fsn1" || !strings.Contains(ri.Server, res.Attempts[0].RunnerID) {
		t.Fatalf("runner info %+v", ri)
	}
	t.Logf("spawn %d ms (create %d, boot %d, ready %d)", res.Attempts[0].SpawnMS, ri.Spawn.CreateMS, ri.Spawn.BootMS, ri.Spawn.ReadyMS)
	// A new server's daemon holds no earlier context: it went as one stream.
	if cs := res.Attempts[0].ContextStream; cs == nil || cs.Bytes == 0 || cs.Note != "" {
		t.Errorf("context stream %+v", cs)
	}
	var calls []string
	for _, r := range w.fake.Requests() {
		calls = append(calls, r.Method+" "+r.Path)
		if strings.Contains(r.Body+r.Query, token) {
			t.Errorf("the token is in %s %s", r.Method, r.Path)
		}
	}
	t.Logf("%d API requests: %s", len(calls), strings.Join(calls, ", "))
	joined := strings.Join(calls, "\n")
	for _, want := range []string{"POST /ssh_keys", "POST /servers", "DELETE /servers/", "DELETE /ssh_keys/"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no %s among the requests", want)
		}
	}
	w.assertNothingLeft(t)
}

// OOM on the remote host: the retry runs on the next tier, on a new server
// of the next type; afterwards both servers are gone.
func TestRemoteOOMRetriesOnANewServer(t *testing.T) {
	const mib = 1 << 20
	w := newWorld(t, worldConfig{tierMemory: map[string]int64{"cax11": 160 * mib, "cax21": 1024 * mib}})
	res, err, progress := w.build(t, "FROM base\nRUN dd if=/dev/zero of=/dev/null bs=400M count=1 && echo allocated\n")
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	if len(res.Attempts) != 2 || !res.Attempts[0].OOM || res.Attempts[1].Outcome != pipeline.OutcomeSuccess || res.OOMRetries != 1 {
		t.Fatalf("attempts %+v", res.Attempts)
	}
	if res.Attempts[0].Runner.Type != "cax11" || res.Attempts[1].Runner.Type != "cax21" || res.Attempts[0].Runner.Server == res.Attempts[1].Runner.Server {
		t.Fatalf("servers %+v / %+v", res.Attempts[0].Runner, res.Attempts[1].Runner)
	}
	creates := 0
	for _, r := range w.fake.Requests() {
		if r.Method == "POST" && r.Path == "/servers" {
			creates++
		}
	}
	if creates != 2 {
		t.Fatalf("%d servers created, want 2", creates)
	}
	w.assertNothingLeft(t)
}

// duringStep calls fn with the server's id once a RUN step runs on it.
func (w *world) duringStep(t *testing.T, fn func(id int64)) {
	go func() {
		for i := 0; i < 1200; i++ {
			time.Sleep(50 * time.Millisecond)
			for _, id := range w.hosts.IDs() {
				if w.hosts.StepRunning(id) {
					fn(id)
					return
				}
			}
		}
		t.Error("no RUN step ever ran on a runner host")
	}()
}

// The SSH connection cut mid-build: the build fails saying so, and the
// server, key and host are still removed.
func TestConnectionCutMidBuild(t *testing.T) {
	w := newWorld(t, worldConfig{})
	w.duringStep(t, w.hosts.Kill)
	res, err, progress := w.build(t, "FROM base\nRUN sleep 30\n")
	if err == nil {
		t.Fatalf("the build survived a cut connection:\n%s", progress)
	}
	if res.Attempts[0].OOM {
		t.Fatalf("a cut connection was taken for an OOM: %v", err)
	}
	if !strings.Contains(err.Error(), "the runner is gone: ssh ") {
		t.Fatalf("the error does not say the runner is gone: %v", err)
	}
	t.Logf("error after the cut: %v", err)
	w.assertNothingLeft(t)
}

// buildkitd killed mid-build (a crash, not memory): the build fails saying
// the daemon stopped answering, it is not taken for an OOM, and everything
// is removed.
func TestBuildkitdKilledMidBuild(t *testing.T) {
	w := newWorld(t, worldConfig{})
	w.duringStep(t, w.hosts.KillDaemon)
	res, err, progress := w.build(t, "FROM base\nRUN sleep 30\n")
	if err == nil {
		t.Fatalf("the build survived its buildkitd:\n%s", progress)
	}
	if res.Attempts[0].OOM || len(res.Attempts) != 1 {
		t.Fatalf("a killed buildkitd was taken for an OOM: %+v", res.Attempts)
	}
	if !strings.Contains(err.Error(), "buildkitd on ") || !strings.Contains(err.Error(), "is not answering") {
		t.Fatalf("the error does not say buildkitd stopped answering: %v", err)
	}
	w.assertNothingLeft(t)
}

// The kernel kills buildkitd itself for memory (it shares the server's
// memory with the step, and is made the largest process once the step runs): the build's error is
// a lost daemon, but the server's OOM counters, read over SSH, make it an
// OOM, and the retry runs on the next tier's new server.
func TestKernelKillingBuildkitdIsAnOOM(t *testing.T) {
	const mib = 1 << 20
	w := newWorld(t, worldConfig{tierMemory: map[string]int64{"cax11": 192 * mib, "cax21": 1024 * mib}})
	w.duringStep(t, func(id int64) {
		if err := w.hosts.DaemonOOMFirst(id); err != nil {
			t.Error(err)
		}
	})
	res, err, progress := w.build(t, "FROM base\nRUN sleep 3 && dd if=/dev/zero of=/dev/null bs=400M count=1 && echo allocated\n")
	assertDaemonOOMRetried(t, res, err, progress)
	if res.Attempts[1].Runner.Type != "cax21" || res.Attempts[0].Runner.Server == res.Attempts[1].Runner.Server {
		t.Fatalf("servers %+v / %+v", res.Attempts[0].Runner, res.Attempts[1].Runner)
	}
	w.assertNothingLeft(t)
}

// A server whose sshd refuses the lease's key never becomes ready: the
// spawn times out naming the refusal, and everything is removed.
func TestServerRefusingTheKey(t *testing.T) {
	w := newWorld(t, worldConfig{spawnTimeout: 6 * time.Second})
	w.hosts.RefuseKeys = true
	_, err, _ := w.build(t, "FROM base\nRUN true\n")
	if err == nil || !strings.Contains(err.Error(), "never answered on SSH") || !strings.Contains(err.Error(), "sshd refused the key") {
		t.Fatalf("err = %v", err)
	}
	w.assertNothingLeft(t)
}

// A session build with a rollback disposition on a remote runner: the
// provider names the plain-HTTP cache registry in the server's
// buildkitd.toml (user-data), the server's buildkitd exports to a staging
// ref, and the pipeline promotes it to the session's ref.
func TestCachePromotionOnARemoteRunner(t *testing.T) {
	reg := testenv.StartRegistry(t)
	w := newWorld(t, worldConfig{insecure: []string{reg.Host}})
	res, err, progress := w.run(t, "FROM base\nRUN echo cached remotely > /x\n", func(req *pipeline.Request) {
		req.Actor = cache.Actor{Kind: cache.ActorHuman, ID: "jpl"}
		req.Cache = pipeline.CacheSettings{Registry: reg.Host, Disposition: cache.Rollback, Insecure: true}
	})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	if res.CachePromoted != reg.Host+"/dev/jpl-e2e:cache" || reg.ManifestDigest(t, "dev/jpl-e2e", "cache") == "" {
		t.Fatalf("promoted %q from %v", res.CachePromoted, res.CacheExports)
	}
	for _, r := range w.fake.Requests() {
		if r.Method == "POST" && r.Path == "/servers" {
			var body schema.ServerCreateRequest
			if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
				t.Fatalf("create request: %v %s", err, r.Body)
			}
			if got := runnerhost.RegistriesIn(body.UserData); len(got) != 1 || got[0] != reg.Host {
				t.Errorf("user-data names registries %v, want %s", got, reg.Host)
			}
		}
	}
	w.assertNothingLeft(t)
}

// assertDaemonOOMRetried: the build succeeded on its second attempt, the
// first one's buildkitd having stopped answering and the runner's OOM
// counters making that an OOM.
func assertDaemonOOMRetried(t *testing.T, res pipeline.Result, err error, progress string) {
	t.Helper()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	if len(res.Attempts) != 2 || !res.Attempts[0].OOM || res.Attempts[1].Outcome != pipeline.OutcomeSuccess {
		t.Fatalf("attempts %+v", res.Attempts)
	}
	if !strings.Contains(res.Attempts[0].Error, "is not answering") {
		t.Fatalf("the first attempt's buildkitd was not the one killed: %s", res.Attempts[0].Error)
	}
}
