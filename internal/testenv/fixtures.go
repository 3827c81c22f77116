package testenv

import "path/filepath"

// Webhooks is the directory of GitHub's webhook payload examples kept in the
// repository (testdata/github-webhooks, octokit/webhooks, MIT; see its README).
func Webhooks() string { return filepath.Join(RepoRoot(), "testdata", "github-webhooks") }

// Webhook is the path of one payload example, e.g. Webhook("push/payload.json").
func Webhook(path string) string { return filepath.Join(Webhooks(), path) }
