package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lian-build/action/internal/testenv"
)

// `sbom scanner` pushes an index of FROM-scratch images of the scanner,
// one per --binary, and prints the REPOSITORY@DIGEST that pins it; bad
// binaries are refused with exit 2 before anything is pushed.
func TestSBOMScannerCommand(t *testing.T) {
	testenv.Require(t)
	reg := testenv.StartRegistry(t)
	bin := filepath.Join(testenv.RepoRoot(), "bin", "lian-sbom-scanner")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("bin/lian-sbom-scanner (make tools): %v", err)
	}
	repo := reg.Host + "/tools/scanner"
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(context.Background(), append([]string{"sbom", "scanner"}, args...), &out, &errb)
		return code, strings.TrimSpace(out.String()), errb.String()
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{repo, "--binary", "riscv64=" + bin}, `--binary "riscv64=`},
		{[]string{repo, "--binary", "amd64=/nonexistent"}, "--binary amd64"},
		{[]string{repo, "--binary", "amd64=" + testenv.Require(t)}, "does not link github.com/anchore/syft"},
		{[]string{"--binary", "amd64=" + bin}, "takes REPOSITORY"},
	} {
		code, _, stderr := run(append(c.args, "--insecure-registry", reg.Host)...)
		if code == ExitOK || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want a refusal naming %q", c.args, code, stderr, c.want)
		}
	}
	code, out, stderr := run(repo, "--binary", "amd64="+bin, "--binary", "arm64="+bin, "--insecure-registry", reg.Host)
	if code != ExitOK || !strings.HasPrefix(out, repo+"@sha256:") {
		t.Fatalf("exit %d, %q, %s", code, out, stderr)
	}
	ref, _ := name.ParseReference(out, name.Insecure)
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 || im.Manifests[0].Platform.Architecture != "amd64" || im.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("index %+v, want amd64 and arm64", im.Manifests)
	}
	img, _ := idx.Image(im.Manifests[0].Digest)
	cf, err := img.ConfigFile()
	if err != nil || strings.Join(cf.Config.Entrypoint, " ") != "/lian-sbom-scanner" || !strings.HasPrefix(cf.Config.Labels["org.opencontainers.image.version"], "v1.") {
		t.Errorf("config %+v, %v", cf.Config, err)
	}
	if tagged, err := remote.Head(ref.Context().Tag("syft-" + cf.Config.Labels["org.opencontainers.image.version"])); err != nil || tagged.Digest.String() != strings.TrimPrefix(out, repo+"@") {
		t.Errorf("the syft-version tag: %v, %v", tagged, err)
	}
}
