package buildkit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSecret(t *testing.T) {
	tests := []struct {
		in      string
		want    Secret
		wantErr string
	}{
		{"id=tok,src=/run/tok", Secret{ID: "tok", File: "/run/tok"}, ""},
		{"id=tok,source=/run/tok", Secret{ID: "tok", File: "/run/tok"}, ""},
		{"id=tok,env=TOKEN", Secret{ID: "tok", Env: "TOKEN"}, ""},
		{"type=env,id=tok,src=TOKEN", Secret{ID: "tok", Env: "TOKEN"}, ""},
		{"id=TOKEN", Secret{ID: "TOKEN", Env: "TOKEN"}, ""},
		{"src=/run/cred.json", Secret{ID: "cred.json", File: "/run/cred.json"}, ""},
		{"tok", Secret{}, `field "tok" must be key=value`},
		{"id=x,colour=red", Secret{}, `unknown key "colour"`},
		{"type=vault,id=x", Secret{}, "type must be file or env"},
		{"id=x,src=/a,env=B", Secret{}, "not both"},
		{"", Secret{}, "not a comma-separated list"},
	}
	for _, tt := range tests {
		got, err := ParseSecret(tt.in)
		if tt.wantErr != "" {
			var ie *InputError
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ie) || ie.Field != "secrets" {
				t.Errorf("ParseSecret(%q) err = %v, want InputError with %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseSecret(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestSecretValueErrorNeverShowsValue(t *testing.T) {
	_, err := Secret{ID: "tok", Env: "LIAN_TEST_SURELY_UNSET"}.Read()
	if err == nil || !strings.Contains(err.Error(), "LIAN_TEST_SURELY_UNSET is not set") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseKeyValue(t *testing.T) {
	t.Setenv("LIAN_FROM_ENV", "env-value")
	tests := []struct{ in, k, v, err string }{
		{"A=b", "A", "b", ""},
		{"A=b=c", "A", "b=c", ""},
		{"A=", "A", "", ""},
		{"LIAN_FROM_ENV", "LIAN_FROM_ENV", "env-value", ""},
		{"LIAN_UNSET_X", "", "", "LIAN_UNSET_X set in the environment"},
		{"=b", "", "", "want NAME=VALUE"},
		{"A B=c", "", "", "want NAME=VALUE"},
	}
	for _, tt := range tests {
		k, v, err := ParseKeyValue("build-args", tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "build-args") {
				t.Errorf("%q: err = %v", tt.in, err)
			}
			continue
		}
		if err != nil || k != tt.k || v != tt.v {
			t.Errorf("%q = %q,%q,%v", tt.in, k, v, err)
		}
	}
}

func TestParseOutput(t *testing.T) {
	tests := []struct {
		in   string
		want Output
		err  string
	}{
		{"type=oci,dest=out.tar", Output{Type: "oci", Dest: "out.tar", Attrs: map[string]string{}}, ""},
		{"type=oci,dest=dir,tar=false", Output{Type: "oci", Dest: "dir", Attrs: map[string]string{"tar": "false"}}, ""},
		{"type=registry,name=r/a:b", Output{Type: "image", Attrs: map[string]string{"name": "r/a:b", "push": "true"}}, ""},
		{"type=image,\"name=r/a:b,r/a:c\"", Output{Type: "image", Attrs: map[string]string{"name": "r/a:b,r/a:c"}}, ""},
		{"./out", Output{Type: "local", Dest: "./out", Attrs: map[string]string{}}, ""},
		{"type=local", Output{}, "needs dest=PATH"},
		{"type=image", Output{}, "needs name=REF"},
		{"type=floppy,dest=a", Output{}, `unknown type "floppy"`},
		{"dest=a", Output{}, "missing type="},
	}
	for _, tt := range tests {
		got, err := ParseOutput(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseCache(t *testing.T) {
	e, err := ParseCache("cache-to", "type=registry,ref=r/c:main,mode=max")
	if err != nil || e.Type != "registry" || e.Attrs["ref"] != "r/c:main" || e.Attrs["mode"] != "max" {
		t.Fatalf("%+v %v", e, err)
	}
	e, err = ParseCache("cache-from", "r/c:main")
	if err != nil || e.Type != "registry" || e.Attrs["ref"] != "r/c:main" {
		t.Fatalf("%+v %v", e, err)
	}
	for _, bad := range []string{"type=registry", "type=ftp,ref=x", "type=registry,ref"} {
		if _, err := ParseCache("cache-from", bad); err == nil || !strings.HasPrefix(err.Error(), "cache-from") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func TestParseNamedContext(t *testing.T) {
	dir := t.TempDir()
	layout := t.TempDir()
	if err := os.WriteFile(filepath.Join(layout, "index.json"), []byte(`{"schemaVersion":2,"manifests":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   string
		want NamedContext
		err  string
	}{
		{"base=" + dir, NamedContext{Name: "base", Dir: dir}, ""},
		{"base=oci-layout://" + layout, NamedContext{Name: "base", OCILayout: layout}, ""},
		{"base=oci-layout://" + layout + ":v1", NamedContext{Name: "base", OCILayout: layout, OCIRef: "v1"}, ""},
		{"base=oci-layout://" + layout + "@sha256:abc", NamedContext{Name: "base", OCILayout: layout, OCIRef: "sha256:abc"}, ""},
		{"base=docker-image://debian:12", NamedContext{Name: "base", DockerImage: "debian:12"}, ""},
		{"base=oci-layout://" + dir, NamedContext{}, "not an OCI layout"},
		{"base=/nope", NamedContext{}, "not a directory"},
		{"base=git://x", NamedContext{}, "unsupported scheme"},
		{"base", NamedContext{}, "want NAME=DIR"},
	}
	for _, tt := range tests {
		got, err := ParseNamedContext(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestCheckDockerfile(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "Dockerfile")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := CheckDockerfile(write("FROM scratch\nCOPY . /\n"), ""); err != nil {
		t.Fatalf("valid Dockerfile: %v", err)
	}
	if err := CheckDockerfile(write("# syntax=example/frontend:1\nANYTHING goes\n"), ""); err != nil {
		t.Fatalf("custom frontend left to BuildKit: %v", err)
	}
	tests := []struct {
		df   string
		line int
		msg  string
	}{
		{"FROM scratch\nRUNN x\n", 2, "unknown instruction"},
		{"FROM scratch\nCOPY\n", 2, "COPY requires at least two arguments"},
		{"\n", 1, "file with no instructions"},
		{"# only a comment\n", 1, "file with no instructions"},
	}
	for _, tt := range tests {
		err := CheckDockerfile(write(tt.df), "")
		var de *DockerfileError
		if !errors.As(err, &de) || de.Line != tt.line || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%q: err = %v (line %v), want line %d %q", tt.df, err, de, tt.line, tt.msg)
		}
	}
}

// An ignore file that is not a regular file, or that leads outside a
// repository's checkout, is refused before any runner is asked for,
// naming the file, and never read (a FIFO would block); a dangling link
// is no ignore file.
func TestDefinitionIgnoreFileRefused(t *testing.T) {
	checkout := t.TempDir()
	ctxDir := filepath.Join(checkout, "app")
	outside := filepath.Join(t.TempDir(), "patterns")
	for _, f := range []string{filepath.Join(ctxDir, "Dockerfile"), outside} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("FROM scratch\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ignore := filepath.Join(ctxDir, ".dockerignore")
	if err := os.Symlink(outside, ignore); err != nil {
		t.Fatal(err)
	}
	o := Options{ContextDir: ctxDir, Checkout: checkout}
	err := o.Validate()
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), ".dockerignore leads outside") || strings.Contains(err.Error(), outside) {
		t.Errorf("a .dockerignore leading out of the checkout: %v", err)
	}
	if err := os.Remove(ignore); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(ignore, 0o644); err != nil {
		t.Fatal(err)
	}
	o.Checkout = ""
	if err := o.Validate(); !errors.As(err, &ie) || !strings.Contains(err.Error(), ".dockerignore: not a regular file") {
		t.Errorf("a FIFO .dockerignore: %v", err)
	}
	if _, err := Build(context.Background(), nil, o); !errors.As(err, &ie) {
		t.Errorf("Build with a FIFO .dockerignore: %v", err)
	}
	// A dangling link is no ignore file, as the frontend reads it.
	if err := os.Remove(ignore); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing", ignore); err != nil {
		t.Fatal(err)
	}
	o.Checkout = checkout
	if err := o.Validate(); err != nil {
		t.Errorf("a dangling .dockerignore: %v", err)
	}
}
