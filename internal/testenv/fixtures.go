package testenv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Webhooks is the directory of GitHub's webhook payload examples kept in the
// repository (testdata/github-webhooks, octokit/webhooks, MIT; see its README).
func Webhooks() string { return filepath.Join(RepoRoot(), "testdata", "github-webhooks") }

// Webhook is the path of one payload example, e.g. Webhook("push/payload.json").
func Webhook(path string) string { return filepath.Join(Webhooks(), path) }

// HostileRows reads testdata/hostile/FILE, the corpus of one surface.
func HostileRows[T any](t testing.TB, file string) []T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(), "testdata", "hostile", file))
	if err != nil {
		t.Fatal(err)
	}
	var rows []T
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return rows
}
