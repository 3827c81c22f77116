package conformance

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sibling is the directory that sits beside checkouts on developer machines;
// a plain clone does not have it.
const sibling = "sha" + "red"

// allowMarker lets a file that holds deliberately hostile paths (an import
// escaping its root, say) opt out; the marker must be in the file itself.
const allowMarker = "arch:" + "hostile-paths"

// climbing matches a relative path that goes up at least one directory.
var climbing = regexp.MustCompile(`(?:\.\./)+[A-Za-z0-9_.-]*`)

// outsidePaths lists the relative paths in text that leave root when read
// from dir, plus any mention of a sibling "shared" directory, whatever the
// working directory of the script or test that holds it.
func outsidePaths(root, dir, text string) []string {
	var bad []string
	for _, m := range climbing.FindAllString(text, -1) {
		target := filepath.Join(dir, m)
		rel, err := filepath.Rel(root, target)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || strings.HasSuffix(m, "../"+sibling) {
			bad = append(bad, m)
		}
	}
	return bad
}

// The table holds bad examples on purpose: arch:hostile-paths
func TestOutsidePaths(t *testing.T) {
	root := "/r"
	for _, c := range []struct {
		dir, text string
		bad       bool
	}{
		{"/r/internal/x", `os.ReadFile("../../testdata/a.json")`, false},
		{"/r/internal/x", `os.ReadFile("../../../` + sibling + `/fixtures/a.json")`, true},
		{"/r/bench", `cd "$(dirname "$0")/.."`, false},
		{"/r", `see ../` + sibling + `/DESIGN.md`, true},
		{"/r/bench", `cp -a ../` + sibling + `/bench/rust-app`, true},
		{"/r/a/b", `x := "../../.."`, true},
	} {
		if got := len(outsidePaths(root, c.dir, c.text)) > 0; got != c.bad {
			t.Errorf("outsidePaths(%q, %q) = %v, want %v", c.dir, c.text, got, c.bad)
		}
	}
}

// The repository stands alone: no file in it refers to a path outside the
// module (a plain git clone has nothing beside it).
func TestNothingReferencesOutsideTheRepository(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", ".lian", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() > 1<<20 || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		checked++
		if strings.Contains(string(b), allowMarker) {
			return nil
		}
		for _, m := range outsidePaths(root, filepath.Dir(p), string(b)) {
			rel, _ := filepath.Rel(root, p)
			t.Errorf("%s refers to %q, outside the repository", rel, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked only %d files; the walk is broken", checked)
	}
}
