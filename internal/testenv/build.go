package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv/runnerhost"
)

// BuildDockerfile runs dockerfile through pl in workspace e2e with the
// busybox base image as the named context "base", after edit changes the
// request (nil: none). It returns the result, the error and the plain
// progress output.
func BuildDockerfile(t testing.TB, pl *pipeline.Pipeline, dockerfile string, edit func(*pipeline.Request)) (pipeline.Result, error, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	base, err := buildkit.ParseNamedContext("base=oci-layout://" + BaseLayout(t))
	if err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	req := pipeline.Request{Workspace: "e2e", Build: buildkit.Options{
		ContextDir: dir, NamedContexts: []buildkit.NamedContext{base}, Progress: "plain", ProgressOut: &progress}}
	if edit != nil {
		edit(&req)
	}
	res, err := pl.Run(context.Background(), req)
	return res, err, progress.String()
}

// AssertNoRunnerHosts checks that no runner host of this process is left:
// no network namespace, and no buildkitd of the hosts' local provider.
func AssertNoRunnerHosts(t testing.TB, hosts *local.Provider) {
	t.Helper()
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if strings.Contains(string(out), runnerhost.Prefix()) {
		t.Errorf("network namespaces left: %s", out)
	}
	if infos, err := hosts.List(context.Background()); err != nil || len(infos) != 0 {
		t.Errorf("runner hosts' buildkitds left: %v %v", infos, err)
	}
}
