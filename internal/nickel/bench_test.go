package nickel

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lian-build/action/schemas"
)

// A 200-line directives file: the defaults, overrides, and a let-bound table of workspaces.
func directives200() string {
	var b strings.Builder
	b.WriteString("let D = import \"defaults/build_directives.ncl\" in\n")
	b.WriteString("let table = {\n")
	for i := 0; i < 190; i++ {
		fmt.Fprintf(&b, "  ws%03d = { image = \"registry.example.com/team/app-%03d:abc123\", tier = \"cax21\" },\n", i, i)
	}
	b.WriteString("} in\n")
	b.WriteString("D.make_ci_build {\n  workspace = \"app-007\",\n  artifact = { image = table.ws007.image, target = \"release\" },\n")
	b.WriteString("  runner_override = table.ws007.tier,\n  nats_events = { url = \"nats://127.0.0.1:4222\" },\n  cache_policy.extra_imports = [\"registry/lamina/rust-deps:abc\"],\n}\n")
	return b.String()
}

func TestDirectives200Lines(t *testing.T) {
	src := directives200()
	if n := strings.Count(src, "\n"); n < 195 {
		t.Fatalf("only %d lines", n)
	}
	doc, err := Eval(context.Background(), "/d/main.ncl", []byte(src), Options{Loader: DirLoader{Root: "/d", Library: schemas.FS}})
	if err != nil {
		t.Fatal(err)
	}
	m := doc.Value.(map[string]any)
	if m["runner_override"] != "cax21" || m["artifact"].(map[string]any)["image"] != "registry.example.com/team/app-007:abc123" {
		t.Fatalf("%v", m)
	}
}

// BenchmarkSchemasAnd200LineDirectives: target < 5 ms per evaluation.
func BenchmarkSchemasAnd200LineDirectives(b *testing.B) {
	src := []byte(directives200())
	opts := Options{Loader: DirLoader{Root: "/d", Library: schemas.FS}}
	for b.Loop() {
		if _, err := Eval(context.Background(), filepath.Join("/d", "main.ncl"), src, opts); err != nil {
			b.Fatal(err)
		}
	}
}
