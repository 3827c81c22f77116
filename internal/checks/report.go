// Package checks renders a build's result as a GitHub Check Run: its title,
// conclusion, summary table, log tail, annotation on the failing line and
// rebuild buttons, within GitHub's limits. The GitHub App client that sends
// them is internal/githubapp.
package checks

import (
	"fmt"
	"strings"

	"github.com/google/go-github/v66/github"
	"github.com/lian-build/action/internal/githubapp"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/report"
	"github.com/lian-build/action/internal/sizing"
)

// Title is the one-line outcome: "cax21 · 1 OOM retry · 14/18 steps cached".
func Title(r pipeline.Result) string {
	retries := "no OOM retry"
	switch r.OOMRetries {
	case 0:
	case 1:
		retries = "1 OOM retry"
	default:
		retries = fmt.Sprintf("%d OOM retries", r.OOMRetries)
	}
	t := fmt.Sprintf("%s · %s · %d/%d steps cached", r.Tier, retries, r.StepsCached, r.StepsTotal)
	switch r.Outcome {
	case pipeline.OutcomeSuccess:
	case pipeline.OutcomeOOM:
		t = "out of memory · " + t
	case pipeline.OutcomeTimeout:
		t = "time budget exceeded · " + t
	case pipeline.OutcomeCanceled:
		t = "canceled · " + t
	default:
		t = "failed · " + t
	}
	return t
}

// Conclusion maps an outcome to a check run conclusion.
func Conclusion(r pipeline.Result) string {
	switch r.Outcome {
	case pipeline.OutcomeSuccess:
		return "success"
	case pipeline.OutcomeCanceled:
		return "cancelled"
	case pipeline.OutcomeTimeout:
		return "timed_out"
	}
	return "failure"
}

// Summary is the Markdown of a finished build: the result table the Action's
// job summary shows too, and the error when it failed.
func Summary(r pipeline.Result) string {
	s := report.Markdown(r)
	if r.Error != "" && r.Outcome != pipeline.OutcomeSuccess {
		s += fmt.Sprintf("\n**Error:** %s\n", r.Error)
	}
	return githubapp.Truncate(s, githubapp.MaxText)
}

// Text is the log tail shown under the summary.
func Text(r pipeline.Result) string {
	if r.Failure == nil || len(r.Failure.LogTail) == 0 {
		return ""
	}
	// Keep the end of the log: that is where the error is.
	return githubapp.TruncateHead("```\n"+strings.Join(r.Failure.LogTail, "\n")+"\n```\n", githubapp.MaxText)
}

// Annotations mark the failing Dockerfile line (path relative to the repository).
func Annotations(r pipeline.Result, path string) []*github.CheckRunAnnotation {
	f := r.Failure
	if f == nil || f.Line <= 0 || path == "" {
		return nil
	}
	msg := f.Error
	if f.ExitCode >= 0 {
		msg = fmt.Sprintf("%s\n(exit code %d)", f.Error, f.ExitCode)
	}
	return []*github.CheckRunAnnotation{{
		Path: github.String(path), StartLine: github.Int(f.Line), EndLine: github.Int(f.Line),
		AnnotationLevel: github.String("failure"), Title: github.String(githubapp.Truncate(f.Step, 255)),
		Message: github.String(githubapp.Truncate(msg, 64*1024)),
	}}
}

// Actions are the buttons of a finished check run: "Rebuild on <next tier>"
// first when the build ran out of memory, at most githubapp.MaxActions.
func Actions(r pipeline.Result, table sizing.Table) []*github.CheckRunAction {
	var out []*github.CheckRunAction
	add := func(tier string) {
		for _, a := range out {
			if a.Identifier == "rebuild-"+tier {
				return
			}
		}
		if len(out) < githubapp.MaxActions && len("rebuild-"+tier) <= githubapp.MaxActionID {
			out = append(out, &github.CheckRunAction{Label: "Rebuild on " + tier, Identifier: "rebuild-" + tier, Description: "Run this build again on " + tier})
		}
	}
	if r.Tier != "" {
		if next, err := table.Next(r.Tier); err == nil {
			add(next.Name)
		}
	}
	for _, t := range table {
		if t.Name != r.Tier {
			add(t.Name)
		}
	}
	return out
}
