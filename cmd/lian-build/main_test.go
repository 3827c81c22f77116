package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lian-build/action/internal/testenv"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lian-build-cli-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "lian-build")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic(fmt.Sprintf("go build: %v\n%s", err, out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type run struct {
	code           int
	stdout, stderr string
}

func lian(t *testing.T, env []string, args ...string) run {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(), buildkitdEnv()...), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return run{code, out.String(), errb.String()}
}

func ctxDir(t *testing.T, dockerfile string) string {
	t.Helper()
	d := t.TempDir()
	if dockerfile != "" {
		if err := os.WriteFile(filepath.Join(d, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// hostileCLI is one row of testdata/hostile/cli.json.
type hostileCLI struct {
	Name   string            `json:"name"`
	Args   []string          `json:"args"`
	Files  map[string]string `json:"files"`
	Exit   int               `json:"exit"`
	Words  []string          `json:"words"`
	Absent []string          `json:"absent"`
	// Env adds environment variables ({{dir}} replaced).
	Env map[string]string `json:"env"`
	// Stdout are words the standard output must contain.
	Stdout []string `json:"stdout"`
	// Gone are paths ({{dir}} replaced) that must not exist afterwards.
	Gone []string `json:"gone"`
}

// writeHostileFiles fills dir: {{fifo}} makes a FIFO, BOMB the exponential
// Nickel string, HUGE a 2 MB file; without files, a good Dockerfile.
func writeHostileFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if files == nil {
		files = map[string]string{"Dockerfile": "FROM scratch\nCOPY Dockerfile /\n"}
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(strings.ReplaceAll(target, "{{dir}}", dir), p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		switch content {
		case "{{fifo}}":
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			continue
		case "BOMB":
			var b strings.Builder
			b.WriteString("let a0 = \"xxxxxxxxxxxxxxxx\" in\n")
			for i := 1; i < 59; i++ {
				fmt.Fprintf(&b, "let a%d = \"%%{a%d}%%{a%d}\" in\n", i, i-1, i-1)
			}
			b.WriteString("{ language = a58 }\n")
			content = b.String()
		case "EXT4IMG":
			if err := os.WriteFile(p, nil, 0o644); err != nil || os.Truncate(p, 16<<20) != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("mkfs.ext4", "-q", "-F", p).CombinedOutput(); err != nil {
				t.Fatalf("mkfs.ext4: %v: %s", err, out)
			}
			continue
		case "HUGE":
			content = "{ language = \"" + strings.Repeat("x", 2<<20) + "\" }"
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Bad input is refused before any runner exists, with the exit code of the
// README's table and a message naming the flag, file or field; no row
// panics, hangs, leaves a runner or shows the registry password.
func TestHostileCLI(t *testing.T) {
	for _, file := range []string{"cli.json", "state.json", "catalog.json", "pool-cli.json"} {
		t.Run(strings.TrimSuffix(file, ".json"), func(t *testing.T) { hostileRows(t, file) })
	}
}

func hostileRows(t *testing.T, file string) {
	rows := testenv.HostileRows[hostileCLI](t, file)
	const password = "hostile-pa55word-7c1"
	for _, tt := range rows {
		t.Run(tt.Name, func(t *testing.T) {
			dir, state := t.TempDir(), filepath.Join(t.TempDir(), "runners")
			writeHostileFiles(t, dir, tt.Files)
			args := make([]string, len(tt.Args))
			for i, a := range tt.Args {
				args[i] = strings.ReplaceAll(a, "{{dir}}", dir)
			}
			env := []string{"LIAN_STATE_DIR=" + state, "LIAN_REGISTRY_PASSWORD=" + password, "LIAN_METRICS_DIR=" + t.TempDir()}
			for k, v := range tt.Env {
				env = append(env, k+"="+strings.ReplaceAll(v, "{{dir}}", dir))
			}
			start := time.Now()
			r := lian(t, env, args...)
			if took := time.Since(start); took > 20*time.Second {
				t.Errorf("took %v", took)
			}
			if r.code != tt.Exit {
				t.Errorf("exit code %d, want %d\nstderr: %s", r.code, tt.Exit, r.stderr)
			}
			for _, w := range tt.Words {
				if w = strings.ReplaceAll(w, "{{dir}}", dir); !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, r.stderr)
				}
			}
			for _, w := range append(tt.Absent, password, "panic:", "goroutine ") {
				if strings.Contains(r.stdout+r.stderr, w) {
					t.Errorf("output shows %q:\n%s%s", w, r.stdout, r.stderr)
				}
			}
			for _, w := range tt.Stdout {
				if w = strings.ReplaceAll(w, "{{dir}}", dir); !strings.Contains(r.stdout, w) {
					t.Errorf("stdout does not mention %q:\n%s", w, r.stdout)
				}
			}
			testenv.AssertNoRunners(t, state)
			testenv.AssertNothingMountedUnder(t, dir)
			for _, g := range tt.Gone {
				if _, err := os.Lstat(strings.ReplaceAll(g, "{{dir}}", dir)); err == nil {
					t.Errorf("%s exists afterwards", g)
				}
			}
		})
	}
}

func baseFlag(t *testing.T) string {
	return "base=oci-layout://" + testenv.BaseLayout(t)
}

func TestBuildReportJSON(t *testing.T) {
	testenv.Require(t)
	state := filepath.Join(t.TempDir(), "runners")
	dir := ctxDir(t, "FROM base\nRUN echo hi > /hi\n")
	report := filepath.Join(t.TempDir(), "report.json")
	r := lian(t, nil, "build", "--state-dir", state, "--build-context", baseFlag(t), "--progress", "plain",
		"--output", "type=oci,dest="+filepath.Join(t.TempDir(), "img.tar"), "--report-json", report, dir)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(mustRead(t, report)), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tier", "sizing_source", "attempts", "oom_retries", "steps_total", "steps_cached", "digest", "duration_ms", "outcome"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report has no %q: %v", k, m)
		}
	}
	if m["outcome"] != "success" || m["tier"] != "cax11" || m["steps_total"] != 1.0 || !strings.HasPrefix(fmt.Sprint(m["digest"]), "sha256:") {
		t.Errorf("report %v", m)
	}
	for _, w := range []string{"succeeded", "tier            cax11 (default:", "OOM retries     0", "cache hits      0/1 steps cached", "digest          sha256:"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("report on stdout lacks %q:\n%s", w, r.stdout)
		}
	}
	testenv.AssertNoRunners(t, state)
}

func TestUnreachableRegistry(t *testing.T) {
	testenv.Require(t)
	state := filepath.Join(t.TempDir(), "runners")
	dir := ctxDir(t, "FROM base\nRUN true\n")
	r := lian(t, nil, "build", "--state-dir", state, "--build-context", baseFlag(t), "--insecure-registry", "127.0.0.1:1",
		"-t", "127.0.0.1:1/app:v1", "--push", "--progress", "quiet", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Fatalf("exit %d, want 1 with the registry named\n%s", r.code, r.stderr)
	}
	testenv.AssertNoRunners(t, state)
}

// startSleeper starts a build whose step sleeps, and returns once the step runs.
func startSleeper(t *testing.T, state string, extra ...string) *exec.Cmd {
	t.Helper()
	dir := ctxDir(t, "FROM base\nRUN echo sleeping-now && sleep 120\n")
	args := append([]string{"build", "--state-dir", state, "--build-context", baseFlag(t), "--progress", "plain"}, extra...)
	cmd := exec.Command(binary, append(args, dir)...)
	cmd.Env = append(os.Environ(), buildkitdEnv()...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started, ended := make(chan struct{}), make(chan struct{})
	var seen strings.Builder
	go func() {
		defer close(ended)
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			seen.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "sleeping-now") && !strings.Contains(sc.Text(), "RUN") {
				once = true
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case <-ended:
		_ = cmd.Wait()
		t.Fatalf("the build ended before its step started:\n%s", seen.String())
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the build step never started")
	}
	return cmd
}

func TestSIGTERMDestroysRunner(t *testing.T) {
	testenv.Require(t)
	state := filepath.Join(t.TempDir(), "runners")
	cmd := startSleeper(t, state)
	ids := testenv.LeaseIDs(state)
	if len(ids) != 1 {
		t.Fatalf("runners while building: %v", ids)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v, want code 130", err)
	}
	testenv.AssertNoRunners(t, state)
	testenv.AssertNoCgroup(t, ids[0])
}

func TestKill9ThenGC(t *testing.T) {
	testenv.Require(t)
	state := filepath.Join(t.TempDir(), "runners")
	cmd := startSleeper(t, state)
	ids := testenv.LeaseIDs(state)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(testenv.ProcessesMentioning(state)) == 0 {
		t.Fatal("kill -9 of the CLI took buildkitd with it; nothing for gc to do")
	}
	ls := lian(t, nil, "runners", "ls", "--state-dir", state)
	if ls.code != 0 || !strings.Contains(ls.stdout, ids[0]) || !strings.Contains(ls.stdout, "orphan: owner pid") {
		t.Fatalf("runners ls (exit %d):\n%s%s", ls.code, ls.stdout, ls.stderr)
	}
	gc := lian(t, nil, "runners", "gc", "--state-dir", state)
	if gc.code != 0 || !strings.Contains(gc.stdout, "removed runner "+ids[0]) {
		t.Fatalf("runners gc (exit %d):\n%s%s", gc.code, gc.stdout, gc.stderr)
	}
	testenv.AssertNoRunners(t, state)
	testenv.AssertNoCgroup(t, ids[0])
	again := lian(t, nil, "runners", "gc", "--state-dir", state)
	if !strings.Contains(again.stdout, "no orphaned runners") {
		t.Errorf("second gc: %s", again.stdout)
	}
}

func mustRead(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func buildkitdEnv() []string {
	if bk, err := testenv.Buildkitd(); err == nil {
		return []string{"LIAN_BUILDKITD=" + bk}
	}
	return nil
}

// Directives fill the request; flags override them.
func TestBuildWithDirectives(t *testing.T) {
	testenv.Require(t)
	state := filepath.Join(t.TempDir(), "runners")
	dir := ctxDir(t, "FROM base\nRUN echo from-directives\n")
	directives := filepath.Join(dir, "lian.ncl")
	src := `let D = import "defaults/build_directives.ncl" in
D.make_ci_build { workspace = "dirws", artifact = { image = "example.com/dirws:1", context = "." }, runner_override = "cax21" }
`
	if err := os.WriteFile(directives, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "r.json")
	r := lian(t, nil, "build", "--state-dir", state, "--directives", directives, "--build-context", baseFlag(t), "--progress", "quiet", "--report-json", report)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(mustRead(t, report)), &m); err != nil {
		t.Fatal(err)
	}
	if m["workspace"] != "dirws" || m["tier"] != "cax21" || m["sizing_source"] != "override" || fmt.Sprint(m["tags"]) != "[example.com/dirws:1]" {
		t.Fatalf("report %v", m)
	}
	// The flag wins over the directives.
	r = lian(t, nil, "build", "--state-dir", state, "--directives", directives, "--runner-type", "cax11", "--build-context", baseFlag(t), "--progress", "quiet", "--report-json", report)
	if r.code != 0 || !strings.Contains(mustRead(t, report), `"tier": "cax11"`) {
		t.Fatalf("exit %d, report %s\n%s", r.code, mustRead(t, report), r.stderr)
	}
	bad := filepath.Join(dir, "bad.ncl")
	if err := os.WriteFile(bad, []byte(`{ workspace = "x" }`), 0o644); err != nil {
		t.Fatal(err)
	}
	r = lian(t, nil, "build", "--state-dir", state, "--directives", bad, dir)
	if r.code != 2 || !strings.Contains(r.stderr, "missing required field") {
		t.Fatalf("bad directives: exit %d\n%s", r.code, r.stderr)
	}
	testenv.AssertNoRunners(t, state)
}

// A pool that accepts connections and never answers: pool ls gives up
// within its bound (not the 15 minutes it took), naming the pool.
func TestPoolLsAgainstASilentPool(t *testing.T) {
	addr := testenv.SilentListener(t)
	start := time.Now()
	r := lian(t, []string{"LIAN_POOL_TOKEN=t0k"}, "pool", "ls", "--pool-url", "http://"+addr)
	if took := time.Since(start); took > 45*time.Second {
		t.Errorf("pool ls waited %v", took)
	}
	if r.code != 1 || !strings.Contains(r.stderr, "no answer within") || !strings.Contains(r.stderr, "vm-pool") {
		t.Errorf("exit %d: %s", r.code, r.stderr)
	}
}
