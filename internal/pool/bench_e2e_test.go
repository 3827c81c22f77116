package pool_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/pool"
	"github.com/lian-build/action/internal/testenv"
)

// BenchmarkPoolLease measures, on runner hosts behind the fake Hetzner API,
// a lease that creates its server against one that reuses an idle server
// (the wait a build sees), and the return that recycles it, in one run.
func BenchmarkPoolLease(b *testing.B) {
	w := newWorld(b, worldConfig{hosts: true})
	ctx := context.Background()
	var created, reused, returned []time.Duration
	for b.Loop() {
		if _, err := w.client.Drain(ctx); err != nil {
			b.Fatal(err)
		}
		for i := range 5 {
			start := time.Now()
			g, err := w.client.Lease(ctx, pool.Request{Tier: "cax11"})
			if err != nil {
				b.Fatal(err)
			}
			d := time.Since(start)
			if i == 0 {
				created = append(created, d)
			} else {
				reused = append(reused, d)
			}
			start = time.Now()
			if _, err := w.client.Return(ctx, g.LeaseID, "ok"); err != nil {
				b.Fatal(err)
			}
			returned = append(returned, time.Since(start))
		}
	}
	c, r := p50(created), p50(reused)
	b.ReportMetric(float64(c.Milliseconds()), "new-server-ms")
	b.ReportMetric(float64(r.Milliseconds()), "reused-ms")
	b.ReportMetric(float64(p50(returned).Milliseconds()), "return-recycle-ms")
	b.ReportMetric(float64(r)/float64(c), "reused/new")
}

func p50(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// goLikeContext is a stand-in for a Go service whose build cache lives in
// a cache mount: each of 40 source files is "compiled" (300 rounds of
// sha256) unless its result is in /gocache under the file's hash, as go
// build reuses its cache for unchanged packages.
func goLikeContext(b *testing.B) string {
	dir := b.TempDir()
	df := `FROM base
COPY src /src
RUN --mount=type=cache,target=/gocache sh -c 'for f in /src/*.go; do k=$(sha256sum "$f" | cut -c1-64); if [ ! -e /gocache/$k ]; then h=$k; i=0; while [ $i -lt 300 ]; do h=$(echo $h | sha256sum | cut -c1-64); i=$((i+1)); done; echo $h > /gocache/$k; fi; cat /gocache/$k >> /app; done'
`
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		b.Fatal(err)
	}
	for i := range 40 {
		touchSource(b, dir, i, "v0")
	}
	return dir
}

func touchSource(b *testing.B, dir string, i int, version string) {
	body := fmt.Sprintf("package p%d\n\n// %s\nfunc F() int { return %d }\n", i, version, i)
	if err := os.WriteFile(filepath.Join(dir, "src", fmt.Sprintf("f%02d.go", i)), []byte(body), 0o644); err != nil {
		b.Fatal(err)
	}
}

// persistent is one buildkitd kept running for every build (what a
// self-hosted buildx builder or Depot gives): the reference.
type persistent struct{ buildctl, sock, layout string }

func startPersistent(b *testing.B, layout string) persistent {
	bk, err := testenv.Buildkitd()
	if err != nil {
		b.Fatal(err)
	}
	state := b.TempDir()
	p := persistent{buildctl: filepath.Join(filepath.Dir(bk), "buildctl"), sock: "unix://" + filepath.Join(state, "buildkitd.sock"), layout: layout}
	d := exec.Command(bk, "--root", filepath.Join(state, "root"), "--addr", p.sock, "--oci-worker-snapshotter", "overlayfs", "--containerd-worker", "false")
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Process.Signal(os.Interrupt); _ = d.Wait() })
	for start := time.Now(); exec.Command(p.buildctl, "--addr", p.sock, "debug", "workers").Run() != nil; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			b.Fatal("buildkitd never answered")
		}
	}
	return p
}

func (p persistent) build(b *testing.B, dir string) time.Duration {
	start := time.Now()
	out, err := exec.Command(p.buildctl, "--addr", p.sock, "build", "--frontend", "dockerfile.v0", "--local", "context="+dir, "--local", "dockerfile="+dir,
		"--oci-layout", "base="+p.layout, "--opt", "context:base=oci-layout://base@"+testenv.LayoutDigest(b, p.layout), "--progress", "quiet").CombinedOutput()
	if err != nil {
		b.Fatalf("buildctl build: %v\n%s", err, out)
	}
	return time.Since(start)
}

// BenchmarkPoolWarmHit: a Go-like service (its build cache in a cache
// mount) built, then built again after one source file changed, and once
// more with nothing changed — on a persistent buildkitd, and through the
// pool with warm state (the second lease lands on the VM holding ci/…'s
// generation) — in one run. Targets: the source change through the pool
// ≤ 1.2× persistent; nothing changed ≤ persistent + 0.5 s.
func BenchmarkPoolWarmHit(b *testing.B) {
	w := newWorld(b, worldConfig{hosts: true, warm: true})
	layout := testenv.BaseLayout(b)
	per := startPersistent(b, layout)
	var perCold, perChange, perSame, poolCold, poolChange, poolSame, leaseMS, readyMS, settle []time.Duration
	for n := 0; b.Loop(); n++ {
		dir := goLikeContext(b)
		ws := fmt.Sprintf("go-svc-%d", n)
		perCold = append(perCold, per.build(b, dir))
		d, _ := w.timedBuild(b, dir, ws, &settle)
		poolCold = append(poolCold, d)
		touchSource(b, dir, 7, fmt.Sprintf("v%d", n+1))
		perChange = append(perChange, per.build(b, dir))
		d, res := w.timedBuild(b, dir, ws, &settle)
		poolChange = append(poolChange, d)
		if res.State == nil || res.State.GenerationIn == 0 {
			b.Fatalf("the second lease did not start warm: %+v", res.State)
		}
		sp := res.Attempts[0].Runner.Spawn
		leaseMS, readyMS = append(leaseMS, time.Duration(sp.CreateMS)*time.Millisecond), append(readyMS, time.Duration(sp.ReadyMS)*time.Millisecond)
		perSame = append(perSame, per.build(b, dir))
		d, _ = w.timedBuild(b, dir, ws, &settle)
		poolSame = append(poolSame, d)
	}
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"persistent-cold-ms", perCold}, {"pool-cold-ms", poolCold}, {"persistent-change-ms", perChange}, {"pool-warm-change-ms", poolChange},
		{"persistent-same-ms", perSame}, {"pool-warm-same-ms", poolSame}, {"warm-lease-ms", leaseMS}, {"warm-ready-ms", readyMS}, {"return-settle-ms", settle}} {
		b.ReportMetric(float64(p50(m.d).Milliseconds()), m.name)
	}
	b.ReportMetric(float64(p50(poolChange))/float64(p50(perChange)), "change-warm/persistent")
}

// timedBuild runs a ci build of dir in workspace ws through the pool; the
// return is settled (committed, recycled) after the build and before the
// next, as builds minutes apart find it, and its time is recorded apart.
func (w *world) timedBuild(b *testing.B, dir, ws string, settle *[]time.Duration) (time.Duration, pipeline.Result) {
	start := time.Now()
	res, err := w.pl.Run(context.Background(), pipeline.Request{Workspace: ws, Build: buildkit.Options{
		ContextDir: dir, NamedContexts: []buildkit.NamedContext{w.base}, Progress: "quiet", ProgressOut: io.Discard}})
	if err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	w.svc.Wait()
	*settle = append(*settle, time.Since(start)-d)
	return d, res
}
