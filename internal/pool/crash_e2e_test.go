package pool_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	hc "github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/pool"
	"github.com/lian-build/action/internal/testenv"
)

// startServiceProcess runs `lian-build pool serve` as a process of its own.
func startServiceProcess(t *testing.T, w *world, natsURL string, flags ...string) *testenv.Process {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "lian-build")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/lian-build").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for name, v := range map[string]string{"token": poolToken, "hctoken": hcToken} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePorts(t, 1)[0])
	args := []string{bin, "pool", "serve", "--listen", addr, "--token-file", filepath.Join(dir, "token"), "--name", "test",
		"--ssh-key-file", filepath.Join(dir, "pool_key"), "--hcloud-token-file", filepath.Join(dir, "hctoken"),
		"--hcloud-endpoint", w.fake.Endpoint(), "--hcloud-location", "fsn1", "--upkeep-every", "500ms"}
	if natsURL != "" {
		args = append(args, "--nats-url", natsURL)
	} else {
		args = append(args, "--data-dir", filepath.Join(dir, "data")) // the embedded nats-server
	}
	sp := &testenv.Process{Name: "the pool service", Addr: addr, LogPath: filepath.Join(dir, "pool.log"), ReadyWithin: 30 * time.Second,
		Args: append(args, flags...)}
	sp.StopAtCleanup(t, syscall.SIGTERM)
	if err := sp.Start(); err != nil {
		t.Fatal(err)
	}
	return sp
}

// kill -9 of the pool service while two builds hold leases, then a
// restart: the builds finish (their returns wait for the service), both
// VMs are recycled and idle, a server whose creator died before writing
// it down is found by its label and deleted, and after a drain nothing is
// left.
func TestPoolServiceKilledWithLeasesOut(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true})
	sp := startServiceProcess(t, w, w.natsURL)
	w.client = &pool.Client{URL: "http://" + sp.Addr, Token: poolToken}
	prov, err := compute.New("vm-pool", compute.Config{Options: map[string]string{"pool-url": "http://" + sp.Addr, "pool-token": poolToken}})
	if err != nil {
		t.Fatal(err)
	}
	if w.pl, err = pipeline.New(pipeline.Config{Provider: prov, SpawnTimeout: 2 * time.Minute, DestroyTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i], _ = w.build(t, fmt.Sprintf("FROM base\nRUN echo build %d && sleep 4\n", i), nil)
		}()
	}
	waitFor(t, 60*time.Second, "two leases out", func() bool {
		vms, err := w.client.List(context.Background())
		return err == nil && len(vms) == 2 && vms[0].State == pool.StateLeased && vms[1].State == pool.StateLeased
	})
	_ = sp.Stop(syscall.SIGKILL)
	time.Sleep(time.Second)
	if err := sp.Start(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("build %d: %v", i, err)
		}
	}
	// The returns are settled (recycled) after their answer, by the process.
	var vms []pool.VM
	waitFor(t, 60*time.Second, "both VMs recycled and idle", func() bool {
		vms, err = w.client.List(context.Background())
		return err == nil && len(vms) == 2 && vms[0].State == pool.StateIdle && vms[1].State == pool.StateIdle
	})
	orphanServer(t, w)
	waitFor(t, 30*time.Second, "the orphan deleted", func() bool { s, _ := w.fake.Counts(); return s == 2 })
	if !strings.Contains(sp.Log(), "no entry") {
		t.Errorf("the reconcile did not say what it removed:\n%s", sp.Log())
	}
	w.drainAndCheckKeys(t, 2) // the in-process service's key and the process's
}

