// Package metrics counts requests and their latency.
package metrics

import (
	"expvar"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Metrics are the service's counters.
type Metrics struct {
	requests *expvar.Map
	latency  *expvar.Map
	mu       sync.Mutex
	buckets  map[string][]int64
}

var bounds = []time.Duration{time.Millisecond, 5 * time.Millisecond, 25 * time.Millisecond, 100 * time.Millisecond, time.Second}

// New registers the counters under name.
func New(name string) *Metrics {
	m := &Metrics{requests: new(expvar.Map).Init(), latency: new(expvar.Map).Init(), buckets: map[string][]int64{}}
	expvar.Publish(name+"_requests", m.requests)
	expvar.Publish(name+"_latency", m.latency)
	return m
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Wrap counts every request to h under route.
func (m *Metrics) Wrap(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: 200}
		h.ServeHTTP(rec, r)
		m.requests.Add(route+" "+strconv.Itoa(rec.status), 1)
		m.observe(route, time.Since(start))
	})
}

func (m *Metrics) observe(route string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.buckets[route]
	if !ok {
		b = make([]int64, len(bounds)+1)
		m.buckets[route] = b
	}
	i := 0
	for i < len(bounds) && d > bounds[i] {
		i++
	}
	b[i]++
	le := "+Inf"
	if i < len(bounds) {
		le = bounds[i].String()
	}
	m.latency.Add(route+" le="+le, 1)
}
