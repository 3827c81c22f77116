package cli

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Flags may come before and after the context, as docker and buildx take them.
func TestFlagsAroundTheContext(t *testing.T) {
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	req, err := Request(context.Background(), []string{"-t", "r.io/a:1", ws, "--push", "--tag=r.io/a:2", "-f", filepath.Join(ws, "Dockerfile")})
	if err != nil || !reflect.DeepEqual(req.Build.Tags, []string{"r.io/a:1", "r.io/a:2"}) || !req.Build.Push || req.Build.ContextDir != ws {
		t.Fatalf("tags %v push %v context %q err %v", req.Build.Tags, req.Build.Push, req.Build.ContextDir, err)
	}
}

func TestDefaultWorkspace(t *testing.T) {
	for in, want := range map[string]string{"/src/My App": "my-app", "/src/lian-build": "lian-build", "/": "default"} {
		if got := defaultWorkspace(in); got != want {
			t.Errorf("defaultWorkspace(%q) = %q, want %q", in, got, want)
		}
	}
}

// Lists take buildx's comma form as well as repeated flags.
func TestCommaListsAsBuildxTakesThem(t *testing.T) {
	ws := t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "Dockerfile"), []byte("FROM scratch\nCOPY Dockerfile /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	req, err := Request(context.Background(), []string{"--platform", "linux/amd64,linux/arm64", "--platform", "linux/riscv64", "-t", "r.io/a:1,r.io/a:2", "--progress", "plain", ws})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"linux/amd64", "linux/arm64", "linux/riscv64"}; !reflect.DeepEqual(req.Build.Platforms, want) {
		t.Errorf("platforms %v, want %v", req.Build.Platforms, want)
	}
	if len(req.Build.Tags) != 2 {
		t.Errorf("tags %v", req.Build.Tags)
	}
}
