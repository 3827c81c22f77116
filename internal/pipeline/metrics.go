package pipeline

import (
	"context"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/lian-build/action/internal/compute"
)

// MetricsRecorder stores a finished build's resource use per workspace; it
// feeds the P95 sizing rule.
type MetricsRecorder interface {
	Record(ctx context.Context, workspace string, u Usage, r Result) error
}

// NopMetrics stores nothing.
type NopMetrics struct{}

func (NopMetrics) Record(context.Context, string, Usage, Result) error { return nil }

// sampler reads a runner's counters at an interval during an attempt.
type sampler struct {
	mu      sync.Mutex
	samples []compute.Stats
}

// run reads at once unless a reading is there already (the one the
// attempt took as its build started), then every interval until ctx ends.
func (s *sampler) run(ctx context.Context, r compute.Runner, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	if len(s.all()) == 0 {
		s.take(ctx, r)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.take(ctx, r)
	}
}

func (s *sampler) take(ctx context.Context, r compute.Runner) {
	if st, err := r.Stats(ctx); err == nil {
		s.mu.Lock()
		s.samples = append(s.samples, st)
		s.mu.Unlock()
	}
}

func (s *sampler) all() []compute.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]compute.Stats(nil), s.samples...)
}

// usageOf turns samples into P95 memory and CPU (cores, from CPU-time deltas).
func usageOf(samples []compute.Stats) Usage {
	u := Usage{Samples: len(samples)}
	if len(samples) == 0 {
		return u
	}
	mem := make([]float64, 0, len(samples))
	var cpu []float64
	for i, s := range samples {
		m := s.MemoryBytes
		if s.IntervalPeak > 0 {
			m = s.IntervalPeak
		}
		mem = append(mem, float64(m))
		u.MemPeak = max(u.MemPeak, s.MemoryPeak, s.MemoryBytes)
		if i > 0 {
			dt := s.Time.Sub(samples[i-1].Time).Seconds()
			if dt > 0 && s.CPUUsageNanos >= samples[i-1].CPUUsageNanos {
				cpu = append(cpu, float64(s.CPUUsageNanos-samples[i-1].CPUUsageNanos)/1e9/dt)
			}
		}
	}
	u.MemP95Bytes = uint64(p95(mem))
	u.CPUP95 = math.Round(p95(cpu)*100) / 100
	return u
}

// p95 is the nearest-rank 95th percentile.
func p95(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	rank := int(math.Ceil(0.95*float64(len(s)))) - 1
	return s[max(rank, 0)]
}
