// Package action is the GitHub Action front door: it reads the inputs (named
// like docker/build-push-action's where the meaning is the same), defaults the
// actor and workspace from the event, runs the shared pipeline, and reports
// through outputs, the job summary, masks, log groups and annotations.
package action

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/safefile"
	"github.com/sethvargo/go-githubactions"
)

// Inputs are the names action.yml declares (the settings table's inputs).
func Inputs(table []frontdoor.Setting) []string {
	var out []string
	for _, st := range table {
		if st.Input != "" {
			out = append(out, st.Input)
		}
	}
	return out
}

// custom are the inputs the action reads itself (not one value into one field).
var custom = []string{"secrets", "secret-files", "secret-envs"}

// maskSecrets registers every secret value with the runner's log masking:
// the secret inputs (line by line, and each KEY=VALUE's value), and the
// values behind secret-envs (the variables) and secret-files (the contents).
func maskSecrets(a *githubactions.Action, table []frontdoor.Setting) {
	for _, st := range table {
		if st.Kind != frontdoor.KindSecret || st.Input == "" {
			continue
		}
		in := st.Input
		v := a.GetInput(in)
		mask(a, v)
		if in != "secrets" {
			continue
		}
		for _, line := range frontdoor.SplitLines(v) {
			if _, val, ok := strings.Cut(line, "="); ok {
				mask(a, strings.Trim(val, `"`))
			}
		}
	}
	for _, line := range frontdoor.SplitLines(a.GetInput("secret-envs")) {
		if _, name, ok := strings.Cut(line, "="); ok {
			mask(a, a.Getenv(strings.Trim(name, `"`)))
		}
	}
	for _, line := range frontdoor.SplitLines(a.GetInput("secret-files")) {
		if _, path, ok := strings.Cut(line, "="); ok {
			if b, err := safefile.Read(strings.Trim(path, `"`), safefile.MaxSecret); err == nil {
				mask(a, string(b))
			}
		}
	}
}

// mask masks a value, and each of its lines (a multi-line value is masked
// line by line in the runner's log).
func mask(a *githubactions.Action, v string) {
	v = strings.TrimRight(v, "\r\n")
	if len(v) < 2 {
		return
	}
	a.AddMask(v)
	if !strings.Contains(v, "\n") {
		return
	}
	for _, line := range strings.Split(v, "\n") {
		if line = strings.TrimSpace(line); len(line) > 1 {
			a.AddMask(line)
		}
	}
}

// settings reads the inputs and the event into frontdoor settings.
func settings(a *githubactions.Action, gh *githubactions.GitHubContext, table []frontdoor.Setting) (frontdoor.Settings, error) {
	s := frontdoor.Settings{
		Progress:   "plain",
		Commit:     gh.SHA,
		Ref:        gh.Ref,
		Source:     repoURL(gh),
		Public:     publicRepo(gh),
		MetricsDir: a.Getenv("LIAN_METRICS_DIR"),
		Names:      frontdoor.Names(table, func(st frontdoor.Setting) string { return st.Input }),
		Given:      map[string]bool{},
	}
	s.OptionsFromEnv(a.Getenv)
	for _, st := range table {
		if st.Input == "" || a.GetInput(st.Input) == "" {
			continue
		}
		s.Given[st.Name] = true
		if st.Field == nil || slices.Contains(custom, st.Name) {
			continue
		}
		if err := readInput(a, st, &s); err != nil {
			return s, err
		}
	}
	if err := readSecrets(a, &s); err != nil {
		return s, err
	}
	if s.Context == "" {
		s.Context = "."
	}
	// Relative paths are relative to the checkout, as on the runner.
	if ws := gh.Workspace; ws != "" {
		for _, p := range []*string{&s.Context, &s.File, &s.Directives} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(ws, *p)
			}
		}
	}
	defaultActorAndWorkspace(&s, gh)
	return s, nil
}

// readInput reads one input into its field, the way build-push-action reads
// its kind: lists newline- or comma-separated; items that hold commas
// themselves (outputs, cache-from, build-args, …) one per line.
func readInput(a *githubactions.Action, st frontdoor.Setting, s *frontdoor.Settings) error {
	v := a.GetInput(st.Input)
	err := st.Assign(s, v, func(k frontdoor.Kind, v string) ([]string, error) {
		if k == frontdoor.KindList {
			return frontdoor.SplitList(v)
		}
		return frontdoor.SplitLines(v), nil
	})
	if err != nil {
		return &buildkit.InputError{Field: st.Input, Value: v, Msg: err.Error()}
	}
	return nil
}

// readSecrets: secrets are ID=VALUE lines; secret-files ID=PATH; secret-envs ID=VAR.
func readSecrets(a *githubactions.Action, s *frontdoor.Settings) error {
	s.InlineSecrets = map[string]string{}
	for _, line := range frontdoor.SplitLines(a.GetInput("secrets")) {
		id, v, ok := strings.Cut(line, "=")
		if !ok || id == "" {
			return &buildkit.InputError{Field: "secrets", Msg: "each line must be ID=VALUE (the value is not shown)"}
		}
		s.InlineSecrets[id] = strings.Trim(v, `"`)
	}
	for _, kind := range []struct{ input, key string }{{"secret-files", "src"}, {"secret-envs", "env"}} {
		for _, line := range frontdoor.SplitLines(a.GetInput(kind.input)) {
			id, v, ok := strings.Cut(line, "=")
			if !ok || id == "" || v == "" {
				return &buildkit.InputError{Field: kind.input, Value: line, Msg: "each line must be ID=" + strings.ToUpper(map[string]string{"src": "path", "env": "variable"}[kind.key])}
			}
			s.Secrets = append(s.Secrets, fmt.Sprintf("id=%s,%s=%s", id, kind.key, strings.Trim(v, `"`)))
		}
	}
	return nil
}

// defaultActorAndWorkspace: push (and every non-PR event) → ci; pull_request →
// human:<PR author>; workspace = the repository's name.
func defaultActorAndWorkspace(s *frontdoor.Settings, gh *githubactions.GitHubContext) {
	if !s.Given["workspace"] && s.Workspace == "" {
		if _, repo := gh.Repo(); repo != "" {
			s.Workspace = frontdoor.DefaultWorkspace(repo)
		}
	}
	if s.Given["actor"] {
		return
	}
	switch gh.EventName {
	case "pull_request", "pull_request_target":
		if pr, ok := gh.Event["pull_request"].(map[string]any); ok {
			if user, ok := pr["user"].(map[string]any); ok {
				if login, ok := user["login"].(string); ok && login != "" {
					s.Actor = "human:" + actorID(login)
					return
				}
			}
		}
		s.Actor = "human:" + actorID(gh.Actor)
	default:
		s.Actor = "ci"
	}
}

// actorID makes a GitHub login an actor id ("[bot]" dropped).
func actorID(login string) string {
	return frontdoor.ActorID(strings.TrimSuffix(strings.ToLower(login), "[bot]"))
}

// repoURL is the repository's web URL, recorded in provenance.
func repoURL(gh *githubactions.GitHubContext) string {
	if gh.ServerURL == "" || gh.Repository == "" {
		return ""
	}
	return strings.TrimSuffix(gh.ServerURL, "/") + "/" + gh.Repository
}

// publicRepo reads the event's repository.private: provenance is mode=max
// by default for a public repository's CI builds.
func publicRepo(gh *githubactions.GitHubContext) bool {
	repo, _ := gh.Event["repository"].(map[string]any)
	private, ok := repo["private"].(bool)
	return ok && !private
}
