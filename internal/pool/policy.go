package pool

import (
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/lian-build/action/internal/sizing"
)

// BillingPeriod is what Hetzner bills: every started hour of a server.
const BillingPeriod = time.Hour

// Policy is the pool's rules; every decision is a pure function of a
// Policy, the time and the VMs.
type Policy struct {
	// RetireBefore retires an idle VM this long before its next billed
	// hour starts (default 3 min: the delete must land before the hour).
	RetireBefore time.Duration
	// MinIdle is how many idle VMs each tier keeps ready (default none).
	MinIdle map[string]int
	// MaxVMs bounds each tier's VMs, leased or not (absent: no bound; 0:
	// the pool serves none of the tier).
	MaxVMs map[string]int
	// SeparateClasses keeps ci leases and session (dev) leases on separate
	// VMs: a VM serves only the class of its first lease.
	SeparateClasses bool
	// DefaultExpected is a build's expected duration when the request has none.
	DefaultExpected time.Duration
	// Upsize lets a build take an idle VM of a larger tier when none of its
	// own is idle: an hour already paid for beats a new server (and its
	// wait). The build then runs, and is reported, on the larger tier.
	Upsize bool
	// CrossHour lets a build take an idle VM whose billed hour does not hold
	// it (after every VM whose hour does): it starts the VM's next hour,
	// which costs what a new server's first hour costs, without the wait.
	CrossHour bool
	// AwaitRecycling is how long a lease with no idle VM waits for one
	// being recycled that could serve it, before a new server is made
	// (default 30 s: a recycle takes seconds, a new server a minute or
	// more, and a recycled VM may hold the build's warm state; <0: never).
	AwaitRecycling time.Duration
	// KeepWarm keeps an idle VM into its next billed hour, instead of
	// retiring it, while it alone holds the newest generation of a
	// namespace committed within KeepWarm: a hot namespace's state outlives
	// the hour (0: VMs retire at their hour's end, state and all).
	KeepWarm time.Duration
	// WarmBytes bounds the committed warm state a VM keeps on its disk
	// (default: half its server's disk; unknown disk: no bound). Past it,
	// the namespaces committed longest ago are dropped.
	WarmBytes int64
	// AwaitBusy has a lease for warm state that finds no idle VM holding
	// its namespace's newest generation wait for the leased VM that holds
	// it, when that VM's lease is expected to end within AwaitBusy: a
	// warm build after a short wait beats a new server's boot and a cold
	// build (0: never).
	AwaitBusy time.Duration
	// StuckAfter is how long a VM may stay creating or recycling before
	// upkeep takes it over (default Stale): one left creating is retired;
	// one left recycling (its settler died, mid-commit perhaps) is
	// recycled again, its warm state read back from its disk.
	StuckAfter time.Duration
}

func (p Policy) stuckAfter() time.Duration {
	if p.StuckAfter > 0 {
		return p.StuckAfter
	}
	return Stale
}

func (p Policy) awaitRecycling() time.Duration {
	switch {
	case p.AwaitRecycling < 0:
		return 0
	case p.AwaitRecycling == 0:
		return 30 * time.Second
	}
	return p.AwaitRecycling
}

// Recycling says whether a VM being recycled at now could serve req once
// idle: the tier (or a larger one with Upsize), architecture, location and
// class group Pick would take, and not stuck.
func (p Policy) Recycling(now time.Time, req Request, vms []VM) bool {
	for _, v := range vms {
		if v.State != StateRecycling || now.Sub(v.Since) > p.stuckAfter() {
			continue
		}
		v.State = StateIdle
		if len(p.Pick(now, req, []VM{v})) > 0 {
			return true
		}
	}
	return false
}

// Busy says whether a lease should wait for a leased VM, or one being
// recycled after its lease, that holds the newest generation of its
// namespace (Policy.AwaitBusy), rather than make a server.
func (p Policy) Busy(now time.Time, req Request, vms []VM) bool {
	if p.AwaitBusy <= 0 || req.State == nil || len(req.State.Read) == 0 {
		return false
	}
	ns := req.State.Read[0]
	gen := newest(vms, ns)
	if gen == 0 {
		return false
	}
	for _, v := range vms {
		if v.Warm[ns].Generation != gen {
			continue
		}
		switch {
		case v.State == StateRecycling && now.Sub(v.Since) <= p.stuckAfter():
			// on its way back
		case v.State == StateLeased && v.Lease != nil:
			if left := v.Lease.Started.Add(p.expected(v.Lease.Expected)).Sub(now); left < 0 || left > p.AwaitBusy {
				continue
			}
		default:
			continue
		}
		v.State = StateIdle
		if len(p.Pick(now, req, []VM{v})) > 0 {
			return true
		}
	}
	return false
}

