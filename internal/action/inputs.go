// Package action is the GitHub Action front door: it reads the inputs (named
// like docker/build-push-action's where the meaning is the same), defaults the
// actor and workspace from the event, runs the shared pipeline, and reports
// through outputs, the job summary, masks, log groups and annotations.
package action

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/safefile"
	"github.com/sethvargo/go-githubactions"
)

// Inputs are the names action.yml declares.
var Inputs = []string{
	"context", "file", "tags", "push", "build-args", "secrets", "secret-files", "secret-envs", "ssh", "target",
	"platforms", "labels", "build-contexts", "outputs", "no-cache", "cache-from", "cache-to",
	"workspace", "directives", "runner-type", "compute-provider", "actor", "cache-disposition", "registry",
	"registry-provider", "registry-username", "registry-password", "cache-imports", "nats-url", "events-prefix",
	"hcloud-token", "insecure-registries", "local-tier-memory",
}

// names: errors name the input, not the setting.
var names = map[string]string{
	"build-args": "build-args", "labels": "labels", "secrets": "secrets", "ssh": "ssh", "build-contexts": "build-contexts",
	"outputs": "outputs", "cache-from": "cache-from", "cache-to": "cache-to", "runner-type": "runner-type", "actor": "actor",
	"cache-disposition": "cache-disposition", "registry": "registry", "registry-provider": "registry-provider",
	"registry-username": "registry-username", "file": "file", "progress": "progress", "push": "push", "context": "context",
	"compute-provider": "compute-provider", "local-tier-memory": "local-tier-memory",
}

// secretInputs are masked before anything is printed.
var secretInputs = []string{"registry-password", "hcloud-token", "secrets"}

// maskSecrets registers every secret value with the runner's log masking:
// the secret inputs (line by line, and each KEY=VALUE's value), and the
// values behind secret-envs (the variables) and secret-files (the contents).
func maskSecrets(a *githubactions.Action) {
	for _, in := range secretInputs {
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

func list(a *githubactions.Action, name string) ([]string, error) {
	v, err := frontdoor.SplitList(a.GetInput(name))
	if err != nil {
		return nil, &buildkit.InputError{Field: name, Msg: err.Error()}
	}
	return v, nil
}

func boolInput(a *githubactions.Action, name string) (bool, error) {
	v := a.GetInput(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, &buildkit.InputError{Field: name, Value: v, Msg: "want true or false"}
	}
	return b, nil
}

// settings reads the inputs and the event into frontdoor settings.
func settings(a *githubactions.Action, gh *githubactions.GitHubContext) (frontdoor.Settings, error) {
	s := frontdoor.Settings{
		Context:          a.GetInput("context"),
		File:             a.GetInput("file"),
		Target:           a.GetInput("target"),
		Workspace:        a.GetInput("workspace"),
		Directives:       a.GetInput("directives"),
		RunnerType:       a.GetInput("runner-type"),
		ComputeProvider:  a.GetInput("compute-provider"),
		Actor:            a.GetInput("actor"),
		CacheDisposition: a.GetInput("cache-disposition"),
		Registry:         a.GetInput("registry"),
		RegistryProvider: a.GetInput("registry-provider"),
		RegistryUsername: a.GetInput("registry-username"),
		RegistryPassword: a.GetInput("registry-password"),
		NatsURL:          a.GetInput("nats-url"),
		EventsPrefix:     a.GetInput("events-prefix"),
		Progress:         "plain",
		Commit:           gh.SHA,
		Ref:              gh.Ref,
		Local:            frontdoor.LocalSettings{TierMemory: a.GetInput("local-tier-memory"), StateDir: a.Getenv("LIAN_STATE_DIR"), Buildkitd: a.Getenv("LIAN_BUILDKITD")},
		MetricsDir:       a.Getenv("LIAN_METRICS_DIR"),
		Names:            names,
		Given:            map[string]bool{},
	}
	for _, in := range Inputs {
		if a.GetInput(in) != "" {
			s.Given[settingOf(in)] = true
		}
	}
	var err error
	lists := []struct {
		name string
		dst  *[]string
	}{
		{"tags", &s.Tags}, {"platforms", &s.Platforms}, {"cache-imports", &s.CacheImports}, {"insecure-registries", &s.Insecure},
	}
	for _, l := range lists {
		if *l.dst, err = list(a, l.name); err != nil {
			return s, err
		}
	}
	// Items that hold commas themselves: one per line, as build-push-action
	// reads them (getInputList with ignoreComma).
	s.Outputs = frontdoor.SplitLines(a.GetInput("outputs"))
	s.CacheFrom = frontdoor.SplitLines(a.GetInput("cache-from"))
	s.CacheTo = frontdoor.SplitLines(a.GetInput("cache-to"))
	s.SSH = frontdoor.SplitLines(a.GetInput("ssh"))
	s.BuildArgs = frontdoor.SplitLines(a.GetInput("build-args"))
	s.Labels = frontdoor.SplitLines(a.GetInput("labels"))
	s.BuildContexts = frontdoor.SplitLines(a.GetInput("build-contexts"))
	if s.Push, err = boolInput(a, "push"); err != nil {
		return s, err
	}
	if s.NoCache, err = boolInput(a, "no-cache"); err != nil {
		return s, err
	}
	// secrets: ID=VALUE lines; secret-files: ID=PATH; secret-envs: ID=VAR.
	s.InlineSecrets = map[string]string{}
	for _, line := range frontdoor.SplitLines(a.GetInput("secrets")) {
		id, v, ok := strings.Cut(line, "=")
		if !ok || id == "" {
			return s, &buildkit.InputError{Field: "secrets", Msg: "each line must be ID=VALUE (the value is not shown)"}
		}
		s.InlineSecrets[id] = strings.Trim(v, `"`)
	}
	for _, kind := range []struct{ input, key string }{{"secret-files", "src"}, {"secret-envs", "env"}} {
		for _, line := range frontdoor.SplitLines(a.GetInput(kind.input)) {
			id, v, ok := strings.Cut(line, "=")
			if !ok || id == "" || v == "" {
				return s, &buildkit.InputError{Field: kind.input, Value: line, Msg: "each line must be ID=" + strings.ToUpper(map[string]string{"src": "path", "env": "variable"}[kind.key])}
			}
			s.Secrets = append(s.Secrets, fmt.Sprintf("id=%s,%s=%s", id, kind.key, strings.Trim(v, `"`)))
		}
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

func settingOf(input string) string {
	switch input {
	case "cache-imports":
		return "cache-imports"
	case "compute-provider":
		return "compute-provider"
	}
	return input
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
