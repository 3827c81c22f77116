package sim

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/lian-build/action/internal/pool"
)

// mix is the builds of bench/README.md: the rust-app on a fresh runner with
// the registry cache (cold, src/ changed, Cargo.toml changed, nothing
// changed) and the demo (cold, cached), each kind as likely; Warm is the
// rust-app's time on its warm state (bench/README, "Warm runner state").
var mix = []Build{
	{"rust cold", 259500 * time.Millisecond, 1, 227200 * time.Millisecond}, {"rust src", 47100 * time.Millisecond, 1, 18400 * time.Millisecond},
	{"rust Cargo.toml", 238500 * time.Millisecond, 1, 64200 * time.Millisecond}, {"rust nothing", 640 * time.Millisecond, 1, 0},
	{"demo cold", 3289 * time.Millisecond, 0.5, 0}, {"demo cached", 252 * time.Millisecond, 0.5, 0},
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
// reports billed VM-minutes per build-minute, EUR per build and the wait
// for a runner; BenchmarkPoolSimulationWarm the same over 8 workspaces
// asking for warm state, with and without --keep-warm.
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
				b.ReportMetric(r.EURPerBuild(), "eur/build")
				b.Logf("%s", r)
			})
		}
	}
}

func BenchmarkPoolSimulationWarm(b *testing.B) {
	for _, rate := range []float64{5, 20, 60} {
		for _, s := range []struct {
			name   string
			policy pool.Policy
		}{
			{"pool+upsize+cross-hour", pool.Policy{Upsize: true, CrossHour: true}},
			{"keep-warm-1h+upsize+cross-hour", pool.Policy{KeepWarm: time.Hour, Upsize: true, CrossHour: true}},
			{"recommended", recommended},
		} {
			b.Run(fmt.Sprintf("rate=%.0f/%s", rate, s.name), func(b *testing.B) {
				var r Result
				for b.Loop() {
					c := config(rate, s.policy, false)
					c.Workspaces = 8
					r = Run(c)
				}
				b.ReportMetric(r.WarmRate(), "warm-rate")
				b.ReportMetric(r.EURPerBuild(), "eur/build")
				b.ReportMetric(r.WaitP95.Seconds(), "wait-p95-s")
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

// recommended is the policy bench/README and ADR 0013 recommend for a warm
// pool: --keep-warm 1h --upsize --cross-hour --await-busy 4m.
var recommended = pool.Policy{KeepWarm: time.Hour, Upsize: true, CrossHour: true, AwaitBusy: 4 * time.Minute}

// policies is the grid the warm simulation searches for the cheapest
// schedule of the same arrivals: every combination of upsizing, crossing
// into a VM's next hour, a standby VM per tier, and a cap of one or two
// VMs per tier.
func policies() map[string]pool.Policy {
	out := map[string]pool.Policy{}
	for _, up := range []bool{false, true} {
		for _, cross := range []bool{false, true} {
			for _, idle := range []int{0, 1} {
				for _, capN := range []int{0, 1, 2} {
					for _, keep := range []time.Duration{0, 30 * time.Minute, time.Hour, 2 * time.Hour} {
						for _, busy := range []time.Duration{0, 4 * time.Minute} {
							p := pool.Policy{Upsize: up, CrossHour: cross, KeepWarm: keep, AwaitBusy: busy}
							if idle > 0 {
								p.MinIdle = map[string]int{"cax11": idle, "cax21": idle, "cax31": idle}
							}
							if capN > 0 {
								p.MaxVMs = map[string]int{"cax11": capN, "cax21": capN, "cax31": capN}
							}
							out[fmt.Sprintf("upsize=%v cross-hour=%v min-idle=%d max-vms=%d keep-warm=%s await-busy=%s", up, cross, idle, capN, keep, busy)] = p
						}
					}
				}
			}
		}
	}
	return out
}

// A day at 20 builds an hour over 8 workspaces (each with its own tier),
// each build asking for its workspace's warm state: the policy `pool
// serve` recommends for warm pools (--keep-warm 1h --upsize --cross-hour)
// against the cheapest schedule the grid finds for the same arrivals (the
// lowest EUR among the grid's policies whose p95 wait is within a minute).
// Targets: warm hits ≥ 80 % of builds, EUR per build ≤ 1.3× the cheapest,
// p95 wait ≤ 60 s. (Without --await-busy the EUR target was missed, 1.50×:
// a build whose workspace's VM was busy made a new server.)
func TestWarmSimulationAt20AnHour(t *testing.T) {
	cfg := func(p pool.Policy) Config {
		c := config(20, p, false)
		c.Workspaces = 8
		return c
	}
	none := Run(cfg(pool.Policy{}))
	rec := Run(cfg(recommended))
	cheapest, cheapestName := Result{EUR: math.Inf(1)}, ""
	for name, p := range policies() {
		if r := Run(cfg(p)); r.WaitP95 <= time.Minute && r.EUR < cheapest.EUR {
			cheapest, cheapestName = r, name
		}
	}
	t.Logf("no keep-warm: %s", none)
	t.Logf("recommended:  %s", rec)
	t.Logf("cheapest:     %s  (%s)", cheapest, cheapestName)
	if rec.Builds != cheapest.Builds || rec.Builds != none.Builds {
		t.Fatalf("the schedules replayed different days: %d, %d, %d builds", rec.Builds, cheapest.Builds, none.Builds)
	}
	t.Logf("recommended EUR / cheapest EUR: %.2f (target ≤ 1.3)", rec.EUR/cheapest.EUR)
	if rec.WarmRate() < 0.8 || rec.EUR > 1.3*cheapest.EUR || rec.WaitP95 > time.Minute {
		t.Errorf("recommended: warm %.0f%% (≥ 80%%), €%.4f/build against the cheapest €%.4f (≤ 1.3×), p95 wait %s (≤ 60 s)",
			100*rec.WarmRate(), rec.EURPerBuild(), cheapest.EURPerBuild(), rec.WaitP95)
	}
	if none.WarmRate() >= rec.WarmRate() {
		t.Errorf("keeping warm VMs into their next hour does not raise the warm rate: %.2f vs %.2f", none.WarmRate(), rec.WarmRate())
	}
}
