package docker_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute/docker"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv"
)

type world struct {
	d     *testenv.Dockerd
	c     *client.Client
	p     *docker.Provider
	pl    *pipeline.Pipeline
	base  buildkit.NamedContext
	image string
}

// newWorld is a Docker Engine started for the test, the runner image made
// from this machine's buildkitd, buildctl, runc and busybox, and a pipeline
// on the docker provider.
func newWorld(t *testing.T, tierMemory map[string]int64) *world {
	w := &world{d: testenv.StartDockerd(t)}
	w.c = w.d.Client(t)
	img := w.d.RunnerImage(t)
	w.image = img
	var err error
	if w.p, err = docker.New(docker.Settings{Host: w.d.Host, Image: img, Network: "none", TierMemory: tierMemory}); err != nil {
		t.Fatal(err)
	}
	if w.pl, err = pipeline.New(pipeline.Config{Provider: w.p, SpawnTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	w.base, _ = buildkit.ParseNamedContext("base=oci-layout://" + testenv.BaseLayout(t))
	return w
}

func (w *world) build(t *testing.T, dockerfile string, edit func(*pipeline.Request)) (pipeline.Result, error, string) {
	return testenv.BuildDockerfile(t, w.pl, dockerfile, edit)
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

// An OOM on the smallest tier retries on the next, whichever process the
// kernel kills in the container.
func TestOOMRetriesOnTheNextTier(t *testing.T) {
	w := newWorld(t, map[string]int64{"cax11": 192 << 20, "cax21": 1 << 30})
	res, err, progress := w.build(t, "FROM base\nRUN head -c 400000000 /dev/zero | tail > /dev/null\n", func(r *pipeline.Request) { r.RunnerOverride = "cax11" })
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	if len(res.Attempts) != 2 || !res.Attempts[0].OOM || res.Attempts[1].Tier != "cax21" {
		t.Fatalf("attempts %+v", res.Attempts)
	}
	w.assertNothingLeft(t)
}

// cli runs the lian-build binary against the world's engine.
type cli struct {
	bin, dir string
	w        *world
}

func newCLI(t *testing.T, w *world) *cli {
	dir := t.TempDir()
	c := &cli{bin: filepath.Join(dir, "lian-build"), dir: dir, w: w}
	if out, err := exec.Command("go", "build", "-o", c.bin, "../../../cmd/lian-build").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return c
}

func (c *cli) command(args ...string) *exec.Cmd {
	base := []string{"--provider", "docker", "--docker-host", c.w.d.Host}
	cmd := exec.Command(c.bin, append(args, base...)...) // flags may follow the arguments
	cmd.Env = append(os.Environ(), "LIAN_METRICS_DIR="+filepath.Join(c.dir, "metrics"))
	return cmd
}

// startBuild starts a build whose RUN sleeps, and waits until its
// container runs a step.
func (c *cli) startBuild(t *testing.T) (*exec.Cmd, *testenv.SyncBuffer) {
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM base\nRUN echo started && sleep 120\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := c.command("build", "--docker-image", c.w.image, "--docker-network", "none", "--progress", "plain",
		"--build-context", "base=oci-layout://"+testenv.BaseLayout(t), ctxDir)
	out := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(out.String(), "started") {
		if time.Now().After(deadline) {
			t.Fatalf("the build never ran its step:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cmd, out
}

// SIGTERM mid-build: the CLI stops the build and removes its container and volume.
func TestSIGTERMMidBuildLeavesNothing(t *testing.T) {
	w := newWorld(t, nil)
	c := newCLI(t, w)
	cmd, out := c.startBuild(t)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if err == nil {
		t.Fatalf("the build succeeded despite SIGTERM:\n%s", out.String())
	}
	w.assertNothingLeft(t)
}

// kill -9 of the CLI mid-build leaves its container; `runners gc` finds
// it by label (its owner is gone) and removes it and its volume.
func TestKill9ThenGC(t *testing.T) {
	w := newWorld(t, nil)
	c := newCLI(t, w)
	cmd, _ := c.startBuild(t)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	ls, err := c.command("runners", "ls").CombinedOutput()
	if err != nil || !strings.Contains(string(ls), "orphan: owner") {
		t.Fatalf("runners ls: %v\n%s", err, ls)
	}
	gc, err := c.command("runners", "gc").CombinedOutput()
	if err != nil || !strings.Contains(string(gc), "removed runner") {
		t.Fatalf("runners gc: %v\n%s", err, gc)
	}
	w.assertNothingLeft(t)
}

// The kernel killing buildkitd itself (the container's first process) is
// an OOM too: the engine says OOMKilled, and the retry runs on the next tier.
func TestKernelKillingBuildkitdIsAnOOM(t *testing.T) {
	w := newWorld(t, map[string]int64{"cax11": 192 << 20, "cax21": 1 << 30})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// Make every cax11 container's buildkitd the kernel's first choice.
		f := client.Filters{}.Add("label", "lian-build/tier=cax11")
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			cs, err := w.c.ContainerList(context.Background(), client.ContainerListOptions{Filters: f})
			if err != nil {
				continue
			}
			for _, c := range cs.Items {
				// Once the step's shell runs (it, and the head and tail it starts
				// after its sleep, keep the score it started with).
				ex, err := w.c.ExecCreate(context.Background(), c.ID, client.ExecCreateOptions{Cmd: []string{"sh", "-c",
					`for p in /proc/[0-9]*; do grep -qs "^sleep" $p/cmdline && echo 1000 > /proc/1/oom_score_adj; done`}})
				if err == nil {
					_, _ = w.c.ExecStart(context.Background(), ex.ID, client.ExecStartOptions{})
				}
			}
		}
	}()
	res, err, progress := w.build(t, "FROM base\nRUN sleep 4 && head -c 400000000 /dev/zero | tail > /dev/null\n", func(r *pipeline.Request) { r.RunnerOverride = "cax11" })
	if err != nil {
		t.Fatalf("build: %v\n%s", err, progress)
	}
	if len(res.Attempts) != 2 || !res.Attempts[0].OOM || res.Attempts[1].Tier != "cax21" || !strings.Contains(res.Attempts[0].Error, "OOMKilled") {
		t.Fatalf("attempts %+v", res.Attempts)
	}
	w.assertNothingLeft(t)
}
