package action

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lian-build/action/internal/testenv"
	"github.com/sethvargo/go-githubactions"
)

// runner is the environment GitHub gives a container action.
type runner struct {
	env             map[string]string
	output, summary string
}

func newRunner(t *testing.T, event, payload string, inputs map[string]string) *runner {
	t.Helper()
	dir := t.TempDir()
	r := &runner{output: filepath.Join(dir, "output"), summary: filepath.Join(dir, "summary")}
	for _, f := range []string{r.output, r.summary} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ws := t.TempDir()
	r.env = map[string]string{
		"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": testenv.Webhook(payload),
		"GITHUB_REPOSITORY": "Codertocat/Hello-World", "GITHUB_SHA": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
		"GITHUB_REF": "refs/heads/main", "GITHUB_WORKSPACE": ws, "GITHUB_OUTPUT": r.output, "GITHUB_STEP_SUMMARY": r.summary,
		"GITHUB_STATE": filepath.Join(dir, "state"), "RUNNER_TEMP": dir,
		"LIAN_STATE_DIR": filepath.Join(dir, "runners"), "LIAN_METRICS_DIR": filepath.Join(dir, "metrics"),
	}
	if bk, err := testenv.Buildkitd(); err == nil {
		r.env["LIAN_BUILDKITD"] = bk
	}
	for k, v := range inputs {
		r.env["INPUT_"+strings.ToUpper(k)] = v // hyphens stay, as the runner passes them
	}
	return r
}

func (r *runner) run(t *testing.T) (int, string) {
	t.Helper()
	var out bytes.Buffer
	a := githubactions.New(githubactions.WithWriter(&out), githubactions.WithGetenv(func(k string) string { return r.env[k] }))
	code := Main(context.Background(), a, &out, "lian-build-action", nil)
	return code, out.String()
}

// outputs parses $GITHUB_OUTPUT: name<<DELIMITER … DELIMITER blocks.
func (r *runner) outputs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(r.output)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, delim, ok := strings.Cut(sc.Text(), "<<")
		if !ok {
			t.Fatalf("GITHUB_OUTPUT line %q is not name<<delimiter", sc.Text())
		}
		var lines []string
		for sc.Scan() && sc.Text() != delim {
			lines = append(lines, sc.Text())
		}
		out[name] = strings.Join(lines, "\n")
	}
	return out
}

func writeContext(t *testing.T, r *runner, dockerfile string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(r.env["GITHUB_WORKSPACE"], "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestActionBuildsOnPush(t *testing.T) {
	testenv.Require(t)
	const secret = "gh-s3cret-value-5c1d"
	r := newRunner(t, "push", "push/with-installation.payload.json", map[string]string{
		"build-contexts":    "base=oci-layout://" + testenv.BaseLayout(t),
		"build-args":        "GREETING=hello, world\nOTHER=2",
		"secrets":           "tok=" + secret,
		"registry-password": "",
		"outputs":           "type=oci,dest=" + filepath.Join(t.TempDir(), "img.tar"),
		"runner-type":       "cax11",
	})
	writeContext(t, r, "FROM base\nARG GREETING\nRUN echo \"$GREETING\" > /g\nRUN --mount=type=secret,id=tok echo \"token: $(cat /run/secrets/tok)\"\n")
	code, stdout := r.run(t)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stdout)
	}
	o := r.outputs(t)
	want := map[string]string{"runner-type": "cax11", "sizing-source": "override", "oom-retries": "0", "cache-hits": "0", "steps-total": "2"}
	for k, v := range want {
		if o[k] != v {
			t.Errorf("output %s = %q, want %q", k, o[k], v)
		}
	}
	if !strings.HasPrefix(o["digest"], "sha256:") || o["duration"] == "" {
		t.Errorf("outputs %v", o)
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(o["metadata"]), &meta); err != nil || meta["actor"] != "ci" || meta["workspace"] != "hello-world" {
		t.Errorf("metadata %v (%v)", meta, err)
	}
	// The secret is registered for masking before it could be printed, and appears nowhere else.
	first := strings.Index(stdout, secret)
	if first < 0 || !strings.HasPrefix(stdout[strings.LastIndex(stdout[:first], "\n")+1:], "::add-mask::") {
		t.Fatalf("the secret's first appearance is not an ::add-mask:: line:\n%s", stdout)
	}
	for _, line := range strings.Split(stdout, "\n") {
		if strings.Contains(line, secret) && !strings.HasPrefix(line, "::add-mask::") {
			t.Errorf("secret unmasked on stdout: %q", line)
		}
	}
	if !strings.Contains(stdout, "token: ***") {
		t.Error("the step's output of the secret is not masked")
	}
	if !strings.Contains(stdout, "::group::lian-build: hello-world (ci)") || !strings.Contains(stdout, "::endgroup::") {
		t.Error("progress is not grouped")
	}
	summary, _ := os.ReadFile(r.summary)
	for _, w := range []string{"### lian-build: `hello-world` ✅ succeeded", "| Tier | cax11 (override: runner override cax11) |", "| OOM retries | 0 |", "| Cache hits | 0/2 steps cached |", "| Runner | local · buildkitd pid ", "| Digest | `sha256:"} {
		if !strings.Contains(string(summary), w) {
			t.Errorf("summary lacks %q:\n%s", w, summary)
		}
	}
	if strings.Contains(string(summary), secret) {
		t.Error("secret in the summary")
	}
	testenv.AssertNoRunners(t, r.env["LIAN_STATE_DIR"])
}

