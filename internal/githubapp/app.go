// Package githubapp is the GitHub App client of the gateway: installation
// tokens, check runs, pull requests, permissions, reactions and comments,
// with GitHub's rate limits and size limits, and GitHub's rules for the
// names and SHAs that reach its API.
package githubapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v66/github"
)

// App is a GitHub App: it makes a client per installation.
type App struct {
	ID         int64
	PrivateKey []byte
	APIURL     string // https://api.github.com, or GHES/test base
	Transport  http.RoundTripper

	mu      sync.Mutex
	clients map[int64]*installation
}

type installation struct {
	itr *ghinstallation.Transport
	gh  *github.Client
}

// NewApp validates the App's settings.
func NewApp(id int64, key []byte, apiURL string) (*App, error) {
	if id <= 0 {
		return nil, errors.New("github app: --app-id is required")
	}
	if _, err := ghinstallation.NewAppsTransport(http.DefaultTransport, id, key); err != nil {
		return nil, fmt.Errorf("github app: --private-key-file: %w", err)
	}
	u, err := url.Parse(apiURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("github app: --github-api-url %q is not a URL", apiURL)
	}
	return &App{ID: id, PrivateKey: key, APIURL: strings.TrimSuffix(apiURL, "/"), clients: map[int64]*installation{}}, nil
}

func (a *App) client(inst int64) (*installation, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.clients[inst]; ok {
		return c, nil
	}
	tr := a.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	itr, err := ghinstallation.New(tr, a.ID, inst, a.PrivateKey)
	if err != nil {
		return nil, err
	}
	itr.BaseURL = a.APIURL
	gh := github.NewClient(&http.Client{Transport: itr, Timeout: 30 * time.Second})
	base, err := url.Parse(a.APIURL + "/")
	if err != nil {
		return nil, err
	}
	gh.BaseURL = base
	c := &installation{itr: itr, gh: gh}
	a.clients[inst] = c
	return c, nil
}

// repoClient is the installation's client for owner/repo, once both names
// are known to follow GitHub's rules (they end up in API paths).
func (a *App) repoClient(inst int64, owner, repo string) (*installation, error) {
	if err := ValidOwner("owner", owner); err != nil {
		return nil, err
	}
	if err := ValidRepo("repository", repo); err != nil {
		return nil, err
	}
	return a.client(inst)
}

// Token is an installation access token (for fetching the repository).
func (a *App) Token(ctx context.Context, inst int64) (string, error) {
	c, err := a.client(inst)
	if err != nil {
		return "", err
	}
	return c.itr.Token(ctx)
}

// CheckRun is what the gateway sets on a check run.
type CheckRun struct {
	HeadSHA     string
	ExternalID  string
	Status      string // queued, in_progress, completed
	Conclusion  string
	Title       string
	Summary     string
	Text        string
	Annotations []*github.CheckRunAnnotation
	Actions     []*github.CheckRunAction
}

func (cr CheckRun) output() *github.CheckRunOutput {
	if cr.Title == "" {
		return nil
	}
	out := &github.CheckRunOutput{Title: github.String(cr.Title), Summary: github.String(Truncate(cr.Summary, MaxText))}
	if cr.Text != "" {
		out.Text = github.String(Truncate(cr.Text, MaxText))
	}
	if len(cr.Annotations) > 0 {
		n := min(len(cr.Annotations), MaxAnnotations)
		out.Annotations = cr.Annotations[:n]
	}
	return out
}

