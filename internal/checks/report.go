// Package checks reports builds as GitHub Check Runs (go-github v66, GitHub
// App installation tokens through ghinstallation), and holds the other GitHub
// calls the gateway makes: pull request head, permission, reaction, comment.
package checks

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/go-github/v66/github"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
)

// GitHub's limits on a check run.
const (
	MaxText        = 65535 // characters of output.summary and output.text
	MaxAnnotations = 50    // per request
	MaxActions     = 3
	MaxActionID    = 20 // characters of an action identifier
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
	s := frontdoor.ResultTable(r)
	if r.Error != "" && r.Outcome != pipeline.OutcomeSuccess {
		s += fmt.Sprintf("\n**Error:** %s\n", r.Error)
	}
	return Truncate(s, MaxText)
}

// Text is the log tail shown under the summary.
func Text(r pipeline.Result) string {
	if r.Failure == nil || len(r.Failure.LogTail) == 0 {
		return ""
	}
	// Keep the end of the log: that is where the error is.
	return TruncateHead("```\n"+strings.Join(r.Failure.LogTail, "\n")+"\n```\n", MaxText)
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
		AnnotationLevel: github.String("failure"), Title: github.String(Truncate(f.Step, 255)),
		Message: github.String(Truncate(msg, 64*1024)),
	}}
}

// Actions are the buttons of a finished check run: "Rebuild on <next tier>"
// first when the build ran out of memory, at most MaxActions.
func Actions(r pipeline.Result, table sizing.Table) []*github.CheckRunAction {
	var out []*github.CheckRunAction
	add := func(tier string) {
		for _, a := range out {
			if a.Identifier == "rebuild-"+tier {
				return
			}
		}
		if len(out) < MaxActions && len("rebuild-"+tier) <= MaxActionID {
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

// Truncate cuts s to at most n characters, marking the cut.
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	const mark = "\n… (truncated)"
	r := []rune(s)
	return string(r[:n-utf8.RuneCountInString(mark)]) + mark
}

// TruncateHead keeps the end of s.
func TruncateHead(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	const mark = "(truncated) …\n"
	r := []rune(s)
	return mark + string(r[len(r)-(n-utf8.RuneCountInString(mark)):])
}
