// Package sim replays build arrivals against the pool's policy on a virtual
// clock and bills the servers on the fake Hetzner API's ledger: billed
// VM-minutes against build-minutes, and the wait for a runner, for the pool
// and for one VM per build. The policy is the service's own (pool.Policy);
// the simulation stands in for the service's bookkeeping only.
package sim

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/lian-build/action/internal/pool"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
)

// Build is a kind of build in the mix: how long it runs and how often it
// comes; Warm is how long it runs on its workspace's warm state (0: as long).
type Build struct {
	Name     string
	Duration time.Duration
	Weight   float64
	Warm     time.Duration
}

// TierShare is how often builds ask for a tier.
type TierShare struct {
	Tier   string
	Weight float64
}

// Config is one replay.
type Config struct {
	RatePerHour float64 // Poisson arrivals
	Hours       float64 // arrivals over this long
	Seed        uint64
	Mix         []Build
	Tiers       []TierShare
	// Spawn is a new server's create-to-ready time; Grant a reused one's
	// (a key installed over SSH); Recycle how long a returned VM is busy.
	Spawn, Grant, Recycle time.Duration
	Policy                pool.Policy
	PerBuild              bool          // one VM per build, deleted after it
	UpkeepEvery           time.Duration // default 30 s
	// Workspaces, when set, gives each build one of that many workspaces
	// (the first the busiest: weight 1/(i+1)), each with its own tier from
	// Tiers; builds ask for their workspace's warm state (ci/NAME).
	Workspaces int
}

// Result is what a replay cost and how long builds waited.
type Result struct {
	Builds        int
	BuildMinutes  float64
	BilledMinutes int64
	Created       int // servers
	Hits          int // builds that got a VM already paid for
	WarmHits      int // builds that started on their workspace's warm state
	HandOffs      int // namespaces handed from a retired VM to another
	EUR           float64
	WaitP50       time.Duration
	WaitP95       time.Duration
	HitWaitP50    time.Duration
}

// Ratio is billed VM-minutes per build-minute.
func (r Result) Ratio() float64 { return float64(r.BilledMinutes) / r.BuildMinutes }

// EURPerBuild is what a build costs on average (net list prices).
func (r Result) EURPerBuild() float64 { return r.EUR / float64(max(r.Builds, 1)) }

// WarmRate is the share of builds that started warm.
func (r Result) WarmRate() float64 { return float64(r.WarmHits) / float64(max(r.Builds, 1)) }

func (r Result) String() string {
	return fmt.Sprintf("builds %d  build-min %.0f  billed-min %d  ratio %.2f  servers %d  hits %d (%.0f%%)  warm %.0f%%  hand-offs %d  €%.4f/build  wait p50 %s p95 %s  hit-wait p50 %s",
		r.Builds, r.BuildMinutes, r.BilledMinutes, r.Ratio(), r.Created, r.Hits, 100*float64(r.Hits)/float64(max(r.Builds, 1)), 100*r.WarmRate(), r.HandOffs, r.EURPerBuild(),
		r.WaitP50.Round(10*time.Millisecond), r.WaitP95.Round(10*time.Millisecond), r.HitWaitP50.Round(10*time.Millisecond))
}

type kind int

const (
	arrive kind = iota
	done
	recycled
	ready // a standby VM made for no lease
	upkeep
)

type event struct {
	at   time.Time
	kind kind
	vm   string
	req  pool.Request
	dur  time.Duration
	warm time.Duration // its duration on warm state
	seq  int
}

type queue []event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// world is the replay's state: the VMs, the ledger, the clock.
type world struct {
	cfg    Config
	now    time.Time
	q      queue
	seq    int
	vms    map[string]*pool.VM
	ids    map[string]int64
	ledger fakehcloud.Ledger
	res    Result
	queue  []event // arrivals waiting for a tier at its MaxVMs
	waits  []time.Duration
	hits   []time.Duration
}

