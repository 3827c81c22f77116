package sbom

import (
	"context"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/lian-build/action/internal/buildkit"
	"github.com/lian-build/action/internal/platforms"
)

// Attestation annotations BuildKit writes (docs/attestations/attestation-storage.md).
const (
	refType       = "vnd.docker.reference.type"
	refDigest     = "vnd.docker.reference.digest"
	predicateType = "in-toto.io/predicate-type"
	// PredicateSPDX is an SPDX document's in-toto predicate type.
	PredicateSPDX = "https://spdx.dev/Document"
)

// Summaries reads the attestations of the image index at REPOSITORY@DIGEST,
// one per platform image; an image that is not an index has none.
func (r Registry) Summaries(ctx context.Context, ref string) ([]buildkit.Attestation, error) {
	rf, err := r.Ref(ref)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(rf, r.Options(ctx, rf)...)
	if err != nil {
		return nil, fmt.Errorf("attestations of %s: %w", ref, err)
	}
	if !desc.MediaType.IsIndex() {
		return nil, nil
	}
	idx, im, err := platforms.IndexOf(desc)
	if err != nil {
		return nil, err
	}
	platformOf := map[string]string{}
	for _, m := range im.Manifests {
		if m.Platform != nil {
			platformOf[m.Digest.String()] = m.Platform.String()
		}
	}
	var out []buildkit.Attestation
	for _, m := range im.Manifests {
		if m.Annotations[refType] != "attestation-manifest" {
			continue
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			return nil, fmt.Errorf("attestations of %s: %w", ref, err)
		}
		s, err := summarize(img)
		if err != nil {
			return nil, fmt.Errorf("attestation %s of %s: %w", m.Digest, ref, err)
		}
		s.Platform, s.Digest = platformOf[m.Annotations[refDigest]], m.Digest.String()
		out = append(out, s)
	}
	return out, nil
}

// summarize reads one attestation manifest: its predicates, and the
// packages of its first SBOM (BuildKit puts the final stage's first).
func summarize(img v1.Image) (buildkit.Attestation, error) {
	s := buildkit.Attestation{Packages: -1}
	mf, err := img.Manifest()
	if err != nil {
		return s, err
	}
	for _, l := range mf.Layers {
		pt := l.Annotations[predicateType]
		s.Predicates = append(s.Predicates, pt)
		if pt != PredicateSPDX {
			continue
		}
		s.Scans++
		if s.Scans > 1 {
			continue
		}
		if s.Packages, err = packages(img, l.Digest); err != nil {
			return s, err
		}
	}
	return s, nil
}

// packages counts the packages of the SPDX statement in layer d.
func packages(img v1.Image, d v1.Hash) (int, error) {
	layer, err := img.LayerByDigest(d)
	if err != nil {
		return 0, err
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var stmt struct {
		Predicate struct {
			Packages []json.RawMessage `json:"packages"`
		} `json:"predicate"`
	}
	if err := json.NewDecoder(rc).Decode(&stmt); err != nil {
		return 0, fmt.Errorf("the SBOM is not an SPDX statement: %w", err)
	}
	return len(stmt.Predicate.Packages), nil
}
