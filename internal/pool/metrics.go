package pool

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pool's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	vms       *prometheus.GaugeVec
	billed    *prometheus.CounterVec
	build     *prometheus.CounterVec
	wait      *prometheus.HistogramVec
	events    *prometheus.CounterVec
	returns   *prometheus.CounterVec
	warm      *prometheus.CounterVec
	commits   *prometheus.CounterVec
	evictions *prometheus.CounterVec
	handOffs  *prometheus.CounterVec
	overdue   prometheus.Gauge
	mu        sync.Mutex
	lastTiers map[[2]string]bool
}

// NewMetrics registers the pool's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		vms: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lian_build_pool_vms",
			Help: "VMs of the pool by tier and state (idle, leased, creating, recycling, retiring)."}, []string{"tier", "state"}),
		billed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lian_build_pool_billed_minutes_total",
			Help: "Minutes billed for retired VMs (every started hour)."}, []string{"tier"}),
		build: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lian_build_pool_build_minutes_total",
			Help: "Minutes VMs spent leased to builds."}, []string{"tier"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lian_build_pool_lease_wait_seconds",
			Help: "Time from a lease request to a ready runner.", Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120}}, []string{"tier", "reused"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lian_build_pool_vm_events_total",
			Help: "VMs created, reused and retired."}, []string{"tier", "event"}),
		returns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lian_build_pool_returns_total",
			Help: "Leases returned, by outcome."}, []string{"tier", "outcome"}),
		warm: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lian_build_pool_warm_leases_total",
			Help: "Leases that asked for warm state, by whether they started on a generation of one of their namespaces (hit) or empty (miss)."}, []string{"tier", "result"}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lian_build_pool_warm_commits_total",
			Help: "Warm state commits after a return, by result (committed, failed)."}, []string{"tier", "result"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lian_build_pool_warm_evictions_total",
			Help: "Namespaces' generations dropped from a VM's disk to keep its warm state within its budget."}, []string{"tier"}),
		handOffs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lian_build_pool_warm_handoffs_total",
			Help: "Namespaces' generations handed from a VM retired at the end of its hour to one that stays."}, []string{"tier"}),
		overdue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lian_build_pool_leases_overdue",
			Help: "Leased VMs past their lease's expiry (upkeep retires them; a lasting value means it cannot)."}),
		lastTiers: map[[2]string]bool{},
	}
	reg.MustRegister(m.vms, m.billed, m.build, m.wait, m.events, m.returns, m.warm, m.commits, m.evictions, m.handOffs, m.overdue)
	return m
}

func (m *Metrics) leased(tier string, reused bool, wait time.Duration) {
	if m == nil {
		return
	}
	r := "false"
	if reused {
		r = "true"
	}
	m.wait.WithLabelValues(tier, r).Observe(wait.Seconds())
}

func (m *Metrics) warmLease(tier string, hit bool) {
	if m == nil {
		return
	}
	r := "miss"
	if hit {
		r = "hit"
	}
	m.warm.WithLabelValues(tier, r).Inc()
}

func (m *Metrics) warmCommit(tier string, err error) {
	if m == nil {
		return
	}
	r := "committed"
	if err != nil {
		r = "failed"
	}
	m.commits.WithLabelValues(tier, r).Inc()
}

func (m *Metrics) warmEvicted(tier string) {
	if m == nil {
		return
	}
	m.evictions.WithLabelValues(tier).Inc()
}

func (m *Metrics) warmHandedOff(tier string) {
	if m == nil {
		return
	}
	m.handOffs.WithLabelValues(tier).Inc()
}

func (m *Metrics) returned(tier, outcome string, held time.Duration) {
	if m == nil {
		return
	}
	m.returns.WithLabelValues(tier, outcome).Inc()
	m.build.WithLabelValues(tier).Add(held.Minutes())
}

func (m *Metrics) event(name string, v VM, billed int64) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(v.Tier, name).Inc()
	if billed > 0 {
		m.billed.WithLabelValues(v.Tier).Add(float64(billed))
	}
}

// observe sets the VM gauges from a reading of the bucket at now; a tier
// and state seen before and absent now goes to 0.
func (m *Metrics) observe(now time.Time, vms []VM) {
	if m == nil {
		return
	}
	counts := map[[2]string]int{}
	overdue := 0
	for _, v := range vms {
		counts[[2]string{v.Tier, string(v.State)}]++
		if v.State == StateLeased && v.Lease != nil && now.After(v.Lease.Expires) {
			overdue++
		}
	}
	m.overdue.Set(float64(overdue))
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.lastTiers {
		if _, ok := counts[k]; !ok {
			m.vms.WithLabelValues(k[0], k[1]).Set(0)
		}
	}
	for k, n := range counts {
		m.vms.WithLabelValues(k[0], k[1]).Set(float64(n))
		m.lastTiers[k] = true
	}
}
