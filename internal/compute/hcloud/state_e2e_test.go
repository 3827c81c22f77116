package hcloud_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/compute/hcloud"
	"github.com/lian-build/action/internal/pipeline"
)

// stateWorld is newWorld with runner state on Hetzner Volumes.
func stateWorld(t *testing.T) *world {
	w := newWorld(t, worldConfig{})
	w.fake.VolumeDir = t.TempDir()
	p, err := hcloud.New(hcloud.Settings{Token: token, Endpoint: w.fake.Endpoint(), PollEvery: 200 * time.Millisecond, Locations: []string{"fsn1"}})
	if err != nil {
		t.Fatal(err)
	}
	if w.pl, err = pipeline.New(pipeline.Config{Provider: p, SpawnTimeout: time.Minute, RemoteState: true}); err != nil {
		t.Fatal(err)
	}
	return w
}

// cacheMountStep appends line to a cache mount's log and prints it; arg
// makes the step run again each time.
const cacheMountStep = "FROM base\nARG RUN\nRUN --mount=type=cache,target=/c echo $RUN >> /c/log && cat /c/log"

func withArg(v string) func(*pipeline.Request) {
	return func(r *pipeline.Request) { r.Build.BuildArgs = map[string]string{"RUN": v} }
}

// A ci build commits its state (a cache mount's files included) into the
// namespace's volume; the next build, on a new server, starts from it; a
// failed build leaves the generation as it was.
func TestStateVolumeWarmsTheNextBuild(t *testing.T) {
	w := stateWorld(t)
	res, err, progress := w.run(t, cacheMountStep, withArg("first"))
	if err != nil {
		t.Fatalf("first: %v\n%s", err, progress)
	}
	if s := res.State; s == nil || !s.Committed || s.GenerationOut != 1 || s.Target != "ci/e2e" || s.GenerationIn != 0 {
		t.Fatalf("first build's state %+v", res.State)
	}
	res, err, progress = w.run(t, cacheMountStep+" && grep -q first /c/log", withArg("second"))
	if err != nil {
		t.Fatalf("second (it fails without the first one's cache mount): %v\n%s", err, progress)
	}
	if s := res.State; s == nil || s.Namespace != "ci/e2e" || s.GenerationIn != 1 || !s.Committed || s.GenerationOut != 2 {
		t.Fatalf("second build's state %+v", res.State)
	}
	if _, err, _ := w.run(t, cacheMountStep+" && false", withArg("failed")); err == nil {
		t.Fatal("a failing build succeeded")
	}
	res, err, progress = w.run(t, cacheMountStep+" && ! grep -q failed /c/log", withArg("fourth"))
	if err != nil || res.State.GenerationIn != 2 {
		t.Fatalf("after a failed build: %v %+v\n%s", err, res.State, progress)
	}
	t.Logf("state line: %s (open %d ms, commit %d ms)", res.State.Line(), res.State.CloneMS, res.State.CommitMS)
	// `state ls|rm --state-store volumes`: the operator sees and removes it.
	p, _ := hcloud.New(hcloud.Settings{Token: token, Endpoint: w.fake.Endpoint(), Locations: []string{"fsn1"}})
	infos, err := p.States(t.Context())
	if err != nil || len(infos) != 1 || infos[0].Namespace != "ci/e2e" || infos[0].InUse != "" || !strings.Contains(infos[0].Where, "fsn1") {
		t.Fatalf("states: %+v %v", infos, err)
	}
	if err := p.RemoveState(t.Context(), "ci/e2e"); err != nil {
		t.Fatal(err)
	}
	if infos, err := p.States(t.Context()); err != nil || len(infos) != 0 {
		t.Fatalf("after rm: %+v %v", infos, err)
	}
	if err := p.RemoveState(t.Context(), "ci/e2e"); err == nil || !strings.Contains(err.Error(), "no state volume") {
		t.Errorf("rm of a removed namespace: %v", err)
	}
	w.assertNothingLeft(t)
}

