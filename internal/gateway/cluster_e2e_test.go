package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lian-build/action/internal/testenv"
)

// cluster is gateway replicas (separate processes of testdata/replica: the
// real gateway, builds replaced by a short sleep) on a NATS cluster of
// separate nats-server processes, and one fake GitHub.
type cluster struct {
	t        testing.TB
	nats     *testenv.NATSCluster // nil: each replica embeds its own nats-server
	gh       *fakeGitHub
	bin, dir string
	builds   string // every finished build's id and replica pid, one per line, from every replica

	replicas []*testenv.Process // each on a port of its own, across restarts

	mu      sync.Mutex
	stopped map[int]bool // pids of replicas killed or stopped
}

func newCluster(t testing.TB, replicas int, clustered bool) *cluster {
	bk := testenv.Require(t)
	c := &cluster{t: t, gh: newFakeGitHub(t), dir: t.TempDir(), stopped: map[int]bool{}}
	if clustered {
		c.nats = testenv.StartNATSCluster(t, 3)
	}
	c.bin, c.builds = filepath.Join(c.dir, "replica"), filepath.Join(c.dir, "builds.log")
	if out, err := exec.Command("go", "build", "-o", c.bin, "./testdata/replica").CombinedOutput(); err != nil {
		t.Fatalf("go build replica: %v\n%s", err, out)
	}
	for name, b := range map[string][]byte{"secret": []byte(testSecret), "key.pem": testKey(t)} {
		if err := os.WriteFile(filepath.Join(c.dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ports := testenv.FreePorts(t, replicas)
	for i := range replicas {
		c.replicas = append(c.replicas, c.replica(i, ports[i], bk))
		if err := c.replicas[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// replica is replica i, to listen on port; it stops with the test.
func (c *cluster) replica(i, port int, bk string) *testenv.Process {
	data := filepath.Join(c.dir, fmt.Sprintf("r%d", i))
	natsURL := ""
	if c.nats != nil {
		natsURL = c.nats.URL()
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := &testenv.Process{Name: fmt.Sprintf("replica %d", i), Addr: addr, LogPath: data + ".log", ReadyWithin: time.Minute, StopWithin: time.Minute,
		Args: []string{c.bin, "--listen", addr, "--webhook-secret-file", filepath.Join(c.dir, "secret"), "--app-id", "42",
			"--private-key-file", filepath.Join(c.dir, "key.pem"), "--github-url", c.gh.srv.URL, "--github-api-url", c.gh.srv.URL,
			"--data-dir", data, "--state-dir", filepath.Join(data, "runners"), "--buildkitd", bk, "--nats-url", natsURL,
			"--concurrency", "2", "--ack-wait", "3s", "--progress-every", "1s", "--branches", "master"},
		Env: []string{"LIAN_REPLICA_LOG=" + c.builds, "LIAN_REPLICA_BUILD=30ms"}}
	p.StopAtCleanup(c.t, syscall.SIGKILL)
	return p
}

// stop ends replica i with sig, noting it as stopped; it returns how the
// replica exited.
func (c *cluster) stop(i int, sig syscall.Signal) error {
	c.mu.Lock()
	c.stopped[c.replicas[i].Pid()] = true
	c.mu.Unlock()
	return c.replicas[i].Stop(sig)
}

// post sends one delivery to the cluster's replicas (postAny).
func (c *cluster) post(client *http.Client, first int, d burstDelivery) (int, time.Duration) {
	return postAny(client, func() []string {
		c.mu.Lock()
		defer c.mu.Unlock()
		var urls []string
		for _, r := range c.replicas {
			urls = append(urls, "http://"+r.Addr)
		}
		return urls
	}, first, d)
}

// postAny sends one delivery, starting with replica first of urls and
// going on to the next one while a replica is unreachable or unavailable,
// as a load balancer and GitHub's redelivery would. It returns the final
// status and the latency of the request that got it (0, 0: no answer).
func postAny(client *http.Client, urls func() []string, first int, d burstDelivery) (int, time.Duration) {
	for round := 0; round < 20; round++ {
		us := urls()
		start := time.Now()
		resp, err := client.Do(deliveryRequest(us[(first+round)%len(us)], d))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return resp.StatusCode, time.Since(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, 0
}

// send posts every delivery from 16 clients; at sent == at, it calls fault.
// It returns the status counts (and, per delivery id, how often it was
// accepted) and every answered request's latency.
func (c *cluster) send(ds []burstDelivery, at int, fault func()) (map[string]int, []time.Duration) {
	var sent atomic.Int64
	codes := map[string]int{}
	var lat []time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for i := range work {
				code, el := c.post(client, i, ds[i])
				mu.Lock()
				if code != 0 {
					lat = append(lat, el)
				}
				if code == 202 {
					codes[ds[i].id]++
				}
				codes[fmt.Sprint(code)]++
				mu.Unlock()
				if sent.Add(1) == int64(at) && fault != nil {
					fault()
				}
			}
		})
	}
	for i := range ds {
		work <- i
	}
	close(work)
	wg.Wait()
	return codes, lat
}

// checkRuns counts, per commit, the check runs created and completed.
func (c *cluster) checkRuns() (created, completed map[string]int) {
	created, completed = map[string]int{}, map[string]int{}
	c.gh.mu.Lock()
	defer c.gh.mu.Unlock()
	for _, runs := range c.gh.checkRuns {
		sha, _ := runs[0]["head_sha"].(string)
		created[sha]++
		for _, r := range runs {
			if r["status"] == "completed" {
				completed[sha]++
				break
			}
		}
	}
	return created, completed
}

// waitCompleted waits (at most 2 minutes) until every commit the burst
// builds has a completed check run; it returns those commits.
func (c *cluster) waitCompleted(ds []burstDelivery) map[string]bool {
	want := map[string]bool{}
	for _, d := range ds {
		if d.builds {
			want[d.sha] = true
		}
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, completed := c.checkRuns(); len(completed) >= len(want) {
			break
		}
	}
	return want
}

// assertEachBuildOnce waits until every distinct build delivery has one
// completed check run, then checks that none has two, that no build
// finished twice and that no check run was created twice for a commit.
func (c *cluster) assertEachBuildOnce(ds []burstDelivery, codes map[string]int) {
	t := c.t
	want := c.waitCompleted(ds)
	time.Sleep(2 * time.Second) // a second completion would show up now
	for _, d := range ds {
		if d.builds && codes[d.id] > 1 {
			t.Errorf("delivery %s accepted %d times", d.id, codes[d.id])
		}
	}
	created, completed := c.checkRuns()
	for sha := range want {
		if completed[sha] != 1 || created[sha] != 1 {
			t.Errorf("commit %s: %d check runs created, %d completed (want 1 and 1)", sha[:12], created[sha], completed[sha])
		}
	}
	if len(created) != len(want) {
		t.Errorf("%d commits with check runs, %d builds delivered", len(created), len(want))
	}
	// A build may finish again only when it first finished on a replica
	// that then died or stopped before acknowledging it (at least once).
	b, _ := os.ReadFile(c.builds)
	finished := map[string]int{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var id string
		var pid int
		if _, err := fmt.Sscan(line, &id, &pid); err != nil {
			t.Fatalf("builds log: %q", line)
		}
		if !c.stopped[pid] {
			if finished[id]++; finished[id] == 2 {
				t.Errorf("build %s finished twice on live replicas:\n%s", id, c.logsMentioning(id))
			}
		}
	}
	t.Logf("%d builds, %d check runs completed, responses %v", len(want), len(completed), statusCounts(codes))
}

// logsMentioning are the replicas' log lines that mention s.
func (c *cluster) logsMentioning(s string) string {
	var out []string
	logs, _ := filepath.Glob(filepath.Join(c.dir, "r*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, s) {
				out = append(out, filepath.Base(l)+": "+line)
			}
		}
	}
	return strings.Join(out, "\n")
}

func statusCounts(codes map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range codes {
		if len(k) == 3 || k == "0" {
			out[k] = v
		}
	}
	return out
}

// Three replicas on a 3-node NATS cluster take a 1,000-delivery burst with
// 10 % redeliveries; midway one replica is killed with SIGKILL and one NATS
// node stopped. Every delivered build ends in exactly one completed check
// run, none twice, nothing lost.
func TestReplicasSurviveAReplicaAndANodeDying(t *testing.T) {
	c := newCluster(t, 3, true)
	ds := burstDeliveries(t, "kill", 1000)
	codes, _ := c.send(ds, 400, func() {
		_ = c.stop(0, syscall.SIGKILL)
		c.nats.Stop(2)
	})
	if codes["0"] > 0 {
		t.Errorf("%d deliveries never got an answer", codes["0"])
	}
	c.assertEachBuildOnce(ds, codes)
}

// A rolling restart under load: each replica in turn stops (SIGTERM,
// requeueing its running builds) and starts again.
func TestRollingRestartUnderLoad(t *testing.T) {
	c := newCluster(t, 3, true)
	ds := burstDeliveries(t, "roll", 600)
	restarted := make(chan error, 1)
	codes, _ := c.send(ds, 100, func() {
		go func() {
			for i := range 3 {
				if err := c.stop(i, syscall.SIGTERM); err != nil {
					restarted <- fmt.Errorf("replica %d exit after SIGTERM: %w", i, err)
					return
				}
				if err := c.replicas[i].Start(); err != nil {
					restarted <- err
					return
				}
			}
			restarted <- nil
		}()
	})
	select {
	case err := <-restarted:
		if err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Error(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the rolling restart did not finish")
	}
	c.assertEachBuildOnce(ds, codes)
}

// BenchmarkClusterIntake: intake p50/p99 and builds per minute for three
// replicas on a 3-node NATS cluster, beside one process with its embedded
// nats-server, in one run (1,000 deliveries each; target p99 ≤ 10 ms on
// the cluster).
func BenchmarkClusterIntake(b *testing.B) {
	for b.Loop() {
		for _, setup := range []struct {
			name      string
			replicas  int
			clustered bool
		}{{"embedded-1", 1, false}, {"cluster-3", 3, true}} {
			c := newCluster(b, setup.replicas, setup.clustered)
			ds := burstDeliveries(b, setup.name, 1000)
			start := time.Now()
			codes, lat := c.send(ds, -1, nil)
			c.waitCompleted(ds)
			took := time.Since(start)
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			builds := codes["202"]
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, setup.name+"-p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, setup.name+"-p99-ms")
			b.ReportMetric(float64(builds)/took.Minutes(), setup.name+"-builds/min")
		}
	}
}

// One X-GitHub-Delivery sent twice in a row, eight times at once, and again
// after the gateway restarted on the same data: one build, one check run,
// one 202.
func TestSameDeliveryIsBuiltOnce(t *testing.T) {
	c := newCluster(t, 1, false)
	ds := burstDeliveries(t, "dup", 3)[:2] // two pushes that build
	client := &http.Client{Timeout: 10 * time.Second}
	accepted := map[string]int{}
	post := func(d burstDelivery) {
		code, _ := c.post(client, 0, d)
		if code == 202 {
			accepted[d.id]++
		} else if code != 200 {
			t.Errorf("delivery %s: %d", d.id, code)
		}
	}
	post(ds[0])
	post(ds[0])
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range 8 {
		wg.Go(func() {
			code, _ := c.post(client, 0, ds[1])
			mu.Lock()
			defer mu.Unlock()
			if code == 202 {
				accepted[ds[1].id]++
			}
		})
	}
	wg.Wait()
	c.waitCompleted(ds)
	_ = c.stop(0, syscall.SIGTERM)
	if err := c.replicas[0].Start(); err != nil {
		t.Fatal(err)
	}
	post(ds[0])
	post(ds[1])
	if accepted[ds[0].id] != 1 || accepted[ds[1].id] != 1 {
		t.Fatalf("accepted %v, want each delivery once", accepted)
	}
	c.assertEachBuildOnce(ds, accepted)
}
