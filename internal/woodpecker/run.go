package woodpecker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/launch"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/report"
)

// Main runs the plugin with the process environment and returns the exit code.
func Main(ctx context.Context, environ []string, out io.Writer) int {
	env := Env{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(ctx, env, out, log); err != nil {
		fmt.Fprintf(out, "lian-build: %v\n", err)
		var se *SettingError
		if errors.As(err, &se) {
			return frontdoor.ExitUsage
		}
		return frontdoor.ExitCode(err)
	}
	return 0
}

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
