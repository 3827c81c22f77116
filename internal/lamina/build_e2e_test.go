package lamina_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/events"
	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/lamina"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv"
)

func layer(t *testing.T, dir, name, base, dockerfile, tools string) {
	t.Helper()
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	wf := `{ name = "` + name + `", kind = 'toolchain, build_base = ` + base + `, tools_provided = [` + tools + `], artifact_paths = ["` + name + `:latest"] }` + "\n"
	for file, content := range map[string]string{"workflow.ncl": wf, "Dockerfile": dockerfile} {
		if err := os.WriteFile(filepath.Join(d, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// catalogOf is root (a busybox rootfs from its context, FROM scratch) →
// tool and other (independent) → app (on tool).
func catalogOf(t *testing.T) string {
	dir := t.TempDir()
	layer(t, dir, "root", `{ image = "scratch" }`, "FROM scratch\nCOPY rootfs/ /\n", `{ binary = "sh", probe = "sh -c true" }`)
	if out, err := exec.Command("cp", "-a", testenv.Rootfs(t), filepath.Join(dir, "root", "rootfs")).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	layer(t, dir, "tool", `{ layer = "root" }`, "FROM base\nRUN printf '#!/bin/sh\\necho tool-ok\\n' > /bin/mytool && chmod +x /bin/mytool && sleep 1\n", `{ binary = "mytool", probe = "mytool" }`)
	layer(t, dir, "other", `{ layer = "root" }`, "FROM base\nRUN echo other > /other && sleep 1\n", "")
	layer(t, dir, "app", `{ layer = "tool" }`, "FROM base\nRUN mytool > /app\n", "")
	return dir
}

func byName(rs []lamina.LayerResult) map[string]lamina.LayerResult {
	out := map[string]lamina.LayerResult{}
	for _, r := range rs {
		out[r.Name] = r
	}
	return out
}

// A catalog through the real pipeline and a real registry: DAG order with
// independent layers at once, probes, promotion; a second run builds
// nothing; a change rebuilds the layer and its dependents only; a failed
// probe fails its layer and blocks its dependents.
func TestCatalogBuild(t *testing.T) {
	reg := testenv.StartRegistry(t)
	p, err := pipeline.New(pipeline.Config{Provider: testenv.NewProvider(t, nil, reg.Host)})
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.StartNATS(t, false)
	sub := testenv.SubscribeNATS(t, ns, "lian-build.lamina.build.>")
	pub := events.New(events.Options{URL: ns.ClientURL()})
	defer pub.Close()
	b := &lamina.Builder{Pipeline: p, Parallel: 2, Registry: cache.Registry{Insecure: true}, Events: pub,
		Base: frontdoor.Settings{Registry: reg.Host + "/cat", Insecure: []string{reg.Host}, Progress: "plain"}}
	dir := catalogOf(t)
	build := func() map[string]lamina.LayerResult {
		t.Helper()
		c, err := lamina.Load(context.Background(), dir)
		if err == nil {
			err = c.Check()
		}
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		rs, err := b.Build(context.Background(), c, nil)
		var sb strings.Builder
		_ = lamina.WriteSummary(&sb, rs)
		t.Logf("catalog build in %s:\n%s", time.Since(start).Round(time.Millisecond), sb.String())
		if err != nil && !strings.Contains(err.Error(), "probe failed") {
			t.Fatal(err)
		}
		return byName(rs)
	}

	first := build()
	got := map[string]bool{}
	for range 4 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("events: %v (got %v)", err, got)
		}
		var e pipeline.Event
		if m.Subject != "lian-build.lamina.build.completed" || json.Unmarshal(m.Data, &e) != nil || e.Result == nil || e.Result.Digest == "" {
			t.Fatalf("event %s %s", m.Subject, m.Data)
		}
		got[e.BuildID] = true
	}
	if len(got) != 4 || !got["lamina-app"] {
		t.Fatalf("one event per layer: %v", got)
	}
	for _, n := range []string{"root", "tool", "other", "app"} {
		if first[n].Status != lamina.Built || first[n].Digest == "" {
			t.Fatalf("first run: %s %+v", n, first[n])
		}
	}
	if first["tool"].Verified[0] != "mytool" {
		t.Errorf("tool's probe: %v", first["tool"].Verified)
	}
	tool, other := first["tool"], first["other"]
	if !(tool.Started.Before(other.Finished) && other.Started.Before(tool.Finished)) {
		t.Errorf("independent layers did not overlap: tool %s–%s, other %s–%s", tool.Started, tool.Finished, other.Started, other.Finished)
	}
	if !first["app"].Started.After(tool.Finished) {
		t.Error("app started before its base finished")
	}
	if d, _, err := b.Registry.ImageLabels(context.Background(), reg.Host+"/cat/lamina/app:latest"); err != nil || d != first["app"].Digest {
		t.Fatalf("app:latest is %s, built %s (%v)", d, first["app"].Digest, err)
	}

	for n, r := range build() {
		if r.Status != lamina.Skipped {
			t.Errorf("second run built %s: %+v", n, r)
		}
	}

	df := filepath.Join(dir, "tool", "Dockerfile")
	if err := os.WriteFile(df, []byte(strings.Replace(mustRead(t, df), "tool-ok", "tool-ok-2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	third := build()
	want := map[string]lamina.Status{"root": lamina.Skipped, "other": lamina.Skipped, "tool": lamina.Built, "app": lamina.Built}
	for n, s := range want {
		if third[n].Status != s {
			t.Errorf("after changing tool: %s %s, want %s", n, third[n].Status, s)
		}
	}

	layer(t, dir, "broken", `{ layer = "root" }`, "FROM base\nRUN true\n", `{ binary = "missing-tool", probe = "missing-tool --version" }`)
	layer(t, dir, "after-broken", `{ layer = "broken" }`, "FROM base\nRUN true\n", "")
	fourth := build()
	if fourth["broken"].Status != lamina.Failed || !strings.Contains(fourth["broken"].Why, "missing-tool --version") {
		t.Errorf("broken: %+v", fourth["broken"])
	}
	if fourth["after-broken"].Status != lamina.Blocked || !strings.Contains(fourth["after-broken"].Why, "broken") {
		t.Errorf("after-broken: %+v", fourth["after-broken"])
	}
	if d, _, _ := b.Registry.ImageLabels(context.Background(), reg.Host+"/cat/lamina/broken:latest"); d != "" {
		t.Error("a layer whose probe failed was promoted")
	}

	// Downstream: --lamina tool gives FROM lamina/tool, pinned by digest.
	down := t.TempDir()
	if err := os.WriteFile(filepath.Join(down, "Dockerfile"), []byte("FROM lamina/tool\nRUN mytool > /out\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := b.Base
	s.Context, s.Lamina, s.Workspace = down, []string{"tool"}, "downstream"
	req, err := s.Request()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PinLamina(context.Background(), &req); err != nil {
		t.Fatal(err)
	}
	var pinned string
	for _, nc := range req.Build.NamedContexts {
		if nc.Name == "lamina/tool" {
			pinned = nc.DockerImage
		}
	}
	if pinned != reg.Host+"/cat/lamina/tool:latest@"+third["tool"].Digest {
		t.Fatalf("lamina/tool is %q, want the promoted digest %s", pinned, third["tool"].Digest)
	}
	if !strings.Contains(strings.Join(req.Cache.ExtraImports, ","), reg.Host+"/cat/ci/lamina-tool:cache") {
		t.Errorf("the layer's cache is not imported: %v", req.Cache.ExtraImports)
	}
	req.Build.ProgressOut = io.Discard
	if res, err := p.Run(context.Background(), req); err != nil {
		t.Fatalf("downstream build on lamina/tool: %v", err)
	} else {
		t.Logf("downstream: %d/%d steps cached", res.StepsCached, res.StepsTotal)
	}
	// catalog test: app and its bases built and verified again, nothing promoted.
	b.Test = true
	c, err := lamina.Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	tested, err := b.Build(context.Background(), c, []string{"app"})
	if err != nil || len(tested) != 3 {
		t.Fatalf("catalog test: %+v %v", tested, err)
	}
	for _, r := range tested {
		if r.Status != lamina.Built || !strings.Contains(r.Why, "not promoted") {
			t.Errorf("catalog test: %s %s %s", r.Name, r.Status, r.Why)
		}
	}
	if d, _, _ := b.Registry.ImageLabels(context.Background(), reg.Host+"/cat/lamina/app:latest"); d != third["app"].Digest {
		t.Errorf("catalog test promoted app: %s (was %s)", d, third["app"].Digest)
	}
	b.Test = false
	s.Lamina = []string{"nothing"}
	req, _ = s.Request()
	if err := s.PinLamina(context.Background(), &req); err == nil || !strings.Contains(err.Error(), "build the catalog first") {
		t.Errorf("a layer never built: %v", err)
	}
}

func mustRead(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