func (p Policy) retireBefore() time.Duration {
	if p.RetireBefore <= 0 {
		return 3 * time.Minute
	}
	return p.RetireBefore
}

func (p Policy) expected(d time.Duration) time.Duration {
	switch {
	case d > 0:
		return d
	case p.DefaultExpected > 0:
		return p.DefaultExpected
	}
	return 10 * time.Minute
}

// BilledUntil is when the billed hour a VM is in at now ends.
func BilledUntil(created, now time.Time) time.Time {
	if now.Before(created) {
		return created.Add(BillingPeriod)
	}
	hours := now.Sub(created)/BillingPeriod + 1
	return created.Add(hours * BillingPeriod)
}

// BilledMinutes is what a VM alive from created to end costs: every
// started hour, whole.
func BilledMinutes(created, end time.Time) int64 {
	return int64(BilledUntil(created, end.Add(-time.Nanosecond)).Sub(created) / time.Minute)
}

// ClassGroup is the group a class's leases share VMs within when classes
// are kept apart: ci (ci and ci_aux) or dev (human and agent sessions).
func ClassGroup(class string) string {
	switch class {
	case "human", "agent", "dev":
		return "dev"
	}
	return "ci"
}

// Pick orders the idle VMs that may serve req at now, best first: the right
// tier and architecture (and location, when asked), the class group when
// classes are kept apart, and a billed hour that still holds the build's
// expected duration and the retire margin. Among those, the smallest tier,
// then the VM holding the newest warm state of the build's namespace (an
// older generation, then none), then the one with the least billed time
// left (it is the one to use up); ties by name.
func (p Policy) Pick(now time.Time, req Request, vms []VM) []VM {
	need := p.expected(req.Expected()) + p.retireBefore()
	rank := tierRank(req.Tier)
	var out []VM
	for _, v := range vms {
		if v.State != StateIdle || v.Arch != req.Arch {
			continue
		}
		if v.Tier != req.Tier && !(p.Upsize && tierRank(v.Tier) > rank) {
			continue
		}
		if req.Location != "" && v.Location != req.Location {
			continue
		}
		if p.SeparateClasses && v.Group != "" && v.Group != ClassGroup(req.Class) {
			continue
		}
		if BilledUntil(v.Created, now).Sub(now) < need && !p.CrossHour {
			continue
		}
		out = append(out, v)
	}
	fits := func(v VM) bool { return BilledUntil(v.Created, now).Sub(now) >= need }
	sort.Slice(out, func(i, j int) bool {
		if fi, fj := fits(out[i]), fits(out[j]); fi != fj {
			return fi // an hour already paid for first
		}
		if ri, rj := tierRank(out[i].Tier), tierRank(out[j].Tier); ri != rj {
			return ri < rj // the smallest that fits: its own tier first
		}
		if w := warmer(out[i], out[j], req); w != 0 {
			return w < 0 // the newest state of the build's namespace
		}
		li, lj := BilledUntil(out[i].Created, now), BilledUntil(out[j].Created, now)
		if !li.Equal(lj) {
			return li.Before(lj)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// tierRank is a tier's place in the table, smallest first.
func tierRank(tier string) int {
	for i, t := range sizing.HCloud {
		if t.Name == tier {
			return i
		}
	}
	return -1
}

// Closed reports whether the pool serves none of the tier (--max-vms TIER=0).
func (p Policy) Closed(tier string) bool {
	max, bounded := p.MaxVMs[tier]
	return bounded && max <= 0
}

// MayCreate says whether the tier may have one more VM.
func (p Policy) MayCreate(tier string, vms []VM) bool {
	max, bounded := p.MaxVMs[tier]
	if !bounded {
		return true
	}
	n := 0
	for _, v := range vms {
		if v.Tier == tier && v.State != StateRetiring {
			n++
		}
	}
	return n < max
}

// Retirement is a VM to retire and why.
type Retirement struct {
	VM     VM
	Reason string
	// HandOff is where the namespaces it alone holds the newest state of
	// go before it does (HandOff), by namespace: a VM's id.
	HandOff map[string]string
}

// Stale bounds how long a VM may stay creating or recycling: longer means
// the service that was at it died.
const Stale = 10 * time.Minute

// Retire is every VM to retire at now: leases past their expiry (the
// holder is gone), VMs stuck creating or recycling, and idle VMs whose
// billed hour ends within RetireBefore — except those a tier's MinIdle
// keeps (the newest, which have the most of their hour left).
func (p Policy) Retire(now time.Time, vms []VM) []Retirement {
	var out []Retirement
	idle := map[string][]VM{}
	for _, v := range vms {
		switch {
		case v.State == StateLeased && v.Lease != nil && now.After(v.Lease.Expires):
			out = append(out, Retirement{VM: v, Reason: "lease " + v.Lease.ID + " expired"})
		case v.State == StateCreating && now.Sub(v.Since) > p.stuckAfter():
			out = append(out, Retirement{VM: v, Reason: "stuck " + string(v.State) + " since " + v.Since.UTC().Format(time.RFC3339)})
		case v.State == StateIdle:
			idle[v.Tier] = append(idle[v.Tier], v)
		}
	}
	hot := p.hotHolders(now, vms)
	for tier, vs := range idle {
		sort.Slice(vs, func(i, j int) bool { return vs[i].Created.After(vs[j].Created) })
		keep := p.MinIdle[tier]
		for i, v := range vs {
			if i < keep || hot[v.ID] {
				continue
			}
			if BilledUntil(v.Created, now).Sub(now) <= p.retireBefore() {
				out = append(out, Retirement{VM: v, Reason: "idle at the end of its billed hour"})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VM.ID < out[j].VM.ID })
	gone := map[string]bool{}
	for _, r := range out {
		gone[r.VM.ID] = true
	}
	for i, r := range out {
		if r.VM.State == StateIdle {
			out[i].HandOff = p.HandOff(now, r.VM, vms, gone)
		}
	}
	return out
}

// HandOff plans where the state of a VM about to be retired goes: each
// namespace of which it alone holds the newest generation, to the idle VM
// of its architecture and class group with the most of its billed hour
// left whose warm budget holds it (none of gone). A namespace no VM can
// take goes with the VM.
func (p Policy) HandOff(now time.Time, from VM, vms []VM, gone map[string]bool) map[string]string {
	plan := map[string]string{}
	added := map[string]int64{}
	for _, ns := range slices.Sorted(maps.Keys(from.Warm)) {
		w := from.Warm[ns]
		if slices.ContainsFunc(vms, func(v VM) bool { return v.ID != from.ID && v.Warm[ns].Generation >= w.Generation }) {
			continue
		}
		var to *VM
		for _, v := range vms {
			if v.State != StateIdle || gone[v.ID] || v.ID == from.ID || v.Arch != from.Arch || from.Group != "" && v.Group != "" && v.Group != from.Group {
				continue
			}
			if b := p.warmBudget(v); b > 0 && warmBytes(v)+added[v.ID]+w.Bytes > b {
				continue
			}
			if to == nil || BilledUntil(v.Created, now).After(BilledUntil(to.Created, now)) {
				to = &v
			}
		}
		if to != nil {
			plan[ns] = to.ID
			added[to.ID] += w.Bytes
		}
	}
	return plan
}

// warmBytes is the committed state v keeps.
func warmBytes(v VM) int64 {
	var n int64
	for _, w := range v.Warm {
		n += w.Bytes
	}
	return n
}

// Unsettled are the VMs left recycling past StuckAfter: whoever settled
// their return (a replica killed, perhaps mid-commit) is gone.
func (p Policy) Unsettled(now time.Time, vms []VM) []VM {
	var out []VM
	for _, v := range vms {
		if v.State == StateRecycling && now.Sub(v.Since) > p.stuckAfter() {
			out = append(out, v)
		}
	}
	return out
}

// hotHolders are the VMs KeepWarm keeps: for each namespace committed
// within KeepWarm, the VM holding its newest generation.
func (p Policy) hotHolders(now time.Time, vms []VM) map[string]bool {
	out := map[string]bool{}
	if p.KeepWarm <= 0 {
		return out
	}
	best := map[string]VM{}
	for _, v := range vms {
		for ns, w := range v.Warm {
			if b, ok := best[ns]; !ok || w.Committed.After(b.Warm[ns].Committed) {
				best[ns] = v
			}
		}
	}
	for ns, v := range best {
		if now.Sub(v.Warm[ns].Committed) <= p.KeepWarm {
			out[v.ID] = true
		}
	}
	return out
}

// Missing is how many idle VMs each tier lacks for its MinIdle (counting
// VMs being created for no lease), within MaxVMs.
func (p Policy) Missing(vms []VM, arch string) map[string]int {
	out := map[string]int{}
	for tier, want := range p.MinIdle {
		have, total := 0, 0
		for _, v := range vms {
			if v.Tier != tier || v.Arch != arch || v.State == StateRetiring {
				continue
			}
			total++
			if v.State == StateIdle || (v.State == StateCreating && v.Lease == nil) {
				have++
			}
		}
		n := want - have
		if limit, bounded := p.MaxVMs[tier]; bounded {
			n = min(n, limit-total)
		}
		if n > 0 {
			out[tier] = n
		}
	}
	return out
}
