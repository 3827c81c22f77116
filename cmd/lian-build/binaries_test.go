package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/testenv"
)

// Every binary answers -h/--help with its usage and --version with the
// lian-build and BuildKit versions, exit 0, before looking at anything else.
func TestEveryBinaryHelpAndVersion(t *testing.T) {
	dir := t.TempDir()
	root := testenv.RepoRoot()
	bins := map[string]string{"lian-build": "./cmd/lian-build", "gateway": "./cmd/gateway", "lian-build-action": "./cmd/action", "lian-build-plugin": "./plugin/woodpecker"}
	for name, pkg := range bins {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	for name := range bins {
		for _, arg := range []string{"-h", "--help", "--version"} {
			cmd := exec.Command(filepath.Join(dir, name), arg)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no CI_*, INPUT_* or LIAN_*: nothing may start
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if err != nil {
				t.Errorf("%s %s: %v\n%s", name, arg, err, out.String())
				continue
			}
			want := "usage"
			if arg == "--version" {
				want = "BuildKit v0."
			}
			if !strings.Contains(strings.ToLower(out.String()), strings.ToLower(want)) {
				t.Errorf("%s %s printed no %q:\n%s", name, arg, want, out.String())
			}
		}
	}
	// The gateway refuses an incomplete configuration with exit 2 and a
	// plain message, not a JSON log line.
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "gateway"), "--webhook-secret-file", secret, "--data-dir", t.TempDir())
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.HasPrefix(string(out), "gateway: --app-id is required") {
		t.Fatalf("gateway without --app-id: %v\n%s", err, out)
	}
}

// `lian-build build … 2>&1 | head -c 100`: the reader goes away mid-build.
// The build is cancelled and its runner destroyed; the process exits with a
// code, not killed by SIGPIPE (141) with its runner left behind.
func TestClosedOutputPipeDestroysRunner(t *testing.T) {
	testenv.Require(t)
	state := filepath.Join(t.TempDir(), "runners")
	dir := ctxDir(t, "FROM base\nRUN for i in $(seq 1 300); do echo line $i of a long step; sleep 0.05; done\n")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "build", "--state-dir", state, "--build-context", baseFlag(t), "--progress", "plain", dir)
	cmd.Env = append(os.Environ(), buildkitdEnv()...)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	buf := make([]byte, 0, 100)
	for len(buf) < 100 {
		chunk := make([]byte, 100-len(buf))
		n, err := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if err != nil {
			break
		}
	}
	// Wait for the RUN step to have started, then close the reader, as head does.
	waitFor(t, func() bool { return len(testenv.LeaseIDs(state)) > 0 })
	r.Close()
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("the build finished normally after its output closed: %v", err)
	}
	if ee.ExitCode() == -1 {
		t.Fatalf("killed by a signal (%v): the runner may be left behind", ee)
	}
	t.Logf("exit code %d after the reader closed; output began %q", ee.ExitCode(), buf)
	testenv.AssertNoRunners(t, state)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("condition not reached in 15 s")
}