// Run replays cfg.
func Run(cfg Config) Result {
	if cfg.UpkeepEvery <= 0 {
		cfg.UpkeepEvery = 30 * time.Second
	}
	w := &world{cfg: cfg, now: time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC), vms: map[string]*pool.VM{}, ids: map[string]int64{}}
	start := w.now
	w.arrivals(start)
	if !cfg.PerBuild {
		w.push(event{at: start, kind: upkeep})
	}
	end := start.Add(time.Duration(cfg.Hours * float64(time.Hour)))
	for w.q.Len() > 0 {
		e := heap.Pop(&w.q).(event)
		w.now = e.at
		if e.kind == upkeep && (w.now.After(end) && w.busy() == 0) {
			continue // the replay is over once nothing runs
		}
		w.handle(e)
	}
	for id := range w.vms {
		w.retire(id)
	}
	byType, total := w.ledger.BilledMinutes(w.now)
	w.res.BilledMinutes = total
	for t, m := range byType {
		w.res.EUR += float64(m) / 60 * fakehcloud.HourlyPrice(t)
	}
	w.res.WaitP50, w.res.WaitP95 = percentile(w.waits, 0.50), percentile(w.waits, 0.95)
	w.res.HitWaitP50 = percentile(w.hits, 0.50)
	return w.res
}

func (w *world) push(e event) {
	w.seq++
	e.seq = w.seq
	heap.Push(&w.q, e)
}

// arrivals schedules every build: exponential gaps, a tier and a kind each.
func (w *world) arrivals(start time.Time) {
	rng := rand.New(rand.NewPCG(w.cfg.Seed, 0x9e3779b97f4a7c15))
	horizon := time.Duration(w.cfg.Hours * float64(time.Hour))
	for t := time.Duration(0); ; {
		t += time.Duration(rng.ExpFloat64() / w.cfg.RatePerHour * float64(time.Hour))
		if t > horizon {
			return
		}
		b := pick(rng, w.cfg.Mix, func(b Build) float64 { return b.Weight })
		tier := pick(rng, w.cfg.Tiers, func(s TierShare) float64 { return s.Weight })
		req := pool.Request{Tier: tier.Tier, Arch: "arm", ExpectedSeconds: int64(b.Duration / time.Second)}
		if w.cfg.Workspaces > 0 {
			ws := pick(rng, workspaces(w.cfg.Workspaces), func(i int) float64 { return 1 / float64(i+1) })
			ns := fmt.Sprintf("ci/ws%d", ws)
			req.Tier, req.State = w.workspaceTier(ws), &pool.StateRequest{Read: []string{ns}, Write: ns}
		}
		warm := b.Warm
		if warm == 0 {
			warm = b.Duration
		}
		w.push(event{at: start.Add(t), kind: arrive, dur: b.Duration, warm: warm, req: req})
	}
}

