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
	nodes []*Process
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
		node := &Process{Name: fmt.Sprintf("nats node %d", i+1), LogPath: filepath.Join(c.dir, fmt.Sprintf("n%d.log", i+1)),
			Addr: fmt.Sprintf("127.0.0.1:%d", client[i]), StopWithin: 10 * time.Second,
			Args: []string{bin, "-a", "127.0.0.1", "-p", fmt.Sprint(client[i]), "-n", fmt.Sprintf("n%d", i+1),
				"-js", "-sd", filepath.Join(c.dir, fmt.Sprintf("n%d", i+1)), "--cluster_name", "lian",
				"--cluster", routes[i], "--routes", strings.Join(routes, ",")}}
		c.nodes = append(c.nodes, node)
		node.StopAtCleanup(t, syscall.SIGTERM)
		if err := node.Start(); err != nil {
			t.Fatal(err)
		}
	}
	c.waitForMetaLeader(t)
	return c
}

// URL is every node's URL, for a client's server list.
func (c *NATSCluster) URL() string { return strings.Join(c.URLs, ",") }

// Start starts node i (again, after Stop or Kill, on its own store) and
// waits until it takes clients.
func (c *NATSCluster) Start(i int) error { return c.nodes[i].Start() }

// Pid is node i's process id (0 when it does not run).
func (c *NATSCluster) Pid(i int) int { return c.nodes[i].Pid() }

// Stop stops node i (SIGTERM, then SIGKILL) and waits for it.
func (c *NATSCluster) Stop(i int) { c.nodes[i].Stop(syscall.SIGTERM) }

// Kill kills node i (SIGKILL) and waits for it.
func (c *NATSCluster) Kill(i int) { c.nodes[i].Stop(syscall.SIGKILL) }

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
