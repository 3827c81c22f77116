package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/githubapp"
	"github.com/lian-build/action/internal/sizing"
)

// RouteConfig says which events become builds.
type RouteConfig struct {
	Branches  []string // push to these branches → CI build (empty: the default branch)
	BuildTags bool     // tag pushes build too
	Allow     []string // "org" or "org/repo" allowed to use the App (empty: all)
	Table     sizing.Table
}

// JobKind is what a worker does with a job.
type JobKind string

const (
	JobPush    JobKind = "push"    // a CI build of a pushed commit
	JobComment JobKind = "comment" // `/lian rebuild [tier]` on a PR: checks, then a session build
	JobRebuild JobKind = "rebuild" // check_run rerequested or requested_action
	JobReply   JobKind = "reply"   // only a reply comment (help, unknown tier)
)

// Job is a queued unit of work; its JSON is the queue message.
type Job struct {
	Kind         JobKind `json:"kind"`
	BuildID      string  `json:"build_id"`
	DeliveryID   string  `json:"delivery_id"`
	Installation int64   `json:"installation"`
	Owner        string  `json:"owner"`
	Repo         string  `json:"repo"`
	Private      bool    `json:"private"`
	SHA          string  `json:"sha,omitempty"`
	Ref          string  `json:"ref,omitempty"`
	Actor        string  `json:"actor"` // ci, or human:<login>
	Tier         string  `json:"tier,omitempty"`
	PR           int     `json:"pr,omitempty"`
	CommentID    int64   `json:"comment_id,omitempty"`
	Commenter    string  `json:"commenter,omitempty"`
	Association  string  `json:"association,omitempty"`
	Reply        string  `json:"reply,omitempty"`
	RebuildOf    string  `json:"rebuild_of,omitempty"` // the build id a check run rerun repeats
}

// BranchKey groups CI builds that a newer push cancels.
func (j Job) BranchKey() string {
	if j.Kind != JobPush {
		return ""
	}
	return j.Owner + "/" + j.Repo + "@" + j.Ref
}

// Decision is what a delivery leads to: a job, or the reason it is ignored.
type Decision struct {
	Job    *Job
	Ignore string
}

// deliveryRE is what a delivery id may be: GitHub sends GUIDs; the id is a
// KV key and a NATS header, so its length and characters are bounded.
var deliveryRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)

// ValidDelivery checks an X-GitHub-Delivery header value.
func ValidDelivery(id string) error {
	if !deliveryRE.MatchString(id) {
		v := id
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return fmt.Errorf("header X-GitHub-Delivery %q (%d bytes): want a GUID (at most 100 letters, digits, '-' or '_')", v, len(id))
	}
	return nil
}

// BuildIDFor derives a build id from a delivery id: redeliveries map to the same build.
func BuildIDFor(delivery string) string {
	h := sha256.Sum256([]byte(delivery))
	return "g" + hex.EncodeToString(h[:6])
}

type payload struct {
	Action       string `json:"action"`
	Ref          string `json:"ref"`
	After        string `json:"after"`
	Deleted      bool   `json:"deleted"`
	Installation *struct {
		ID int64 `json:"id"`
	} `json:"installation"`
	Repository *struct {
		Name          string `json:"name"`
		Private       bool   `json:"private"`
		DefaultBranch string `json:"default_branch"`
		Owner         struct {
			Login string `json:"login"`
		} `json:"owner"`
	} `json:"repository"`
	Sender *struct {
		Login string `json:"login"`
		Type  string `json:"type"`
	} `json:"sender"`
	Issue *struct {
		Number      int              `json:"number"`
		PullRequest *json.RawMessage `json:"pull_request"`
	} `json:"issue"`
	Comment *struct {
		ID                int64  `json:"id"`
		Body              string `json:"body"`
		AuthorAssociation string `json:"author_association"`
		User              struct {
			Login string `json:"login"`
			Type  string `json:"type"`
		} `json:"user"`
	} `json:"comment"`
	CheckRun *struct {
		ExternalID string `json:"external_id"`
		HeadSHA    string `json:"head_sha"`
		Name       string `json:"name"`
	} `json:"check_run"`
	RequestedAction *struct {
		Identifier string `json:"identifier"`
	} `json:"requested_action"`
}

