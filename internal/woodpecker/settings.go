// Package woodpecker is the Woodpecker CI plugin front door. Woodpecker hands
// a plugin its `settings:` as environment variables: each key becomes
// PLUGIN_<KEY> in upper case with "." and "-" turned into "_"; a scalar is
// its text, a list of scalars is comma-joined (without escaping), maps and
// lists of maps are JSON, and from_secret values arrive already resolved.
// Repository, commit and event come from CI_*.
package woodpecker

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/suggest"
)

// Env reads a variable; the plugin passes os.Getenv's environment as a map.
type Env map[string]string

// custom are the settings the plugin reads itself: repo and tags combine,
// push and dry_run decide together, secrets and logins have their own shape,
// cache_from and cache_to are refused.
var custom = []string{"tags", "repo", "push", "dry-run", "secrets", "logins", "cache-from", "cache-to"}

// SettingError is a bad `settings:` entry.
type SettingError struct{ Key, Msg string }

func (e *SettingError) Error() string { return fmt.Sprintf("settings: %s: %s", e.Key, e.Msg) }

func key(st frontdoor.Setting) string { return st.Key }

// Settings reads PLUGIN_* and CI_* into frontdoor settings.
func Settings(env Env) (frontdoor.Settings, error) {
	return settingsFrom(env, frontdoor.SettingsTable())
}

func settingsFrom(env Env, table []frontdoor.Setting) (frontdoor.Settings, error) {
	if err := refuseUnknown(env, table); err != nil {
		return frontdoor.Settings{}, err
	}
	get := func(k string) string { return strings.TrimSpace(env[envName(k)]) }
	s := frontdoor.Settings{
		Progress: "plain", Commit: env["CI_COMMIT_SHA"], Ref: ref(env),
		Source: env["CI_REPO_URL"], Public: env["CI_REPO_PRIVATE"] == "false",
		MetricsDir: env["LIAN_METRICS_DIR"],
		Names:      frontdoor.Names(table, func(st frontdoor.Setting) string { return prefixed(st.Key) }),
		Given:      map[string]bool{},
	}
	s.OptionsFromEnv(func(k string) string { return env[k] })
	s.Names["push"] = "settings: dry_run"
	for _, st := range table {
		if st.Key == "" || get(st.Key) == "" {
			continue
		}
		s.Given[st.Name] = true
		if slices.Contains(custom, st.Name) {
			continue
		}
		if st.Field != nil {
			if err := readSetting(get(st.Key), st, &s); err != nil {
				return s, err
			}
		}
	}
	if s.Given["repo"] {
		s.Given["tags"] = true
	}
	if err := readCustom(get, &s); err != nil {
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

func prefixed(key string) string {
	if key == "" {
		return ""
	}
	return "settings: " + key
}

// refuseUnknown names the first PLUGIN_* variable that is no setting.
func refuseUnknown(env Env, table []frontdoor.Setting) error {
	known := map[string]bool{}
	for _, k := range frontdoor.DoorNames(table, key) {
		known[envName(k)] = true
	}
	var unknown []string
	for name := range env {
		if strings.HasPrefix(name, "PLUGIN_") && !known[name] {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	k := strings.ToLower(strings.TrimPrefix(unknown[0], "PLUGIN_"))
	return &SettingError{Key: k, Msg: "not a lian-build setting" + nearest(k, table) + " (from " + unknown[0] + ")"}
}

// readSetting reads one value the way Woodpecker writes its kind: lists
// comma-joined, maps as JSON (or a list of NAME=VALUE).
func readSetting(v string, st frontdoor.Setting, s *frontdoor.Settings) error {
	err := st.Assign(s, v, func(k frontdoor.Kind, v string) ([]string, error) {
		if k == frontdoor.KindMap {
			return keyValues(v, st.Key)
		}
		return commaList(v), nil
	})
	if errors.Is(err, frontdoor.ErrNotBool) {
		return &SettingError{Key: st.Key, Msg: fmt.Sprintf("%q is not true or false", v)}
	}
	return err
}

// readCustom reads the settings in custom.
func readCustom(get func(string) string, s *frontdoor.Settings) error {
	for _, k := range []string{"cache_from", "cache_to"} {
		if get(k) != "" {
			return &SettingError{Key: k, Msg: "lian-build replaces it with its cache namespaces: set registry (and actor, cache_disposition) instead"}
		}
	}
	// secrets: a map of id → value (values usually from_secret), or a list of id=…,env=… specs.
	if v := get("secrets"); v != "" {
		if strings.HasPrefix(v, "{") {
			m := map[string]string{}
			if err := json.Unmarshal([]byte(v), &m); err != nil {
				return &SettingError{Key: "secrets", Msg: "a map must be id: value (values are not shown)"}
			}
			s.InlineSecrets = m
		} else {
			// Comma-joined specs cannot be told apart: each spec on its own line.
			s.Secrets = frontdoor.SplitLines(v)
		}
	}
	dry, err := boolSetting(get("dry_run"), "dry_run", false)
	if err != nil {
		return err
	}
	push, err := boolSetting(get("push"), "push", true)
	if err != nil {
		return err
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
	return logins(get("logins"), s)
}

func envName(key string) string {
	return "PLUGIN_" + strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToUpper(key))
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

func nearest(k string, table []frontdoor.Setting) string {
	if best, ok := suggest.Nearest(k, frontdoor.DoorNames(table, key)); ok {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	return ""
}