// kill -9 of the pool service while it commits a returned lease's warm
// state (its syncs slowed on the VM so that the kill lands between the
// tree's rename and the pointer's), then a restart: upkeep takes the VM
// left recycling over, reads its warm state back from its disk — the
// generation before or the one committed, whole — and the next build of
// the workspace starts on it. Nothing is left after a drain.
func TestPoolServiceKilledMidCommit(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true, warm: true})
	// Longer than a settle takes here (a commit and a recycle, seconds):
	// a shorter one would take over a settle still running.
	sp := startServiceProcess(t, w, w.natsURL, "--stuck-after", "20s")
	w.client = &pool.Client{URL: "http://" + sp.Addr, Token: poolToken}
	prov, err := compute.New("vm-pool", compute.Config{Options: map[string]string{"pool-url": "http://" + sp.Addr, "pool-token": poolToken}})
	if err != nil {
		t.Fatal(err)
	}
	if w.pl, err = pipeline.New(pipeline.Config{Provider: prov, SpawnTimeout: 2 * time.Minute, DestroyTimeout: time.Minute, RemoteState: true}); err != nil {
		t.Fatal(err)
	}
	app := inWorkspace("app", ci)
	if _, err, progress := w.build(t, "FROM base\nRUN --mount=type=cache,target=/c echo one > /c/mark\n", app); err != nil {
		t.Fatalf("first build: %v\n%s", err, progress)
	}
	var vm pool.VM
	waitFor(t, 60*time.Second, "generation 1 committed", func() bool {
		vms, err := w.client.List(context.Background())
		if err == nil && len(vms) == 1 {
			vm = vms[0]
		}
		return err == nil && len(vms) == 1 && vm.State == pool.StateIdle && vm.Warm["ci/app"].Generation == 1
	})
	ns := filepath.Join(w.hosts.HostDir(vm.ServerID), "warm", "ns", "ci_app")
	if out, err := w.hosts.Run(vm.ServerID, `echo 'sync() { sleep 2; command sync; }' >> /run/lian-build/runner.env`); err != nil {
		t.Fatalf("slowing the VM's syncs: %v\n%s", err, out)
	}
	if _, err, progress := w.build(t, "FROM base\nRUN --mount=type=cache,target=/c echo two > /c/mark\n", app); err != nil {
		t.Fatalf("second build: %v\n%s", err, progress)
	}
	waitFor(t, 30*time.Second, "the commit's rename", func() bool {
		_, err := os.Stat(filepath.Join(ns, "gens", "2"))
		return err == nil
	})
	_ = sp.Stop(syscall.SIGKILL)
	if out, err := w.hosts.Run(vm.ServerID, `sed -i '/^sync()/d' /run/lian-build/runner.env`); err != nil {
		t.Fatalf("restoring the VM's syncs: %v\n%s", err, out)
	}
	if err := sp.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "the VM taken over and idle", func() bool {
		vms, err := w.client.List(context.Background())
		if err == nil && len(vms) == 1 {
			vm = vms[0]
		}
		return err == nil && len(vms) == 1 && vm.State == pool.StateIdle
	})
	current, err := os.ReadFile(filepath.Join(ns, "current"))
	if err != nil {
		t.Fatal(err)
	}
	gen := strings.TrimSpace(string(current))
	mark := map[string]string{"1": "one", "2": "two"}[gen]
	if mark == "" || fmt.Sprint(vm.Warm["ci/app"].Generation) != gen {
		t.Fatalf("after the kill the disk's current is %q, the pool records %+v", gen, vm.Warm)
	}
	t.Logf("the kill left generation %s current", gen)
	if !strings.Contains(sp.Log(), "left recycling taken over") {
		t.Errorf("the service did not say it took the VM over:\n%s", sp.Log())
	}
	res, err, progress := w.build(t, fmt.Sprintf("FROM base\nRUN --mount=type=cache,target=/c test \"$(cat /c/mark)\" = %s\n", mark), app)
	if err != nil || res.State == nil || fmt.Sprint(res.State.GenerationIn) != gen {
		t.Errorf("the build after the kill: state %+v, %v\n%s", res.State, err, progress)
	}
	waitFor(t, 60*time.Second, "its return settled", func() bool {
		vms, err := w.client.List(context.Background())
		return err == nil && len(vms) == 1 && vms[0].State == pool.StateIdle
	})
	w.drainAndCheckKeys(t, 2)
}

// orphanServer creates a server labelled as the pool's, as a service that
// died between creating it and writing it down would leave it.
func orphanServer(t *testing.T, w *world) {
	t.Helper()
	c := hc.NewClient(hc.WithToken(hcToken), hc.WithEndpoint(w.fake.Endpoint()))
	_, _, err := c.Server.Create(context.Background(), hc.ServerCreateOpts{Name: "lbp-orphan", ServerType: &hc.ServerType{Name: "cax11"},
		Image: &hc.Image{Name: "debian-12"}, Labels: map[string]string{pool.LabelPool: "test", pool.LabelVM: "lbp-orphan"}})
	if err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
