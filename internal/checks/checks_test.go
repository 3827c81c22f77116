package checks

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/githubapp"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
)

func TestTitleAndConclusion(t *testing.T) {
	tests := []struct {
		r     pipeline.Result
		title string
		concl string
	}{
		{pipeline.Result{Outcome: pipeline.OutcomeSuccess, Tier: "cax21", OOMRetries: 1, StepsCached: 14, StepsTotal: 18}, "cax21 · 1 OOM retry · 14/18 steps cached", "success"},
		{pipeline.Result{Outcome: pipeline.OutcomeSuccess, Tier: "cax11", StepsTotal: 3}, "cax11 · no OOM retry · 0/3 steps cached", "success"},
		{pipeline.Result{Outcome: pipeline.OutcomeOOM, Tier: "cax21", OOMRetries: 1}, "out of memory · cax21 · 1 OOM retry · 0/0 steps cached", "failure"},
		{pipeline.Result{Outcome: pipeline.OutcomeFailure, Tier: "cax11"}, "failed · cax11 · no OOM retry · 0/0 steps cached", "failure"},
		{pipeline.Result{Outcome: pipeline.OutcomeTimeout, Tier: "cax11"}, "time budget exceeded · cax11 · no OOM retry · 0/0 steps cached", "timed_out"},
		{pipeline.Result{Outcome: pipeline.OutcomeCanceled, Tier: "cax11"}, "canceled · cax11 · no OOM retry · 0/0 steps cached", "cancelled"},
	}
	for _, tt := range tests {
		if got := Title(tt.r); got != tt.title {
			t.Errorf("Title = %q, want %q", got, tt.title)
		}
		if got := Conclusion(tt.r); got != tt.concl {
			t.Errorf("Conclusion(%s) = %q", tt.r.Outcome, got)
		}
	}
}

func TestActionsAndAnnotations(t *testing.T) {
	acts := Actions(pipeline.Result{Tier: "cax21"}, sizing.HCloud)
	if len(acts) != githubapp.MaxActions || acts[0].Identifier != "rebuild-cax31" {
		t.Fatalf("actions %+v", acts)
	}
	for _, a := range acts {
		if len(a.Identifier) > githubapp.MaxActionID || a.Identifier == "rebuild-cax21" {
			t.Errorf("action %+v", a)
		}
	}
	if a := Annotations(pipeline.Result{}, "Dockerfile"); a != nil {
		t.Errorf("annotations without a failure: %v", a)
	}
	a := Annotations(pipeline.Result{Failure: &buildkit.Failure{Step: "[2/3] RUN x", Error: "boom", Line: 7, ExitCode: 3}}, "Dockerfile")
	if len(a) != 1 || a[0].GetStartLine() != 7 || a[0].GetPath() != "Dockerfile" || !strings.Contains(a[0].GetMessage(), "exit code 3") {
		t.Fatalf("annotation %+v", a)
	}
}

func TestTruncateRespectsLimits(t *testing.T) {
	long := strings.Repeat("é", githubapp.MaxText+100)
	for _, s := range []string{githubapp.Truncate(long, githubapp.MaxText), githubapp.TruncateHead(long, githubapp.MaxText)} {
		if n := utf8.RuneCountInString(s); n > githubapp.MaxText || !strings.Contains(s, "truncated") {
			t.Errorf("%d characters", n)
		}
	}
	res := pipeline.Result{Failure: &buildkit.Failure{LogTail: []string{strings.Repeat("x", 70000), "the end"}}}
	if txt := Text(res); utf8.RuneCountInString(txt) > githubapp.MaxText || !strings.Contains(txt, "the end") {
		t.Error("Text must keep the end of the log within the limit")
	}
	// A 100,000-character error: summary and text stay within GitHub's limit.
	huge := pipeline.Result{Outcome: pipeline.OutcomeError, Error: strings.Repeat("e", 100000), Failure: &buildkit.Failure{Error: strings.Repeat("f", 100000), LogTail: []string{strings.Repeat("l", 100000)}}}
	if n := utf8.RuneCountInString(Summary(huge)); n > githubapp.MaxText {
		t.Errorf("summary of %d characters", n)
	}
	if n := utf8.RuneCountInString(Text(huge)); n > githubapp.MaxText {
		t.Errorf("text of %d characters", n)
	}
}
