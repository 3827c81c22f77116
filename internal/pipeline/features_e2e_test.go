package pipeline_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/buildkit"
)

// Build args, target stage, labels and a local output, through the dockerfile frontend.
func TestBuildArgsTargetAndPlatform(t *testing.T) {
	e := newEnv(t, nil)
	dir := project(t, `FROM base AS build
ARG GREETING=unset
RUN echo "$GREETING" > /greeting
FROM base AS final
COPY --from=build /greeting /final-greeting
FROM base AS unused
RUN exit 9
`, map[string]string{})
	out := t.TempDir()
	req := e.request(dir)
	req.Build.BuildArgs = map[string]string{"GREETING": "hello-arg"}
	req.Build.Target = "final"
	req.Build.Platforms = []string{"linux/amd64"}
	req.Build.Outputs = []buildkit.Output{{Type: "local", Dest: out, Attrs: map[string]string{}}}
	res, err := e.p.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "final-greeting"))
	if err != nil || string(b) != "hello-arg\n" {
		t.Fatalf("final-greeting = %q, %v", b, err)
	}
	if res.StepsTotal != 2 {
		t.Errorf("steps_total %d, want 2 (the unused stage is not built)", res.StepsTotal)
	}
}

// A base image pulled from a plain-HTTP registry through docker-image://.
func TestDockerImageContextFromInsecureRegistry(t *testing.T) {
	reg := newRegistry(t)
	e := newEnv(t, nil, reg.Host)
	baseRef := reg.Host + "/lamina/busybox:test"
	e.pushImage(t, baseRef, "FROM base\n")
	req := e.request(project(t, "FROM base\nRUN echo pulled > /pulled\n", map[string]string{}))
	req.Build.NamedContexts = []buildkit.NamedContext{{Name: "base", DockerImage: baseRef}}
	if _, err := e.p.Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if !reg.Touched("/v2/lamina/busybox/manifests/test") {
		t.Error("the base image was not pulled from the registry")
	}
}

// SSH agent forwarding: the step sees the forwarded agent socket.
func TestSSHAgentForwarding(t *testing.T) {
	e := newEnv(t, nil)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatalf("ssh-agent (openssh-client): %v", err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	dir := project(t, "FROM base\nRUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo agent-ok\n", map[string]string{})
	req := e.request(dir)
	req.Build.SSH = []buildkit.SSH{{ID: "default", Paths: []string{sock}}}
	w := &signalWriter{s: "agent-ok", ch: make(chan struct{})}
	req.Build.ProgressOut = w
	if _, err := e.p.Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.ch:
	default:
		t.Fatalf("the step did not see the agent:\n%s", w.buf.String())
	}
	// Without --ssh the same step fails: the test can tell the difference.
	req.Build.SSH = nil
	req.Build.ProgressOut = &signalWriter{s: "\x00", ch: make(chan struct{})}
	if _, err := e.p.Run(context.Background(), req); err == nil || !strings.Contains(err.Error(), "ssh") {
		t.Fatalf("without --ssh: err = %v", err)
	}
}
