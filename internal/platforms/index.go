package platforms

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lian-build/action/internal/buildkit"
)

// Registry is how lian-build reads and writes what a build pushed (the
// image index, signatures): credentials by host (others from
// ~/.docker/config.json, as BuildKit pushes) and the hosts reached over
// plain HTTP.
type Registry struct {
	Auth     map[string]buildkit.Credential
	Insecure []string
}

// Ref parses a reference, plain HTTP for an insecure registry's.
func (r Registry) Ref(s string) (name.Reference, error) {
	var o []name.Option
	if ref, err := name.ParseReference(s); err == nil && slices.Contains(r.Insecure, ref.Context().RegistryStr()) {
		o = append(o, name.Insecure)
	}
	return name.ParseReference(s, o...)
}

// Options are the registry client's options for ref: its host's
// credentials, else the keychain.
func (r Registry) Options(ctx context.Context, ref name.Reference) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx)}
	if c, ok := r.Auth[ref.Context().RegistryStr()]; ok {
		return append(opts, remote.WithAuth(&authn.Basic{Username: c.Username, Password: c.Password}))
	}
	return append(opts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
}

// WriteIndex writes one OCI image index of the legs' pushed manifests
// (each REPOSITORY@DIGEST; a leg's own index contributes its manifests)
// under every tag, and returns the index's digest. Nothing is tagged
// unless every leg's manifest could be read.
func (r Registry) WriteIndex(ctx context.Context, legs, tags []string) (string, error) {
	var adds []mutate.IndexAddendum
	for _, leg := range legs {
		a, err := r.addenda(ctx, leg)
		if err != nil {
			return "", err
		}
		adds = append(adds, a...)
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	digest, err := idx.Digest()
	if err != nil {
		return "", err
	}
	for _, t := range tags {
		ref, err := r.Ref(t)
		if err != nil {
			return "", fmt.Errorf("image index: tag %s: %w", t, err)
		}
		if err := remote.WriteIndex(ref, idx, r.Options(ctx, ref)...); err != nil {
			return "", fmt.Errorf("image index: pushing %s: %w", t, err)
		}
	}
	return digest.String(), nil
}

// addenda are the index entries of one leg's pushed manifest.
func (r Registry) addenda(ctx context.Context, leg string) ([]mutate.IndexAddendum, error) {
	ref, err := r.Ref(leg)
	if err != nil {
		return nil, fmt.Errorf("image index: %s: %w", leg, err)
	}
	desc, err := remote.Get(ref, r.Options(ctx, ref)...)
	if err != nil {
		return nil, fmt.Errorf("image index: reading %s: %w", leg, err)
	}
	if desc.MediaType.IsIndex() {
		idx, im, err := IndexOf(desc)
		if err != nil {
			return nil, err
		}
		var out []mutate.IndexAddendum
		for _, m := range im.Manifests {
			child, err := idx.Image(m.Digest)
			if err != nil {
				return nil, fmt.Errorf("image index: %s: %w", m.Digest, err)
			}
			out = append(out, mutate.IndexAddendum{Add: child, Descriptor: m})
		}
		return out, nil
	}
	img, err := desc.Image()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image index: %s: config: %w", leg, err)
	}
	d := desc.Descriptor
	d.Platform = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	return []mutate.IndexAddendum{{Add: img, Descriptor: d}}, nil
}

// IndexOf reads an image index a registry descriptor points at, and its manifest.
func IndexOf(desc *remote.Descriptor) (v1.ImageIndex, *v1.IndexManifest, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, nil, err
	}
	return idx, im, nil
}
