package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/compute"
	"github.com/lian-build/action/internal/compute/local"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/sizing"
	"github.com/lian-build/action/internal/testenv"
	"github.com/moby/buildkit/client"
)

const mib = 1 << 20

// project writes a build context with the given Dockerfile and files.
func project(t *testing.T, dockerfile string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["Dockerfile"] = dockerfile
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type env struct {
	prov     *local.Provider
	stateDir string
	p        *pipeline.Pipeline
	base     buildkit.NamedContext
}

func newEnv(t *testing.T, tierMemory map[string]int64, insecure ...string) *env {
	t.Helper()
	opts := testenv.ProviderOptions(t, tierMemory, insecure...)
	prov, err := local.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.New(pipeline.Config{Provider: prov, SampleEvery: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{prov: prov, stateDir: opts.StateDir, p: p,
		base: buildkit.NamedContext{Name: "base", OCILayout: testenv.BaseLayout(t)}}
	t.Cleanup(func() { testenv.AssertNoRunners(t, opts.StateDir) })
	return e
}

func (e *env) request(ctxDir string) pipeline.Request {
	return pipeline.Request{
		Workspace: "e2e",
		Build: buildkit.Options{
			ContextDir:    ctxDir,
			NamedContexts: []buildkit.NamedContext{e.base},
			Progress:      "plain",
			ProgressOut:   io.Discard,
		},
	}
}

// pushImage builds dockerfile on the env's pipeline and pushes it as ref.
func (e *env) pushImage(t *testing.T, ref, dockerfile string) {
	t.Helper()
	push := e.request(project(t, dockerfile, map[string]string{}))
	push.Build.Tags, push.Build.Push = []string{ref}, true
	if _, err := e.p.Run(context.Background(), push); err != nil {
		t.Fatal(err)
	}
}

func attemptsOf(r pipeline.Result) string {
	var s []string
	for _, a := range r.Attempts {
		s = append(s, a.Tier+":"+string(a.Outcome))
	}
	return strings.Join(s, ",")
}

func assertRunnersGone(t *testing.T, e *env, r pipeline.Result) {
	t.Helper()
	testenv.AssertNoRunners(t, e.stateDir)
	for _, a := range r.Attempts {
		testenv.AssertNoCgroup(t, a.RunnerID)
	}
}

func newRegistry(t *testing.T) *testenv.Registry { return testenv.StartRegistry(t) }

func TestBuildPushesToRegistry(t *testing.T) {
	reg := testenv.StartRegistry(t)
	e := newEnv(t, nil, reg.Host)
	dir := project(t, "FROM base\nRUN echo built > /built.txt\nCOPY app.txt /app.txt\nRUN cat /app.txt\n", map[string]string{"app.txt": "v1\n"})
	req := e.request(dir)
	req.Build.Tags = []string{reg.Host + "/e2e/app:v1"}
	req.Build.Push = true
	res, err := e.p.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("build: %v\n%+v", err, res)
	}
	if res.Outcome != pipeline.OutcomeSuccess || len(res.Attempts) != 1 || res.OOMRetries != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.StepsTotal != 3 || res.StepsCached != 0 {
		t.Errorf("steps %d/%d cached, want 0/3", res.StepsCached, res.StepsTotal)
	}
	if res.Tier != "cax11" || res.SizingSource != sizing.SourceDefault {
		t.Errorf("tier %s from %s", res.Tier, res.SizingSource)
	}
	got := reg.ManifestDigest(t, "e2e/app", "v1")
	if got == "" || got != res.Digest {
		t.Errorf("registry has digest %q, report says %q", got, res.Digest)
	}
	assertRunnersGone(t, e, res)
}

func TestOOMRetriesOnceOnNextTier(t *testing.T) {
	e := newEnv(t, map[string]int64{"cax11": 160 * mib, "cax21": 1024 * mib})
	dir := project(t, "FROM base\nRUN dd if=/dev/zero of=/dev/null bs=400M count=1 && echo allocated\n", map[string]string{})
	res, err := e.p.Run(context.Background(), e.request(dir))
	if err != nil {
		t.Fatalf("build: %v (attempts %s)", err, attemptsOf(res))
	}
	if got := attemptsOf(res); got != "cax11:oom,cax21:success" {
		t.Fatalf("attempts %s", got)
	}
	if res.OOMRetries != 1 || res.Tier != "cax21" || !res.Attempts[0].OOM || res.Attempts[1].OOM {
		t.Fatalf("result %+v", res)
	}
	if res.Attempts[0].RunnerID == res.Attempts[1].RunnerID {
		t.Fatal("the retry reused the runner")
	}
	if res.Failure != nil {
		t.Errorf("a successful build reports a failure: %+v", res.Failure)
	}
	if res.Usage == nil || res.Usage.MemPeak < 380*mib {
		t.Errorf("usage %+v: peak should show the 400 MiB step", res.Usage)
	}
	assertRunnersGone(t, e, res)
}

func TestOOMTwiceFailsWithGuidance(t *testing.T) {
	e := newEnv(t, map[string]int64{"cax11": 128 * mib, "cax21": 192 * mib})
	dir := project(t, "FROM base\nRUN dd if=/dev/zero of=/dev/null bs=400M count=1\n", map[string]string{})
	res, err := e.p.Run(context.Background(), e.request(dir))
	var oe *pipeline.OOMError
	if !errors.As(err, &oe) {
		t.Fatalf("err = %v, want OOMError", err)
	}
	if got := attemptsOf(res); got != "cax11:oom,cax21:oom" {
		t.Fatalf("attempts %s, want exactly two OOM attempts", got)
	}
	for _, want := range []string{"runner_type", ".build-spec.ncl", "cax11 and cax21"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if res.Outcome != pipeline.OutcomeOOM || res.OOMRetries != 1 {
		t.Errorf("outcome %s, oom retries %d", res.Outcome, res.OOMRetries)
	}
	assertRunnersGone(t, e, res)
}

func TestOrdinaryFailureDoesNotRetry(t *testing.T) {
	e := newEnv(t, nil)
	dir := project(t, "FROM base\nRUN echo about to fail && exit 3\n", map[string]string{})
	res, err := e.p.Run(context.Background(), e.request(dir))
	if err == nil {
		t.Fatal("build succeeded")
	}
	if got := attemptsOf(res); got != "cax11:failure" {
		t.Fatalf("attempts %s, want one failed attempt", got)
	}
	f := res.Failure
	if f == nil || f.Line != 2 || f.ExitCode != 3 || !strings.Contains(f.Step, "exit 3") || f.File != "Dockerfile" {
		t.Fatalf("failure %+v", f)
	}
	if !strings.Contains(strings.Join(f.LogTail, "\n"), "about to fail") {
		t.Errorf("log tail %q", f.LogTail)
	}
	assertRunnersGone(t, e, res)
}

// signalWriter closes ch the first time the output contains s.
type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	s    string
	once sync.Once
	ch   chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.s) {
		w.once.Do(func() { close(w.ch) })
	}
	return len(p), nil
}

// A cancelled build destroys its runner and ends in build.failed; one its
// caller interrupts to run it again (a gateway stopping requeues it) ends
// in no event: its next run's is the build's one end (a soak found a
// build that failed and then completed).
func TestCancelDestroysRunner(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cause  error
		events string
	}{{"cancelled", nil, "build.started build.failed"}, {"interrupted", pipeline.ErrInterrupted, "build.started"}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			rec := &testenv.Events{}
			p, err := pipeline.New(pipeline.Config{Provider: e.prov, Events: rec})
			if err != nil {
				t.Fatal(err)
			}
			dir := project(t, "FROM base\nRUN echo sleeping && sleep 60\n", map[string]string{})
			req := e.request(dir)
			w := &signalWriter{s: "sleeping", ch: make(chan struct{})}
			req.Build.ProgressOut = w
			ctx, cancel := context.WithCancelCause(context.Background())
			go func() {
				select {
				case <-w.ch:
				case <-time.After(60 * time.Second):
				}
				cancel(tc.cause)
			}()
			start := time.Now()
			res, err := p.Run(ctx, req)
			if !errors.Is(err, pipeline.ErrCanceled) {
				t.Fatalf("err = %v, want ErrCanceled", err)
			}
			if res.Outcome != pipeline.OutcomeCanceled || len(res.Attempts) != 1 {
				t.Fatalf("result %+v", res)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("cancel took %s", d)
			}
			if got := rec.String(); got != tc.events {
				t.Errorf("events %q, want %q", got, tc.events)
			}
			assertRunnersGone(t, e, res)
		})
	}
}

