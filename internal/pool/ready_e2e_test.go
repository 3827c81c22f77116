package pool_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/pool"
	"github.com/lian-build/action/internal/testenv"
)

// A returned VM is made ready for the lease likely to follow: its buildkitd
// already runs on the namespace the last lease wrote, and the next lease's
// key is already let in. The next ci build of that workspace takes it with
// no grant and finds its state; a lease that wants anything else — no
// state, or another namespace — is granted over SSH, on what it asked for,
// and never on the prepared tree.
func TestReturnedVMIsPreparedForTheNextLease(t *testing.T) {
	w := warmWorld(t)
	plain, err := pipeline.New(pipeline.Config{Provider: w.prov, SpawnTimeout: w.leaseWait()})
	if err != nil {
		t.Fatal(err)
	}
	first := "FROM base\nRUN --mount=type=cache,target=/c echo ci > /c/mark\n"
	if _, err, progress := w.build(t, first, inWorkspace("app", ci)); err != nil {
		t.Fatalf("first build: %v\n%s", err, progress)
	}
	vm := w.only(t)
	if r := vm.Ready; r == nil || r.Tree == "" || r.Namespace != "ci/app" || r.Generation != 1 || r.KeyNonce == "" {
		t.Fatalf("after the first build the VM is ready for %+v: want ci/app generation 1 on a tree, with a key", r)
	}
	if out, err := w.hosts.Run(vm.ServerID, "grep -c . /root/.ssh/authorized_keys"); err != nil || strings.TrimSpace(string(out)) != "2" {
		t.Fatalf("authorized keys on the idle VM: %s %v; want the pool's and the next lease's", out, err)
	}

	res, err, progress := w.build(t, "FROM base\nRUN --mount=type=cache,target=/c test \"$(cat /c/mark)\" = ci\n", inWorkspace("app", ci))
	if err != nil {
		t.Fatalf("the prepared lease does not see the state: %v\n%s", err, progress)
	}
	if st := res.State; st == nil || st.GenerationIn != 1 || st.GenerationOut != 2 || st.CloneMS != 0 {
		t.Errorf("the warm build's state %+v: want generation 1 opened before the lease, 2 committed", res.State)
	}
	if sv := res.Attempts[0].Runner.Server; !strings.Contains(sv, "prepared true") {
		t.Errorf("the warm build's runner %q: want a prepared lease", sv)
	}

	// No state asked: never the prepared tree.
	res, err, progress = testenvBuild(t, w, plain, "FROM base\nRUN --mount=type=cache,target=/c test ! -e /c/mark\n")
	if err != nil {
		t.Fatalf("a lease without state runs on the prepared state: %v\n%s", err, progress)
	}
	if sv := res.Attempts[0].Runner.Server; !strings.Contains(sv, "prepared false") {
		t.Errorf("the plain build's runner %q: want a grant over SSH", sv)
	}
	if vm = w.only(t); vm.Ready == nil || vm.Ready.Tree != "" {
		t.Errorf("after a plain lease the VM is ready for %+v: want an empty root", vm.Ready)
	}
	res, err, progress = testenvBuild(t, w, plain, "FROM base\nRUN --mount=type=cache,target=/c test ! -e /c/mark && touch /c/plain\n")
	if err != nil || !strings.Contains(res.Attempts[0].Runner.Server, "prepared true") {
		t.Fatalf("a plain lease on a VM ready for one: %v (%s)\n%s", err, res.Attempts[0].Runner.Server, progress)
	}

	// Ready for a plain lease, the VM opens ci/app's generation for its build.
	res, err, progress = w.build(t, "FROM base\nRUN --mount=type=cache,target=/c test \"$(cat /c/mark)\" = ci && test ! -e /c/plain\n", inWorkspace("app", ci))
	if err != nil {
		t.Fatalf("ci/app after plain leases: %v\n%s", err, progress)
	}
	if st := res.State; st == nil || st.GenerationIn != 2 || st.CloneMS == 0 || !strings.Contains(res.Attempts[0].Runner.Server, "prepared false") {
		t.Errorf("state %+v on %s: want generation 2 opened by the grant", res.State, res.Attempts[0].Runner.Server)
	}
	if s, _ := w.fake.Counts(); s != 1 {
		t.Errorf("%d servers: want the one VM throughout", s)
	}
	w.drainAndCheck(t)
}

// testenvBuild is w.build through another pipeline over the same pool.
func testenvBuild(t *testing.T, w *world, pl *pipeline.Pipeline, df string) (pipeline.Result, error, string) {
	t.Helper()
	res, err, progress := testenv.BuildDockerfile(t, pl, df, nil)
	w.svc.Wait()
	return res, err, progress
}

// A VM keeps its committed state within its budget: past it, the
// namespaces committed longest ago leave its disk (and the pool's record),
// and their next build starts empty.
func TestWarmStateBeyondTheBudgetIsEvicted(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true, warm: true, policy: pool.Policy{WarmBytes: 1}})
	df := "FROM base\nRUN --mount=type=cache,target=/c echo $(date +%s%N) > /c/mark\n"
	for _, ws := range []string{"a", "b"} {
		if _, err, progress := w.build(t, df, inWorkspace(ws, ci)); err != nil {
			t.Fatalf("build of %s: %v\n%s", ws, err, progress)
		}
	}
	vm := w.only(t)
	if _, kept := vm.Warm["ci/a"]; kept || vm.Warm["ci/b"].Generation != 1 {
		t.Fatalf("the VM holds %+v: want ci/b only", vm.Warm)
	}
	if out, err := w.hosts.Run(vm.ServerID, "ls "+filepath.Join(w.hosts.HostDir(vm.ServerID), "warm", "ns")); err != nil || strings.TrimSpace(string(out)) != "ci_b" {
		t.Errorf("on the VM's disk: %q %v, want ci_b only", out, err)
	}
	if n := counter(t, w, "lian_build_pool_warm_evictions_total", ""); n != 1 {
		t.Errorf("%v evictions counted, want 1", n)
	}
	res, err, progress := w.build(t, "FROM base\nRUN --mount=type=cache,target=/c test ! -e /c/mark\n", inWorkspace("a", ci))
	if err != nil || res.State == nil || res.State.GenerationIn != 0 {
		t.Errorf("ci/a after its eviction: %+v, %v\n%s", res.State, err, progress)
	}
	w.drainAndCheck(t)
}

