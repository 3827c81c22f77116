package gateway

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/pipeline"
)

// DirectivesFiles are looked for at the repository root, in this order.
var DirectivesFiles = []string{".lian/directives.ncl", "lian.ncl"}

// PipelineExecutor runs jobs through the shared pipeline.
type PipelineExecutor struct {
	Pipeline *pipeline.Pipeline
	// Base are the gateway's build settings (registry, insecure registries,
	// local tier memory, …); each job adds its source, actor and tier.
	Base frontdoor.Settings
}

// Execute builds dir as the job says.
func (e PipelineExecutor) Execute(ctx context.Context, job Job, dir string, progress io.Writer) (pipeline.Result, error) {
	s := e.Base
	s.Given = map[string]bool{"actor": true, "context": true}
	s.Context, s.Actor, s.Commit, s.Ref, s.Progress = dir, job.Actor, job.SHA, job.Ref, "plain"
	if job.Tier != "" {
		s.RunnerType = job.Tier
		s.Given["runner-type"] = true
	}
	for _, f := range DirectivesFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			s.Directives = filepath.Join(dir, f)
			break
		}
	}
	if err := s.ApplyDirectives(ctx); err != nil {
		return pipeline.Result{BuildID: job.BuildID, Outcome: pipeline.OutcomeError, Error: err.Error()}, err
	}
	if s.Workspace == "" {
		s.Workspace = frontdoor.DefaultWorkspace(job.Repo)
	}
	// The directives' artifact image is built by every job and pushed by CI only:
	// a session's image stays on its runner.
	s.Push = len(s.Tags) > 0 && job.Actor == "ci"
	req, err := s.Request()
	if err != nil {
		return pipeline.Result{BuildID: job.BuildID, Outcome: pipeline.OutcomeError, Error: err.Error()}, err
	}
	req.BuildID = job.BuildID
	req.Build.ProgressOut = progress
	return e.Pipeline.Run(ctx, req)
}
