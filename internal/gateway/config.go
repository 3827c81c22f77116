package gateway

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/githubapp"
	"github.com/lian-build/action/internal/nickel"
	"github.com/lian-build/action/internal/spec"
	"github.com/spf13/pflag"
)

// RepoSettings are the operator's settings for one repository's builds
// (the configuration file's repositories): they win over the repository's
// own directives.
type RepoSettings struct {
	Repository string `json:"repository"` // owner/repo
	Workspace  string `json:"workspace,omitempty"`
	RunnerType string `json:"runner_type,omitempty"`
	// Platforms are the platforms every build of the repository is for
	// (one runner per architecture where the provider has them).
	Platforms []string `json:"platforms,omitempty"`
}

// FileConfig is a gateway configuration file (schemas/gateway.ncl): the
// values it gives the flags, and the per-repository settings.
type FileConfig struct {
	Path  string
	Repos []RepoSettings
	doc   *nickel.Document
	flags map[string][]string // flag name → values (a list flag: one per element)
}

// LoadConfig reads and checks a configuration file against GatewayConfig:
// an unknown or misspelt field, a wrong type or an unknown enum value is a
// file:line:col error.
func LoadConfig(ctx context.Context, path string) (*FileConfig, error) {
	doc, err := spec.Loader{Eval: spec.DefaultEvaluator()}.LoadContracted(ctx, path, "gateway.ncl", "GatewayConfig")
	if err != nil {
		return nil, err
	}
	fc := &FileConfig{Path: path, doc: doc, flags: map[string][]string{}}
	fields, _ := doc.Value.(map[string]any)
	for key, v := range fields {
		if key == "repositories" {
			if err := fc.repos(v); err != nil {
				return nil, err
			}
			continue
		}
		fc.flags[strings.ReplaceAll(key, "_", "-")] = flagValues(v)
	}
	return fc, nil
}

func (fc *FileConfig) repos(v any) error {
	list, _ := v.([]any)
	seen := map[string]bool{}
	for i, item := range list {
		r, _ := item.(map[string]any)
		rs := RepoSettings{}
		rs.Repository, _ = r["repository"].(string)
		rs.Workspace, _ = r["workspace"].(string)
		rs.RunnerType, _ = r["runner_type"].(string)
		rs.Platforms = flagValuesOf(r["platforms"])
		field := fmt.Sprintf("repositories[%d].repository", i)
		owner, repo, ok := strings.Cut(rs.Repository, "/")
		if !ok || githubapp.ValidOwner("owner", owner) != nil || githubapp.ValidRepo("repository", repo) != nil {
			return spec.FieldAt(fc.doc, fc.Path, field, fmt.Errorf("%q: want owner/repo", rs.Repository))
		}
		if seen[rs.Repository] {
			return spec.FieldAt(fc.doc, fc.Path, field, fmt.Errorf("%s is listed twice", rs.Repository))
		}
		seen[rs.Repository] = true
		fc.Repos = append(fc.Repos, rs)
	}
	return nil
}

// flagValuesOf is flagValues of a field that may be absent.
func flagValuesOf(v any) []string {
	if v == nil {
		return nil
	}
	return flagValues(v)
}

// flagValues turns a field's value into flag text: a list, its elements
// (apply sets a repeatable flag once per element, joins them for another).
func flagValues(v any) []string {
	switch x := v.(type) {
	case []any:
		var items []string
		for _, e := range x {
			items = append(items, fmt.Sprint(e))
		}
		return items
	case float64:
		return []string{strconv.FormatFloat(x, 'f', -1, 64)}
	}
	return []string{fmt.Sprint(v)}
}

// apply sets the flags the file gives, except those whose LIAN_GATEWAY_*
// variable is set: the environment and then the command line override the
// file. A value the flag refuses is an error at its field's position.
func (fc *FileConfig) apply(fs *pflag.FlagSet, getenv func(string) string) error {
	names := make([]string, 0, len(fc.flags))
	for n := range fc.flags {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if getenv(envKey(name)) != "" {
			continue
		}
		values := fc.flags[name]
		if f := fs.Lookup(name); f != nil && !repeatable(f) && len(values) > 1 {
			values = []string{strings.Join(values, ",")}
		}
		for _, v := range values {
			if err := fs.Set(name, v); err != nil {
				return spec.FieldAt(fc.doc, fc.Path, strings.ReplaceAll(name, "-", "_"), fmt.Errorf("invalid value %q for --%s: %v", v, name, err))
			}
		}
	}
	return nil
}

// configPath is the configuration file the arguments or the environment name.
func configPath(args []string, getenv func(string) string) (string, error) {
	for i, a := range args {
		switch {
		case a == "--config":
			if i+1 == len(args) {
				return "", errors.New("--config needs a FILE")
			}
			return args[i+1], nil
		case strings.HasPrefix(a, "--config="):
			return a[strings.Index(a, "=")+1:], nil
		case a == "--":
			return getenv("LIAN_GATEWAY_CONFIG"), nil
		}
	}
	return getenv("LIAN_GATEWAY_CONFIG"), nil
}

// envKey is a flag's environment variable: --hcloud-location is
// LIAN_GATEWAY_HCLOUD_LOCATION.
func envKey(flagName string) string {
	return "LIAN_GATEWAY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag whose LIAN_GATEWAY_* variable is set (the one
// place the environment is read): the environment overrides the file, and
// flags (parsed afterwards) override both.
func applyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		key := envKey(f.Name)
		if v := getenv(key); v != "" && err == nil {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %v", key, v, serr)
			}
		}
	})
	return err
}

// repeatable reports whether a flag collects one value per use.
func repeatable(f *pflag.Flag) bool {
	switch f.Value.(type) {
	case *frontdoor.ListValue, *frontdoor.CommaList:
		return true
	}
	return false
}
