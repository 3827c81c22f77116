// Package bench measures lian-build against BuildKit driven by hand. Run with
// `make bench` (or ./bench/run.sh); every benchmark prints its numbers as
// custom metrics: milliseconds and ratios.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/docker"
	"github.com/lian-build/action/internal/compute/hcloud"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/state"
	"github.com/lian-build/action/internal/testenv"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
	"github.com/lian-build/action/internal/testenv/runnerhost"
)

func median(d []time.Duration) time.Duration { return pct(d, 0.5) }

func pct(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(p*float64(len(s)-1)+0.5)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkSpawnReady: local runner spawn → ready (BuildKit answers), then destroy. Target p50 ≤ 1.5 s.
func BenchmarkSpawnReady(b *testing.B) {
	prov := testenv.NewProvider(b, nil)
	var spawn, destroy []time.Duration
	for i := 0; b.Loop(); i++ {
		s, d, _ := spawnDestroy(b, prov, fmt.Sprintf("bench-spawn-%d-%d", os.Getpid(), i))
		spawn, destroy = append(spawn, s), append(destroy, d)
	}
	b.ReportMetric(ms(median(spawn)), "spawn-p50-ms")
	b.ReportMetric(ms(pct(spawn, 0.9)), "spawn-p90-ms")
	b.ReportMetric(ms(median(destroy)), "destroy-p50-ms")
}

// spawnDestroy spawns a runner of the smallest tier until it is ready, then
// destroys it, and says how long each took and how the runner split its spawn.
func spawnDestroy(b *testing.B, prov compute.Provider, id string) (spawn, destroy time.Duration, split compute.SpawnTimes) {
	start := time.Now()
	r, err := prov.Spawn(context.Background(), sizing.HCloud[0], compute.Lease{ID: id, TTL: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	spawn, split, start = time.Since(start), r.Info().Spawn, time.Now()
	if err := r.Destroy(context.Background()); err != nil {
		b.Fatal(err)
	}
	return spawn, time.Since(start), split
}

// workload is a build with real work in it: 2 CPU-seconds of hashing, files copied, layers written.
const workload = `FROM base
COPY data/ /data/
RUN dd if=/dev/urandom of=/tmp/blob bs=1M count=64 2>/dev/null && for i in 1 2 3 4 5 6; do sha256sum /tmp/blob; done && rm /tmp/blob
RUN tar -cf /data.tar /data && sha256sum /data.tar > /data.sha256
`

func benchContext(b *testing.B) string {
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		buf := make([]byte, 16<<10)
		for j := range buf {
			buf[j] = byte(i * j)
		}
		if err := os.WriteFile(filepath.Join(dir, "data", fmt.Sprintf("f%03d.bin", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(workload), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

func newPipeline(b *testing.B, insecure ...string) *pipeline.Pipeline {
	p, err := pipeline.New(pipeline.Config{
		Provider: testenv.NewProvider(b, nil, insecure...),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// byHand is what an operator does without lian-build: start buildkitd, poll
// until buildctl answers, buildctl build, stop the daemon, remove its state.
func byHand(b *testing.B, dir, layout string, extra ...string) time.Duration {
	bk, err := testenv.Buildkitd()
	if err != nil {
		b.Fatal(err)
	}
	buildctl := filepath.Join(filepath.Dir(bk), "buildctl")
	state := b.TempDir()
	sock := "unix://" + filepath.Join(state, "buildkitd.sock")
	start := time.Now()
	d := exec.Command(bk, "--root", filepath.Join(state, "root"), "--addr", sock, "--oci-worker-snapshotter", "overlayfs", "--containerd-worker", "false", "--oci-worker-gc=false")
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	for exec.Command(buildctl, "--addr", sock, "debug", "workers").Run() != nil {
		time.Sleep(50 * time.Millisecond)
		if time.Since(start) > time.Minute {
			b.Fatal("buildkitd never answered")
		}
	}
	args := append([]string{"--addr", sock, "build", "--frontend", "dockerfile.v0",
		"--local", "context=" + dir, "--local", "dockerfile=" + dir, "--oci-layout", "base=" + layout,
		"--opt", "context:base=oci-layout://base@" + testenv.LayoutDigest(b, layout), "--progress", "quiet"}, extra...)
	if out, err := exec.Command(buildctl, args...).CombinedOutput(); err != nil {
		b.Fatalf("buildctl build: %v\n%s", err, out)
	}
	_ = d.Process.Signal(os.Interrupt)
	_ = d.Wait()
	elapsed := time.Since(start)
	_ = os.RemoveAll(state)
	return elapsed
}

func pipelineRun(b *testing.B, p *pipeline.Pipeline, req pipeline.Request) (time.Duration, pipeline.Result) {
	start := time.Now()
	res, err := p.Run(context.Background(), req)
	if err != nil {
		b.Fatal(err)
	}
	return time.Since(start), res
}

func request(dir, layout string) pipeline.Request {
	return pipeline.Request{Workspace: "bench", Build: buildkit.Options{
		ContextDir:    dir,
		NamedContexts: []buildkit.NamedContext{{Name: "base", OCILayout: layout}},
		Progress:      "quiet", ProgressOut: io.Discard,
	}}
}

// BenchmarkPipelineVsByHand: the whole pipeline (sizing, spawn, build, sample,
// destroy) against the same cold build done by hand. Target ratio ≤ 1.10.
func BenchmarkPipelineVsByHand(b *testing.B) {
	layout := testenv.BaseLayout(b)
	dir := benchContext(b)
	p := newPipeline(b)
	var lian, hand []time.Duration
	for b.Loop() {
		hand = append(hand, byHand(b, dir, layout))
		d, _ := pipelineRun(b, p, request(dir, layout))
		lian = append(lian, d)
	}
	b.ReportMetric(ms(median(hand)), "by-hand-p50-ms")
	b.ReportMetric(ms(median(lian)), "pipeline-p50-ms")
	b.ReportMetric(float64(median(lian))/float64(median(hand)), "ratio")
}

// BenchmarkCacheImport: a second build of an unchanged context on a fresh
// runner importing the registry cache, against the cold build that exported it.
func BenchmarkCacheImport(b *testing.B) {
	layout := testenv.BaseLayout(b)
	dir := benchContext(b)
	var cold, warm []time.Duration
	cached := 0
	for i := 0; b.Loop(); i++ {
		reg := testenv.StartRegistry(b)
		p := newPipeline(b, reg.Host)
		req := request(dir, layout)
		cache := buildkit.CacheEntry{Type: "registry", Attrs: map[string]string{"ref": reg.Host + "/cache/bench:main", "mode": "max"}}
		req.Build.CacheFrom, req.Build.CacheTo = []buildkit.CacheEntry{cache}, []buildkit.CacheEntry{cache}
		d, _ := pipelineRun(b, p, req)
		cold = append(cold, d)
		d, res := pipelineRun(b, p, req)
		warm = append(warm, d)
		cached = res.StepsCached
	}
	b.ReportMetric(ms(median(cold)), "cold-p50-ms")
	b.ReportMetric(ms(median(warm)), "cached-p50-ms")
	b.ReportMetric(float64(median(warm))/float64(median(cold)), "ratio")
	b.ReportMetric(float64(cached), "steps-cached")
	if cached == 0 {
		b.Fatal("the rebuild imported no cache")
	}
}

// BenchmarkHcloudSpawn: a Hetzner runner through the fake API (a runner host
// per server: netns, sshd, buildkitd), spawn → ready split into create (key
// and server, action done), boot (SSH answers) and ready (buildkitd answers
// over SSH), then destroy; for a stock image with cloud-init and for a
// snapshot chosen by label. The provider polls as against the real API
// (every second, backing off). The fake boots no OS and runs no cloud-init:
// the split shows lian-build's own share and its API requests, not Hetzner's
// boot time.
func BenchmarkHcloudSpawn(b *testing.B) {
	testenv.StartSSHD(b)
	hosts := &runnerhost.Hosts{Options: testenv.HostOptions(b, nil), Dir: b.TempDir()}
	const token = "bench-hcloud-token"
	fake := fakehcloud.New(token, hosts)
	b.Cleanup(fake.Close)
	for _, image := range []string{"debian-12", "label:lian-build/runner-image=v1"} {
		b.Run(strings.SplitN(image, "=", 2)[0], func(b *testing.B) {
			prov, err := hcloud.New(hcloud.Settings{Token: token, Endpoint: fake.Endpoint(), Image: image})
			if err != nil {
				b.Fatal(err)
			}
			var total, create, boot, ready, destroy []time.Duration
			requests := len(fake.Requests())
			for i := 0; b.Loop(); i++ {
				s, d, sp := spawnDestroy(b, prov, fmt.Sprintf("bench-hc-%d-%d", os.Getpid(), i))
				total, destroy = append(total, s), append(destroy, d)
				create = append(create, time.Duration(sp.CreateMS)*time.Millisecond)
				boot = append(boot, time.Duration(sp.BootMS)*time.Millisecond)
				ready = append(ready, time.Duration(sp.ReadyMS)*time.Millisecond)
			}
			b.ReportMetric(ms(median(total)), "spawn-p50-ms")
			b.ReportMetric(ms(median(create)), "create-p50-ms")
			b.ReportMetric(ms(median(boot)), "boot-p50-ms")
			b.ReportMetric(ms(median(ready)), "ready-p50-ms")
			b.ReportMetric(ms(median(destroy)), "destroy-p50-ms")
			b.ReportMetric(float64(len(fake.Requests())-requests)/float64(len(total)), "api-requests/lease")
		})
	}
}

// BenchmarkDockerSpawn: the docker provider's spawn → ready and destroy
// (a Docker Engine started for it, the runner image made here), and the
// bench workload built on it against the local provider, in one run.
func BenchmarkDockerSpawn(b *testing.B) {
	d := testenv.StartDockerd(b)
	prov, err := docker.New(docker.Settings{Host: d.Host, Image: d.RunnerImage(b), Network: "none"})
	if err != nil {
		b.Fatal(err)
	}
	layout := testenv.BaseLayout(b)
	dir := benchContext(b)
	onDocker, err := pipeline.New(pipeline.Config{Provider: prov, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	onLocal := newPipeline(b)
	var spawn, destroy, dockerBuild, localBuild []time.Duration
	for i := 0; b.Loop(); i++ {
		s, d, _ := spawnDestroy(b, prov, fmt.Sprintf("bench-docker-%d-%d", os.Getpid(), i))
		spawn, destroy = append(spawn, s), append(destroy, d)
		dd, _ := pipelineRun(b, onDocker, request(dir, layout))
		ld, _ := pipelineRun(b, onLocal, request(dir, layout))
		dockerBuild, localBuild = append(dockerBuild, dd), append(localBuild, ld)
	}
	b.ReportMetric(ms(median(spawn)), "spawn-p50-ms")
	b.ReportMetric(ms(median(destroy)), "destroy-p50-ms")
	b.ReportMetric(ms(median(dockerBuild)), "docker-build-p50-ms")
	b.ReportMetric(ms(median(localBuild)), "local-build-p50-ms")
	b.ReportMetric(float64(median(dockerBuild))/float64(median(localBuild)), "docker/local")
}

// BenchmarkLocalWarmState: the Go-like service (its build cache in a cache
// mount) built with a local runner on a btrfs state store, cold, after one
// file changed, and with nothing changed, against a persistent buildkitd in
// the same run; the warm builds' time split into spawn (a buildkitd started
// on the state's clone), the build, and the rest (prune, stop, commit,
// destroy). Target: ≤ 1.2× persistent on the change.
func BenchmarkLocalWarmState(b *testing.B) {
	layout := testenv.BaseLayout(b)
	per := testenv.StartPersistent(b, layout)
	st := testenv.StateStore(b, "btrfs", state.Options{})
	p, err := pipeline.New(pipeline.Config{Provider: testenv.NewProvider(b, nil), State: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	var perChange, perSame, change, same, spawn, build, commit []time.Duration
	for n := 0; b.Loop(); n++ {
		dir := testenv.GoLikeService(b)
		req := request(dir, layout)
		req.Workspace = fmt.Sprintf("go-svc-%d", n)
		per.Build(b, dir)
		pipelineRun(b, p, req)
		testenv.TouchSource(b, dir, 7, fmt.Sprintf("v%d", n+1))
		perChange = append(perChange, per.Build(b, dir))
		d, res := pipelineRun(b, p, req)
		change = append(change, d)
		if res.State == nil || res.State.GenerationIn == 0 {
			b.Fatalf("the change did not start warm: %+v", res.State)
		}
		a := res.Attempts[0]
		spawn = append(spawn, time.Duration(a.SpawnMS)*time.Millisecond)
		commit = append(commit, time.Duration(res.State.CommitMS)*time.Millisecond)
		build = append(build, time.Duration(a.DurationMS-a.SpawnMS-res.State.CommitMS)*time.Millisecond)
		perSame = append(perSame, per.Build(b, dir))
		d, _ = pipelineRun(b, p, req)
		same = append(same, d)
	}
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"persistent-change-ms", perChange}, {"local-warm-change-ms", change}, {"persistent-same-ms", perSame}, {"local-warm-same-ms", same},
		{"change-spawn-ms", spawn}, {"change-build-ms", build}, {"change-commit-ms", commit}} {
		b.ReportMetric(ms(median(m.d)), m.name)
	}
	b.ReportMetric(float64(median(change))/float64(median(perChange)), "change-warm/persistent")
}