// A build cancelled before it began (a newer push superseded it in the
// queue) still ends: build.started, then build.failed, and no runner.
func TestBuildCancelledBeforeItBeganEnds(t *testing.T) {
	e := newEnv(t, nil)
	rec := &testenv.Events{}
	p, err := pipeline.New(pipeline.Config{Provider: e.prov, Events: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := p.Run(ctx, e.request(project(t, "FROM base\nRUN true\n", map[string]string{})))
	if err == nil || res.Outcome != pipeline.OutcomeCanceled {
		t.Fatalf("outcome %s, %v; want canceled", res.Outcome, err)
	}
	if got := rec.String(); got != "build.started build.failed" {
		t.Errorf("events %q", got)
	}
	assertRunnersGone(t, e, res)
}

// panicProvider wraps the real provider; its runners panic when asked for a client.
type panicProvider struct{ *local.Provider }

func (p panicProvider) Spawn(ctx context.Context, tier sizing.Tier, lease compute.Lease) (compute.Runner, error) {
	r, err := p.Provider.Spawn(ctx, tier, lease)
	return panicRunner{r}, err
}

type panicRunner struct{ compute.Runner }

func (panicRunner) Client(context.Context) (*client.Client, error) { panic("boom") }

func TestPanicStillDestroysRunner(t *testing.T) {
	e := newEnv(t, nil)
	p, err := pipeline.New(pipeline.Config{Provider: panicProvider{e.prov}})
	if err != nil {
		t.Fatal(err)
	}
	dir := project(t, "FROM base\nRUN true\n", map[string]string{})
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v", r)
			}
		}()
		_, _ = p.Run(context.Background(), e.request(dir))
	}()
	testenv.AssertNoRunners(t, e.stateDir)
}

