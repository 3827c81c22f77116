package pool_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/lian-build/action/internal/pool"
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
