package metrics

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv"
)

func stores(t *testing.T) map[string]Store {
	js := testenv.JetStreamAt(t, testenv.StartNATS(t, true).ClientURL())
	kv, err := OpenKV(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Store{"file": FileStore{Dir: t.TempDir()}, "jetstream": kv}
}

func result(id string) pipeline.Result {
	return pipeline.Result{BuildID: id, Outcome: pipeline.OutcomeSuccess, Tier: "cax21", FinishedAt: time.Now()}
}

func TestRecorderAndP95(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r := Recorder{Store: st}
			usages := []pipeline.Usage{
				{Samples: 10, CPUP95: 3.1, MemP95Bytes: 9 << 30},
				{Samples: 10, CPUP95: 5.2, MemP95Bytes: 11 << 30},
				{Samples: 10, CPUP95: 4.0, MemP95Bytes: 10 << 30},
			}
			for i, u := range usages[:2] {
				if err := r.Record(ctx, "ws", u, result(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			if _, ok, _ := r.P95(ctx, "ws"); ok {
				t.Fatal("P95 with fewer than MinSamples builds")
			}
			// Failed builds are not recorded.
			failed := result("f")
			failed.Outcome = pipeline.OutcomeFailure
			if err := r.Record(ctx, "ws", usages[0], failed); err != nil {
				t.Fatal(err)
			}
			if err := r.Record(ctx, "ws", usages[2], result("2")); err != nil {
				t.Fatal(err)
			}
			u, ok, err := r.P95(ctx, "ws")
			if err != nil || !ok || u.Samples != 3 || u.CPU != 5.2 || u.MemoryGB != 11 || u.Approved {
				t.Fatalf("P95 = %+v %v %v", u, ok, err)
			}
			if err := r.SetApproved(ctx, "ws", true); err != nil {
				t.Fatal(err)
			}
			// By hand: 5.2 × 1.2 = 6.24 → 7 CPU; 11 × 1.2 = 13.2 → 14 GB → cax31 (8/16).
			d, err := sizing.Resolve(ctx, sizing.Input{Table: sizing.HCloud, Workspace: "ws", History: r, ContextDir: t.TempDir()})
			if err != nil || d.Tier.Name != "cax31" || d.Source != sizing.SourceP95 {
				t.Fatalf("decision %+v %v", d, err)
			}
			if err := r.SetApproved(ctx, "ws", false); err != nil {
				t.Fatal(err)
			}
			d, _ = sizing.Resolve(ctx, sizing.Input{Table: sizing.HCloud, Workspace: "ws", History: r, ContextDir: t.TempDir()})
			if d.Source != sizing.SourceDefault || d.Suggestion == "" {
				t.Fatalf("revoked: %+v", d)
			}
		})
	}
}

// Concurrent writers (two gateway replicas) lose no sample.
func TestConcurrentUpdates(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			r := Recorder{Store: st}
			var wg sync.WaitGroup
			for i := 0; i < 20; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					if err := r.Record(context.Background(), "busy", pipeline.Usage{Samples: 1, CPUP95: 1}, result(fmt.Sprint(i))); err != nil {
						t.Error(err)
					}
				}(i)
			}
			wg.Wait()
			h, err := st.Get(context.Background(), "busy")
			if err != nil || len(h.Samples) != 20 {
				t.Fatalf("%d samples, %v", len(h.Samples), err)
			}
		})
	}
}

func TestKeepsTheNewest(t *testing.T) {
	r := Recorder{Store: FileStore{Dir: t.TempDir()}}
	for i := 0; i < Keep+5; i++ {
		if err := r.Record(context.Background(), "ws", pipeline.Usage{Samples: 1}, result(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	h, _ := r.Store.Get(context.Background(), "ws")
	if len(h.Samples) != Keep || h.Samples[0].BuildID != "5" {
		t.Fatalf("%d samples, first %s", len(h.Samples), h.Samples[0].BuildID)
	}
	if err := r.SetApproved(context.Background(), "../etc", true); err == nil {
		t.Fatal("an invalid workspace name was accepted")
	}
}
