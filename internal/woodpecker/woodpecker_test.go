package woodpecker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/action"
	"github.com/lian-build/action/internal/cli"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv"
	"github.com/sethvargo/go-githubactions"
)

// pluginEnv converts `settings:` the way Woodpecker v3 does
// (pipeline/frontend/yaml/compiler/settings/params.go): PLUGIN_ + upper case
// with "." and "-" → "_"; scalars as text; lists of scalars comma-joined
// without escaping; maps and lists of maps as JSON. from_secret is resolved
// before (the test passes the secret's value in its place).
func pluginEnv(t *testing.T, settings map[string]any) map[string]string {
	t.Helper()
	env := map[string]string{}
	for k, v := range settings {
		name := "PLUGIN_" + strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToUpper(k))
		switch v := v.(type) {
		case string:
			env[name] = v
		case bool, int:
			env[name] = fmt.Sprint(v)
		case []string:
			env[name] = strings.Join(v, ",")
		default:
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			env[name] = string(b)
		}
	}
	return env
}

func ciEnv(ws, event string) map[string]string {
	return map[string]string{
		"CI_REPO": "Codertocat/Hello-World", "CI_COMMIT_SHA": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
		"CI_COMMIT_BRANCH": "main", "CI_PIPELINE_EVENT": event, "CI_COMMIT_AUTHOR": "Codertocat", "CI_WORKSPACE": ws,
		"CI_REPO_URL": "https://github.com/Codertocat/Hello-World", "CI_REPO_PRIVATE": "false",
	}
}

