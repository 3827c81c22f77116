package woodpecker

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sethvargo/go-githubactions"
	"gopkg.in/yaml.v3"

	"github.com/lian-build/action/internal/action"
	"github.com/lian-build/action/internal/testenv"
)

// exampleWorkspace is a checkout with a Dockerfile, as the examples build.
func exampleWorkspace(t *testing.T) string {
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "Dockerfile"), []byte("FROM scratch\nCOPY Dockerfile /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return ws
}

// fromSecrets replaces every {from_secret: NAME} with a value, as
// Woodpecker does before the plugin starts.
func fromSecrets(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if name, ok := x["from_secret"].(string); ok && len(x) == 1 {
			return "secret-of-" + name
		}
		for k, e := range x {
			x[k] = fromSecrets(e)
		}
	case []any:
		var scalars []string
		for i, e := range x {
			x[i] = fromSecrets(e)
			if s, ok := x[i].(string); ok {
				scalars = append(scalars, s)
			}
		}
		if len(scalars) == len(x) {
			return scalars // a list of strings arrives comma-separated
		}
	}
	return v
}

// examples/woodpecker/.woodpecker.yml, as Woodpecker hands it to the
// plugin (settings as PLUGIN_*, secrets resolved, ${CI_*} substituted),
// makes a valid request; it asks for no privilege the server must refuse.
func TestWoodpeckerExampleResolves(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "examples", "woodpecker", ".woodpecker.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var pipe struct {
		Steps []map[string]any `yaml:"steps"`
	}
	if err := yaml.Unmarshal(b, &pipe); err != nil {
		t.Fatal(err)
	}
	step := pipe.Steps[0]
	if _, ok := step["privileged"]; ok {
		t.Error("the example sets privileged: Woodpecker refuses it on a plugin step (list the image in WOODPECKER_PLUGINS_PRIVILEGED)")
	}
	if img, _ := step["image"].(string); !strings.Contains(img, "lian-build-plugin") {
		t.Errorf("image %q", img)
	}
	ws := exampleWorkspace(t)
	ci := ciEnv(ws, "push")
	settings, _ := fromSecrets(step["settings"]).(map[string]any)
	env := Env{}
	subst := regexp.MustCompile(`\$\{(CI_[A-Z_]+)\}`)
	for k, v := range pluginEnv(t, settings) {
		env[k] = subst.ReplaceAllStringFunc(v, func(m string) string { return ci[m[2:len(m)-1]] })
	}
	for k, v := range ci {
		env[k] = v
	}
	req, err := Request(context.Background(), env)
	if err != nil {
		t.Fatalf("the example does not resolve: %v", err)
	}
	if req.RunnerOverride != "cax21" || len(req.Build.Tags) != 2 || req.Build.BuildArgs["VERSION"] != ci["CI_COMMIT_SHA"] {
		t.Errorf("request: override %q, tags %v, args %v", req.RunnerOverride, req.Build.Tags, req.Build.BuildArgs)
	}
}

// examples/github/workflow.yml's lian-build step, as the runner hands it to
// the Action (inputs as INPUT_*, expressions evaluated), makes a valid
// request.
func TestGitHubExampleResolves(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "examples", "github", "workflow.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				Uses string            `yaml:"uses"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	ws := exampleWorkspace(t)
	genv := map[string]string{"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": testenv.Webhook("push/payload.json"),
		"GITHUB_REPOSITORY": "Codertocat/Hello-World", "GITHUB_SHA": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
		"GITHUB_REF": "refs/heads/main", "GITHUB_WORKSPACE": ws}
	expr := regexp.MustCompile(`\$\{\{\s*([^}]*?)\s*\}\}`)
	found := 0
	for _, job := range wf.Jobs {
		for _, st := range job.Steps {
			if !strings.HasPrefix(st.Uses, "lian-build/action@") {
				continue
			}
			found++
			for k, v := range st.With {
				v = expr.ReplaceAllStringFunc(v, func(m string) string {
					switch e := expr.FindStringSubmatch(m)[1]; {
					case e == "github.sha":
						return genv["GITHUB_SHA"]
					case strings.HasPrefix(e, "github.ref =="):
						return "true"
					default:
						return "value-of-" + e
					}
				})
				if k == "context" {
					v = ws
				}
				genv["INPUT_"+strings.ToUpper(k)] = v
			}
		}
	}
	if found != 1 {
		t.Fatalf("%d lian-build steps in the example", found)
	}
	a := githubactions.New(githubactions.WithWriter(&bytes.Buffer{}), githubactions.WithGetenv(func(k string) string { return genv[k] }))
	req, err := action.Request(context.Background(), a)
	if err != nil {
		t.Fatalf("the example does not resolve: %v", err)
	}
	if !req.Build.Push || len(req.Build.Tags) != 1 || req.Build.BuildArgs["VERSION"] != genv["GITHUB_SHA"] {
		t.Errorf("request: push %v, tags %v, args %v", req.Build.Push, req.Build.Tags, req.Build.BuildArgs)
	}
}
