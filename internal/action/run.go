package action

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/launch"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/report"
	"github.com/sethvargo/go-githubactions"
)

// Request is the pipeline request the inputs and event describe.
func Request(ctx context.Context, a *githubactions.Action) (pipeline.Request, error) {
	gh, err := a.Context()
	if err != nil {
		return pipeline.Request{}, fmt.Errorf("reading the GitHub context: %w", err)
	}
	s, err := settings(a, gh, frontdoor.SettingsTable())
	if err != nil {
		return pipeline.Request{}, err
	}
	return s.Resolve(ctx)
}

func run(ctx context.Context, a *githubactions.Action, out io.Writer, log *slog.Logger) error {
	gh, err := a.Context()
	if err != nil {
		return fmt.Errorf("reading the GitHub context: %w", err)
	}
	s, err := settings(a, gh, frontdoor.SettingsTable())
	if err != nil {
		return err
	}
	if err := checkFileCommands(a); err != nil {
		return err
	}
	req, err := s.Resolve(ctx)
	if err != nil {
		return err
	}
	res, runErr := launch.Build(ctx, s, req, launch.BuildOptions{Logger: log, Progress: out, Starting: func() {
		a.Group(fmt.Sprintf("lian-build: %s (%s)", req.Workspace, req.Actor))
	}})
	if res.BuildID == "" {
		return runErr
	}
	a.EndGroup()
	report.Write(out, res)
	outErr := fileCommand("GITHUB_OUTPUT", func() { setOutputs(a, res) })
	sumErr := fileCommand("GITHUB_STEP_SUMMARY", func() { a.AddStepSummary(Summary(res)) })
	if err := errors.Join(outErr, sumErr); err != nil {
		return errors.Join(runErr, err)
	}
	if f := res.Failure; f != nil && f.Line > 0 {
		file := f.File
		if df := req.Build.Dockerfile; df != "" {
			file = df
		} else if file != "" {
			file = filepath.Join(req.Build.ContextDir, file)
		}
		if ws := gh.Workspace; ws != "" {
			if rel, err := filepath.Rel(ws, file); err == nil && !strings.HasPrefix(rel, "..") {
				file = rel
			}
		}
		a.WithFieldsMap(map[string]string{"file": file, "line": strconv.Itoa(f.Line), "title": "lian-build: " + f.Step}).
			Errorf("%s", firstLine(f.Error))
	}
	return runErr
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func setOutputs(a *githubactions.Action, r pipeline.Result) {
	image := ""
	if len(r.Tags) > 0 {
		image = r.Tags[0]
	}
	meta, _ := json.Marshal(r)
	for k, v := range map[string]string{
		"digest": r.Digest, "image": image, "runner-type": r.Tier, "sizing-source": string(r.SizingSource),
		"oom-retries": strconv.Itoa(r.OOMRetries), "cache-hits": strconv.Itoa(r.StepsCached),
		"steps-total": strconv.Itoa(r.StepsTotal), "duration": strconv.FormatInt(r.DurationMS, 10),
		"metadata": string(meta),
	} {
		a.SetOutput(k, v)
	}
}

// Summary is the job summary's Markdown: a heading with the outcome, the
// result table the check runs show too, and the failing step's log tail.
func Summary(r pipeline.Result) string {
	var b strings.Builder
	status := map[pipeline.Outcome]string{pipeline.OutcomeSuccess: "✅ succeeded", pipeline.OutcomeFailure: "❌ failed",
		pipeline.OutcomeOOM: "❌ ran out of memory", pipeline.OutcomeTimeout: "⏱️ timed out", pipeline.OutcomeCanceled: "⚪ canceled",
		pipeline.OutcomeError: "❌ could not run"}[r.Outcome]
	fmt.Fprintf(&b, "### lian-build: `%s` %s\n\n", r.Workspace, status)
	b.WriteString(report.Markdown(r))
	if r.Error != "" && r.Outcome != pipeline.OutcomeSuccess {
		fmt.Fprintf(&b, "\n**Error:** %s\n", firstLine(r.Error))
	}
	if f := r.Failure; f != nil && len(f.LogTail) > 0 {
		fmt.Fprintf(&b, "\n<details><summary>Log tail</summary>\n\n```\n%s\n```\n</details>\n", strings.Join(report.Tail(f.LogTail, 20), "\n"))
	}
	return b.String()
}

// post removes the runners of this job whose owner (the main step) is
// gone, on the provider the step's inputs name (a post step gets the same
// inputs as its main step).
func post(ctx context.Context, a *githubactions.Action) int {
	gh, err := a.Context()
	if err != nil {
		a.Warningf("lian-build post: reading the GitHub context: %v", err)
		return 0
	}
	s, err := settings(a, gh, frontdoor.SettingsTable())
	if err != nil {
		a.Warningf("lian-build post: %v", err)
		return 0
	}
	prov, err := s.OpenProvider()
	if err != nil {
		a.Warningf("lian-build post: %v", err)
		return 0
	}
	removed, err := prov.GC(ctx)
	for _, r := range removed {
		a.Infof("lian-build post: removed runner %s (%s)", r.ID, r.Why)
	}
	if err != nil {
		a.Warningf("lian-build post: %v", err)
	}
	return 0
}
