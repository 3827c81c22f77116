package conformance

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Limits on the shape of the code: functions are split along their steps,
// mains only hand over to a package.
const (
	maxFuncLines = 85
	maxMainLines = 30
)

type funcLen struct {
	name  string
	lines int
}

// funcLengths are the lengths of every function outside tests under dir.
func funcLengths(t *testing.T, dir string) []funcLen {
	t.Helper()
	fset := token.NewFileSet()
	var out []funcLen
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Body != nil {
				n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
				out = append(out, funcLen{p + ":" + fd.Name.Name, n})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].lines > out[j].lines })
	return out
}

func TestFunctionsAreShort(t *testing.T) {
	var all []funcLen
	for _, dir := range []string{"..", filepath.Join("..", "..", "cmd"), filepath.Join("..", "..", "plugin")} {
		all = append(all, funcLengths(t, dir)...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].lines > all[j].lines })
	if len(all) < 300 {
		t.Fatalf("found only %d functions; the walk is broken", len(all))
	}
	for _, f := range all[:5] {
		t.Logf("longest: %d lines %s", f.lines, f.name)
	}
	for _, f := range all {
		if f.lines > maxFuncLines {
			t.Errorf("%s is %d lines (at most %d): split it along its steps", f.name, f.lines, maxFuncLines)
		}
	}
}

func TestMainsAreShort(t *testing.T) {
	cmds, _ := filepath.Glob(filepath.Join("..", "..", "cmd", "*", "main.go"))
	plugins, _ := filepath.Glob(filepath.Join("..", "..", "plugin", "*", "main.go"))
	mains := append(cmds, plugins...)
	if len(mains) < 4 {
		t.Fatalf("found %d main.go files, want the 4 binaries'", len(mains))
	}
	for _, m := range mains {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n > maxMainLines {
			t.Errorf("%s is %d lines (at most %d): logic goes in internal/", m, n, maxMainLines)
		}
	}
}