func TestCacheImportOnFreshRunner(t *testing.T) {
	reg := testenv.StartRegistry(t)
	e := newEnv(t, nil, reg.Host)
	dir := project(t, "FROM base\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n", map[string]string{"a.txt": "a\n"})
	cache := buildkit.CacheEntry{Type: "registry", Attrs: map[string]string{"ref": reg.Host + "/cache/e2e:main", "mode": "max"}}
	req := e.request(dir)
	req.Build.CacheTo = []buildkit.CacheEntry{cache}
	req.Build.CacheFrom = []buildkit.CacheEntry{cache}
	cold, err := e.p.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if cold.StepsCached != 0 {
		t.Fatalf("cold build reports %d cached steps", cold.StepsCached)
	}
	warm, err := e.p.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if warm.Attempts[0].RunnerID == cold.Attempts[0].RunnerID {
		t.Fatal("second build reused the runner")
	}
	if warm.StepsTotal != 3 || warm.StepsCached != 3 {
		t.Fatalf("warm build: %d/%d steps cached, want 3/3", warm.StepsCached, warm.StepsTotal)
	}
	// A changed file invalidates only what follows it.
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := e.p.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if changed.StepsCached != 1 {
		t.Fatalf("changed build: %d/%d steps cached, want 1", changed.StepsCached, changed.StepsTotal)
	}
}

func TestOutputsOCITarAndLocalDir(t *testing.T) {
	e := newEnv(t, nil)
	dir := project(t, "FROM base\nRUN echo hello > /greeting\n", map[string]string{})
	out := t.TempDir()
	req := e.request(dir)
	req.Build.Outputs = []buildkit.Output{
		{Type: "oci", Dest: filepath.Join(out, "img.tar"), Attrs: map[string]string{}},
	}
	if _, err := e.p.Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(out, "img.tar")); err != nil || fi.Size() < 1000 {
		t.Fatalf("oci tarball: %v %v", fi, err)
	}
	req.Build.Outputs = []buildkit.Output{{Type: "local", Dest: filepath.Join(out, "fs"), Attrs: map[string]string{}}}
	if _, err := e.p.Run(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "fs", "greeting"))
	if err != nil || string(b) != "hello\n" {
		t.Fatalf("local output: %q %v", b, err)
	}
}
