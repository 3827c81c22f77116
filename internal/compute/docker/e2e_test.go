package docker_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute/docker"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv"
)

const image = "lian-build/buildkit:test"

type world struct {
	d    *testenv.Dockerd
	c    *client.Client
	p    *docker.Provider
	pl   *pipeline.Pipeline
	base buildkit.NamedContext
}

// newWorld is a Docker Engine started for the test, the runner image made
// from this machine's buildkitd, buildctl, runc and busybox, and a pipeline
// on the docker provider.
func newWorld(t *testing.T, tierMemory map[string]int64) *world {
	w := &world{d: testenv.StartDockerd(t)}
	w.c = w.d.Client(t)
	bk, _ := testenv.Buildkitd()
	files := docker.ImageFiles{Buildkitd: bk, Buildctl: filepath.Join(filepath.Dir(bk), "buildctl")}
	var err error
	for _, f := range []struct {
		dst  *string
		name string
	}{{&files.Runc, "runc"}, {&files.Busybox, "busybox"}} {
		if *f.dst, err = exec.LookPath(f.name); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if err := docker.ImportImage(ctx, w.c, image, files); err != nil {
		t.Fatal(err)
	}
	if w.p, err = docker.New(docker.Settings{Host: w.d.Host, Image: image, Network: "none", TierMemory: tierMemory}); err != nil {
		t.Fatal(err)
	}
	if w.pl, err = pipeline.New(pipeline.Config{Provider: w.p, SpawnTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	w.base, _ = buildkit.ParseNamedContext("base=oci-layout://" + testenv.BaseLayout(t))
	return w
}

func (w *world) build(t *testing.T, dockerfile string, edit func(*pipeline.Request)) (pipeline.Result, error, string) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	req := pipeline.Request{Workspace: "e2e", Build: buildkit.Options{
		ContextDir: dir, NamedContexts: []buildkit.NamedContext{w.base}, Progress: "plain", ProgressOut: &progress}}
	if edit != nil {
		edit(&req)
	}
	res, err := w.pl.Run(context.Background(), req)
	return res, err, progress.String()
}

// assertNothingLeft: no container, volume or network with lian-build's labels.
func (w *world) assertNothingLeft(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	f := client.Filters{}.Add("label", "lian-build/provider=docker")
	cs, err := w.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil || len(cs.Items) != 0 {
		t.Errorf("containers left: %+v %v", cs.Items, err)
	}
	vs, err := w.c.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil || len(vs.Items) != 0 {
		t.Errorf("volumes left: %+v %v", vs.Items, err)
	}
	ns, err := w.c.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.Add("label", "lian-build/lease")})
	if err != nil || len(ns.Items) != 0 {
		t.Errorf("networks left: %+v %v", ns.Items, err)
	}
}

func TestBuildInADockerContainer(t *testing.T) {
	w := newWorld(t, nil)
	res, err, progress := w.build(t, "FROM base\nRUN echo in a container > /where && cat /where\n", nil)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	ri := res.Attempts[0].Runner
	if ri == nil || ri.Provider != "docker" || !strings.Contains(ri.Server, "lian-build-") {
		t.Fatalf("runner %+v", ri)
	}
	t.Logf("spawn %d ms (create %d, boot %d, ready %d)", res.Attempts[0].SpawnMS, ri.Spawn.CreateMS, ri.Spawn.BootMS, ri.Spawn.ReadyMS)
	w.assertNothingLeft(t)
}
