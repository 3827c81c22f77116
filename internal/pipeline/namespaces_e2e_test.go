package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/cache"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv"
)

func namespaced(e *env, dir, registry string, actor cache.Actor, disp cache.Disposition) pipeline.Request {
	req := e.request(dir)
	req.Workspace = "app"
	req.Actor = actor
	req.Cache = pipeline.CacheSettings{Registry: registry, Disposition: disp, Insecure: true}
	return req
}

var (
	ciActor  = cache.Actor{Kind: cache.ActorCI}
	jplActor = cache.Actor{Kind: cache.ActorHuman, ID: "jpl"}
)

const nsDockerfile = "FROM base\nRUN echo deps > /deps\nCOPY src.txt /src.txt\nRUN cat /src.txt > /out\n"

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// CI exports ci/<ws>; a session on a fresh runner imports it and writes only
// dev/<id>-<ws>; a later CI build never asks for dev/*, by the registry's own log.
func TestCacheNamespacesOnARealRegistry(t *testing.T) {
	reg := testenv.StartRegistry(t)
	e := newEnv(t, nil, reg.Host)
	dir := project(t, nsDockerfile, map[string]string{"src.txt": "v1\n"})

	ci, err := e.p.Run(context.Background(), namespaced(e, dir, reg.Host, ciActor, cache.Export))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ci.CacheExports, ","); got != reg.Host+"/ci/app:cache" {
		t.Fatalf("ci exports %s", got)
	}
	if reg.ManifestDigest(t, "ci/app", "cache") == "" {
		t.Fatal("no ci/app:cache in the registry")
	}

	writeFile(t, dir, "src.txt", "v2, changed in the session\n")
	n := len(reg.Requests())
	sess, err := e.p.Run(context.Background(), namespaced(e, dir, reg.Host, jplActor, cache.Export))
	if err != nil {
		t.Fatal(err)
	}
	if sess.Attempts[0].RunnerID == ci.Attempts[0].RunnerID {
		t.Fatal("the session reused the CI runner")
	}
	if sess.StepsCached < 1 {
		t.Fatalf("session build on a fresh runner: %d/%d steps cached, want the deps step from ci/", sess.StepsCached, sess.StepsTotal)
	}
	writes := testenv.Writes(reg.Since(n))
	if len(writes) == 0 {
		t.Fatal("the session exported nothing")
	}
	for _, w := range writes {
		if !strings.HasPrefix(w.Path, "/v2/dev/jpl-app/") {
			t.Errorf("session wrote %s %s (only dev/jpl-app/ is allowed)", w.Method, w.Path)
		}
	}
	if reg.ManifestDigest(t, "dev/jpl-app", "cache") == "" {
		t.Fatal("no dev/jpl-app:cache")
	}

	n = len(reg.Requests())
	if _, err := e.p.Run(context.Background(), namespaced(e, dir, reg.Host, ciActor, cache.Export)); err != nil {
		t.Fatal(err)
	}
	later := reg.Since(n)
	if len(later) == 0 {
		t.Fatal("no registry traffic from the CI build")
	}
	for _, q := range later {
		if strings.Contains(q.Path, "/dev/") {
			t.Errorf("CI build requested %s %s", q.Method, q.Path)
		}
	}
}

func TestRollbackAndDiscard(t *testing.T) {
	reg := testenv.StartRegistry(t)
	e := newEnv(t, nil, reg.Host)
	dir := project(t, nsDockerfile, map[string]string{"src.txt": "v1\n"})
	if _, err := e.p.Run(context.Background(), namespaced(e, dir, reg.Host, jplActor, cache.Export)); err != nil {
		t.Fatal(err)
	}
	good := reg.ManifestDigest(t, "dev/jpl-app", "cache")
	if good == "" {
		t.Fatal("no session cache")
	}

	// Rollback, failing: the last good cache stays.
	writeFile(t, dir, "src.txt", "v2\n")
	writeFile(t, dir, "Dockerfile", nsDockerfile+"RUN exit 1\n")
	if _, err := e.p.Run(context.Background(), namespaced(e, dir, reg.Host, jplActor, cache.Rollback)); err == nil {
		t.Fatal("the failing build succeeded")
	}
	if got := reg.ManifestDigest(t, "dev/jpl-app", "cache"); got != good {
		t.Fatalf("a failed rollback build changed the session cache: %s → %s", good, got)
	}

	// Rollback, succeeding: staged, then promoted.
	writeFile(t, dir, "Dockerfile", nsDockerfile)
	res, err := e.p.Run(context.Background(), namespaced(e, dir, reg.Host, jplActor, cache.Rollback))
	if err != nil {
		t.Fatal(err)
	}
	promoted := reg.ManifestDigest(t, "dev/jpl-app", "cache")
	if promoted == good || promoted == "" {
		t.Fatalf("a successful rollback build did not replace the cache (%s)", promoted)
	}
	if res.CachePromoted != reg.Host+"/dev/jpl-app:cache" || !strings.Contains(res.CacheExports[0], ":staging-") {
		t.Errorf("promoted %q from %v", res.CachePromoted, res.CacheExports)
	}
	if staged := reg.ManifestDigest(t, "dev/jpl-app", strings.SplitN(res.CacheExports[0], ":", 3)[2]); staged != promoted {
		t.Errorf("staging %s, promoted %s", staged, promoted)
	}

	// Discard: nothing written at all.
	writeFile(t, dir, "src.txt", "v3\n")
	n := len(reg.Requests())
	if _, err := e.p.Run(context.Background(), namespaced(e, dir, reg.Host, jplActor, cache.Discard)); err != nil {
		t.Fatal(err)
	}
	if w := testenv.Writes(reg.Since(n)); len(w) != 0 {
		t.Fatalf("discard wrote to the registry: %v", w)
	}
	if len(reg.Since(n)) == 0 {
		t.Fatal("discard did not even import the cache")
	}
}
