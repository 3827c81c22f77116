package lamina

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Loading a catalog never panics or hangs, whatever a workflow.ncl holds,
// and a layer it accepts has a valid name and keeps its paths in its
// directory.
func FuzzLoadCatalog(f *testing.F) {
	f.Add(wf("rust", `{ image = "scratch" }`), wf("go", `{ layer = "rust" }`))
	f.Add(wf("", `{ layer = "" }`), wf("x", `{ layer = "x" }`))
	f.Add(`{ name = "a", kind = 'deps, build_base = { image = "scratch" }, artifact_paths = ["a:1"], context = "../.." }`, "")
	f.Add(`{ name = "a", kind = 'deps, build_base = { image = "scratch" }, artifact_paths = ["a:1"], tools_provided = [{ binary = "b", probe = "x\ny" }] }`, "{")
	f.Fuzz(func(t *testing.T, a, b string) {
		dir := t.TempDir()
		for name, content := range map[string]string{"a": a, "b": b} {
			if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name, WorkflowFile), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _ := Load(ctx, dir)
		if c == nil {
			return
		}
		for _, l := range c.Layers {
			if !nameRE.MatchString(l.Name) || strings.ContainsAny(l.Context+l.Dockerfile, "\x00") {
				t.Fatalf("accepted layer %q (context %q)", l.Name, l.Context)
			}
		}
		_ = c.Check()
		if c.Check() == nil {
			_ = c.Order()
		}
	})
}
