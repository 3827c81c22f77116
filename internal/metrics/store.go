// Package metrics keeps each workspace's build resource use — the P95 CPU and
// memory a finished build measured on its runner — and whether its P95 sizing
// is approved. It backs the P95 rule of internal/sizing.
//
// Two stores: a JetStream key-value bucket when NATS is configured (shared by
// every machine and gateway replica), a local file store otherwise.
package metrics

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
)

// Sample is one successful build's measured use.
type Sample struct {
	BuildID     string    `json:"build_id"`
	Time        time.Time `json:"time"`
	Tier        string    `json:"tier"`
	CPUP95      float64   `json:"cpu_p95"`
	MemP95Bytes uint64    `json:"mem_p95_bytes"`
	DurationMS  int64     `json:"duration_ms"`
	CostEUR     float64   `json:"cost_eur,omitempty"`
}

// History is a workspace's record.
type History struct {
	Workspace string   `json:"workspace"`
	Approved  bool     `json:"approved"`
	Samples   []Sample `json:"samples"`
}

// Keep is how many samples a workspace keeps (the newest).
const Keep = 50

// MinSamples is how many builds the P95 rule needs before it says anything.
const MinSamples = 3

// Store persists histories. update runs fn on the current history and
// stores the result atomically (retrying on concurrent writers).
type Store interface {
	Get(ctx context.Context, workspace string) (History, error)
	Update(ctx context.Context, workspace string, fn func(*History)) error
	// Workspaces are the workspaces with a history, sorted.
	Workspaces(ctx context.Context) ([]string, error)
}

// Recorder adapts a Store to the pipeline (step 6) and to sizing (rule 2).
type Recorder struct{ Store Store }

var (
	_ pipeline.MetricsRecorder = Recorder{}
	_ sizing.History           = Recorder{}
)

// Record appends a successful build's usage.
func (r Recorder) Record(ctx context.Context, workspace string, u pipeline.Usage, res pipeline.Result) error {
	if res.Outcome != pipeline.OutcomeSuccess || u.Samples == 0 {
		return nil
	}
	if err := cache.ValidName("workspace", workspace); err != nil {
		return err
	}
	s := Sample{BuildID: res.BuildID, Time: res.FinishedAt.UTC(), Tier: res.Tier, CPUP95: u.CPUP95, MemP95Bytes: u.MemP95Bytes, DurationMS: res.DurationMS, CostEUR: res.CostEUR}
	return r.Store.Update(ctx, workspace, func(h *History) {
		h.Samples = append(h.Samples, s)
		if len(h.Samples) > Keep {
			h.Samples = h.Samples[len(h.Samples)-Keep:]
		}
	})
}

// P95 is the workspace's P95 over its recorded builds' P95s.
func (r Recorder) P95(ctx context.Context, workspace string) (sizing.Usage, bool, error) {
	h, err := r.Store.Get(ctx, workspace)
	if err != nil {
		return sizing.Usage{}, false, err
	}
	u, ok := Summarize(h)
	return u, ok, nil
}

// Summarize computes the P95 usage of a history; ok is false below MinSamples.
func Summarize(h History) (sizing.Usage, bool) {
	if len(h.Samples) < MinSamples {
		return sizing.Usage{Samples: len(h.Samples), Approved: h.Approved}, false
	}
	cpu := make([]float64, len(h.Samples))
	mem := make([]float64, len(h.Samples))
	dur := make([]float64, len(h.Samples))
	for i, s := range h.Samples {
		cpu[i] = s.CPUP95
		mem[i] = float64(s.MemP95Bytes) / (1 << 30)
		dur[i] = float64(s.DurationMS)
	}
	return sizing.Usage{CPU: round2(p95(cpu)), MemoryGB: round2(p95(mem)), Samples: len(h.Samples), Approved: h.Approved,
		Duration: time.Duration(p95(dur)) * time.Millisecond}, true
}

// SetApproved approves or revokes P95 sizing for a workspace.
func (r Recorder) SetApproved(ctx context.Context, workspace string, approved bool) error {
	if err := cache.ValidName("workspace", workspace); err != nil {
		return err
	}
	return r.Store.Update(ctx, workspace, func(h *History) { h.Approved = approved })
}

func p95(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[max(int(math.Ceil(0.95*float64(len(s))))-1, 0)]
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func keyOf(workspace string) string { return fmt.Sprintf("ws.%s", workspace) }
