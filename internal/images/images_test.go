package images

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/pipeline"
	"github.com/lian-build/action/internal/testenv"
)

// The Dockerfiles' build stage needs a Go toolchain image, which cannot be
// pulled here; the test replaces that stage with a named context holding the
// same binaries built on the host (CGO_ENABLED=0, as the stage builds them),
// and the runtime base with the local busybox image. Everything after the
// build stage is the shipped Dockerfile, built for real.
func TestImagesBuildAndRun(t *testing.T) {
	testenv.Require(t)
	root := testenv.RepoRoot()
	tests := []struct {
		name, dockerfile string
		binaries         map[string]string // output name → package
		check            string            // RUN in the image
		want             string
	}{
		{"action", "Dockerfile", map[string]string{"lian-build-action": "./cmd/action", "lian-build": "./cmd/lian-build"},
			"/usr/local/bin/lian-build-action --help > /out.txt && /usr/local/bin/lian-build help >> /out.txt && test -x /usr/local/bin/lian-build-action-post", "INPUT_*"},
		{"woodpecker", "plugin/woodpecker/Dockerfile", map[string]string{"lian-build-plugin": "./plugin/woodpecker", "lian-build": "./cmd/lian-build"},
			"cd /tmp && /usr/local/bin/lian-build-plugin --help > /out.txt && /usr/local/bin/lian-build-plugin > /out.txt 2>&1; test $? = 2 && /usr/local/bin/lian-build help >> /out.txt", "lian-build:"},
	}
	prov := testenv.NewProvider(t, nil)
	p, err := pipeline.New(pipeline.Config{Provider: prov})
	if err != nil {
		t.Fatal(err)
	}
	base := buildkit.NamedContext{Name: "base", OCILayout: testenv.BaseLayout(t)}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stage := t.TempDir()
			for name, pkg := range tt.binaries {
				cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s", "-o", filepath.Join(stage, "out", name), pkg)
				cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("go build %s: %v\n%s", pkg, err, out)
				}
			}
			layout := filepath.Join(t.TempDir(), "image")
			_, err := p.Run(context.Background(), pipeline.Request{Workspace: "image-" + tt.name, Build: buildkit.Options{
				ContextDir: root, Dockerfile: filepath.Join(root, tt.dockerfile),
				BuildArgs:     map[string]string{"RUNTIME_IMAGE": "base", "RUNTIME_PACKAGES": ""},
				NamedContexts: []buildkit.NamedContext{base, {Name: "build", Dir: stage}},
				Outputs:       []buildkit.Output{{Type: "oci", Dest: layout, Attrs: map[string]string{"tar": "false", "name": "lian/" + tt.name + ":test"}}},
				Progress:      "plain", ProgressOut: io.Discard,
			}})
			if err != nil {
				t.Fatalf("building %s: %v", tt.dockerfile, err)
			}
			check := t.TempDir()
			if err := os.WriteFile(filepath.Join(check, "Dockerfile"), []byte("FROM image\nRUN "+tt.check+"\nFROM scratch\nCOPY --from=0 /out.txt /\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			if _, err := p.Run(context.Background(), pipeline.Request{Workspace: "check-" + tt.name, Build: buildkit.Options{
				ContextDir:    check,
				NamedContexts: []buildkit.NamedContext{{Name: "image", OCILayout: layout}},
				Outputs:       []buildkit.Output{{Type: "local", Dest: out, Attrs: map[string]string{}}},
				Progress:      "plain", ProgressOut: io.Discard,
			}}); err != nil {
				t.Fatalf("running the image: %v", err)
			}
			b, err := os.ReadFile(filepath.Join(out, "out.txt"))
			if err != nil || !strings.Contains(string(b), tt.want) || !strings.Contains(string(b), "build CONTEXT on a fresh, right-sized runner") {
				t.Fatalf("output of the image's entrypoints: %q %v", b, err)
			}
		})
	}
}