// With --await-busy, a lease for warm state whose workspace's VM is leased
// and expected back soon waits for it, rather than making a new server and
// starting cold; it gets the VM once its holder returns it.
func TestLeaseWaitsForTheBusyVMHoldingItsState(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true, warm: true, policy: pool.Policy{AwaitBusy: time.Minute, AwaitRecycling: -1}})
	if _, err, progress := w.build(t, "FROM base\nRUN --mount=type=cache,target=/c echo ci > /c/mark\n", inWorkspace("app", ci)); err != nil {
		t.Fatalf("first build: %v\n%s", err, progress)
	}
	ctx := context.Background()
	req := pool.Request{Tier: "cax11", Arch: "arm", ExpectedSeconds: 5, State: &pool.StateRequest{Read: []string{"ci/app"}, Write: "ci/app"}}
	first, err := w.client.Lease(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	type leased struct {
		g   pool.Grant
		err error
	}
	second := make(chan leased, 1)
	go func() {
		g, err := w.client.Lease(ctx, req)
		second <- leased{g, err}
	}()
	select {
	case l := <-second:
		t.Fatalf("the second lease did not wait for the busy VM: %+v, %v", l.g, l.err)
	case <-time.After(2 * time.Second):
	}
	if _, err := w.client.Return(ctx, first.LeaseID, "ok"); err != nil {
		t.Fatal(err)
	}
	l := <-second
	if l.err != nil || l.g.VM != first.VM || l.g.State == nil || l.g.State.Generation != 1 {
		t.Errorf("the waiting lease got %+v, %v: want VM %s on ci/app generation 1", l.g, l.err, first.VM)
	}
	if s, _ := w.fake.Counts(); s != 1 {
		t.Errorf("%d servers: want the one VM", s)
	}
	if _, err := w.client.Return(ctx, l.g.LeaseID, "ok"); err != nil {
		t.Error(err)
	}
	w.drainAndCheck(t)
}

// shiftedClock is the real clock moved forward by what a test adds.
type shiftedClock struct{ by atomic.Int64 }

func (c *shiftedClock) Now() time.Time          { return time.Now().Add(time.Duration(c.by.Load())) }
func (c *shiftedClock) Advance(d time.Duration) { c.by.Add(int64(d)) }

// A VM retired at the end of its billed hour hands the namespace it alone
// holds the newest state of to the VM that stays: the generation streams
// from its disk to the other's, and the workspace's next build starts on it
// there.
func TestRetiredVMHandsItsStateOn(t *testing.T) {
	clock := &shiftedClock{}
	w := newWorld(t, worldConfig{hosts: true, warm: true, now: clock.Now})
	ctx := context.Background()
	if _, err, progress := w.build(t, "FROM base\nRUN --mount=type=cache,target=/c echo app > /c/mark\n", inWorkspace("app", ci)); err != nil {
		t.Fatalf("first build: %v\n%s", err, progress)
	}
	old := w.only(t)
	// Half an hour on, a second VM is made while the first is leased.
	clock.Advance(30 * time.Minute)
	held, err := w.client.Lease(ctx, pool.Request{Tier: "cax11", Arch: "arm", State: &pool.StateRequest{Read: []string{"ci/app"}, Write: "ci/app"}})
	if err != nil || held.VM != old.ID {
		t.Fatalf("lease %+v, %v: want %s", held, err, old.ID)
	}
	if _, err, progress := w.build(t, "FROM base\nRUN --mount=type=cache,target=/c echo other > /c/mark\n", inWorkspace("other", ci)); err != nil {
		t.Fatalf("a build of another workspace: %v\n%s", err, progress)
	}
	if _, err := w.client.Return(ctx, held.LeaseID, "ok"); err != nil {
		t.Fatal(err)
	}
	// The first VM's hour ends; the second's has half an hour left.
	clock.Advance(28 * time.Minute)
	if err := w.svc.Upkeep(ctx); err != nil {
		t.Fatalf("upkeep: %v", err)
	}
	heir := w.only(t)
	if heir.ID == old.ID || heir.Warm["ci/app"].Generation != 1 || heir.Warm["ci/other"].Generation != 1 {
		t.Fatalf("after the first VM's retirement: %s holds %+v; want the second, with ci/app 1 and ci/other 1", heir.ID, heir.Warm)
	}
	if n := counter(t, w, "lian_build_pool_warm_handoffs_total", ""); n != 1 {
		t.Errorf("%v hand-offs counted, want 1", n)
	}
	res, err, progress := w.build(t, "FROM base\nRUN --mount=type=cache,target=/c test \"$(cat /c/mark)\" = app\n", inWorkspace("app", ci))
	if err != nil || res.State == nil || res.State.GenerationIn != 1 {
		t.Errorf("ci/app on the VM it was handed to: %+v, %v\n%s", res.State, err, progress)
	}
	w.drainAndCheck(t)
}
