package pool

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func idle(id, tier string, created time.Time) VM {
	return VM{ID: id, Tier: tier, Arch: "arm", State: StateIdle, Created: created}
}

func TestBilling(t *testing.T) {
	for _, c := range []struct {
		alive  time.Duration
		until  time.Duration
		billed int64
	}{{0, time.Hour, 60}, {time.Minute, time.Hour, 60}, {59 * time.Minute, time.Hour, 60}, {time.Hour, 2 * time.Hour, 60}, {61 * time.Minute, 2 * time.Hour, 120}} {
		if got := BilledUntil(t0, t0.Add(c.alive)); !got.Equal(t0.Add(c.until)) {
			t.Errorf("alive %s: billed until %s, want +%s", c.alive, got, c.until)
		}
		if got := BilledMinutes(t0, t0.Add(c.alive)); got != c.billed && c.alive > 0 {
			t.Errorf("alive %s: %d billed minutes, want %d", c.alive, got, c.billed)
		}
	}
}

// Reuse only what the billed hour still holds: the build's expected
// duration plus the retire margin; the VM with the least time left first.
func TestPickFitsTheBuildIntoTheBilledHour(t *testing.T) {
	now := t0.Add(40 * time.Minute)
	vms := []VM{
		idle("old", "cax11", t0),                            // 20 min left
		idle("young", "cax11", t0.Add(30*time.Minute)),      // 50 min left
		idle("other-tier", "cax21", t0.Add(30*time.Minute)), // wrong tier
		{ID: "busy", Tier: "cax11", Arch: "arm", State: StateLeased, Created: t0},
		{ID: "x86", Tier: "cax11", Arch: "x86", State: StateIdle, Created: t0},
	}
	p := Policy{}
	ids := func(vs []VM) (out []string) {
		for _, v := range vs {
			out = append(out, v.ID)
		}
		return out
	}
	if got := ids(p.Pick(now, Request{Tier: "cax11", Arch: "arm", ExpectedSeconds: 600}, vms)); len(got) != 2 || got[0] != "old" || got[1] != "young" {
		t.Errorf("10 min build: %v, want [old young]", got)
	}
	if got := ids(p.Pick(now, Request{Tier: "cax11", Arch: "arm", ExpectedSeconds: 1800}, vms)); len(got) != 1 || got[0] != "young" {
		t.Errorf("30 min build: %v, want [young]", got)
	}
	if got := p.Pick(now, Request{Tier: "cax11", Arch: "arm", ExpectedSeconds: 50 * 60}, vms); len(got) != 0 {
		t.Errorf("50 min build fits nowhere, got %v", ids(got))
	}
	up := Policy{Upsize: true}
	if got := ids(up.Pick(now, Request{Tier: "cax11", Arch: "arm", ExpectedSeconds: 1800}, vms)); len(got) != 2 || got[0] != "young" || got[1] != "other-tier" {
		t.Errorf("upsize: %v, want its own tier first, then the larger one", got)
	}
	if got := ids(up.Pick(now, Request{Tier: "cax21", Arch: "arm", ExpectedSeconds: 60}, vms)); len(got) != 1 || got[0] != "other-tier" {
		t.Errorf("upsize never downsizes: %v", got)
	}
	sep := Policy{SeparateClasses: true}
	vms[0].Group, vms[1].Group = "dev", "ci"
	if got := ids(sep.Pick(now, Request{Tier: "cax11", Arch: "arm", Class: "human", ExpectedSeconds: 60}, vms)); len(got) != 1 || got[0] != "old" {
		t.Errorf("a session with classes apart: %v, want [old]", got)
	}
}

func TestRetire(t *testing.T) {
	now := t0.Add(58 * time.Minute)
	vms := []VM{
		idle("ending", "cax11", t0),                    // 2 min left: retire
		idle("fresh", "cax11", t0.Add(30*time.Minute)), // 32 min left
		idle("standby", "cax21", t0),                   // 2 min left, but MinIdle keeps one
		{ID: "expired", Tier: "cax11", State: StateLeased, Lease: &Lease{ID: "l1", Expires: now.Add(-time.Second)}},
		{ID: "live", Tier: "cax11", State: StateLeased, Created: t0, Lease: &Lease{ID: "l2", Expires: now.Add(time.Hour)}},
		{ID: "stuck", Tier: "cax11", State: StateCreating, Since: now.Add(-Stale - time.Second)},
		{ID: "creating", Tier: "cax11", State: StateCreating, Since: now.Add(-time.Minute)},
	}
	got := map[string]string{}
	for _, r := range (Policy{MinIdle: map[string]int{"cax21": 1}}).Retire(now, vms) {
		got[r.VM.ID] = r.Reason
	}
	if len(got) != 3 || got["ending"] == "" || got["expired"] == "" || got["stuck"] == "" {
		t.Errorf("retired %v, want ending, expired, stuck", got)
	}
}

