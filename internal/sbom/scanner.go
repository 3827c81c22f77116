// Package sbom makes lian-build's SBOM scanner image and reads the SBOMs a
// build pushed. The scanner (the scanner/ module: syft as a library,
// speaking BuildKit's SBOM protocol) is a static binary; its image is
// FROM scratch, assembled here without a build or a pull, and pushed to
// the user's registry, so an air-gapped runner gets SBOMs
// (docker/buildkit-syft-scanner is on Docker Hub only).
package sbom

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lian-build/action/internal/platforms"
)

// ScannerPath is where the scanner is in its image.
const ScannerPath = "/lian-sbom-scanner"

// Registry is where scanner images are pushed and SBOMs read.
type Registry struct{ platforms.Registry }

// PushScanner pushes a scanner image to repo, one image per architecture
// (binaries: arch → the static scanner built for it; BuildKit runs the
// scanner on the runner's own platform, so a fleet with arm64 runners
// needs both) in one index, and returns REPOSITORY@DIGEST to pin.
func (r Registry) PushScanner(ctx context.Context, repo string, binaries map[string]string) (string, error) {
	if len(binaries) == 0 {
		return "", fmt.Errorf("sbom scanner: no scanner binary")
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var version string
	for _, arch := range slices.Sorted(maps.Keys(binaries)) {
		v, err := syftVersion(binaries[arch])
		if err != nil {
			return "", err
		}
		version = v
		img, err := scannerImage(arch, binaries[arch], v)
		if err != nil {
			return "", err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	ref, err := r.Ref(repo + ":syft-" + version)
	if err != nil {
		return "", fmt.Errorf("sbom scanner: %s: %w", repo, err)
	}
	if err := remote.WriteIndex(ref, idx, r.Options(ctx, ref)...); err != nil {
		return "", fmt.Errorf("sbom scanner: pushing %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return "", err
	}
	return ref.Context().Name() + "@" + d.String(), nil
}

// scannerImage is a FROM-scratch image of one scanner binary: the binary,
// an empty /tmp, and the command BuildKit runs.
func scannerImage(arch, binary, version string) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("sbom scanner: %w", err)
	}
	if len(bin) < 4 || string(bin[1:4]) != "ELF" {
		return nil, fmt.Errorf("sbom scanner: %s is not a Linux executable", binary)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
		{Name: ScannerPath[1:], Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base, err := mutate.ConfigFile(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1),
		&v1.ConfigFile{OS: "linux", Architecture: arch, RootFS: v1.RootFS{Type: "layers"},
			Config: v1.Config{Entrypoint: []string{ScannerPath}, Env: []string{"TMPDIR=/tmp"}, Labels: map[string]string{"org.opencontainers.image.title": "lian-sbom-scanner", "org.opencontainers.image.version": version}}})
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(base, layer)
}

// syftVersion is the syft a scanner binary links ("v1.57.2").
func syftVersion(binary string) (string, error) {
	bi, err := buildinfo.ReadFile(binary)
	if err != nil {
		return "", fmt.Errorf("sbom scanner: %s: %w (build it from the scanner/ module: make tools)", binary, err)
	}
	for _, d := range bi.Deps {
		if d.Path == "github.com/anchore/syft" {
			return d.Version, nil
		}
	}
	return "", fmt.Errorf("sbom scanner: %s does not link github.com/anchore/syft: not lian-sbom-scanner", binary)
}
