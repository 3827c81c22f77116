package sim

import (
	"fmt"
	"testing"
	"time"

	"github.com/lian-build/action/internal/pool"
)

// mix is the builds of bench/README.md: the rust-app on a fresh runner with
// the registry cache (cold, src/ changed, Cargo.toml changed, nothing
// changed) and the demo (cold, cached), each kind as likely.
var mix = []Build{
	{"rust cold", 259500 * time.Millisecond, 1}, {"rust src", 47100 * time.Millisecond, 1},
	{"rust Cargo.toml", 238500 * time.Millisecond, 1}, {"rust nothing", 640 * time.Millisecond, 1},
	{"demo cold", 3289 * time.Millisecond, 0.5}, {"demo cached", 252 * time.Millisecond, 0.5},
}

var tiers = []TierShare{{"cax11", 0.5}, {"cax21", 0.35}, {"cax31", 0.15}}

// config is a day of builds at rate an hour. Spawn is a Hetzner server's
// create-to-ready time (the woodpecker autoscaler reports 44 s); grant and
// recycle are what the pool e2e tests measure on runner hosts (≈ 0.1 s and
// ≈ 0.65 s).
func config(rate float64, policy pool.Policy, perBuild bool) Config {
	return Config{RatePerHour: rate, Hours: 24, Seed: 42, Mix: mix, Tiers: tiers, Spawn: 45 * time.Second,
		Grant: 100 * time.Millisecond, Recycle: 650 * time.Millisecond, Policy: policy, PerBuild: perBuild}
}

var strategies = []struct {
	name     string
	policy   pool.Policy
	perBuild bool
}{
	{"one-VM-per-build", pool.Policy{}, true},
	{"pool", pool.Policy{}, false},
	{"pool+upsize", pool.Policy{Upsize: true}, false},
	{"pool+upsize+cross-hour", pool.Policy{Upsize: true, CrossHour: true}, false},
	{"capped-1-per-tier", pool.Policy{Upsize: true, CrossHour: true, MaxVMs: map[string]int{"cax11": 1, "cax21": 1, "cax31": 1}}, false},
}

// BenchmarkPoolSimulation replays a day at 5, 20 and 60 builds an hour and
// reports billed VM-minutes per build-minute and the wait for a runner.
func BenchmarkPoolSimulation(b *testing.B) {
	for _, rate := range []float64{5, 20, 60} {
		for _, s := range strategies {
			b.Run(fmt.Sprintf("rate=%.0f/%s", rate, s.name), func(b *testing.B) {
				var r Result
				for b.Loop() {
					r = Run(config(rate, s.policy, s.perBuild))
				}
				b.ReportMetric(r.Ratio(), "billed/build")
				b.ReportMetric(r.WaitP50.Seconds(), "wait-p50-s")
				b.ReportMetric(r.WaitP95.Seconds(), "wait-p95-s")
				b.ReportMetric(float64(r.Hits)/float64(r.Builds), "hit-rate")
				b.Logf("%s", r)
			})
		}
	}
}

// The replay is deterministic (a seeded day on a virtual clock), so the
// pool's targets are checked here, against one VM per build in the same run.
func TestSimulationAt20AnHour(t *testing.T) {
	per := Run(config(20, pool.Policy{}, true))
	up := Run(config(20, pool.Policy{Upsize: true}, false))
	plain := Run(config(20, pool.Policy{}, false))
	t.Logf("one VM per build: %s", per)
	t.Logf("pool:             %s", plain)
	t.Logf("pool+upsize:      %s", up)
	if per.Ratio() < 10 {
		t.Errorf("one VM per build pays %.1f× its build time; an hour per few-minute build is far more", per.Ratio())
	}
	if up.Ratio() >= plain.Ratio() || plain.Ratio() >= per.Ratio()/3 {
		t.Errorf("ratios: per build %.2f, pool %.2f, pool+upsize %.2f", per.Ratio(), plain.Ratio(), up.Ratio())
	}
	if up.HitWaitP50 > 5*time.Second || up.Hits*2 < up.Builds {
		t.Errorf("hit wait p50 %s, hits %d of %d", up.HitWaitP50, up.Hits, up.Builds)
	}
	if per.Builds != up.Builds || per.BuildMinutes != up.BuildMinutes {
		t.Errorf("the strategies replayed different days: %v vs %v", per, up)
	}
}
