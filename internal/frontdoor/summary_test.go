package frontdoor

import (
	"strings"
	"testing"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
)

func TestResultTable(t *testing.T) {
	r := pipeline.Result{
		Workspace: "app", Actor: "human:jpl", Tier: "cax21", SizingSource: sizing.SourceDefault, SizingReason: "generic default",
		Outcome: pipeline.OutcomeFailure, OOMRetries: 1, StepsCached: 3, StepsTotal: 7, DurationMS: 12_345,
		Attempts: []pipeline.Attempt{
			{Number: 1, Tier: "cax11", Outcome: pipeline.OutcomeOOM, OOM: true, DurationMS: 4_000},
			{Number: 2, Tier: "cax21", Outcome: pipeline.OutcomeFailure, DurationMS: 8_000},
		},
		Usage:   &pipeline.Usage{Samples: 9, CPUP95: 1.5, MemP95Bytes: 300 << 20, MemPeak: 310 << 20},
		Failure: &buildkit.Failure{Step: "[build 3/4] RUN a | b", File: "Dockerfile", Line: 3, LogTail: []string{"boom"}},
	}
	got := ResultTable(r, "local")
	want := "| | |\n|---|---|\n" +
		"| Tier | `cax21` (default: generic default) |\n" +
		"| Attempts | 1. `cax11` oom in 4s, OOM → 2. `cax21` failure in 8s |\n" +
		"| OOM retries | 1 |\n" +
		"| Cache hits | 3/7 steps cached |\n" +
		"| Duration | 12.3s |\n" +
		"| Usage | CPU p95 1.50 cores, memory p95 300.0 MiB (peak 310.0 MiB), 9 samples |\n" +
		"| Runner | local |\n" +
		"| Actor | `human:jpl` |\n" +
		"| Failed step | `[build 3/4] RUN a \\| b` (`Dockerfile:3`) |\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	// Every row is one table line: a newline or pipe in a value cannot break the table.
	r.SizingReason = "line one\nline | two"
	for _, l := range strings.Split(strings.TrimSpace(ResultTable(r, "")), "\n") {
		if strings.Count(strings.ReplaceAll(l, `\|`, ""), "|") != 3 {
			t.Errorf("row breaks the table: %q", l)
		}
	}
	if strings.Contains(ResultTable(r, ""), "| Runner |") {
		t.Error("empty runner still printed")
	}
}
