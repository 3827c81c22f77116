package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lian-build/action/internal/pipeline"
)

// countingExecutor replaces the builds in the intake benchmark only.
type countingExecutor struct {
	mu    sync.Mutex
	count map[string]int
	all   chan struct{}
	want  int
	total int
}

func (c *countingExecutor) Execute(_ context.Context, job Job, _ io.Writer) (pipeline.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.count[job.BuildID]++
	c.total++
	if c.total == c.want {
		close(c.all)
	}
	return pipeline.Result{BuildID: job.BuildID, Outcome: pipeline.OutcomeSuccess, Tier: "cax11"}, nil
}

// BenchmarkIntakeBurst: 2,000 signed deliveries on loopback (pushes that
// build, pushes and comments that do not, help requests; 10% redelivered),
// sent by 16 clients. Prints intake p50/p99 (target p99 ≤ 50 ms) and checks
// that every unique build-triggering delivery was queued and run exactly once.
func BenchmarkIntakeBurst(b *testing.B) {
	for b.Loop() {
		burst(b)
	}
}

// burstDelivery is one signed webhook of a burst.
type burstDelivery struct {
	event, id, sha string
	body           []byte
	builds         bool
}

// deliveryRequest is d, signed, posted to the gateway at base.
func deliveryRequest(base string, d burstDelivery) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/github", bytes.NewReader(d.body))
	req.Header.Set("X-GitHub-Event", d.event)
	req.Header.Set("X-GitHub-Delivery", d.id)
	req.Header.Set("X-Hub-Signature-256", Sign([]byte(testSecret), d.body))
	return req
}

// burstDeliveries are about total deliveries: half pushes that build (each
// its own commit), a quarter pushes to another branch, a quarter comments
// that are no command; every tenth is sent twice (a redelivery).
func burstDeliveries(t testing.TB, prefix string, total int) []burstDelivery {
	var ds []burstDelivery
	for i := 0; len(ds) < total; i++ {
		var d burstDelivery
		id, sha := fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("%040x", i+1)
		switch i % 4 {
		case 0, 1: // a build: a push to the default branch
			d = burstDelivery{"push", id, sha, fixture(t, "push/with-installation.payload.json", func(m map[string]any) {
				m["ref"], m["after"], m["deleted"] = "refs/heads/master", sha, false
			}), true}
		case 2: // ignored: another branch
			d = burstDelivery{"push", id, sha, fixture(t, "push/with-installation.payload.json", func(m map[string]any) {
				m["ref"], m["after"], m["deleted"] = "refs/heads/feature", sha, false
			}), false}
		case 3: // ignored: a comment that is not a command
			d = burstDelivery{"issue_comment", id, "", fixture(t, "issue_comment/created.with-installation.payload.json", nil), false}
		}
		ds = append(ds, d)
		if i%10 == 9 && len(ds) < total { // 10% are redelivered
			ds = append(ds, d)
		}
	}
	return ds
}

func burst(b *testing.B) {
	const total = 2000
	ds := burstDeliveries(b, "burst", total)
	unique := 0
	seen := map[string]bool{}
	for _, d := range ds {
		if d.builds && !seen[d.id] {
			seen[d.id] = true
			unique++
		}
	}
	exec := &countingExecutor{count: map[string]int{}, all: make(chan struct{}), want: unique}
	g := startGatewayForBench(b, exec)
	jobs := make(chan burstDelivery)
	lat := make([]time.Duration, 0, total)
	var mu sync.Mutex
	var wg sync.WaitGroup
	codes := map[int]int{}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for d := range jobs {
				start := time.Now()
				resp, err := client.Do(deliveryRequest(g.url, d))
				el := time.Since(start)
				code := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				lat = append(lat, el)
				codes[code]++
				mu.Unlock()
			}
		}()
	}
	for _, d := range ds {
		jobs <- d
	}
	close(jobs)
	wg.Wait()
	select {
	case <-exec.all:
	case <-time.After(90 * time.Second):
		var problems []string
		for _, l := range strings.Split(g.logs.String(), "\n") {
			if strings.Contains(l, `"level":"ERROR"`) || strings.Contains(l, `"level":"WARN"`) {
				problems = append(problems, l)
			}
		}
		b.Fatalf("ran %d of %d builds; responses %v; warnings and errors:\n%s", exec.total, unique, codes, strings.Join(problems[:min(len(problems), 20)], "\n"))
	}
	time.Sleep(2 * time.Second) // a duplicate run would show up now
	exec.mu.Lock()
	defer exec.mu.Unlock()
	if exec.total != unique || len(exec.count) != unique {
		b.Fatalf("%d runs of %d distinct builds, want %d exactly once", exec.total, len(exec.count), unique)
	}
	if codes[0] > 0 || codes[500] > 0 || codes[503] > 0 || codes[202] != unique {
		b.Fatalf("responses %v (want %d × 202)", codes, unique)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(ds)), "deliveries")
	b.ReportMetric(float64(unique), "builds")
}