func TestActionFailureAnnotatesTheDockerfileLine(t *testing.T) {
	testenv.Require(t)
	r := newRunner(t, "pull_request", "pull_request/opened.payload.json", map[string]string{
		"build-contexts": "base=oci-layout://" + testenv.BaseLayout(t),
	})
	writeContext(t, r, "FROM base\nRUN true\nRUN echo broken && exit 4\n")
	code, stdout := r.run(t)
	if code == 0 {
		t.Fatal("a failing build exited 0")
	}
	if !strings.Contains(stdout, "::error file=Dockerfile,line=3,title=lian-build%3A [2/3] RUN echo broken && exit 4::") {
		t.Fatalf("no annotation on Dockerfile:3:\n%s", stdout)
	}
	o := r.outputs(t)
	var meta map[string]any
	if err := json.Unmarshal([]byte(o["metadata"]), &meta); err != nil || meta["actor"] != "human:codertocat" || meta["outcome"] != "failure" {
		t.Errorf("pull_request: metadata %v (%v)", meta, err)
	}
	summary, _ := os.ReadFile(r.summary)
	if !strings.Contains(string(summary), "❌ failed") || !strings.Contains(string(summary), "Log tail") {
		t.Errorf("summary:\n%s", summary)
	}
}

// hostileEnv is one row of testdata/hostile/action.json.
type hostileEnv struct {
	Name   string            `json:"name"`
	Inputs map[string]string `json:"inputs"`
	Env    map[string]string `json:"env"`
	Files  map[string]string `json:"files"`
	Exit   int               `json:"exit"`
	Words  []string          `json:"words"`
	Absent []string          `json:"absent"`
}

// Every hostile environment exits with its code, says what is wrong naming
// the input or variable, never panics, and masks every secret before it
// prints anything else.
func TestHostileAction(t *testing.T) {
	rows := testenv.HostileRows[hostileEnv](t, "action.json")
	for _, tt := range rows {
		t.Run(tt.Name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.Files {
				p := filepath.Join(dir, name)
				if content == "{{fifo}}" {
					if err := syscall.Mkfifo(p, 0o600); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			inputs := map[string]string{}
			for k, v := range tt.Inputs {
				inputs[k] = strings.ReplaceAll(v, "{{dir}}", dir)
			}
			r := newRunner(t, "push", "push/payload.json", inputs)
			for k, v := range tt.Env {
				r.env[k] = v
			}
			writeContext(t, r, "FROM scratch\n")
			done := make(chan struct{})
			var code int
			var stdout string
			go func() {
				defer close(done)
				code, stdout = r.run(t)
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the action hangs")
			}
			if code != tt.Exit || !strings.Contains(stdout, "::error::lian-build: ") {
				t.Fatalf("exit %d, want %d with an ::error:::\n%s", code, tt.Exit, stdout)
			}
			for _, w := range tt.Words {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
			// The runner hides ::add-mask:: lines; everything else is shown.
			var shown []string
			for _, l := range strings.Split(stdout, "\n") {
				if !strings.HasPrefix(l, "::add-mask::") {
					shown = append(shown, l)
				}
			}
			for _, w := range tt.Absent {
				if strings.Contains(strings.Join(shown, "\n"), w) {
					t.Errorf("output shows %q:\n%s", w, stdout)
				}
			}
			if first := strings.Index(stdout, "::add-mask::"); first > 0 && strings.Contains(stdout[:first], "::") {
				t.Errorf("something was printed before the masks:\n%s", stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if code := Main(context.Background(), githubactions.New(githubactions.WithWriter(&out)), &out, "lian-build-action", []string{"--help"}); code != 0 || !strings.Contains(out.String(), "INPUT_*") {
		t.Fatalf("%d %s", code, out.String())
	}
}

// The post step reads the same inputs as the main step and removes the
// orphaned runners of the provider they name (here the local one: a runner
// directory whose record is unreadable, as a main step killed mid-spawn
// leaves it).
func TestPostRemovesOrphanedRunners(t *testing.T) {
	r := newRunner(t, "push", "push.json", map[string]string{"compute-provider": "local"})
	orphan := filepath.Join(r.env["LIAN_STATE_DIR"], "r-orphan")
	if err := os.MkdirAll(orphan, 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	a := githubactions.New(githubactions.WithWriter(&out), githubactions.WithGetenv(func(k string) string { return r.env[k] }))
	if code := Main(context.Background(), a, &out, "lian-build-action-post", nil); code != 0 {
		t.Fatalf("post exit %d: %s", code, out.String())
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("the orphaned runner is still there (%v): %s", err, out.String())
	}
	if !strings.Contains(out.String(), "removed runner r-orphan (no readable lease record)") {
		t.Errorf("post did not say what it removed: %s", out.String())
	}
}
