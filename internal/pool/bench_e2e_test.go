package pool_test

import (
	"context"
	"fmt"
	"io"
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

// BenchmarkPoolWarmHit: a Go-like service (its build cache in a cache
// mount) built, then built again after one source file changed, and once
// more with nothing changed — on a persistent buildkitd, and through the
// pool with warm state (the second lease lands on the VM holding ci/…'s
// generation) — in one run. Targets: the source change through the pool
// ≤ 1.2× persistent; nothing changed ≤ persistent + 0.5 s.
func BenchmarkPoolWarmHit(b *testing.B) {
	w := newWorld(b, worldConfig{hosts: true, warm: true})
	layout := testenv.BaseLayout(b)
	per := testenv.StartPersistent(b, layout)
	var perCold, perChange, perSame, poolCold, poolChange, poolSame, leaseMS, readyMS, settle []time.Duration
	for n := 0; b.Loop(); n++ {
		dir := testenv.GoLikeService(b)
		ws := fmt.Sprintf("go-svc-%d", n)
		perCold = append(perCold, per.Build(b, dir))
		d, _ := w.timedBuild(b, dir, ws, &settle)
		poolCold = append(poolCold, d)
		testenv.TouchSource(b, dir, 7, fmt.Sprintf("v%d", n+1))
		perChange = append(perChange, per.Build(b, dir))
		d, res := w.timedBuild(b, dir, ws, &settle)
		poolChange = append(poolChange, d)
		if res.State == nil || res.State.GenerationIn == 0 {
			b.Fatalf("the second lease did not start warm: %+v", res.State)
		}
		sp := res.Attempts[0].Runner.Spawn
		leaseMS, readyMS = append(leaseMS, time.Duration(sp.CreateMS)*time.Millisecond), append(readyMS, time.Duration(sp.ReadyMS)*time.Millisecond)
		perSame = append(perSame, per.Build(b, dir))
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
