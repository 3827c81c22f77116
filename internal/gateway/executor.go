package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/launch"
	"github.com/lian-build/action/internal/pipeline"
)

// DirectivesFiles are looked for at the repository root, in this order.
var DirectivesFiles = []string{".lian/directives.ncl", "lian.ncl"}

// TokenSource gives installation tokens (for fetching private repositories).
type TokenSource interface {
	Token(ctx context.Context, inst int64) (string, error)
}

// PipelineExecutor fetches the repository at the job's commit and runs the
// shared pipeline on it.
type PipelineExecutor struct {
	// Runtime is the gateway's, opened once: every job builds through it
	// as every front door builds (launch.Runtime.Build).
	Runtime *launch.Runtime
	Tokens  TokenSource
	GitURL  string
	WorkDir string
	// Base are the gateway's build settings (registry, insecure registries,
	// local tier memory, …); each job adds its source, actor and tier.
	Base frontdoor.Settings
	// Repos are the operator's per-repository settings; they win over the
	// repository's own directives.
	Repos []RepoSettings
}

// Execute checks out and builds the job's commit.
func (e PipelineExecutor) Execute(ctx context.Context, job Job, progress io.Writer) (pipeline.Result, error) {
	fail := func(err error) (pipeline.Result, error) {
		if e.Runtime == nil || e.Runtime.Pipeline == nil {
			return pipeline.Result{BuildID: job.BuildID, Outcome: pipeline.OutcomeError, Error: err.Error()}, err
		}
		return e.Runtime.Pipeline.Abandon(ctx, e.abandoned(job), err), err
	}
	dir, err := os.MkdirTemp(e.WorkDir, "src-"+job.BuildID+"-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	token, err := e.Tokens.Token(ctx, job.Installation)
	if err != nil {
		return fail(fmt.Errorf("installation token: %w", err))
	}
	if err := Fetch(ctx, e.GitURL, job.Owner, job.Repo, job.SHA, token, dir); err != nil {
		return fail(err)
	}
	s, req, err := e.request(ctx, dir, job)
	if err != nil {
		return fail(err)
	}
	req.BuildID = job.BuildID
	res, err := e.Runtime.Build(ctx, s, req, launch.BuildOptions{Progress: progress})
	if err != nil && res.BuildID == "" {
		return fail(err) // refused before its pipeline ran
	}
	return res, err
}

// abandoned is the request of a job that ended before its build could be
// read from its checkout: its lifecycle events go to the workspace the
// operator's settings name, or the repository's default one.
func (e PipelineExecutor) abandoned(job Job) pipeline.Request {
	s := e.Base
	e.repoSettings(&s, job.Owner+"/"+job.Repo)
	req := pipeline.Request{BuildID: job.BuildID, Workspace: s.Workspace, Commit: job.SHA, Ref: job.Ref}
	if req.Workspace == "" {
		req.Workspace = frontdoor.DefaultWorkspace(job.Repo)
	}
	req.Actor, _ = cache.ParseActor(job.Actor)
	return req
}

// request is the job's build of the checkout in dir: the gateway's
// settings, the operator's for the repository, then the repository's
// directives, whose paths stay inside dir.
func (e PipelineExecutor) request(ctx context.Context, dir string, job Job) (frontdoor.Settings, pipeline.Request, error) {
	s := e.Base
	s.Given = map[string]bool{"actor": true, "context": true}
	s.Context, s.Actor, s.Commit, s.Ref, s.Progress, s.Checkout = dir, job.Actor, job.SHA, job.Ref, "plain", dir
	s.Source, s.Public = strings.TrimSuffix(e.GitURL, "/")+"/"+job.Owner+"/"+job.Repo, !job.Private
	e.repoSettings(&s, job.Owner+"/"+job.Repo)
	if job.Tier != "" {
		s.RunnerType = job.Tier
		s.Given["runner-type"] = true
	}
	for _, f := range DirectivesFiles {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			s.Directives = filepath.Join(dir, f)
			break
		}
	}
	if err := s.ApplyDirectives(ctx); err != nil {
		// Name the file as it is in the repository, not in the checkout.
		return s, pipeline.Request{}, errors.New(strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""))
	}
	if err := honoured(e.Base, s); err != nil {
		return s, pipeline.Request{}, err
	}
	if s.Workspace == "" {
		s.Workspace = frontdoor.DefaultWorkspace(job.Repo)
	}
	// The directives' artifact image is built by every job and pushed by CI only:
	// a session's image stays on its runner.
	s.Push = len(s.Tags) > 0 && job.Actor == "ci"
	req, err := s.Request()
	return s, req, err
}

// repoSettings applies the operator's settings for a repository.
func (e PipelineExecutor) repoSettings(s *frontdoor.Settings, fullName string) {
	for _, r := range e.Repos {
		if !strings.EqualFold(r.Repository, fullName) {
			continue
		}
		if r.Workspace != "" {
			s.Workspace, s.Given["workspace"] = r.Workspace, true
		}
		if r.RunnerType != "" {
			s.RunnerType, s.Given["runner-type"] = r.RunnerType, true
		}
		if len(r.Platforms) > 0 {
			s.Platforms, s.Given["platforms"] = r.Platforms, true
		}
	}
}

// honoured refuses directives that ask for what this gateway does not do:
// its builds run on the provider it was started with, whatever a
// repository's file says — said, not silently ignored.
func honoured(base, job frontdoor.Settings) error {
	want, have := job.ComputeProvider, base.ProviderName()
	if want != "" && want != have {
		return fmt.Errorf("%s: compute_provider %q: this gateway runs builds on %q; ask its operator, or remove compute_provider", filepath.Base(job.Directives), want, have)
	}
	// Events and the P95 history go where the gateway's runtime publishes:
	// one connection, opened at start-up, for every repository.
	if job.NatsURL != "" && job.NatsURL != base.NatsURL {
		return fmt.Errorf("%s: nats_events.url: this gateway publishes events on its own NATS; a repository cannot send them elsewhere — remove nats_events", filepath.Base(job.Directives))
	}
	// The state store is a path on the gateway's machine: its operator's choice.
	if job.StateStore != "" && job.StateStore != base.StateStore {
		return fmt.Errorf("%s: state_store %q: a repository cannot choose a path on the gateway's machine; ask its operator, or remove state_store", filepath.Base(job.Directives), job.StateStore)
	}
	return nil
}
