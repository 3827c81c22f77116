package lamina

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/testenv"
)

func catalog(t *testing.T, layers map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, wf := range layers {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, WorkflowFile), []byte(wf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func wf(name, base string) string {
	return `{
  name = "` + name + `",
  kind = 'toolchain,
  build_base = ` + base + `,
  artifact_paths = ["` + name + `:latest"],
}
`
}

// The example catalog is a DAG: debian, then go and rust at once, then app.
func TestExampleCatalog(t *testing.T) {
	c, err := Load(context.Background(), filepath.Join(testenv.RepoRoot(), "examples", "lamina"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	var levels []string
	for _, names := range c.LevelNames() {
		levels = append(levels, strings.Join(names, ","))
	}
	if got := strings.Join(levels, " → "); got != "debian → go,rust → app" {
		t.Fatalf("order %s", got)
	}
	if got := strings.Join(c.Unused(), ","); got != "app,go" {
		t.Fatalf("unused %s", got)
	}
	if got := strings.Join(c.Dependents("debian"), ","); got != "app,go,rust" {
		t.Fatalf("dependents of debian: %s", got)
	}
	if rust := c.Layer("rust"); len(rust.Tools) != 3 || rust.RunnerType != "cax21" || rust.Dockerfile != "Dockerfile" {
		t.Fatalf("rust %+v", rust)
	}
}

// Each broken catalog is refused with the file, line and column, and names
// what is wrong.
func TestBrokenCatalogs(t *testing.T) {
	for _, tt := range []struct {
		name   string
		layers map[string]string
		want   []string
	}{
		{"cycle", map[string]string{"a": wf("a", `{ layer = "b" }`), "b": wf("b", `{ layer = "c" }`), "c": wf("c", `{ layer = "a" }`)},
			[]string{"a/workflow.ncl:4:", "cycle: a → b → c → a"}},
		{"missing base", map[string]string{"a": wf("a", `{ layer = "debain" }`), "debian": wf("debian", `{ image = "scratch" }`)},
			[]string{"a/workflow.ncl:4:", `no layer "debain" in the catalog (layers: a, debian)`}},
		{"schema typo", map[string]string{"a": strings.Replace(wf("a", `{ image = "scratch" }`), "build_base", "buid_base", 1)},
			[]string{"a/workflow.ncl:4:3: buid_base: unknown field"}},
		{"duplicate", map[string]string{"a": wf("rust", `{ image = "scratch" }`), "b": wf("rust", `{ image = "scratch" }`)},
			[]string{"b/workflow.ncl:2:", `"rust" is also the name of`, "a/workflow.ncl"}},
		{"unpinned image", map[string]string{"a": wf("a", `{ image = "debian:bookworm" }`)},
			[]string{"a/workflow.ncl:4:", "not pinned by digest"}},
		{"both bases", map[string]string{"a": wf("a", `{ image = "scratch", layer = "b" }`)},
			[]string{"a/workflow.ncl:4:", "exactly one of layer"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(context.Background(), catalog(t, tt.layers))
			if err == nil {
				err = c.Check()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestSummaryMarkdown(t *testing.T) {
	md := Markdown([]LayerResult{
		{Name: "rust", Status: Built, Tier: "cax21", StepsCached: 1, StepsTotal: 3, Digest: "sha256:" + strings.Repeat("a", 64), Verified: []string{"cargo", "rustc"}},
		{Name: "app", Status: Blocked, Why: "base layer rust did not build | see above\nsecond line"},
	})
	for _, want := range []string{"| LAYER | RESULT |", "| rust | built | cax21 | 1/3 | sha256:aaaaaaaaaaaa | cargo, rustc |  |", `| app | blocked | — | — |  |  | base layer rust did not build \| see above second line |`} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

// chain is n layers, each on the one before, in reverse directory order.
func chain(n int) *Catalog {
	c := &Catalog{}
	for i := n - 1; i >= 0; i-- {
		l := &Layer{Name: fmt.Sprintf("l%d", i)}
		if i > 0 {
			l.Base.Layer = fmt.Sprintf("l%d", i-1)
		} else {
			l.Base.Image = "scratch"
		}
		c.Layers = append(c.Layers, l)
	}
	return c
}

// The DAG check is linear: 20,000 layers in a chain check and order (the
// cubic check took 13 s for 3,000), and a cycle at the end of a long chain
// is still found and named.
func TestCheckDAGOfManyLayers(t *testing.T) {
	c := chain(20000)
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	if lv := c.LevelNames(); len(lv) != 20000 || lv[0][0] != "l0" {
		t.Fatalf("levels: %d", len(lv))
	}
	c = chain(20000)
	c.Layers[len(c.Layers)-1].Base = Base{Layer: "l19999"}
	err := c.Check()
	if err == nil || !strings.Contains(err.Error(), "cycle: ") {
		t.Fatalf("cycle not found: %v", err)
	}
}

func BenchmarkCheckDAG(b *testing.B) {
	for _, n := range []int{1000, 3000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if err := chain(n).Check(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