func merge(ms ...map[string]string) []string {
	var out []string
	for _, m := range ms {
		for k, v := range m {
			out = append(out, k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

func TestPluginBuildsAndDryRunDoesNotPush(t *testing.T) {
	testenv.Require(t)
	reg := testenv.StartRegistry(t)
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "Dockerfile"), []byte("FROM base\nARG A\nARG B\nRUN echo \"$A $B\" > /ab\nRUN --mount=type=secret,id=tok echo \"tok=$(cat /run/secrets/tok)\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const secret = "wp-secret-0b7e"
	settings := map[string]any{
		"repo":                reg.Host + "/team/hello",
		"tags":                []string{"latest", "v1"},
		"build_args":          map[string]string{"A": "one, two", "B": "three"},
		"secrets":             map[string]string{"tok": secret}, // from_secret, resolved
		"build_contexts":      []string{"base=oci-layout://" + testenv.BaseLayout(t)},
		"insecure_registries": []string{reg.Host},
		"runner_type":         "cax11",
	}
	env := merge(pluginEnv(t, settings), ciEnv(ws, "push"), map[string]string{
		"LIAN_STATE_DIR": filepath.Join(t.TempDir(), "runners"), "LIAN_METRICS_DIR": t.TempDir(), "LIAN_BUILDKITD": mustBuildkitd(t),
	})
	var out bytes.Buffer
	if code := Main(context.Background(), env, &out); code != 0 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	for _, w := range []string{"lian-build: building hello-world as ci (push: true)", "succeeded", "tier            cax11 (override", "digest          sha256:", "tok=***"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("log lacks %q", w)
		}
	}
	if strings.Contains(out.String(), secret) || strings.Contains(out.String(), "\x1b[") {
		t.Error("the log shows the secret or terminal escapes")
	}
	if reg.ManifestDigest(t, "team/hello", "latest") == "" || reg.ManifestDigest(t, "team/hello", "v1") == "" {
		t.Fatal("repo:tags were not pushed")
	}
	// dry_run: the same build, no write to the registry.
	settings["dry_run"] = true
	settings["tags"] = []string{"dry"}
	n := len(reg.Requests())
	env = merge(pluginEnv(t, settings), ciEnv(ws, "push"), map[string]string{
		"LIAN_STATE_DIR": filepath.Join(t.TempDir(), "runners"), "LIAN_METRICS_DIR": t.TempDir(), "LIAN_BUILDKITD": mustBuildkitd(t),
	})
	out.Reset()
	if code := Main(context.Background(), env, &out); code != 0 {
		t.Fatalf("dry run exit %d\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "(push: false)") || len(testenv.Writes(reg.Since(n))) != 0 || reg.ManifestDigest(t, "team/hello", "dry") != "" {
		t.Fatalf("dry_run pushed:\n%s", out.String())
	}
}

func mustBuildkitd(t *testing.T) string {
	bk, err := testenv.Buildkitd()
	if err != nil {
		t.Fatal(err)
	}
	return bk
}

func TestPluginFailureExitCode(t *testing.T) {
	testenv.Require(t)
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "Dockerfile"), []byte("FROM base\nRUN exit 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := merge(pluginEnv(t, map[string]any{"context": ws, "build_contexts": []string{"base=oci-layout://" + testenv.BaseLayout(t)}}),
		ciEnv(ws, "pull_request"), map[string]string{"LIAN_STATE_DIR": filepath.Join(t.TempDir(), "r"), "LIAN_METRICS_DIR": t.TempDir(), "LIAN_BUILDKITD": mustBuildkitd(t)})
	var out bytes.Buffer
	if code := Main(context.Background(), env, &out); code == 0 {
		t.Fatal("a failing build exited 0")
	}
	if !strings.Contains(out.String(), "as human:codertocat") || !strings.Contains(out.String(), "failed step     [1/2] RUN exit 5 at Dockerfile:2") {
		t.Fatalf("log:\n%s", out.String())
	}
}

func TestSettingErrorsNameTheKey(t *testing.T) {
	tests := map[string]struct {
		settings map[string]any
		want     string
	}{
		"unknown":        {map[string]any{"dockerfil": "x"}, "settings: dockerfil: not a lian-build setting (did you mean dockerfile?) (from PLUGIN_DOCKERFIL)"},
		"bad bool":       {map[string]any{"dry_run": "perhaps"}, `settings: dry_run: "perhaps" is not true or false`},
		"bad map":        {map[string]any{"build_args": "{not json"}, "settings: build_args: not a valid map"},
		"bad secrets":    {map[string]any{"secrets": "{\"a\": 1}"}, "settings: secrets: a map must be id: value"},
		"bad logins":     {map[string]any{"logins": []map[string]string{{"registry": "r.io"}}}, "settings: logins: entry 1 needs registry and username"},
		"cache_from":     {map[string]any{"cache_from": "r/c"}, "settings: cache_from: lian-build replaces it"},
		"bad build arg":  {map[string]any{"build_args": []string{"=x"}}, `settings: build_args "=x": want NAME=VALUE`},
		"bad tier":       {map[string]any{"runner_type": "cax99"}, "settings: runner_type: unknown runner tier \"cax99\""},
		"bad dockerfile": {map[string]any{"dockerfile": "/nope/Dockerfile"}, "settings: dockerfile \"/nope/Dockerfile\""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ws := t.TempDir()
			_ = os.WriteFile(filepath.Join(ws, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
			tt.settings["context"] = ws
			env := merge(pluginEnv(t, tt.settings), ciEnv(ws, "push"))
			var out bytes.Buffer
			if code := Main(context.Background(), env, &out); code != 2 || !strings.Contains(out.String(), tt.want) {
				t.Fatalf("exit %d, want 2 and %q:\n%s", code, tt.want, out.String())
			}
		})
	}
}

// Equivalent settings through the CLI, the Action and the plugin make
// identical requests. (The CLI knows no commit or ref, and takes secrets
// from files or variables where the others take values: those are compared
// between the Action and the plugin only.)
func TestFrontDoorsMakeIdenticalRequests(t *testing.T) {
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "Dockerfile"), []byte("FROM scratch AS final\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LIAN_TEST_TOKEN_ENV", "x")
	cases := []struct {
		name   string
		cli    []string          // lian-build build flags
		inputs map[string]string // Action inputs
		plugin map[string]any    // Woodpecker settings
		event  [2]string         // GitHub event + fixture, Woodpecker event
	}{
		{"push with tags and args",
			[]string{"-t", "r.io/team/app:latest", "-t", "r.io/team/app:v1", "--push", "--build-arg", "A=1", "--build-arg", "B=two, three", "--target", "final", "--platform", "linux/amd64", "--label", "org.opencontainers.image.source=x", "--workspace", "hello-world"},
			map[string]string{"tags": "r.io/team/app:latest,r.io/team/app:v1", "push": "true", "build-args": "A=1\nB=two, three", "target": "final", "platforms": "linux/amd64", "labels": "org.opencontainers.image.source=x"},
			map[string]any{"repo": "r.io/team/app", "tags": []string{"latest", "v1"}, "build_args": map[string]string{"A": "1", "B": "two, three"}, "target": "final", "platforms": []string{"linux/amd64"}, "labels": []string{"org.opencontainers.image.source=x"}},
			[2]string{"push", "push"}},
		{"pull request session with cache",
			[]string{"--registry", "r.io/team", "--cache-disposition", "rollback", "--runner-type", "cax31", "--workspace", "app", "--actor", "human:codertocat"},
			map[string]string{"registry": "r.io/team", "cache-disposition": "rollback", "runner-type": "cax31", "workspace": "app", "secrets": "tok=v4lue"},
			map[string]any{"registry": "r.io/team", "cache_disposition": "rollback", "runner_type": "cax31", "workspace": "app", "secrets": map[string]string{"tok": "v4lue"}, "push": false},
			[2]string{"pull_request", "pull_request"}},
		{"explicit actor and directives-free defaults",
			[]string{"--actor", "agent:bot-1", "--no-cache", "--registry", "r.io", "--registry-provider", "harbor", "--cache-import", "r.io/lamina/rust-deps:abc", "--workspace", "hello-world"},
			map[string]string{"actor": "agent:bot-1", "no-cache": "true", "registry": "r.io", "registry-provider": "harbor", "cache-imports": "r.io/lamina/rust-deps:abc"},
			map[string]any{"actor": "agent:bot-1", "no_cache": true, "registry": "r.io", "registry_provider": "harbor", "cache_imports": []string{"r.io/lamina/rust-deps:abc"}, "push": false},
			[2]string{"push", "push"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fixture := map[string]string{"push": "push/payload.json", "pull_request": "pull_request/opened.payload.json"}[c.event[0]]
			genv := map[string]string{
				"GITHUB_EVENT_NAME": c.event[0], "GITHUB_EVENT_PATH": testenv.Webhook(fixture),
				"GITHUB_REPOSITORY": "Codertocat/Hello-World", "GITHUB_SHA": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
				"GITHUB_REF": "refs/heads/main", "GITHUB_WORKSPACE": ws, "GITHUB_SERVER_URL": "https://github.com",
			}
			for k, v := range c.inputs {
				genv["INPUT_"+strings.ToUpper(k)] = v
			}
			a := githubactions.New(githubactions.WithWriter(&bytes.Buffer{}), githubactions.WithGetenv(func(k string) string { return genv[k] }))
			areq, err := action.Request(context.Background(), a)
			if err != nil {
				t.Fatal(err)
			}
			wenv := Env{}
			for k, v := range pluginEnv(t, c.plugin) {
				wenv[k] = v
			}
			for k, v := range ciEnv(ws, c.event[1]) {
				wenv[k] = v
			}
			wreq, err := Request(context.Background(), wenv)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(areq, wreq) {
				a, _ := json.MarshalIndent(reqView(areq), "", " ")
				w, _ := json.MarshalIndent(reqView(wreq), "", " ")
				t.Fatalf("requests differ\naction:     %s\nwoodpecker: %s", a, w)
			}
			creq, err := cli.Request(context.Background(), append(append([]string{}, c.cli...), "--progress", "plain", ws))
			if err != nil {
				t.Fatal(err)
			}
			// The CLI knows no repository: no commit, no source, and
			// provenance as its flags say (mode=min by default).
			wreq.Commit, wreq.Ref, wreq.Build.Secrets = "", "", nil
			wreq.Build.Provenance = creq.Build.Provenance
			if !reflect.DeepEqual(creq, wreq) {
				c, _ := json.MarshalIndent(reqView(creq), "", " ")
				w, _ := json.MarshalIndent(reqView(wreq), "", " ")
				t.Fatalf("requests differ\ncli:        %s\nwoodpecker: %s", c, w)
			}
		})
	}
}

func reqView(r pipeline.Request) any {
	return map[string]any{"ws": r.Workspace, "actor": r.Actor, "cache": r.Cache, "override": r.RunnerOverride, "commit": r.Commit, "ref": r.Ref,
		"tags": r.Build.Tags, "push": r.Build.Push, "args": r.Build.BuildArgs, "labels": r.Build.Labels, "target": r.Build.Target,
		"platforms": r.Build.Platforms, "secrets": fmt.Sprint(r.Build.Secrets), "nocache": r.Build.NoCache, "ctx": r.Build.ContextDir, "progress": r.Build.Progress,
		"provenance": r.Build.Provenance}
}
