package action

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/rhysd/actionlint"
	"gopkg.in/yaml.v3"
)

// Every workflow (and the documented example) passes actionlint; the
// self-test workflow's `uses: ./` is checked against action.yml's inputs.
func TestWorkflowsPassActionlint(t *testing.T) {
	root := filepath.Join("..", "..")
	files, _ := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	files = append(files, filepath.Join(root, "examples", "github", "workflow.yml"))
	if len(files) < 4 {
		t.Fatalf("found only %v", files)
	}
	var out bytes.Buffer
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{Color: actionlint.ColorOptionKindNever})
	if err != nil {
		t.Fatal(err)
	}
	proj, err := actionlint.NewProject(root)
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.LintFiles(files, proj)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("%s:%d:%d: %s [%s]", e.Filepath, e.Line, e.Column, e.Message, e.Kind)
	}
	// actionlint must be able to fail: an unknown input of ./ is an error.
	bad := []byte("on: push\njobs:\n  b:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - uses: ./\n        with:\n          no-such-input: x\n")
	errs, err = l.Lint(filepath.Join(root, ".github", "workflows", "bad.yml"), bad, proj)
	if err != nil || len(errs) == 0 || !strings.Contains(errs[0].Message, "no-such-input") {
		t.Fatalf("actionlint accepted an unknown input: %v %v", errs, err)
	}
}

// action.yml declares exactly the inputs the action reads.
func TestActionYAMLMatchesInputs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Inputs  map[string]any `yaml:"inputs"`
		Outputs map[string]any `yaml:"outputs"`
		Runs    struct {
			Using          string `yaml:"using"`
			PostEntrypoint string `yaml:"post-entrypoint"`
		} `yaml:"runs"`
	}
	if err := yaml.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	var declared []string
	for k := range meta.Inputs {
		declared = append(declared, k)
	}
	slices.Sort(declared)
	read := Inputs(frontdoor.SettingsTable())
	slices.Sort(read)
	if !slices.Equal(declared, read) {
		t.Errorf("action.yml inputs %v\nread by the action %v", declared, read)
	}
	// The block itself is generated from the settings table.
	want := frontdoor.ActionInputs(frontdoor.SettingsTable())
	start := bytes.Index(b, []byte("\ninputs:\n")) + 1
	end := bytes.Index(b, []byte("\noutputs:\n")) + 1
	if start <= 0 || end <= start {
		t.Fatal("action.yml: no inputs: block before outputs:")
	}
	if got := string(b[start:end]); got != want+"\n" {
		if os.Getenv("LIAN_UPDATE_ACTION") == "1" {
			out := append(append(append([]byte{}, b[:start]...), want+"\n"...), b[end:]...)
			if err := os.WriteFile(filepath.Join("..", "..", "action.yml"), out, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("action.yml's inputs differ from the settings table (LIAN_UPDATE_ACTION=1 go test ./internal/action rewrites them):\n%s", want)
	}
	if meta.Runs.Using != "docker" || meta.Runs.PostEntrypoint != "lian-build-action-post" {
		t.Errorf("runs: %+v", meta.Runs)
	}
	for _, o := range []string{"digest", "image", "runner-type", "sizing-source", "oom-retries", "cache-hits", "steps-total", "duration", "metadata"} {
		if _, ok := meta.Outputs[o]; !ok {
			t.Errorf("action.yml has no output %s", o)
		}
	}
}