// CreateCheckRun returns the id of the build's lian-build check run: the
// one the commit already has with cr.ExternalID (a gateway that created it
// and died before recording it), or a new one. A build never gets two.
func (a *App) CreateCheckRun(ctx context.Context, inst int64, owner, repo string, cr CheckRun) (int64, error) {
	c, err := a.repoClient(inst, owner, repo)
	if err != nil {
		return 0, err
	}
	var found *github.ListCheckRunsResults
	err = retry(ctx, func() error {
		var err error
		found, _, err = c.gh.Checks.ListCheckRunsForRef(ctx, owner, repo, cr.HeadSHA, &github.ListCheckRunsOptions{
			CheckName: github.String("lian-build"), Filter: github.String("all"), ListOptions: github.ListOptions{PerPage: 100}})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("list check runs of %s: %w", cr.HeadSHA, err)
	}
	for _, run := range found.CheckRuns {
		if run.GetExternalID() == cr.ExternalID && cr.ExternalID != "" {
			return run.GetID(), nil
		}
	}
	var run *github.CheckRun
	err = retry(ctx, func() error {
		var err error
		run, _, err = c.gh.Checks.CreateCheckRun(ctx, owner, repo, github.CreateCheckRunOptions{
			Name: "lian-build", HeadSHA: cr.HeadSHA, ExternalID: github.String(cr.ExternalID),
			Status: github.String(cr.Status), Output: cr.output(),
		})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create check run: %w", err)
	}
	return run.GetID(), nil
}

// CheckRunCompleted reports whether a check run is completed (its result
// was reported, whatever happened to whoever reported it).
func (a *App) CheckRunCompleted(ctx context.Context, inst int64, owner, repo string, id int64) (bool, error) {
	c, err := a.repoClient(inst, owner, repo)
	if err != nil {
		return false, err
	}
	var run *github.CheckRun
	err = retry(ctx, func() error {
		var err error
		run, _, err = c.gh.Checks.GetCheckRun(ctx, owner, repo, id)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("get check run %d: %w", id, err)
	}
	return run.GetStatus() == "completed", nil
}

// UpdateCheckRun updates a check run; a completed one gets its conclusion,
// output (annotations beyond 50 in further requests) and actions.
func (a *App) UpdateCheckRun(ctx context.Context, inst int64, owner, repo string, id int64, cr CheckRun) error {
	c, err := a.repoClient(inst, owner, repo)
	if err != nil {
		return err
	}
	opts := github.UpdateCheckRunOptions{Name: "lian-build", Status: github.String(cr.Status), Output: cr.output(), ExternalID: github.String(cr.ExternalID)}
	if cr.Status == "completed" {
		opts.Conclusion = github.String(cr.Conclusion)
		opts.Actions = cr.Actions
		if len(opts.Actions) > MaxActions {
			opts.Actions = opts.Actions[:MaxActions]
		}
	}
	if err := retry(ctx, func() error {
		_, _, err := c.gh.Checks.UpdateCheckRun(ctx, owner, repo, id, opts)
		return err
	}); err != nil {
		return fmt.Errorf("update check run %d: %w", id, err)
	}
	for rest := cr.Annotations; len(rest) > MaxAnnotations; {
		rest = rest[MaxAnnotations:]
		batch := rest[:min(len(rest), MaxAnnotations)]
		out := cr.output()
		out.Annotations = batch
		if err := retry(ctx, func() error {
			_, _, err := c.gh.Checks.UpdateCheckRun(ctx, owner, repo, id, github.UpdateCheckRunOptions{Name: "lian-build", Output: out})
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// PullRequestHead reads a PR's head commit now, and whether it comes from a fork.
func (a *App) PullRequestHead(ctx context.Context, inst int64, owner, repo string, n int) (sha string, fork bool, err error) {
	c, err := a.repoClient(inst, owner, repo)
	if err != nil {
		return "", false, err
	}
	var pr *github.PullRequest
	err = retry(ctx, func() error {
		var err error
		pr, _, err = c.gh.PullRequests.Get(ctx, owner, repo, n)
		return err
	})
	if err != nil {
		return "", false, fmt.Errorf("pull request #%d: %w", n, err)
	}
	head := pr.GetHead()
	fork = head.GetRepo().GetFullName() != "" && head.GetRepo().GetFullName() != pr.GetBase().GetRepo().GetFullName()
	if err := ValidSHA("pull request head sha", head.GetSHA()); err != nil {
		return "", false, err
	}
	return head.GetSHA(), fork, nil
}

// Permission is a user's permission on the repository (admin, write, read, none).
func (a *App) Permission(ctx context.Context, inst int64, owner, repo, user string) (string, error) {
	if err := ValidLogin("user", user); err != nil {
		return "", err
	}
	c, err := a.repoClient(inst, owner, repo)
	if err != nil {
		return "", err
	}
	var perm *github.RepositoryPermissionLevel
	err = retry(ctx, func() error {
		var err error
		perm, _, err = c.gh.Repositories.GetPermissionLevel(ctx, owner, repo, user)
		return err
	})
	if err != nil {
		var er *github.ErrorResponse
		if errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound {
			return "none", nil
		}
		return "", fmt.Errorf("permission of %s: %w", user, err)
	}
	return perm.GetPermission(), nil
}

// React puts a reaction (e.g. "eyes") on an issue comment.
func (a *App) React(ctx context.Context, inst int64, owner, repo string, commentID int64, content string) error {
	c, err := a.repoClient(inst, owner, repo)
	if err != nil {
		return err
	}
	return retry(ctx, func() error {
		_, _, err := c.gh.Reactions.CreateIssueCommentReaction(ctx, owner, repo, commentID, content)
		return err
	})
}

// Comment replies on a pull request.
func (a *App) Comment(ctx context.Context, inst int64, owner, repo string, n int, body string) error {
	c, err := a.repoClient(inst, owner, repo)
	if err != nil {
		return err
	}
	return retry(ctx, func() error {
		_, _, err := c.gh.Issues.CreateComment(ctx, owner, repo, n, &github.IssueComment{Body: github.String(Truncate(body, MaxText))})
		return err
	})
}

// retry runs fn once more after GitHub's rate limit says when (Retry-After,
// or the reset time of the primary limit), waiting at most a minute.
func retry(ctx context.Context, fn func() error) error {
	err := fn()
	wait, ok := RetryAfter(err)
	if !ok {
		return err
	}
	t := time.NewTimer(min(wait, time.Minute))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return errors.Join(err, ctx.Err())
	case <-t.C:
	}
	return fn()
}

// RetryAfter says how long GitHub asks to wait after err, if it is a rate limit.
func RetryAfter(err error) (time.Duration, bool) {
	var ab *github.AbuseRateLimitError
	if errors.As(err, &ab) {
		if ab.RetryAfter != nil {
			return *ab.RetryAfter, true
		}
		return time.Minute, true
	}
	var rl *github.RateLimitError
	if errors.As(err, &rl) {
		return max(time.Until(rl.Rate.Reset.Time), time.Second), true
	}
	return 0, false
}