// Route decides what a delivery does. It is pure: no I/O, never panics on
// any payload; a payload that is not what its event says is an error.
func Route(event, delivery string, body []byte, cfg RouteConfig) (Decision, error) {
	if event == "ping" {
		return Decision{Ignore: "ping"}, nil
	}
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		return Decision{}, fmt.Errorf("malformed JSON body: %w", err)
	}
	if p.Repository == nil || p.Repository.Owner.Login == "" || p.Repository.Name == "" {
		return Decision{Ignore: "no repository in the payload"}, nil
	}
	owner, repo := p.Repository.Owner.Login, p.Repository.Name
	if err := githubapp.ValidOwner("repository.owner.login", owner); err != nil {
		return Decision{}, err
	}
	if err := githubapp.ValidRepo("repository.name", repo); err != nil {
		return Decision{}, err
	}
	if !allowed(cfg.Allow, owner, repo) {
		return Decision{Ignore: "repository " + owner + "/" + repo + " is not allowed"}, nil
	}
	if p.Installation == nil || p.Installation.ID == 0 {
		return Decision{Ignore: "no installation in the payload (not sent to a GitHub App)"}, nil
	}
	job := &Job{DeliveryID: delivery, BuildID: BuildIDFor(delivery), Installation: p.Installation.ID, Owner: owner, Repo: repo, Private: p.Repository.Private}
	switch event {
	case "push":
		return routePush(p, job, cfg)
	case "issue_comment":
		return routeComment(p, job, cfg)
	case "check_run":
		return routeCheckRun(p, job, cfg)
	}
	return Decision{Ignore: "event " + event + " is not handled"}, nil
}

func routePush(p payload, job *Job, cfg RouteConfig) (Decision, error) {
	if p.Deleted {
		return Decision{Ignore: "ref deleted"}, nil
	}
	if p.After == "" {
		return Decision{}, fmt.Errorf("push payload without after (the pushed commit)")
	}
	if strings.Trim(p.After, "0") == "" {
		return Decision{Ignore: "ref deleted (after is all zeros)"}, nil
	}
	if err := githubapp.ValidSHA("after", p.After); err != nil {
		return Decision{}, err
	}
	switch {
	case strings.HasPrefix(p.Ref, "refs/tags/"):
		if !cfg.BuildTags {
			return Decision{Ignore: "tag push (tags are not built)"}, nil
		}
	case strings.HasPrefix(p.Ref, "refs/heads/"):
		branch := strings.TrimPrefix(p.Ref, "refs/heads/")
		branches := cfg.Branches
		if len(branches) == 0 {
			branches = []string{p.Repository.DefaultBranch}
		}
		if !slices.Contains(branches, branch) {
			return Decision{Ignore: "branch " + branch + " is not configured"}, nil
		}
	default:
		return Decision{Ignore: "ref " + p.Ref + " is not a branch or tag"}, nil
	}
	job.Kind, job.SHA, job.Ref, job.Actor = JobPush, p.After, p.Ref, "ci"
	return Decision{Job: job}, nil
}

