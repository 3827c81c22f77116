package gateway

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Metrics are the gateway's Prometheus metrics, written in the text exposition format.
type Metrics struct {
	mu         sync.Mutex
	deliveries map[[2]string]float64 // event, outcome
	builds     map[[2]string]float64 // outcome, tier
	oomRetries float64
	retries    float64
	dead       map[string]float64 // job kind
	stepsTotal float64
	stepsHit   float64
	intake     []float64 // seconds, for the summary
	buildSecs  []float64
	depth      func() float64
}

// NewMetrics returns empty metrics; depth reports the queue depth.
func NewMetrics(depth func() float64) *Metrics {
	return &Metrics{deliveries: map[[2]string]float64{}, builds: map[[2]string]float64{}, dead: map[string]float64{}, depth: depth}
}

// Delivery counts one webhook delivery.
func (m *Metrics) Delivery(event, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deliveries[[2]string{event, outcome}]++
	m.intake = appendBounded(m.intake, d.Seconds())
}

// Retry counts a failed job that is redelivered later.
func (m *Metrics) Retry() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.retries++
}

// DeadLetter counts a job given up on.
func (m *Metrics) DeadLetter(kind string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dead[kind]++
}

// Build counts one finished build.
func (m *Metrics) Build(outcome, tier string, oomRetries, steps, cached int, d time.Duration) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.builds[[2]string{outcome, tier}]++
	m.oomRetries += float64(oomRetries)
	m.stepsTotal += float64(steps)
	m.stepsHit += float64(cached)
	m.buildSecs = appendBounded(m.buildSecs, d.Seconds())
}

func appendBounded(s []float64, v float64) []float64 {
	s = append(s, v)
	if len(s) > 10000 {
		s = s[len(s)-10000:]
	}
	return s
}

// Write writes the exposition.
func (m *Metrics) Write(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# HELP lian_gateway_deliveries_total Webhook deliveries by event and outcome.")
	fmt.Fprintln(w, "# TYPE lian_gateway_deliveries_total counter")
	for _, k := range sortedKeys(m.deliveries) {
		fmt.Fprintf(w, "lian_gateway_deliveries_total{event=%q,outcome=%q} %g\n", k[0], k[1], m.deliveries[k])
	}
	fmt.Fprintln(w, "# HELP lian_gateway_builds_total Finished builds by outcome and tier.")
	fmt.Fprintln(w, "# TYPE lian_gateway_builds_total counter")
	for _, k := range sortedKeys(m.builds) {
		fmt.Fprintf(w, "lian_gateway_builds_total{outcome=%q,tier=%q} %g\n", k[0], k[1], m.builds[k])
	}
	fmt.Fprintln(w, "# HELP lian_gateway_job_retries_total Failed jobs redelivered after a backoff.")
	fmt.Fprintln(w, "# TYPE lian_gateway_job_retries_total counter")
	fmt.Fprintf(w, "lian_gateway_job_retries_total %g\n", m.retries)
	fmt.Fprintln(w, "# HELP lian_gateway_jobs_dead_lettered_total Jobs given up on (failed or crashed their worker too often), by kind.")
	fmt.Fprintln(w, "# TYPE lian_gateway_jobs_dead_lettered_total counter")
	for _, k := range slices.Sorted(maps.Keys(m.dead)) {
		fmt.Fprintf(w, "lian_gateway_jobs_dead_lettered_total{kind=%q} %g\n", k, m.dead[k])
	}
	fmt.Fprintln(w, "# HELP lian_gateway_oom_retries_total OOM retries on the next tier.")
	fmt.Fprintln(w, "# TYPE lian_gateway_oom_retries_total counter")
	fmt.Fprintf(w, "lian_gateway_oom_retries_total %g\n", m.oomRetries)
	fmt.Fprintln(w, "# HELP lian_gateway_cache_hit_ratio Cached Dockerfile steps over all steps.")
	fmt.Fprintln(w, "# TYPE lian_gateway_cache_hit_ratio gauge")
	ratio := 0.0
	if m.stepsTotal > 0 {
		ratio = m.stepsHit / m.stepsTotal
	}
	fmt.Fprintf(w, "lian_gateway_cache_hit_ratio %g\n", ratio)
	if m.depth != nil {
		fmt.Fprintln(w, "# HELP lian_gateway_queue_depth Jobs waiting or running.")
		fmt.Fprintln(w, "# TYPE lian_gateway_queue_depth gauge")
		fmt.Fprintf(w, "lian_gateway_queue_depth %g\n", m.depth())
	}
	summary(w, "lian_gateway_intake_seconds", "Webhook intake latency.", m.intake)
	summary(w, "lian_gateway_build_seconds", "Build durations.", m.buildSecs)
}

func summary(w io.Writer, name, help string, v []float64) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s summary\n", name, help, name)
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	for _, q := range []float64{0.5, 0.99} {
		val := 0.0
		if len(s) > 0 {
			val = s[min(int(q*float64(len(s))), len(s)-1)]
		}
		fmt.Fprintf(w, "%s{quantile=\"%g\"} %g\n", name, q, val)
	}
	fmt.Fprintf(w, "%s_sum %g\n%s_count %d\n", name, sum, name, len(s))
}

func sortedKeys(m map[[2]string]float64) [][2]string {
	keys := make([][2]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return strings.Join(keys[i][:], "\x00") < strings.Join(keys[j][:], "\x00") })
	return keys
}
