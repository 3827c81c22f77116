package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lian-build/action/internal/pipeline"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsText scrapes m as Prometheus would.
func metricsText(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(metricsText(t, m)))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v", err)
	}
	return fams
}

// /metrics parses as the Prometheus text format, and the histograms,
// counters and gauges move with deliveries and builds.
func TestMetricsExpositionMoves(t *testing.T) {
	m := NewMetrics(func() float64 { return 3 })
	before := scrape(t, m)
	for _, name := range []string{"lian_build_intake_seconds", "lian_build_queue_wait_seconds", "lian_build_build_duration_seconds", "lian_build_builds_running", "lian_build_queue_depth"} {
		if before[name] == nil {
			t.Errorf("%s is not exposed", name)
		}
	}
	m.Delivery("push", "queued", 3*time.Millisecond)
	done := m.Started(2 * time.Second)
	if got := scrape(t, m)["lian_build_builds_running"].Metric[0].Gauge.GetValue(); got != 1 {
		t.Fatalf("builds running %v during a build", got)
	}
	done()
	m.Build(pipeline.Result{Outcome: pipeline.OutcomeSuccess, Tier: "cax21", Workspace: "app", OOMRetries: 1, StepsTotal: 10, StepsCached: 7, DurationMS: 95_000, CostEUR: 0.0208})
	m.QueueOpError("ack")
	after := scrape(t, m)
	hist := func(name string) *dto.Histogram { return after[name].Metric[0].Histogram }
	if hist("lian_build_intake_seconds").GetSampleCount() != 1 || hist("lian_build_queue_wait_seconds").GetSampleSum() != 2 || hist("lian_build_build_duration_seconds").GetSampleSum() != 95 {
		t.Fatalf("histograms did not move:\n%s", metricsText(t, m))
	}
	if after["lian_build_builds_running"].Metric[0].Gauge.GetValue() != 0 || after["lian_build_queue_depth"].Metric[0].Gauge.GetValue() != 3 {
		t.Fatal("gauges wrong")
	}
	counters := map[string]float64{"lian_build_cost_eur_total": 0.0208, "lian_build_steps_total": 10, "lian_build_steps_cached_total": 7, "lian_build_oom_retries_total": 1, "lian_build_builds_total": 1, "lian_build_deliveries_total": 1, "lian_build_queue_op_errors_total": 1}
	for name, want := range counters {
		if got := after[name].Metric[0].Counter.GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// Progress updates go out one at a time, carry the latest tail, and none
// is sent or in flight once Stop returns (the final result comes after).
func TestProgressUpdatesAreOrderedAndEndBeforeTheResult(t *testing.T) {
	var mu sync.Mutex
	var sent []string
	inFlight, maxInFlight := 0, 0
	p := startProgress(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), 20*time.Millisecond, func(ctx context.Context, tail string) error {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()
		select { // a slow GitHub
		case <-time.After(30 * time.Millisecond):
		case <-ctx.Done():
		}
		mu.Lock()
		inFlight--
		sent = append(sent, tail)
		mu.Unlock()
		return nil
	})
	for i := range 40 {
		fmt.Fprintf(p, "line %d\n", i)
		time.Sleep(3 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the last lines' update
	p.Stop()
	mu.Lock()
	n, last, most := len(sent), sent[len(sent)-1], maxInFlight
	mu.Unlock()
	time.Sleep(150 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != n || inFlight != 0 {
		t.Fatalf("%d updates after Stop (%d in flight)", len(sent)-n, inFlight)
	}
	if most != 1 {
		t.Fatalf("%d updates in flight at once", most)
	}
	if !strings.Contains(last, "line 39") || n > 20 {
		t.Fatalf("%d updates; the last one ends %q", n, last[max(0, len(last)-20):])
	}
}

// An acknowledgement the queue refuses is logged and counted, not dropped.
func TestQueueOpErrorsAreLoggedAndCounted(t *testing.T) {
	var logs strings.Builder
	m := NewMetrics(nil)
	w := &Worker{Metrics: m, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	w.ack(w.Log, "ack", nil)
	w.ack(w.Log, "nak", errors.New("nats: connection closed"))
	if !strings.Contains(logs.String(), "queue nak failed") || strings.Contains(logs.String(), "queue ack failed") {
		t.Fatalf("log: %s", logs.String())
	}
	if text := metricsText(t, m); !strings.Contains(text, `lian_build_queue_op_errors_total{op="nak"} 1`) || strings.Contains(text, `op="ack"`) {
		t.Fatalf("metrics:\n%s", text)
	}
}