func routeComment(p payload, job *Job, cfg RouteConfig) (Decision, error) {
	if p.Action != "created" {
		return Decision{Ignore: "comment " + p.Action + " (only new comments are commands)"}, nil
	}
	if p.Issue == nil || p.Comment == nil {
		return Decision{}, fmt.Errorf("issue_comment payload without issue or comment")
	}
	if p.Issue.PullRequest == nil {
		return Decision{Ignore: "comment on an issue, not a pull request"}, nil
	}
	cmd, ok := ParseCommand(p.Comment.Body)
	if !ok {
		return Decision{Ignore: "no /lian command"}, nil
	}
	if p.Comment.User.Type == "Bot" || strings.HasSuffix(p.Comment.User.Login, "[bot]") {
		return Decision{Ignore: "comment by a bot"}, nil
	}
	if err := githubapp.ValidLogin("comment.user.login", p.Comment.User.Login); err != nil {
		return Decision{}, err
	}
	job.PR, job.CommentID, job.Commenter, job.Association = p.Issue.Number, p.Comment.ID, p.Comment.User.Login, p.Comment.AuthorAssociation
	job.Actor = "human:" + frontdoor.ActorID(p.Comment.User.Login)
	switch cmd.Verb {
	case "help":
		job.Kind, job.Reply = JobReply, HelpText(cfg.Table)
	case "rebuild":
		if cmd.Arg != "" {
			t, err := cfg.Table.Lookup(cmd.Arg)
			if err != nil {
				job.Kind = JobReply
				job.Reply = fmt.Sprintf("`%s` is not a runner tier. Valid tiers: %s.\n\n%s", cmd.Arg, tierList(cfg.Table), HelpText(cfg.Table))
				return Decision{Job: job}, nil
			}
			job.Tier = t.Name
		}
		job.Kind = JobComment
	default:
		job.Kind, job.Reply = JobReply, fmt.Sprintf("Unknown command `/lian %s`.\n\n%s", cmd.Verb, HelpText(cfg.Table))
	}
	return Decision{Job: job}, nil
}

func routeCheckRun(p payload, job *Job, cfg RouteConfig) (Decision, error) {
	if p.CheckRun == nil {
		return Decision{}, fmt.Errorf("check_run payload without check_run")
	}
	if p.CheckRun.Name != CheckName {
		return Decision{Ignore: "check run " + p.CheckRun.Name + " is not lian-build's"}, nil
	}
	if err := githubapp.ValidSHA("check_run.head_sha", p.CheckRun.HeadSHA); err != nil {
		return Decision{}, err
	}
	job.Kind, job.SHA, job.RebuildOf = JobRebuild, p.CheckRun.HeadSHA, p.CheckRun.ExternalID
	switch p.Action {
	case "rerequested":
	case "requested_action":
		if p.RequestedAction == nil {
			return Decision{}, fmt.Errorf("requested_action without requested_action")
		}
		tier, ok := strings.CutPrefix(p.RequestedAction.Identifier, "rebuild-")
		if !ok {
			return Decision{Ignore: "unknown action " + p.RequestedAction.Identifier}, nil
		}
		t, err := cfg.Table.Lookup(tier)
		if err != nil {
			return Decision{Ignore: "action names an unknown tier " + tier}, nil
		}
		job.Tier = t.Name
	default:
		return Decision{Ignore: "check_run " + p.Action}, nil
	}
	if p.Sender != nil {
		if err := githubapp.ValidLogin("sender.login", p.Sender.Login); err != nil {
			return Decision{}, err
		}
		job.Commenter = p.Sender.Login
	}
	return Decision{Job: job}, nil
}

func allowed(allow []string, owner, repo string) bool {
	if len(allow) == 0 {
		return true
	}
	return slices.Contains(allow, owner) || slices.Contains(allow, owner+"/"+repo)
}

func tierList(t sizing.Table) string {
	var s []string
	for _, x := range t {
		s = append(s, fmt.Sprintf("`%s` (%d CPU / %d GB)", x.Name, x.CPU, x.MemoryGB))
	}
	return strings.Join(s, ", ")
}

// HelpText is the reply to `/lian help`.
func HelpText(t sizing.Table) string {
	return "**lian-build** commands (on a pull request, by someone with write access):\n\n" +
		"- `/lian rebuild` — rebuild the PR's head commit as a session build (your own `dev/` cache)\n" +
		"- `/lian rebuild TIER` — the same on a given runner tier: " + tierList(t) + "\n" +
		"- `/lian help` — this message\n"
}

// CheckName is the name of lian-build's check run.
const CheckName = "lian-build"
