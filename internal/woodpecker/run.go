package woodpecker

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/lian-build/action/internal/launch"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/report"
)

// Request is the pipeline request the settings and CI_* describe.
func Request(ctx context.Context, env Env) (pipeline.Request, error) {
	s, err := Settings(env)
	if err != nil {
		return pipeline.Request{}, err
	}
	return s.Resolve(ctx)
}

func run(ctx context.Context, env Env, out io.Writer, log *slog.Logger) error {
	s, err := Settings(env)
	if err != nil {
		return err
	}
	req, err := s.Resolve(ctx)
	if err != nil {
		return err
	}
	// Progress is plain: Woodpecker's log is no TTY.
	res, runErr := launch.Build(ctx, s, req, launch.BuildOptions{Logger: log, Progress: out, Starting: func() {
		fmt.Fprintf(out, "lian-build: building %s as %s (push: %v)\n", req.Workspace, req.Actor, req.Build.Push)
	}})
	if res.BuildID != "" {
		report.Write(out, res)
	}
	return runErr
}
