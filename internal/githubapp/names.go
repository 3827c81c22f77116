package githubapp

import (
	"fmt"
	"regexp"
)

// GitHub's rules for the names that go into API paths and git URLs. Names
// from a webhook payload are checked before they reach either: a repository
// named "../../etc" must not become POST /etc/check-runs.
var (
	loginRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}$`)
	// Logins of GitHub Apps end in "[bot]" (e.g. "github-actions[bot]").
	botRE  = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}\[bot\]$`)
	repoRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
	shaRE  = regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`)
)

// NameError is a name from a payload or the API that breaks GitHub's rules.
type NameError struct {
	Field, Value, Rule string
}

func (e *NameError) Error() string {
	v := e.Value
	if len(v) > 80 {
		v = v[:80] + "…"
	}
	return fmt.Sprintf("%s %q: %s", e.Field, v, e.Rule)
}

// ValidOwner checks a user or organisation login (owner of a repository).
func ValidOwner(field, s string) error {
	if !loginRE.MatchString(s) {
		return &NameError{field, s, "not a GitHub login (letters, digits and single hyphens, at most 39, not starting or ending with a hyphen)"}
	}
	return nil
}

// ValidLogin checks a user login, a bot's "[bot]" suffix allowed.
func ValidLogin(field, s string) error {
	if !loginRE.MatchString(s) && !botRE.MatchString(s) {
		return &NameError{field, s, "not a GitHub login"}
	}
	return nil
}

// ValidRepo checks a repository name.
func ValidRepo(field, s string) error {
	if !repoRE.MatchString(s) || s == "." || s == ".." {
		return &NameError{field, s, "not a GitHub repository name (letters, digits, '.', '-', '_', at most 100; not . or ..)"}
	}
	return nil
}

// ValidSHA checks a commit id: 40 (SHA-1) or 64 (SHA-256) lower-case hex digits.
func ValidSHA(field, s string) error {
	if !shaRE.MatchString(s) {
		return &NameError{field, s, "not a commit SHA (40 or 64 lower-case hex digits)"}
	}
	return nil
}