// A VM left recycling past StuckAfter is not retired but taken over
// (Unsettled): its disk may hold the state its settler committed.
func TestUnsettled(t *testing.T) {
	now := t0.Add(30 * time.Minute)
	vms := []VM{
		{ID: "left", Tier: "cax11", State: StateRecycling, Since: now.Add(-Stale - time.Second)},
		{ID: "settling", Tier: "cax11", State: StateRecycling, Since: now.Add(-time.Minute)},
		{ID: "creating", Tier: "cax11", State: StateCreating, Since: now.Add(-Stale - time.Second)},
	}
	for _, c := range []struct {
		p    Policy
		want []string
	}{{Policy{}, []string{"left"}}, {Policy{StuckAfter: 30 * time.Second}, []string{"left", "settling"}}} {
		var got []string
		for _, v := range c.p.Unsettled(now, vms) {
			got = append(got, v.ID)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("StuckAfter %s: unsettled %v, want %v", c.p.StuckAfter, got, c.want)
		}
		for _, r := range c.p.Retire(now, vms) {
			if r.VM.State == StateRecycling {
				t.Errorf("a VM left recycling is retired: %+v", r)
			}
		}
	}
}

func TestParseWarmList(t *testing.T) {
	committed := t0.Add(-time.Hour)
	got, err := parseWarmList("ci_app generation 3 bytes 1024\ndev_h-jpl_app generation 1 bytes 10\n", t0, map[string]Warm{
		"ci/app": {Generation: 3, Committed: committed}, "ci/web": {Generation: 2}})
	want := map[string]Warm{"ci/app": {Generation: 3, Committed: committed, Bytes: 1024}, "dev/h-jpl_app": {Generation: 1, Committed: t0, Bytes: 10}}
	if err != nil || !maps.Equal(got, want) {
		t.Errorf("parseWarmList = %v, %v; want %v", got, err, want)
	}
	if _, err := parseWarmList("ci_app generation x bytes 1\n", t0, nil); err == nil {
		t.Error("a bad line is read")
	}
}

func TestMissingAndMayCreate(t *testing.T) {
	p := Policy{MinIdle: map[string]int{"cax11": 2, "cax21": 1}, MaxVMs: map[string]int{"cax11": 2}}
	vms := []VM{idle("a", "cax11", t0), {ID: "b", Tier: "cax11", Arch: "arm", State: StateLeased}}
	if m := p.Missing(vms, "arm"); m["cax11"] != 0 || m["cax21"] != 1 {
		t.Errorf("missing %v: cax11 is at its maximum, cax21 lacks one", m)
	}
	if p.MayCreate("cax11", vms) || !p.MayCreate("cax21", vms) {
		t.Error("MayCreate ignores MaxVMs")
	}
}

// A lease with no idle VM waits for a VM being recycled that could serve
// it (not one of another tier or architecture, nor one stuck).
func TestRecycling(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	req := Request{Tier: "cax11", Arch: "arm", ExpectedSeconds: 60}
	vm := func(tier, arch string, st State, since time.Duration) VM {
		return VM{ID: tier + arch, Tier: tier, Arch: arch, State: st, Since: now.Add(-since), Created: now.Add(-5 * time.Minute)}
	}
	p := Policy{}
	for _, c := range []struct {
		vms  []VM
		want bool
	}{
		{[]VM{vm("cax11", "arm", StateRecycling, time.Second)}, true},
		{[]VM{vm("cax21", "arm", StateRecycling, time.Second)}, false},
		{[]VM{vm("cax11", "x86", StateRecycling, time.Second)}, false},
		{[]VM{vm("cax11", "arm", StateRecycling, Stale+time.Second)}, false},
		{[]VM{vm("cax11", "arm", StateLeased, time.Second)}, false},
	} {
		if got := p.Recycling(now, req, c.vms); got != c.want {
			t.Errorf("%+v: Recycling = %v, want %v", c.vms[0], got, c.want)
		}
	}
	if (Policy{AwaitRecycling: -1}).awaitRecycling() != 0 || (Policy{}).awaitRecycling() != 30*time.Second {
		t.Error("AwaitRecycling defaults")
	}
}

// Pick puts the VM holding the newest generation of the build's namespace
// first, then an older one, then any — after the billed-hour and tier
// rules; a session prefers its own namespace over ci's.
func TestPickPrefersWarmState(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	newIdle := func(id string, warm map[string]Warm) VM {
		return VM{ID: id, Tier: "cax11", Arch: "arm", State: StateIdle, Created: now.Add(-10 * time.Minute), Warm: warm}
	}
	old, recent := Warm{Generation: 3, Committed: now.Add(-5 * time.Minute)}, Warm{Generation: 4, Committed: now.Add(-time.Minute)}
	vms := []VM{newIdle("a-cold", nil), newIdle("b-old", map[string]Warm{"ci/app": old}), newIdle("c-new", map[string]Warm{"ci/app": recent}),
		newIdle("d-dev", map[string]Warm{"dev/jpl-app": old})}
	ids := func(req Request) string {
		var out []string
		for _, v := range (Policy{}).Pick(now, req, vms) {
			out = append(out, v.ID)
		}
		return strings.Join(out, " ")
	}
	ciReq := Request{Tier: "cax11", Arch: "arm", State: &StateRequest{Read: []string{"ci/app"}, Write: "ci/app"}}
	if got := ids(ciReq); got != "c-new b-old a-cold d-dev" {
		t.Errorf("ci: %s", got)
	}
	dev := Request{Tier: "cax11", Arch: "arm", Class: "human", State: &StateRequest{Read: []string{"dev/jpl-app", "ci/app"}, Write: "dev/jpl-app"}}
	if got := ids(dev); got != "d-dev c-new b-old a-cold" {
		t.Errorf("session: %s", got)
	}
	if got := ids(Request{Tier: "cax11", Arch: "arm"}); got != "a-cold b-old c-new d-dev" {
		t.Errorf("no state asked: %s (by name, as before)", got)
	}
}

