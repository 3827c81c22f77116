package pool_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/pool"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv"
)

// A lease that outlives its TTL is reclaimed by the upkeep: its VM is
// destroyed (never reused: the holder may still be at it), and the late
// return finds nothing to return. Each step publishes its VM event.
func TestExpiredLeaseIsReclaimed(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true})
	ctx := context.Background()
	g, err := w.client.Lease(ctx, pool.Request{Tier: "cax11", TTLSeconds: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Upkeep(ctx); err != nil {
		t.Fatal(err)
	}
	c := dialLease(t, g)
	if vms, _ := w.client.List(ctx); len(vms) != 1 || vms[0].State != pool.StateLeased {
		t.Fatalf("a live lease was touched: %+v", vms)
	}
	time.Sleep(time.Until(g.Expires) + 200*time.Millisecond)
	if err := w.svc.Upkeep(ctx); err != nil {
		t.Fatal(err)
	}
	if vms, _ := w.client.List(ctx); len(vms) != 0 {
		t.Fatalf("the expired lease's VM is still there: %+v", vms)
	}
	if s, _ := w.fake.Counts(); s != 0 {
		t.Errorf("%d servers after the reclaim", s)
	}
	if _, err := c.Run(ctx, "true"); err == nil {
		t.Error("the expired lease's connection still works")
	}
	_, err = w.client.Return(ctx, g.LeaseID, "ok")
	var ae *pool.APIError
	if !errorsAs(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("late return: %v", err)
	}
	w.drainAndCheck(t)
}

// Events on <prefix>.pool.vm.{created,reused,retired} and the metrics at
// /metrics follow what the pool did.
func TestEventsAndMetrics(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true})
	ctx := context.Background()
	ns := testenv.StartNATS(t, false)
	sub := testenv.SubscribeNATS(t, ns, "lian-build.pool.vm.>")
	w.useEvents(t, ns.ClientURL())
	for _, outcome := range []string{"ok", "oom"} {
		g, err := w.client.Lease(ctx, pool.Request{Tier: "cax11"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.client.Return(ctx, g.LeaseID, outcome); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for range 3 {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("events so far %v: %v", got, err)
		}
		var e pool.Event
		if err := json.Unmarshal(m.Data, &e); err != nil || e.VM == "" || e.Tier != "cax11" {
			t.Fatalf("event %s: %s (%v)", m.Subject, m.Data, err)
		}
		got = append(got, strings.TrimPrefix(m.Subject, "lian-build.pool.vm.")+":"+e.Reason)
	}
	if got[0] != "created:" || got[1] != "reused:" || got[2] != "retired:returned with outcome oom" {
		t.Errorf("events %v", got)
	}
	resp, err := http.Get(w.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`lian_build_pool_vm_events_total{event="created",tier="cax11"} 1`,
		`lian_build_pool_vm_events_total{event="retired",tier="cax11"} 1`,
		`lian_build_pool_billed_minutes_total{tier="cax11"} 60`,
		`lian_build_pool_returns_total{outcome="oom",tier="cax11"} 1`,
		`lian_build_pool_lease_wait_seconds_count{reused="true",tier="cax11"} 1`,
		`lian_build_pool_build_minutes_total{tier="cax11"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	w.drainAndCheck(t)
}

// A new server that never becomes reachable (its sshd never answers) is
// deleted and another made, once, within the lease's wait: the lease gets
// the second. (The system soak found a build failed after a two-minute
// wait for such a server.)
func TestNewServerThatNeverAnswersIsReplaced(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true, sshTimeout: 10 * time.Second})
	ctx := context.Background()
	w.hosts.Unreachable.Store(1)
	g, err := w.client.Lease(ctx, pool.Request{Tier: "cax11", TTLSeconds: 120})
	if err != nil {
		t.Fatalf("lease: %v", err)
	}
	var created []string
	for _, r := range w.fake.Requests() {
		if r.Method == "POST" && r.Path == "/servers" {
			created = append(created, r.Path)
		}
	}
	if len(created) != 2 {
		t.Errorf("%d servers made, want 2 (the unreachable one, then its replacement)", len(created))
	}
	if s, _ := w.fake.Counts(); s != 1 {
		t.Errorf("%d servers exist, want the lease's alone", s)
	}
	dialLease(t, g)
	if _, err := w.client.Return(ctx, g.LeaseID, "ok"); err != nil {
		t.Fatal(err)
	}
	w.svc.Wait()
	w.drainAndCheck(t)
}

// A lease granted by a replica that died before its answer reached the
// client is orphaned: the client asks again, on another replica, with the
// same request id. That replica takes the orphan back (returned as an
// error: recycled, its key revoked) instead of leaving the VM leased until
// its TTL. (The system soak found a pool that could not drain because of
// such a lease.)
func TestRetriedLeaseTakesBackItsOrphan(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true})
	ctx := context.Background()
	req := pool.Request{Tier: "cax11", TTLSeconds: 3600, RequestID: "rq-7f3a"}
	first, err := w.svc.Lease(ctx, req) // its answer "lost"
	if err != nil {
		t.Fatal(err)
	}
	second, err := w.client.Lease(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	w.svc.Wait()
	if _, err := w.client.Return(ctx, first.LeaseID, "ok"); err == nil {
		t.Error("the orphaned lease could still be returned: it was not taken back")
	}
	vms, err := w.client.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vms {
		if v.Lease != nil && v.Lease.ID != second.LeaseID {
			t.Errorf("VM %s is still leased to %s", v.ID, v.Lease.ID)
		}
	}
	if _, err := w.client.Return(ctx, second.LeaseID, "ok"); err != nil {
		t.Fatal(err)
	}
	w.svc.Wait()
	w.drainAndCheck(t)
}

// A holder keeps its lease alive: the vm-pool provider asks for a short
// TTL and renews it while the runner lives, so that a build outlives its
// first TTL, and the VM of a holder that died (a gateway killed mid-build,
// which the system soak left holding a VM for its build's whole budget) is
// taken back within one TTL.
func TestLeaseKeptAliveByItsHolder(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true})
	ctx := context.Background()
	r, err := w.prov.Spawn(ctx, sizing.HCloud[0], compute.Lease{ID: "keep-1", Owner: compute.Owner(), TTL: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	first := r.Info().Expires
	for range 10 {
		time.Sleep(time.Second)
		if err := w.svc.Upkeep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	vms, err := w.client.List(ctx)
	if err != nil || len(vms) != 1 || vms[0].State != pool.StateLeased || !vms[0].Lease.Expires.After(first) {
		t.Fatalf("the live holder's lease was not kept (expiry first %s): %+v %v", first, vms, err)
	}
	if err := r.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	w.svc.Wait()
	if vms, _ := w.client.List(ctx); len(vms) != 1 || vms[0].State != pool.StateIdle {
		t.Errorf("after the return: %+v", vms)
	}
	w.drainAndCheck(t)
}