// While one build's server holds the namespace's volume, a concurrent
// build of the namespace runs on the registry cache and says so; its
// success commits nothing.
func TestConcurrentBuildFallsBackToTheRegistryCache(t *testing.T) {
	w := stateWorld(t)
	if _, err, progress := w.run(t, cacheMountStep, withArg("seed")); err != nil {
		t.Fatalf("seed: %v\n%s", err, progress)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var first pipeline.Result
	var firstErr error
	go func() {
		defer wg.Done()
		first, firstErr, _ = w.run(t, "FROM base\nARG RUN\nRUN --mount=type=cache,target=/c echo $RUN && sleep 6", withArg("holder"))
	}()
	deadline := time.Now().Add(time.Minute)
	for len(w.hosts.IDs()) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // the holder's server has the volume
	res, err, progress := w.run(t, cacheMountStep, withArg("concurrent"))
	wg.Wait()
	if err != nil || firstErr != nil {
		t.Fatalf("builds: %v / %v\n%s", err, firstErr, progress)
	}
	if s := res.State; s == nil || s.Committed || !strings.Contains(s.Note, "attached to another build's server") {
		t.Fatalf("concurrent build's state %+v", res.State)
	}
	if s := first.State; s == nil || !s.Committed || s.GenerationIn != 1 {
		t.Fatalf("holder's state %+v", first.State)
	}
	w.assertNothingLeft(t)
}

// A session build commits to its own volume; the ci volume's state is not
// touched, and a later ci build sees nothing of the session. A build
// secret is in no committed file.
func TestSessionStateIsolatedAndSecretsNotCommitted(t *testing.T) {
	w := stateWorld(t)
	if _, err, progress := w.run(t, cacheMountStep, withArg("ci-one")); err != nil {
		t.Fatalf("ci: %v\n%s", err, progress)
	}
	secret := "s3cr3t-" + strings.Repeat("q", 20)
	secretFile := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	session := func(r *pipeline.Request) {
		r.Actor = cache.Actor{Kind: cache.ActorHuman, ID: "ana"}
		r.Build.BuildArgs = map[string]string{"RUN": "session"}
		r.Build.Secrets = []buildkit.Secret{{ID: "tok", File: secretFile}}
	}
	res, err, progress := w.run(t, cacheMountStep+"\nRUN --mount=type=secret,id=tok --mount=type=cache,target=/c cat /run/secrets/tok > /dev/null && echo used-secret >> /c/log", session)
	if err != nil {
		t.Fatalf("session: %v\n%s", err, progress)
	}
	if s := res.State; s == nil || !s.Committed || s.Target != "dev/ana-e2e" {
		t.Fatalf("session state %+v", res.State)
	}
	res, err, progress = w.run(t, cacheMountStep+" && ! grep -q session /c/log && grep -q ci-one /c/log", withArg("ci-two"))
	if err != nil || res.State.GenerationIn != 1 {
		t.Fatalf("ci after the session (it fails if it sees the session): %v %+v\n%s", err, res.State, progress)
	}
	w.assertNothingLeft(t)
	for _, img := range volumeImages(t, w) {
		if files := grepImage(t, img, secret); len(files) != 0 {
			t.Errorf("the secret is in committed state: %v", files)
		}
	}
}

func volumeImages(t *testing.T, w *world) []string {
	imgs, _ := filepath.Glob(filepath.Join(w.fake.VolumeDir, "volume-*.img"))
	if len(imgs) != 2 {
		t.Fatalf("volume images %v, want ci's and the session's", imgs)
	}
	return imgs
}

// grepImage mounts a volume image read-only and lists the files holding s.
func grepImage(t *testing.T, img, s string) []string {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,ro", img, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v %s", img, err, out)
	}
	defer exec.Command("umount", dir).Run()
	var hits []string
	n := 0
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s)) {
				hits = append(hits, p)
			}
		}
		return nil
	})
	if n < 10 {
		t.Fatalf("only %d files in %s: not a committed state", n, img)
	}
	return hits
}
