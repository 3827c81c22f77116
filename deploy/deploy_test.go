// Package deploy holds what an operator deploys beside lian-build:
// Prometheus alerting rules (prometheus/) and a Grafana dashboard
// (grafana/). Its tests check them with the real promtool and against
// the metrics lian-build exposes.
package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lian-build/action/internal/gateway"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/pool"
)

// The rules load and their unit tests pass, with the real promtool.
func TestAlertingRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("LIAN_E2E") == "1" {
			t.Fatal("promtool is needed (Debian's prometheus package: make deps)")
		}
		t.Skip("no promtool")
	}
	for _, args := range [][]string{{"check", "rules", "lian-build.rules.yml"}, {"test", "rules", "lian-build.rules.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

var metricRE = regexp.MustCompile(`lian_build_[a-z_]+`)

// describer records the metric names of what registers with it.
type describer struct{ names []string }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d.names = append(d.names, m[1])
		}
	}
	return nil
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d *describer) Unregister(prometheus.Collector) bool { return true }

// exposed are the metric names the gateway and the pool serve, with a
// histogram's series names.
func exposed(t *testing.T) []string {
	t.Helper()
	d := &describer{}
	pool.NewMetrics(d)
	m := gateway.NewMetrics(func() float64 { return 0 })
	m.Delivery("push", "accepted", time.Millisecond)
	m.Retry()
	m.DeadLetter("build")
	m.QueueOpError("ack")
	m.Hold("lost")
	m.Started(time.Second)()
	m.Build(pipeline.Result{Outcome: pipeline.OutcomeSuccess, Tier: "cax11", Workspace: "app", CostEUR: 0.01, OOMRetries: 1, StepsTotal: 2, StepsCached: 1})
	mfs, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		d.names = append(d.names, mf.GetName())
	}
	var out []string
	for _, n := range d.names {
		out = append(out, n, n+"_bucket", n+"_sum", n+"_count")
	}
	return out
}

// Every metric the rules and the dashboard query is one lian-build
// exposes (a renamed metric would silence an alert or empty a panel).
func TestRulesAndDashboardQueryExposedMetrics(t *testing.T) {
	names := exposed(t)
	rules, err := os.ReadFile("prometheus/lian-build.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("grafana/lian-build.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("the dashboard is not an importable Grafana dashboard: %v", err)
	}
	exprs := []string{string(rules)}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	for _, e := range exprs {
		for _, name := range metricRE.FindAllString(e, -1) {
			if !slices.Contains(names, name) {
				t.Errorf("%s is queried but not exposed", name)
			}
		}
	}
}
