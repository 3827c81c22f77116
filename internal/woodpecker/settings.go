// Package woodpecker is the Woodpecker CI plugin front door. Woodpecker hands
// a plugin its `settings:` as environment variables: each key becomes
// PLUGIN_<KEY> in upper case with "." and "-" turned into "_"; a scalar is
// its text, a list of scalars is comma-joined (without escaping), maps and
// lists of maps are JSON, and from_secret values arrive already resolved.
// Repository, commit and event come from CI_*.
package woodpecker

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/suggest"
)

// Env reads a variable; the plugin passes os.Getenv's environment as a map.
type Env map[string]string

// keys are the settings the plugin knows, buildx-plugin names first.
var keys = []string{
	"repo", "tags", "dockerfile", "context", "build_args", "secrets", "target", "platforms", "labels",
	"build_contexts", "logins", "dry_run", "push", "no_cache", "cache_from", "cache_to",
	"workspace", "runner_type", "actor", "cache_disposition", "directives", "nats_url", "events_prefix",
	"registry", "registry_provider", "registry_username", "registry_password", "cache_imports",
	"insecure_registries", "compute_provider", "local_tier_memory", "ssh",
}

// names: errors name the `settings:` key the user wrote.
var names = map[string]string{
	"build-args": "settings: build_args", "labels": "settings: labels", "secrets": "settings: secrets", "ssh": "settings: ssh",
	"build-contexts": "settings: build_contexts", "outputs": "settings: outputs", "runner-type": "settings: runner_type",
	"actor": "settings: actor", "cache-disposition": "settings: cache_disposition", "registry": "settings: registry",
	"registry-provider": "settings: registry_provider", "registry-username": "settings: registry_username",
	"file": "settings: dockerfile", "context": "settings: context", "push": "settings: dry_run",
	"compute-provider": "settings: compute_provider", "local-tier-memory": "settings: local_tier_memory",
}

// SettingError is a bad `settings:` entry.
type SettingError struct{ Key, Msg string }

func (e *SettingError) Error() string { return fmt.Sprintf("settings: %s: %s", e.Key, e.Msg) }

// Settings reads PLUGIN_* and CI_* into frontdoor settings.
func Settings(env Env) (frontdoor.Settings, error) {
	known := map[string]bool{}
	for _, k := range keys {
		known[envName(k)] = true
	}
	var unknown []string
	for name := range env {
		if strings.HasPrefix(name, "PLUGIN_") && !known[name] {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		key := strings.ToLower(strings.TrimPrefix(unknown[0], "PLUGIN_"))
		return frontdoor.Settings{}, &SettingError{Key: key, Msg: "not a lian-build setting" + nearest(key) + " (from " + unknown[0] + ")"}
	}
	get := func(k string) string { return strings.TrimSpace(env[envName(k)]) }
	s := frontdoor.Settings{
		Context: get("context"), File: get("dockerfile"), Target: get("target"),
		Workspace: get("workspace"), Directives: get("directives"), RunnerType: get("runner_type"),
		ComputeProvider: get("compute_provider"), Actor: get("actor"), CacheDisposition: get("cache_disposition"),
		Registry: get("registry"), RegistryProvider: get("registry_provider"), RegistryUsername: get("registry_username"),
		RegistryPassword: get("registry_password"), NatsURL: get("nats_url"), EventsPrefix: get("events_prefix"),
		Progress: "plain", Commit: env["CI_COMMIT_SHA"], Ref: ref(env),
		Local:      frontdoor.LocalSettings{TierMemory: get("local_tier_memory"), StateDir: env["LIAN_STATE_DIR"], Buildkitd: env["LIAN_BUILDKITD"]},
		MetricsDir: env["LIAN_METRICS_DIR"],
		Names:      names, Given: map[string]bool{},
	}
	for _, k := range keys {
		if get(k) != "" {
			s.Given[settingOf(k)] = true
		}
	}
	for _, k := range []string{"cache_from", "cache_to"} {
		if get(k) != "" {
			return s, &SettingError{Key: k, Msg: "lian-build replaces it with its cache namespaces: set registry (and actor, cache_disposition) instead"}
		}
	}
	for _, l := range []struct {
		key string
		dst *[]string
	}{{"platforms", &s.Platforms}, {"cache_imports", &s.CacheImports}, {"insecure_registries", &s.Insecure}, {"ssh", &s.SSH}, {"build_contexts", &s.BuildContexts}} {
		*l.dst = commaList(get(l.key))
	}
	var err error
	if s.BuildArgs, err = keyValues(get("build_args"), "build_args"); err != nil {
		return s, err
	}
	if s.Labels, err = keyValues(get("labels"), "labels"); err != nil {
		return s, err
	}
	// secrets: a map of id → value (values usually from_secret), or a list of id=…,env=… specs.
	if v := get("secrets"); v != "" {
		if strings.HasPrefix(v, "{") {
			m := map[string]string{}
			if err := json.Unmarshal([]byte(v), &m); err != nil {
				return s, &SettingError{Key: "secrets", Msg: "a map must be id: value (values are not shown)"}
			}
			s.InlineSecrets = m
		} else {
			// Comma-joined specs cannot be told apart: each spec on its own line.
			s.Secrets = frontdoor.SplitLines(v)
		}
	}
	push, dry := true, false
	if dry, err = boolSetting(get("dry_run"), "dry_run", false); err != nil {
		return s, err
	}
	if push, err = boolSetting(get("push"), "push", true); err != nil {
		return s, err
	}
	if s.NoCache, err = boolSetting(get("no_cache"), "no_cache", false); err != nil {
		return s, err
	}
	// Tags: repo + tags, as the buildx plugin does (repo: registry/team/app, tags: [latest, v1]).
	repo := get("repo")
	for _, t := range commaList(get("tags")) {
		if repo != "" && !strings.Contains(t, "/") {
			t = repo + ":" + t
		}
		s.Tags = append(s.Tags, t)
	}
	if repo != "" && len(s.Tags) == 0 {
		s.Tags = []string{repo + ":latest"}
	}
	s.Push = push && !dry && len(s.Tags) > 0
	if err := logins(get("logins"), &s); err != nil {
		return s, err
	}
	if s.Context == "" {
		s.Context = "."
	}
	// Relative paths are relative to the workspace, the plugin's working directory.
	if ws := env["CI_WORKSPACE"]; ws != "" {
		for _, p := range []*string{&s.Context, &s.File, &s.Directives} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(ws, *p)
			}
		}
	}
	defaults(&s, env)
	return s, nil
}

