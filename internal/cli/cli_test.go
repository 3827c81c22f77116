package cli

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/lian-build/action/internal/frontdoor"
)

func TestParseInterspersed(t *testing.T) {
	fs := newFlagSet("t", nil)
	var tags frontdoor.ListValue
	var push bool
	fs.Var(&tags, "t", "")
	fs.BoolVar(&push, "push", false, "")
	pos, err := parseInterspersed(fs, []string{"-t", "a", "ctx", "--push", "-t", "b"})
	if err != nil || !reflect.DeepEqual(pos, []string{"ctx"}) || !push || !reflect.DeepEqual([]string(tags), []string{"a", "b"}) {
		t.Fatalf("pos %v tags %v push %v err %v", pos, tags, push, err)
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
