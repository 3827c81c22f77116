package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/spec"
)

func specPipeline(t *testing.T, e *env) *pipeline.Pipeline {
	p, err := pipeline.New(pipeline.Config{Provider: e.prov, Specs: spec.Loader{Eval: spec.Evaluator{}, Table: sizing.HCloud}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSpecRunnerTypeIsHonoured(t *testing.T) {
	e := newEnv(t, nil)
	dir := project(t, "FROM base\nRUN true\n", map[string]string{
		".build-spec.ncl": "# the team's choice\n{ runner_type = \"cax31\" }\n",
		"Cargo.toml":      "[package]\nname = \"x\"\n",
	})
	res, err := specPipeline(t, e).Run(context.Background(), e.request(dir))
	if err != nil {
		t.Fatal(err)
	}
	if res.Tier != "cax31" || res.SizingSource != sizing.SourceSpec || res.Attempts[0].Tier != "cax31" {
		t.Fatalf("tier %s from %s (attempt on %s)", res.Tier, res.SizingSource, res.Attempts[0].Tier)
	}
	assertRunnersGone(t, e, res)
}

func TestSpecTimeBudgetCancelsTheBuild(t *testing.T) {
	e := newEnv(t, nil)
	dir := project(t, "FROM base\nRUN sleep 60\n", map[string]string{
		".build-spec.ncl": "{ time_budget_min = 0.05 }\n", // 3 seconds
	})
	start := time.Now()
	res, err := specPipeline(t, e).Run(context.Background(), e.request(dir))
	var te *pipeline.TimeoutError
	if !errors.As(err, &te) || te.Budget != 3*time.Second {
		t.Fatalf("err = %v, want a TimeoutError of 3s", err)
	}
	if !strings.Contains(err.Error(), "time_budget_min") || res.Outcome != pipeline.OutcomeTimeout {
		t.Errorf("err %q, outcome %s", err, res.Outcome)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s for a 3s budget", d)
	}
	assertRunnersGone(t, e, res)
}

func TestBadSpecFailsBeforeAnyRunner(t *testing.T) {
	e := newEnv(t, nil)
	dir := project(t, "FROM base\n", map[string]string{".build-spec.ncl": "{ runner_type = \"huge\" }\n"})
	res, err := specPipeline(t, e).Run(context.Background(), e.request(dir))
	if err == nil || !strings.Contains(err.Error(), ".build-spec.ncl:1:17: runner_type: unknown runner tier \"huge\"") {
		t.Fatalf("err = %v", err)
	}
	if len(res.Attempts) != 0 {
		t.Fatalf("a runner was spawned for a bad spec: %+v", res.Attempts)
	}
}