func envName(key string) string {
	return "PLUGIN_" + strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToUpper(key))
}

func settingOf(key string) string {
	switch key {
	case "dockerfile":
		return "file"
	case "repo":
		return "tags"
	}
	return strings.ReplaceAll(key, "_", "-")
}

func commaList(v string) []string {
	var out []string
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// keyValues reads a map (JSON) or a list of K=V.
func keyValues(v, key string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	if strings.HasPrefix(v, "{") {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			return nil, &SettingError{Key: key, Msg: "not a valid map: " + err.Error()}
		}
		out := make([]string, 0, len(m))
		for k, x := range m {
			out = append(out, fmt.Sprintf("%s=%v", k, x))
		}
		sort.Strings(out)
		return out, nil
	}
	return commaList(v), nil
}

func boolSetting(v, key string, def bool) (bool, error) {
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, &SettingError{Key: key, Msg: fmt.Sprintf("%q is not true or false", v)}
	}
	return b, nil
}

// logins: [{registry, username, password}] — credentials for pushes and caches.
func logins(v string, s *frontdoor.Settings) error {
	if v == "" {
		return nil
	}
	var ls []struct{ Registry, Username, Password string }
	if err := json.Unmarshal([]byte(v), &ls); err != nil {
		return &SettingError{Key: "logins", Msg: "want a list of {registry, username, password}"}
	}
	for i, l := range ls {
		if l.Registry == "" || l.Username == "" {
			return &SettingError{Key: "logins", Msg: fmt.Sprintf("entry %d needs registry and username", i+1)}
		}
		host, _, _ := strings.Cut(l.Registry, "/")
		if s.Registry != "" && strings.HasPrefix(s.Registry, host) && s.RegistryUsername == "" {
			s.RegistryUsername, s.RegistryPassword = l.Username, l.Password
		}
		if s.Logins == nil {
			s.Logins = map[string]buildkit.Credential{}
		}
		s.Logins[host] = buildkit.Credential{Username: l.Username, Password: l.Password}
	}
	return nil
}

func ref(env Env) string {
	if r := env["CI_COMMIT_REF"]; r != "" {
		return r
	}
	if b := env["CI_COMMIT_BRANCH"]; b != "" {
		return "refs/heads/" + b
	}
	return ""
}

// defaults: workspace = the repository's name; actor from the event:
// pull_request → human:<commit author>, anything else → ci.
func defaults(s *frontdoor.Settings, env Env) {
	if s.Workspace == "" {
		repo := env["CI_REPO"]
		if _, name, ok := strings.Cut(repo, "/"); ok {
			repo = name
		}
		if repo != "" {
			s.Workspace = frontdoor.DefaultWorkspace(repo)
		}
	}
	if s.Actor != "" {
		return
	}
	s.Actor = "ci"
	if env["CI_PIPELINE_EVENT"] == "pull_request" {
		if a := frontdoor.ActorID(env["CI_COMMIT_AUTHOR"]); a != "" {
			s.Actor = "human:" + a
		}
	}
}

func nearest(key string) string {
	if best, ok := suggest.Nearest(key, keys); ok {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	return ""
}
