package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/lian-build/action/internal/testenv"
	"github.com/lian-build/action/internal/testenv/fakehcloud"
	"github.com/lian-build/action/internal/testenv/runnerhost"
)

const (
	hcloudToken    = "hc-T0KEN-cli-77aa"
	registrySecret = "reg-pa55-cli-91"
	buildSecret    = "build-s3cret-cli-3e"
)

// hcloudWorld is the fake Hetzner API with runner hosts, and the environment
// that points the CLI at it.
func hcloudWorld(t *testing.T) (*fakehcloud.Fake, *runnerhost.Hosts, []string) {
	testenv.Require(t)
	testenv.StartSSHD(t)
	hosts := &runnerhost.Hosts{Options: testenv.HostOptions(t, nil), Dir: t.TempDir()}
	f := fakehcloud.New(hcloudToken, hosts)
	t.Cleanup(f.Close)
	env := []string{"HCLOUD_ENDPOINT=" + f.Endpoint(), "HCLOUD_TOKEN=" + hcloudToken, "LIAN_METRICS_DIR=" + t.TempDir(),
		"LIAN_REGISTRY_PASSWORD=" + registrySecret, "LIAN_TEST_SECRET=" + buildSecret}
	return f, hosts, env
}

// startSlowBuild starts a remote build whose RUN step sleeps, and returns
// once the step runs.
func startSlowBuild(t *testing.T, hosts *runnerhost.Hosts, env []string) (*exec.Cmd, *bytes.Buffer) {
	dir := ctxDir(t, "FROM base\nRUN --mount=type=secret,id=tok sleep 60\n")
	return startRemoteBuild(t, hosts, env, 1, "--build-context", baseFlag(t), "--secret", "id=tok,env=LIAN_TEST_SECRET",
		"--registry", "127.0.0.1:1/team", "--registry-username", "ci", dir)
}

// startRemoteBuild starts `lian-build build --provider hcloud ARGS…` and
// returns once a RUN step runs on each of servers runner hosts.
func startRemoteBuild(t *testing.T, hosts *runnerhost.Hosts, env []string, servers int, args ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(binary, append([]string{"build", "--provider", "hcloud", "--progress", "plain"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		ids := hosts.IDs()
		if len(ids) != servers {
			return false
		}
		for _, id := range ids {
			if !hosts.StepRunning(id) {
				return false
			}
		}
		return true
	})
	return cmd, &out
}

func assertHcloudClean(t *testing.T, f *fakehcloud.Fake, outputs ...string) {
	t.Helper()
	if s, k := f.Counts(); s != 0 || k != 0 {
		t.Errorf("left %d servers and %d SSH keys", s, k)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), runnerhost.Prefix()) {
		t.Errorf("runner hosts left: %s", out)
	}
	var bodies []string
	for _, r := range f.Requests() {
		bodies = append(bodies, r.Method+" "+r.Path+"?"+r.Query+" "+r.Body)
	}
	for _, secret := range []string{hcloudToken, registrySecret, buildSecret} {
		for _, text := range append(bodies, outputs...) {
			if strings.Contains(text, secret) {
				t.Errorf("secret %q appears in %.200s", secret, text)
			}
		}
	}
}

// SIGTERM mid-build on a Hetzner runner: the CLI deletes the server and the
// key before it exits.
func TestHcloudSIGTERMDeletesTheServer(t *testing.T) {
	f, hosts, env := hcloudWorld(t)
	cmd, out := startSlowBuild(t, hosts, env)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v\n%s", err, out.String())
	}
	assertHcloudClean(t, f, out.String())
}

// kill -9 mid-build: the server and key stay, labelled with their owner;
// `runners gc --provider hcloud` finds them by label and deletes them.
func TestHcloudKill9ThenGC(t *testing.T) {
	f, hosts, env := hcloudWorld(t)
	cmd, out := startSlowBuild(t, hosts, env)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if s, k := f.Counts(); s != 1 || k != 1 {
		t.Fatalf("after kill -9: %d servers, %d keys (want 1 and 1, to be reaped)", s, k)
	}
	ls := lian(t, env, "runners", "ls", "--provider", "hcloud")
	if ls.code != 0 || !strings.Contains(ls.stdout, "orphan: owner") {
		t.Fatalf("runners ls: %d\n%s%s", ls.code, ls.stdout, ls.stderr)
	}
	gc := lian(t, env, "runners", "gc", "--provider", "hcloud")
	if gc.code != 0 || strings.Count(gc.stdout, "removed runner") != 2 {
		t.Fatalf("runners gc: %d\n%s%s", gc.code, gc.stdout, gc.stderr)
	}
	assertHcloudClean(t, f, out.String(), ls.stdout, gc.stdout)
}

// kill -9 of a two-platform build while both legs run (a cpx and a cax
// server): `runners gc` removes both servers and both keys.
func TestHcloudTwoPlatformsKill9ThenGC(t *testing.T) {
	f, hosts, env := hcloudWorld(t)
	dir := ctxDir(t, "FROM base\nRUN sleep 60\n")
	cmd, out := startRemoteBuild(t, hosts, env, 2, "--platform", "linux/amd64,linux/arm64",
		"--build-context", "base=oci-layout://"+testenv.MultiArchBase(t), "-t", "127.0.0.1:1/team/multi:1", "--push", dir)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if s, k := f.Counts(); s != 2 || k != 2 {
		t.Fatalf("after kill -9: %d servers, %d keys (want 2 and 2, to be reaped)\n%s", s, k, out.String())
	}
	gc := lian(t, env, "runners", "gc", "--provider", "hcloud")
	if gc.code != 0 || !strings.Contains(gc.stdout, "-amd64-a1") || !strings.Contains(gc.stdout, "-arm64-a1") {
		t.Fatalf("runners gc: %d\n%s%s", gc.code, gc.stdout, gc.stderr)
	}
	assertHcloudClean(t, f, out.String(), gc.stdout)
}
