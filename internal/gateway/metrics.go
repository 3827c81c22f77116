package gateway

import (
	"net/http"
	"time"

	"github.com/lian-build/action/internal/pipeline"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the gateway's Prometheus metrics (README, "Gateway metrics").
// A nil *Metrics records nothing.
type Metrics struct {
	reg        *prometheus.Registry
	deliveries *prometheus.CounterVec
	builds     *prometheus.CounterVec
	dead       *prometheus.CounterVec
	queueOps   *prometheus.CounterVec
	holds      *prometheus.CounterVec
	retries    prometheus.Counter
	oomRetries prometheus.Counter
	steps      prometheus.Counter
	cached     prometheus.Counter
	intake     prometheus.Histogram
	queueWait  prometheus.Histogram
	buildSecs  prometheus.Histogram
	running    prometheus.Gauge
	cost       *prometheus.CounterVec
}

// NewMetrics registers the gateway's metrics; depth reports the queue depth.
func NewMetrics(depth func() float64) *Metrics {
	const ns = "lian_build"
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: buckets})
	}
	m := &Metrics{
		reg:        prometheus.NewRegistry(),
		deliveries: counter("deliveries_total", "Webhook deliveries by event and outcome.", "event", "outcome"),
		builds:     counter("builds_total", "Finished builds by outcome and tier.", "outcome", "tier"),
		dead:       counter("jobs_dead_lettered_total", "Jobs given up on (failed or crashed their worker too often), by kind.", "kind"),
		queueOps:   counter("queue_op_errors_total", "Queue acknowledgements that failed, by operation (ack, nak, in_progress, term).", "op"),
		holds:      counter("job_holds_total", "Deliveries that met another worker's hold on their build (waited), took a hold over from a worker that stopped renewing it (taken_over), or lost their own (lost).", "event"),
		retries:    prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "job_retries_total", Help: "Failed jobs redelivered after a backoff."}),
		oomRetries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "oom_retries_total", Help: "OOM retries on the next tier."}),
		steps:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "steps_total", Help: "Dockerfile steps of finished builds."}),
		cached:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "steps_cached_total", Help: "Dockerfile steps served from the cache."}),
		intake:     histogram("intake_seconds", "Webhook intake latency: received to answered.", prometheus.ExponentialBuckets(0.0005, 2, 14)),
		queueWait:  histogram("queue_wait_seconds", "Time a job waited in the queue before a worker took it.", prometheus.ExponentialBuckets(0.01, 2, 16)),
		buildSecs:  histogram("build_duration_seconds", "Build durations, spawn to teardown.", prometheus.ExponentialBuckets(1, 2, 14)),
		running:    prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "builds_running", Help: "Builds running now."}),
		cost:       counter("cost_eur_total", "What finished builds' machines cost (net EUR, the provider's list price and billing), by workspace.", "workspace"),
	}
	m.reg.MustRegister(m.deliveries, m.builds, m.dead, m.queueOps, m.holds, m.retries, m.oomRetries, m.steps, m.cached,
		m.intake, m.queueWait, m.buildSecs, m.running, m.cost,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if depth != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "queue_depth", Help: "Jobs waiting or running."}, depth))
	}
	return m
}

// Gatherer is the gateway's registry (the exposition's source).
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Handler serves the exposition.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Delivery counts one webhook delivery and its intake latency.
func (m *Metrics) Delivery(event, outcome string, d time.Duration) {
	if m != nil {
		m.deliveries.WithLabelValues(event, outcome).Inc()
		m.intake.Observe(d.Seconds())
	}
}

// Retry counts a failed job that is redelivered later.
func (m *Metrics) Retry() {
	if m != nil {
		m.retries.Inc()
	}
}

// DeadLetter counts a job given up on.
func (m *Metrics) DeadLetter(kind string) {
	if m != nil {
		m.dead.WithLabelValues(kind).Inc()
	}
}

// QueueOpError counts an acknowledgement the queue refused.
func (m *Metrics) QueueOpError(op string) {
	if m != nil {
		m.queueOps.WithLabelValues(op).Inc()
	}
}

// Hold counts a delivery meeting a hold: waited, taken_over or lost.
func (m *Metrics) Hold(event string) {
	if m != nil {
		m.holds.WithLabelValues(event).Inc()
	}
}

// Started records a build starting after waiting d in the queue; the
// returned func records it ending.
func (m *Metrics) Started(wait time.Duration) (done func()) {
	if m == nil {
		return func() {}
	}
	m.queueWait.Observe(wait.Seconds())
	m.running.Inc()
	return m.running.Dec
}

// Build counts one finished build.
func (m *Metrics) Build(res pipeline.Result) {
	if m == nil {
		return
	}
	m.builds.WithLabelValues(string(res.Outcome), res.Tier).Inc()
	m.oomRetries.Add(float64(res.OOMRetries))
	m.steps.Add(float64(res.StepsTotal))
	m.cached.Add(float64(res.StepsCached))
	m.buildSecs.Observe(float64(res.DurationMS) / 1000)
	if res.CostEUR > 0 {
		m.cost.WithLabelValues(res.Workspace).Add(res.CostEUR)
	}
}
