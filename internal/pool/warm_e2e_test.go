package pool_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/pool"
)

// warmWorld is a pool world whose builds ask for warm state.
func warmWorld(t *testing.T) *world { return newWorld(t, worldConfig{hosts: true, warm: true}) }

// only is the pool's one VM, once the returns are settled.
func (w *world) only(t *testing.T) pool.VM {
	t.Helper()
	w.svc.Wait()
	vms, err := w.client.List(context.Background())
	if err != nil || len(vms) != 1 {
		t.Fatalf("VMs %+v, %v: want one", vms, err)
	}
	return vms[0]
}

func inWorkspace(ws string, actor cache.Actor) func(*pipeline.Request) {
	return func(r *pipeline.Request) { r.Workspace, r.Actor = ws, actor }
}

var ci = cache.Actor{Kind: cache.ActorCI}

// A pool VM keeps each namespace's committed state: the next ci build of
// the workspace on it starts from it (its cache mount and its steps
// cached); a session reads ci's state and commits to its own namespace
// only; another workspace on the same VM sees none of it; a failed build
// commits nothing and the VM serves on; no build secret reaches a
// committed generation.
func TestPoolVMKeepsWarmStatePerNamespace(t *testing.T) {
	w := warmWorld(t)
	const secret = "warm-s3cret-0b9e"
	t.Setenv("WARM_TEST_SECRET", secret)
	first := "FROM base\nRUN --mount=type=cache,target=/c --mount=type=secret,id=s,env=S test -n \"$S\" && echo ci > /c/mark && echo built > /built\n"
	res, err, progress := w.build(t, first, func(r *pipeline.Request) {
		inWorkspace("app", ci)(r)
		r.Build.Secrets = []buildkit.Secret{{ID: "s", Env: "WARM_TEST_SECRET"}}
	})
	if err != nil {
		t.Fatalf("first build: %v\n%s", err, progress)
	}
	if st := res.State; st == nil || !st.Committed || st.Target != "ci/app" || st.GenerationOut != 1 {
		t.Fatalf("first build's state %+v, want ci/app generation 1 committed", res.State)
	}
	vm := w.only(t)
	if g := vm.Warm["ci/app"]; g.Generation != 1 || g.Bytes == 0 {
		t.Fatalf("the VM records %+v, want ci/app generation 1", vm.Warm)
	}
	warmDir := filepath.Join(w.hosts.HostDir(vm.ServerID), "warm")
	if files := filesMentioning(t, warmDir, secret); len(files) != 0 {
		t.Errorf("the build secret is in the committed state: %v", files)
	}

	// The warm hit: the first build's step is cached, its cache mount is there.
	second := first + "RUN --mount=type=cache,target=/c test \"$(cat /c/mark)\" = ci\n"
	res, err, progress = w.build(t, second, func(r *pipeline.Request) {
		inWorkspace("app", ci)(r)
		r.Build.Secrets = []buildkit.Secret{{ID: "s", Env: "WARM_TEST_SECRET"}}
	})
	if err != nil {
		t.Fatalf("the warm build does not see the cache mount: %v\n%s", err, progress)
	}
	if st := res.State; st == nil || st.Namespace != "ci/app" || st.GenerationIn != 1 || st.GenerationOut != 2 || res.StepsCached < 1 {
		t.Errorf("warm build: state %+v, %d/%d steps cached; want from ci/app 1, committed 2, the first step cached", res.State, res.StepsCached, res.StepsTotal)
	}

	// A session reads ci/app and writes dev/… only.
	human := cache.Actor{Kind: cache.ActorHuman, ID: "jpl"}
	res, err, progress = w.build(t, "FROM base\nRUN --mount=type=cache,target=/c test \"$(cat /c/mark)\" = ci && echo session > /c/mark\n", inWorkspace("app", human))
	if err != nil {
		t.Fatalf("session build: %v\n%s", err, progress)
	}
	if st := res.State; st == nil || st.Namespace != "ci/app" || !st.Committed || !strings.HasPrefix(st.Target, "dev/") {
		t.Errorf("session state %+v: want read ci/app, committed to dev/*", res.State)
	}
	if vm = w.only(t); vm.Warm["ci/app"].Generation != 2 {
		t.Errorf("the session moved ci/app: %+v", vm.Warm)
	}

	// Another workspace on the same VM starts empty; a failed build commits nothing.
	res, err, progress = w.build(t, "FROM base\nRUN --mount=type=cache,target=/c test ! -e /c/mark && echo other > /c/other\n", inWorkspace("other", ci))
	if err != nil || res.State == nil || res.State.Namespace != "" {
		t.Fatalf("another workspace sees the first one's state: %+v, %v\n%s", res.State, err, progress)
	}
	_, err, _ = w.build(t, "FROM base\nRUN --mount=type=cache,target=/c echo failed > /c/mark && false\n", inWorkspace("app", ci))
	if err == nil {
		t.Fatal("the failing build succeeded")
	}
	vm = w.only(t)
	if vm.Warm["ci/app"].Generation != 2 || vm.State != pool.StateIdle {
		t.Errorf("after a failed build the VM is %s with %+v: want idle, ci/app still 2", vm.State, vm.Warm)
	}
	res, err, progress = w.build(t, "FROM base\nRUN --mount=type=cache,target=/c test \"$(cat /c/mark)\" = ci\n", inWorkspace("app", ci))
	if err != nil {
		t.Errorf("the failed build's or the session's writes reached ci/app: %v\n%s", err, progress)
	}
	if s, _ := w.fake.Counts(); s != 1 {
		t.Errorf("%d servers: want the one VM throughout", s)
	}
	fmt.Fprintln(testWriter{t}, "warm state on the VM:", vm.Warm)
	if hits, commits := counter(t, w, "lian_build_pool_warm_leases_total", "hit"), counter(t, w, "lian_build_pool_warm_commits_total", "committed"); hits < 3 || commits < 4 {
		t.Errorf("metrics: %v warm hits, %v commits (want ≥ 3 and ≥ 4)", hits, commits)
	}
	w.drainAndCheck(t)
}

