package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const dpkgStatus = `Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 2.36-9+deb12u9
Description: GNU C Library: Shared libraries

Package: busybox-static
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 1:1.35.0-4+b3
Description: Standalone rescue shell with tons of builtin utilities
`

func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The layout BuildKit mounts: the final stage at .../core/sbom, the build
// context at .../extras/sbom-context; an SBOM per target, each an in-toto
// statement whose SPDX predicate lists that target's packages only.
func TestScanWritesOneStatementPerTarget(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	core := filepath.Join(src, "core", "sbom")
	write(t, core, map[string]string{
		"etc/os-release":      "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
		"var/lib/dpkg/status": dpkgStatus,
	})
	write(t, filepath.Join(src, "extras", "sbom-context"), map[string]string{
		"package-lock.json": `{"name":"app","lockfileVersion":3,"packages":{"":{"name":"app"},"node_modules/left-pad":{"version":"1.3.0","resolved":"https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz"}}}`,
	})
	env := map[string]string{envDestination: out, envSource: core, envExtras: filepath.Join(src, "extras")}
	job, err := FromEnvironment(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := job.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string][]string{
		"sbom.spdx.json":         {"libc6", "busybox-static", "2.36-9+deb12u9"},
		"sbom-context.spdx.json": {"left-pad"},
	} {
		names := packages(t, filepath.Join(out, file))
		for _, w := range want {
			if !strings.Contains(names, w) {
				t.Errorf("%s lacks %s: %s", file, w, names)
			}
		}
	}
	if n := packages(t, filepath.Join(out, "sbom.spdx.json")); strings.Contains(n, "left-pad") {
		t.Errorf("the final stage's SBOM lists the context's packages: %s", n)
	}
}

// packages reads a statement and lists its packages' names and versions.
func packages(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stmt struct {
		Type          string `json:"_type"`
		PredicateType string `json:"predicateType"`
		Predicate     struct {
			SPDXVersion string `json:"spdxVersion"`
			Packages    []struct {
				Name, VersionInfo string
			} `json:"packages"`
		} `json:"predicate"`
	}
	if err := json.Unmarshal(b, &stmt); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if stmt.Type != "https://in-toto.io/Statement/v0.1" || stmt.PredicateType != "https://spdx.dev/Document" || stmt.Predicate.SPDXVersion != "SPDX-2.3" {
		t.Errorf("%s: statement %s, predicate %s, %s", path, stmt.Type, stmt.PredicateType, stmt.Predicate.SPDXVersion)
	}
	var names []string
	for _, p := range stmt.Predicate.Packages {
		names = append(names, p.Name+"@"+p.VersionInfo)
	}
	return strings.Join(names, " ")
}

// The protocol's required variables are required; the extras are not.
func TestEnvironment(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{envSource: dir}, envDestination + " is not set"},
		{map[string]string{envDestination: dir}, envSource + " is not set"},
		{map[string]string{envDestination: dir, envSource: filepath.Join(dir, "missing")}, envSource + ":"},
	} {
		_, err := FromEnvironment(func(k string) string { return c.env[k] })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.env, err, c.want)
		}
	}
	job, err := FromEnvironment(func(k string) string {
		return map[string]string{envDestination: dir, envSource: dir, envExtras: filepath.Join(dir, "none")}[k]
	})
	if err != nil || len(job.Extras) != 0 {
		t.Errorf("a missing extras directory: %v, %v (want no extras, no error)", job.Extras, err)
	}
}
