package pool_test

import (
	"context"
	"fmt"
	"net"
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

// serviceProcess is `lian-build pool serve` as a process of its own.
type serviceProcess struct {
	bin, dir, addr string
	args           []string
	cmd            *exec.Cmd
	log            *testenv.SyncBuffer
}

func startServiceProcess(t *testing.T, w *world, natsURL string) *serviceProcess {
	t.Helper()
	dir := t.TempDir()
	sp := &serviceProcess{bin: filepath.Join(dir, "lian-build"), dir: dir, log: &testenv.SyncBuffer{}}
	if out, err := exec.Command("go", "build", "-o", sp.bin, "../../cmd/lian-build").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for name, v := range map[string]string{"token": poolToken, "hctoken": hcToken} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sp.addr = ln.Addr().String()
	ln.Close()
	sp.args = []string{"pool", "serve", "--listen", sp.addr, "--token-file", filepath.Join(dir, "token"), "--name", "test",
		"--ssh-key-file", filepath.Join(dir, "pool_key"), "--hcloud-token-file", filepath.Join(dir, "hctoken"),
		"--hcloud-endpoint", w.fake.Endpoint(), "--hcloud-location", "fsn1", "--upkeep-every", "500ms"}
	if natsURL != "" {
		sp.args = append(sp.args, "--nats-url", natsURL)
	} else {
		sp.args = append(sp.args, "--data-dir", filepath.Join(dir, "data")) // the embedded nats-server
	}
	sp.start(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pool service log:\n%s", sp.log.String())
		}
		if sp.cmd.ProcessState == nil {
			_ = sp.cmd.Process.Signal(syscall.SIGTERM)
			_ = sp.cmd.Wait()
		}
	})
	return sp
}

func (sp *serviceProcess) start(t *testing.T) {
	t.Helper()
	sp.cmd = exec.Command(sp.bin, sp.args...)
	sp.cmd.Stdout, sp.cmd.Stderr = sp.log, sp.log
	if err := sp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", sp.addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the pool service never listened:\n%s", sp.log.String())
}

// kill -9 of the pool service while two builds hold leases, then a
// restart: the builds finish (their returns wait for the service), both
// VMs are recycled and idle, a server whose creator died before writing
// it down is found by its label and deleted, and after a drain nothing is
// left.
func TestPoolServiceKilledWithLeasesOut(t *testing.T) {
	w := newWorld(t, worldConfig{hosts: true})
	sp := startServiceProcess(t, w, w.natsURL)
	w.client = &pool.Client{URL: "http://" + sp.addr, Token: poolToken}
	prov, err := compute.New("vm-pool", compute.Config{Options: map[string]string{"pool-url": "http://" + sp.addr, "pool-token": poolToken}})
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
	if err := sp.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = sp.cmd.Wait()
	time.Sleep(time.Second)
	sp.start(t)
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
	if !strings.Contains(sp.log.String(), "no entry") {
		t.Errorf("the reconcile did not say what it removed:\n%s", sp.log.String())
	}
	w.drainAndCheckKeys(t, 2) // the in-process service's key and the process's
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
