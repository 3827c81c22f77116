package testenv

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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	natsBinOnce sync.Once
	natsBin     string
	natsBinErr  error
)

// NATSServerBinary is nats-server built from the module's pinned version
// (the same code the tests embed), once per test process.
func NATSServerBinary(t testing.TB) string {
	t.Helper()
	natsBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lian-nats-server-")
		if err != nil {
			natsBinErr = err
			return
		}
		natsBin = filepath.Join(dir, "nats-server")
		cmd := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			natsBinErr = fmt.Errorf("go build nats-server: %v: %s", err, out)
		}
	})
	if natsBinErr != nil {
		t.Fatal(natsBinErr)
	}
	return natsBin
}

// NATSCluster is n nats-server processes in one cluster with JetStream, on
// loopback ports.
type NATSCluster struct {
	URLs  []string
	mu    sync.Mutex
	procs []*exec.Cmd
	dir   string
}

// StartNATSCluster starts the cluster and waits until JetStream has a meta
// leader; every process stops with the test.
func StartNATSCluster(t testing.TB, n int) *NATSCluster {
	t.Helper()
	return StartNATSClusterIn(t, n, t.TempDir())
}

// StartNATSClusterIn is StartNATSCluster with the nodes' stores and logs
// (nN.log) in dir.
func StartNATSClusterIn(t testing.TB, n int, dir string) *NATSCluster {
	t.Helper()
	bin := NATSServerBinary(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &NATSCluster{dir: dir}
	client, cluster := FreePorts(t, n), FreePorts(t, n)
	var routes []string
	for _, p := range cluster {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	for i := range n {
		c.URLs = append(c.URLs, fmt.Sprintf("nats://127.0.0.1:%d", client[i]))
		cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(client[i]), "-n", fmt.Sprintf("n%d", i+1),
			"-js", "-sd", filepath.Join(c.dir, fmt.Sprintf("n%d", i+1)), "--cluster_name", "lian",
			"--cluster", routes[i], "--routes", strings.Join(routes, ","))
		c.procs = append(c.procs, cmd)
		if err := c.Start(i); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for i := range c.procs {
			c.Stop(i)
		}
	})
	c.waitForMetaLeader(t)
	return c
}

// URL is every node's URL, for a client's server list.
func (c *NATSCluster) URL() string { return strings.Join(c.URLs, ",") }

// Start starts node i (again, after Stop or Kill, on its own store).
func (c *NATSCluster) Start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.procs[i]
	if old.Process != nil && old.ProcessState == nil {
		return fmt.Errorf("nats node %d runs", i+1)
	}
	cmd := exec.Command(old.Path, old.Args[1:]...)
	logf, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprintf("n%d.log", i+1)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	c.procs[i] = cmd
	return nil
}

// Pid is node i's process id (0 when it does not run).
func (c *NATSCluster) Pid(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cmd := c.procs[i]; cmd.Process != nil && cmd.ProcessState == nil {
		return cmd.Process.Pid
	}
	return 0
}

// Stop stops node i (SIGTERM, then SIGKILL) and waits for it.
func (c *NATSCluster) Stop(i int) { c.end(i, syscall.SIGTERM) }

// Kill kills node i (SIGKILL) and waits for it.
func (c *NATSCluster) Kill(i int) { c.end(i, syscall.SIGKILL) }

func (c *NATSCluster) end(i int, sig syscall.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := c.procs[i]
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (c *NATSCluster) waitForMetaLeader(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second) // elections are slow on a loaded 2-core machine
	for {
		nc, err := nats.Connect(c.URL(), nats.Timeout(time.Second))
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			nc.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(c.dir, "n1.log"))
			t.Fatalf("the NATS cluster has no JetStream leader: %v\n%s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// FreePorts are n loopback ports free now.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}