// counter sums a pool counter's series whose result label is result
// ("": every series).
func counter(t *testing.T, w *world, name, result string) float64 {
	t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if result == "" || slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "result" && l.GetValue() == result }) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

var _ = time.Second

// What a commit killed midway leaves on a VM's disk — the half-moved next
// generation, a current pointer not yet renamed, the lease's work tree — is
// never opened: the next lease starts on the last complete generation, and
// its commit replaces the leftovers.
func TestInterruptedCommitLeavesTheLastGeneration(t *testing.T) {
	// A kill between each of commit_tree's renames: gens/2 moved in
	// (holding another cache mount), current.new written, current not yet
	// moved; and a work tree of a lease that never finished.
	w, vm, ns := afterAKill(t, `cp -a %[1]s/gens/1 %[1]s/gens/2 && grep -rl ci %[1]s/gens/2 | head -1 | xargs sed -i s/ci/XX/ || true
echo 2 > %[1]s/current.new
mkdir -p %[1]s/../../work-pl-dead && echo junk > %[1]s/../../work-pl-dead/junk`)
	out, _ := w.hosts.Run(vm.ServerID, fmt.Sprintf("cat %[1]s/current; ls %[1]s/gens; ls %[1]s/../..", ns))
	if got := strings.Fields(string(out)); len(got) != 4 || strings.Join(got[:3], " ") != "2 2 ns" || !strings.HasPrefix(got[3], "work-r-") {
		t.Errorf("after the commit: %q, want current 2, only gens/2, and no work tree but the one the VM was made ready on", out)
	}
	w.drainAndCheck(t)
}

// A lease's buildkitd runs on its generation's own tree, and the
// generation keeps a copy (runner.sh's take_tree). A kill between the
// take's renames — the tree gone to a work tree, its complete copy not yet
// renamed into place, a partial copy beside it — loses nothing: the copy
// becomes the generation again, the next lease opens it, and its commit
// leaves one generation.
func TestInterruptedTakeLeavesTheGeneration(t *testing.T) {
	w, vm, ns := afterAKill(t, `mv %[1]s/gens/1 %[1]s/gens/1.copy
mkdir -p %[1]s/gens/1.copy.tmp && echo partial > %[1]s/gens/1.copy.tmp/junk`)
	out, _ := w.hosts.Run(vm.ServerID, fmt.Sprintf("cat %[1]s/current; ls %[1]s/gens", ns))
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "2 2" {
		t.Errorf("after the commit: %q, want current 2 and only gens/2", out)
	}
	w.drainAndCheck(t)
}

// afterAKill builds ci/app once (generation 1, a cache mount marked "ci"),
// plants what a kill left on its VM's disk (plant, with %[1]s the
// namespace's directory there), and builds ci/app again on that VM, which
// must open generation 1 whole and commit 2.
func afterAKill(t *testing.T, plant string) (*world, pool.VM, string) {
	w := warmWorld(t)
	df := "FROM base\nRUN --mount=type=cache,target=/c echo ci > /c/mark\n"
	if _, err, progress := w.build(t, df, inWorkspace("app", ci)); err != nil {
		t.Fatalf("first build: %v\n%s", err, progress)
	}
	vm := w.only(t)
	ns := filepath.Join(w.hosts.HostDir(vm.ServerID), "warm", "ns", "ci_app")
	out, err := w.hosts.Run(vm.ServerID, fmt.Sprintf("set -e\n"+plant+"\ncat %[1]s/current", ns))
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("planting what a kill left: %v\n%s", err, out)
	}
	// The VM was made ready on ci/app's generation 1 before the kill: a
	// lease of another namespace takes it first, so that ci/app's next
	// lease opens what the kill left.
	if _, err, progress := w.build(t, df, inWorkspace("other", ci)); err != nil {
		t.Fatalf("a build of another workspace: %v\n%s", err, progress)
	}
	// Its return settled (committed, recycled): ci/app's lease finds the
	// VM idle rather than making another (CI once saw a fresh VM here).
	if again := w.only(t); again.ID != vm.ID {
		t.Fatalf("VM %s after the other workspace's build, want %s", again.ID, vm.ID)
	}
	res, err, progress := w.build(t, "FROM base\nRUN --mount=type=cache,target=/c test \"$(cat /c/mark)\" = ci\n", inWorkspace("app", ci))
	if err != nil {
		t.Fatalf("the lease after what a kill left: %v\n%s", err, progress)
	}
	if st := res.State; st == nil || st.GenerationIn != 1 || st.GenerationOut != 2 {
		t.Errorf("state %+v: want opened 1 (the complete one), committed 2", res.State)
	}
	return w, vm, ns
}
