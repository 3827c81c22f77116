package launch_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lian-build/action/internal/frontdoor"
	"github.com/lian-build/action/internal/testenv"
)

// A public repository's CI push carries a SLSA v1 provenance attestation
// (mode=max by default): an attestation manifest in the pushed index whose
// predicate names lian-build, the provider and tier, the source and its
// commit, and the build's arguments.
func TestPushCarriesProvenance(t *testing.T) {
	testenv.Require(t)
	reg := testenv.StartRegistry(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nARG GREETING\nCOPY Dockerfile /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const commit = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
	s := frontdoor.Settings{ComputeProvider: "local", Context: dir, Tags: []string{reg.Host + "/team/prov:1"}, Push: true, Insecure: []string{reg.Host},
		BuildArgs: []string{"GREETING=hello"}, Progress: "plain", Workspace: "prov", MetricsDir: t.TempDir(),
		Public: true, Source: "https://github.com/octo/app", Commit: commit}
	s.SetOption("state-dir", filepath.Join(t.TempDir(), "runners"))
	s.SetOption("buildkitd", testenv.Require(t))
	res, progress := build(t, s)
	if res.Provenance != "max" {
		t.Errorf("the result says provenance %q, want max (a public repository's CI push)", res.Provenance)
	}
	pred := provenanceOf(t, reg.Host+"/team/prov:1")
	for _, want := range []string{`"predicateType":"https://slsa.dev/provenance/v1"`, "https://github.com/lian-build/action@", "provider=local", "tier=" + res.Tier,
		`"https://github.com/octo/app"`, commit, `"build-arg:GREETING":"hello"`} {
		if !strings.Contains(pred, want) {
			t.Errorf("the provenance lacks %s:\n%.3000s\n%s", want, pred, progress)
		}
	}
}

// provenanceOf is the in-toto statement of the provenance attestation in
// the index at tag.
func provenanceOf(t *testing.T, tag string) string {
	t.Helper()
	for _, st := range statementsOf(t, tag) {
		if strings.Contains(st, `"predicateType":"https://slsa.dev/provenance/`) {
			return st
		}
	}
	t.Fatalf("no provenance attestation in %s", tag)
	return ""
}

// statementsOf are the in-toto statements of every attestation manifest in
// the index at tag (JSON, compacted), in the manifests' layer order.
func statementsOf(t *testing.T, tag string) []string {
	t.Helper()
	ref, _ := name.ParseReference(tag, name.Insecure)
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("the push is not an index (no attestation?): %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range im.Manifests {
		if m.Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
			continue
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			var stmt map[string]any
			err = json.NewDecoder(rc).Decode(&stmt)
			rc.Close()
			if err == nil {
				b, _ := json.Marshal(stmt)
				out = append(out, string(b))
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no attestation manifest in %s: %+v", tag, im.Manifests)
	}
	return out
}
