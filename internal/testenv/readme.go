package testenv

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// CheckREADMEBlock compares the README between two markers with want;
// LIAN_UPDATE_README=1 rewrites it.
func CheckREADMEBlock(t *testing.T, begin, end, want string) {
	t.Helper()
	path := filepath.Join(RepoRoot(), "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(readme, []byte(begin))
	if start < 0 {
		t.Fatalf("README: marker %q is gone", begin)
	}
	start += len(begin)
	stop := bytes.Index(readme[start:], []byte(end))
	if stop < 0 {
		t.Fatalf("README: marker %q is gone", end)
	}
	got := string(readme[start : start+stop])
	if got == want {
		return
	}
	if os.Getenv("LIAN_UPDATE_README") == "1" {
		out := append(append(append([]byte{}, readme[:start]...), want...), readme[start+stop:]...)
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README differs between %q and %q (LIAN_UPDATE_README=1 go test ./internal/frontdoor ./internal/cli rewrites it):\n--- README\n%s--- want\n%s", begin, end, got, want)
}