func workspaces(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// workspaceTier is a workspace's tier: the tier shares laid over the
// workspaces in turn (sizing gives a workspace its tier, not a build).
func (w *world) workspaceTier(ws int) string {
	total := 0.0
	for _, s := range w.cfg.Tiers {
		total += s.Weight
	}
	x := float64(ws%10) / 10 * total
	for _, s := range w.cfg.Tiers {
		if x -= s.Weight; x < 0 {
			return s.Tier
		}
	}
	return w.cfg.Tiers[len(w.cfg.Tiers)-1].Tier
}

func pick[T any](rng *rand.Rand, items []T, weight func(T) float64) T {
	total := 0.0
	for _, it := range items {
		total += weight(it)
	}
	x := rng.Float64() * total
	for _, it := range items {
		if x -= weight(it); x < 0 {
			return it
		}
	}
	return items[len(items)-1]
}

func (w *world) handle(e event) {
	switch e.kind {
	case arrive:
		w.arrive(e)
	case done:
		w.res.BuildMinutes += e.dur.Minutes()
		if w.cfg.PerBuild {
			w.retire(e.vm)
			return
		}
		v := w.vms[e.vm]
		if st := e.req.State; st != nil {
			if v.Warm == nil {
				v.Warm = map[string]pool.Warm{}
			}
			v.Warm[st.Write] = pool.Warm{Generation: v.Warm[st.Write].Generation + 1, Committed: w.now}
		}
		v.State, v.Since, v.Lease = pool.StateRecycling, w.now, nil
		w.push(event{at: w.now.Add(w.cfg.Recycle), kind: recycled, vm: e.vm})
	case recycled, ready:
		v := w.vms[e.vm]
		v.State, v.Since = pool.StateIdle, w.now
		w.serveQueue()
	case upkeep:
		w.upkeep()
		w.push(event{at: w.now.Add(w.cfg.UpkeepEvery), kind: upkeep})
	}
}

// arrive leases what the policy picks, else a new server, else (the tier
// at its MaxVMs) waits for a return.
func (w *world) arrive(e event) {
	w.res.Builds++
	if !w.place(e) {
		w.queue = append(w.queue, e)
	}
}

// serveQueue places waiting arrivals, oldest first, while VMs are free.
func (w *world) serveQueue() {
	for len(w.queue) > 0 && w.place(w.queue[0]) {
		w.queue = w.queue[1:]
	}
}

func (w *world) place(e event) bool {
	var wait time.Duration
	var id string
	if picks := w.cfg.Policy.Pick(w.now, e.req, w.list()); !w.cfg.PerBuild && len(picks) > 0 {
		id, wait = picks[0].ID, w.cfg.Grant
		w.res.Hits++
		w.hits = append(w.hits, wait)
		if st := e.req.State; st != nil && picks[0].Warm[st.Read[0]].Generation > 0 {
			w.res.WarmHits++
			e.dur = e.warm
		}
	} else if !w.cfg.PerBuild && (w.cfg.Policy.Recycling(w.now, e.req, w.list()) || w.cfg.Policy.Busy(w.now, e.req, w.list())) {
		return false // a VM that can serve it is being recycled (AwaitRecycling)
	} else if w.cfg.PerBuild || w.cfg.Policy.MayCreate(e.req.Tier, w.list()) {
		id, wait = w.create(e.req.Tier), w.cfg.Spawn
	} else {
		return false
	}
	wait += w.now.Sub(e.at) // time queued
	v := w.vms[id]
	v.State, v.Since = pool.StateLeased, w.now
	v.Lease = &pool.Lease{ID: fmt.Sprint("l", w.res.Builds), Started: w.now, Expires: w.now.Add(time.Hour), Expected: e.req.Expected()}
	w.waits = append(w.waits, wait)
	w.push(event{at: e.at.Add(wait + e.dur), kind: done, vm: id, dur: e.dur, req: e.req})
	return true
}

func (w *world) create(tier string) string {
	w.res.Created++
	id := fmt.Sprintf("vm-%d", w.res.Created)
	w.vms[id] = &pool.VM{ID: id, Tier: tier, Arch: "arm", State: pool.StateCreating, Since: w.now, Created: w.now}
	w.ids[id] = int64(w.res.Created)
	w.ledger.Open(w.ids[id], tier, w.now)
	return id
}

func (w *world) retire(id string) {
	w.ledger.Close(w.ids[id], w.now)
	delete(w.vms, id)
}

func (w *world) upkeep() {
	for _, r := range w.cfg.Policy.Retire(w.now, w.list()) {
		for ns, to := range r.HandOff {
			if w.vms[to].Warm == nil {
				w.vms[to].Warm = map[string]pool.Warm{}
			}
			w.vms[to].Warm[ns] = r.VM.Warm[ns]
			w.res.HandOffs++
		}
		w.retire(r.VM.ID)
	}
	for tier, n := range w.cfg.Policy.Missing(w.list(), "arm") {
		for range n {
			id := w.create(tier)
			w.vms[id].Since = w.now
			w.push(event{at: w.now.Add(w.cfg.Spawn), kind: ready, vm: id})
		}
	}
}

func (w *world) list() []pool.VM {
	out := make([]pool.VM, 0, len(w.vms))
	for _, v := range w.vms {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (w *world) busy() int {
	n := 0
	for _, v := range w.vms {
		if v.State == pool.StateLeased || v.State == pool.StateRecycling {
			n++
		}
	}
	return n
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(math.Ceil(p*float64(len(s))))-1]
}
