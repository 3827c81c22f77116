package gateway

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/frontdoor"
)

// A repository's paths never leave its checkout: whatever way a path is
// spelt or linked, the job is refused with the field named, and the file
// it points at is neither quoted nor named.
func TestRepositoryPathsStayInsideTheCheckout(t *testing.T) {
	outside := t.TempDir()
	const secret = "ghs_TOP-SECRET-webhook-token-42"
	secretFile := filepath.Join(outside, "webhook-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "Dockerfile"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "directives.ncl"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := "FROM scratch\nCOPY Dockerfile /\n"
	rel, _ := filepath.Rel(filepath.Join(os.TempDir(), "x", "y"), secretFile)
	for _, tt := range []struct {
		name  string
		files map[string]string // "->TARGET" makes a symbolic link
		words []string
	}{
		{"dockerfile climbs out", map[string]string{"lian.ncl": `let D = import "defaults/build_directives.ncl" in D.make_ci_build { workspace = "app", artifact = { image = "r/app:1", dockerfile = "` + strings.Repeat("../", 8) + strings.TrimPrefix(secretFile, "/") + `" } }`, "Dockerfile": good},
			[]string{"lian.ncl", "artifact.dockerfile", "leads outside"}},
		{"dockerfile absolute", map[string]string{"lian.ncl": `let D = import "defaults/build_directives.ncl" in D.make_ci_build { workspace = "app", artifact = { image = "r/app:1", dockerfile = "` + secretFile + `" } }`, "Dockerfile": good},
			[]string{"artifact.dockerfile", "leads outside"}},
		{"dockerfile relative climb", map[string]string{".lian/directives.ncl": `let D = import "defaults/build_directives.ncl" in D.make_ci_build { workspace = "app", artifact = { image = "r/app:1", dockerfile = "` + rel + `" } }`, "Dockerfile": good},
			[]string{"artifact.dockerfile", "leads outside"}},
		{"context absolute", map[string]string{"lian.ncl": `let D = import "defaults/build_directives.ncl" in D.make_ci_build { workspace = "app", artifact = { image = "r/app:1", context = "` + outside + `" } }`},
			[]string{"artifact.context", "leads outside"}},
		{"dockerfile through a link", map[string]string{"lian.ncl": `let D = import "defaults/build_directives.ncl" in D.make_ci_build { workspace = "app", artifact = { image = "r/app:1", dockerfile = "sub/df" } }`, "sub/df": "->" + secretFile},
			[]string{"file", "leads outside"}},
		{"default Dockerfile is a link", map[string]string{"Dockerfile": "->" + secretFile},
			[]string{"file", "leads outside"}},
		{"context is a linked directory", map[string]string{"lian.ncl": `let D = import "defaults/build_directives.ncl" in D.make_ci_build { workspace = "app", artifact = { image = "r/app:1", context = "ctx" } }`, "ctx": "->" + outside},
			[]string{"artifact.context", "leads outside"}},
		{"directives file is a link", map[string]string{"lian.ncl": "->" + secretFile, "Dockerfile": good},
			[]string{"lian.ncl"}},
		{"directives directory is a link", map[string]string{".lian": "->" + outside, "Dockerfile": good},
			[]string{"directives.ncl", "leads outside"}},
		{"state store from a repository", map[string]string{"lian.ncl": `let D = import "defaults/build_directives.ncl" in D.make_ci_build { workspace = "app", state_store = "/srv/state.img" }`, "Dockerfile": good},
			[]string{"state_store", "leads outside"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				var err error
				if target, ok := strings.CutPrefix(content, "->"); ok {
					err = os.Symlink(target, p)
				} else {
					err = os.WriteFile(p, []byte(content), 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			e := PipelineExecutor{Base: frontdoor.Settings{}}
			_, _, err := e.request(context.Background(), dir, Job{Owner: "o", Repo: "app", SHA: strings.Repeat("a", 40), Actor: "ci", BuildID: "b1"})
			if err == nil {
				t.Fatal("the job was accepted")
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "webhook-secret") && !strings.Contains(tt.name, "climb") && !strings.Contains(tt.name, "absolute") {
				t.Errorf("error shows the outside file: %v", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error quotes the outside file: %v", err)
			}
		})
	}
	// A repository's own link inside its checkout is fine.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "real.Dockerfile"), []byte(good), 0o644)
	os.Symlink("real.Dockerfile", filepath.Join(dir, "Dockerfile"))
	e := PipelineExecutor{Base: frontdoor.Settings{}}
	if _, _, err := e.request(context.Background(), dir, Job{Owner: "o", Repo: "app", SHA: strings.Repeat("a", 40), Actor: "ci", BuildID: "b1"}); err != nil {
		t.Fatalf("a link inside the checkout: %v", err)
	}
}
