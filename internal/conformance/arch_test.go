// Package conformance holds tests of the architecture's rules.
package conformance

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/lian-build/action/"

// Core packages never know which front door called them (docs/architecture.md).
var core = []string{"internal/pipeline", "internal/sizing", "internal/compute/...", "internal/buildkit"}

// forbiddenDep reports why a dependency of the core breaks that rule.
func forbiddenDep(dep string) (string, bool) {
	if own, ok := strings.CutPrefix(dep, module); ok {
		for _, f := range []string{"cmd/", "internal/cli", "internal/gateway", "internal/checks", "internal/githubapp", "plugin/", "internal/action", "internal/woodpecker"} {
			if strings.HasPrefix(own, f) {
				return "a front door's package", true
			}
		}
		return "", false
	}
	for _, f := range []string{"google/go-github", "woodpecker", "go-githubactions", "ghinstallation", "labstack/echo"} {
		if strings.Contains(dep, f) {
			return "a caller-specific library", true
		}
	}
	return "", false
}

func TestForbiddenDep(t *testing.T) {
	for dep, want := range map[string]bool{
		module + "internal/cli":                  true,
		module + "cmd/gateway":                   true,
		module + "internal/checks":               true,
		module + "internal/sizing":               false,
		"github.com/google/go-github/v66/github": true,
		"github.com/moby/buildkit/client":        false,
	} {
		if _, got := forbiddenDep(dep); got != want {
			t.Errorf("forbiddenDep(%q) = %v", dep, got)
		}
	}
}

func TestCoreImportsNoCallerIdentity(t *testing.T) {
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}"}
	for _, p := range core {
		args = append(args, module+p)
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list found only %d dependencies; the check would be empty", len(deps))
	}
	for _, dep := range deps {
		if why, bad := forbiddenDep(dep); bad {
			t.Errorf("the core depends on %s, %s", dep, why)
		}
	}
}

// upward are, per package, the packages of the layers above it that it
// must never import (directly or not): docs/architecture.md's picture has
// no arrow running back up.
var upward = []struct {
	pkg, mustUse string
	never        []string
}{
	// A provider knows the pool only by its wire model and client (poolapi).
	{"internal/compute/...", "internal/pool/poolapi", []string{"internal/pipeline", "internal/pool", "internal/state", "internal/events", "internal/frontdoor", "internal/launch", "internal/report"}},
	// Rendering a result knows the result, not how it was made.
	{"internal/report", "internal/pipeline", []string{"internal/frontdoor", "internal/launch", "internal/events", "internal/compute/hcloud", "internal/compute/local"}},
	// Settings say what to build; opening and running it is launch's.
	{"internal/frontdoor", "internal/compute", []string{"internal/launch", "internal/report", "internal/events"}},
	// The runtime is below every door.
	{"internal/launch", "internal/frontdoor", []string{"internal/cli", "internal/gateway", "internal/action", "internal/woodpecker", "internal/report"}},
}

func TestNoLayerImportsUpward(t *testing.T) {
	for _, l := range upward {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+l.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, module+l.mustUse) {
			t.Errorf("%s does not use %s: the check would be empty", l.pkg, l.mustUse)
		}
		for _, dep := range deps {
			for _, up := range l.never {
				if dep == module+up {
					t.Errorf("%s depends on %s", l.pkg, up)
				}
			}
		}
	}
}