// KeepWarm keeps, at the end of its hour, the idle VM holding the newest
// generation of a namespace committed within KeepWarm — not one holding an
// older generation, nor any once the namespace went cold.
func TestRetireKeepsTheHotNamespacesVM(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 58, 0, 0, time.UTC) // 2 min before the VMs' hour ends
	created := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	vm := func(id string, committed time.Duration) VM {
		return VM{ID: id, Tier: "cax11", Arch: "arm", State: StateIdle, Created: created,
			Warm: map[string]Warm{"ci/app": {Generation: 1, Committed: now.Add(-committed)}}}
	}
	retired := func(p Policy, vms ...VM) string {
		var out []string
		for _, r := range p.Retire(now, vms) {
			out = append(out, r.VM.ID)
		}
		return strings.Join(out, " ")
	}
	if got := retired(Policy{KeepWarm: time.Hour}, vm("newest", 10*time.Minute), vm("older", 20*time.Minute)); got != "older" {
		t.Errorf("keep-warm 1h retired %q, want only the older holder", got)
	}
	if got := retired(Policy{KeepWarm: time.Hour}, vm("cold", 2*time.Hour)); got != "cold" {
		t.Errorf("a namespace cold for 2 h kept its VM: retired %q", got)
	}
	if got := retired(Policy{}, vm("newest", 10*time.Minute)); got != "newest" {
		t.Errorf("without KeepWarm: retired %q", got)
	}
}

// A lease for warm state waits for the leased VM holding its namespace's
// newest generation when that lease is expected to end within AwaitBusy —
// not for one holding an older generation or another namespace, one
// running past its expected end, or one of another architecture; nor
// without AwaitBusy or a state request.
func TestBusy(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	req := Request{Tier: "cax11", Arch: "arm", ExpectedSeconds: 60, State: &StateRequest{Read: []string{"ci/app"}, Write: "ci/app"}}
	vm := func(ns string, gen int, arch string, started, expected time.Duration) VM {
		return VM{ID: fmt.Sprint(ns, gen, arch, started), Tier: "cax11", Arch: arch, State: StateLeased, Created: now.Add(-5 * time.Minute),
			Lease: &Lease{Started: now.Add(-started), Expected: expected}, Warm: map[string]Warm{ns: {Generation: gen}}}
	}
	older := vm("ci/app", 1, "arm", 0, time.Minute)
	older.State, older.Lease = StateIdle, nil
	newer := vm("ci/app", 2, "arm", time.Minute, 3*time.Minute)
	recycling, stuck := newer, newer
	recycling.State, recycling.Since, recycling.Lease = StateRecycling, now.Add(-time.Second), nil
	stuck.State, stuck.Since, stuck.Lease = StateRecycling, now.Add(-Stale-time.Second), nil
	p := Policy{AwaitBusy: 4 * time.Minute}
	for _, c := range []struct {
		name string
		p    Policy
		req  Request
		vms  []VM
		want bool
	}{
		{"back in 2 min", p, req, []VM{newer}, true},
		{"being recycled", p, req, []VM{recycling}, true},
		{"being recycled, stuck", p, req, []VM{stuck}, false},
		{"back in 2 min, an older generation idle", p, req, []VM{older, newer}, true},
		{"back in 5 min", p, req, []VM{vm("ci/app", 2, "arm", 0, 5*time.Minute)}, false},
		{"past its expected end", p, req, []VM{vm("ci/app", 2, "arm", 4*time.Minute, 3*time.Minute)}, false},
		{"an older generation", p, req, []VM{vm("ci/app", 1, "arm", 0, time.Minute), vm("ci/app", 2, "arm", 0, 9*time.Minute)}, false},
		{"another namespace", p, req, []VM{vm("ci/web", 2, "arm", 0, time.Minute)}, false},
		{"another architecture", p, req, []VM{vm("ci/app", 2, "x86", 0, time.Minute)}, false},
		{"no AwaitBusy", Policy{}, req, []VM{newer}, false},
		{"no state asked", p, Request{Tier: "cax11", Arch: "arm"}, []VM{newer}, false},
	} {
		if got := c.p.Busy(now, c.req, c.vms); got != c.want {
			t.Errorf("%s: Busy = %v, want %v", c.name, got, c.want)
		}
	}
}
